# Two commands for a fresh machine with python3 and make:
#   make run    run the daemon on the embedded default (SQLite under ./.state), demo
#               mode on: open http://127.0.0.1:8750/syncplay/ in two browser tabs
#   make test   lint, type-check and run the whole test suite (PostgreSQL 18 included)
# Each creates its own virtual environment in .venv from the committed lock file.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck audit pytest lock bench soak clean

# The first run takes a minute or two: each step says what it does, and pip shows each
# package as it fetches it, so a slow download does not look like a hang.
$(STAMP): pyproject.toml requirements.lock
	@echo "==> creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> installing the locked dependencies into $(VENV) (about a minute, once)"
	$(BIN)/python -m pip install --disable-pip-version-check --progress-bar off -r requirements.lock
	@echo "==> installing syncplayd itself (editable)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)
	@echo "==> $(VENV) is ready"

run: $(STAMP)
	SYNCPLAY_STATE_DIR=$${SYNCPLAY_STATE_DIR:-$(CURDIR)/.state} $(BIN)/syncplayd --demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# Supply chain: known vulnerabilities in the locked dependencies (PyPI's advisory
# data, needs the package index), and bandit's static checks of the package.
audit: $(STAMP)
	$(BIN)/pip-audit --requirement requirements.lock --no-deps --disable-pip --progress-spinner off
	$(BIN)/bandit --configfile pyproject.toml --quiet --recursive syncplayd

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck audit pytest

# Re-pin every dependency (needs network access to the package index).
lock:
	$(PYTHON) -m uv pip compile pyproject.toml --group dev --python-version 3.11 --universal -o requirements.lock

bench: $(STAMP)
	$(BIN)/python bench/http_api.py

# Ten minutes, 2,000 connections in 200 rooms, realistic traffic: memory, fan-out, errors.
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
