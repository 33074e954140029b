"""The OpenAPI contract of the HTTP API, as shipped with the package.

The document lives at the top of the repository (``api/openapi/syncplay.yaml``) and the
wheel force-includes it as ``syncplayd/_data/openapi/syncplay.yaml``. An installed
package reads the packaged copy; an editable install (where ``_data`` does not exist)
falls back to the repository file next to the package.

Everything here is cached: the document is read and parsed once per process. The
parsed mapping returned by :func:`load_spec` is shared, so callers must not mutate it.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import yaml

__all__ = ["SPEC_FILENAME", "load_spec", "spec_json_bytes", "spec_yaml_bytes"]

SPEC_FILENAME = "syncplay.yaml"

# The repository layout of an editable install: <repo>/syncplayd/openapi.py and
# <repo>/api/openapi/syncplay.yaml.
_REPOSITORY_SPEC = Path(__file__).resolve().parent.parent / "api" / "openapi" / SPEC_FILENAME


def _packaged_spec() -> Traversable:
    return resources.files("syncplayd") / "_data" / "openapi" / SPEC_FILENAME


def _read_spec_bytes(packaged: Traversable, repository: Path) -> bytes:
    """The document's bytes: the packaged copy when present, else the repository file."""
    if packaged.is_file():
        return packaged.read_bytes()
    if repository.is_file():
        return repository.read_bytes()
    raise FileNotFoundError(
        f"OpenAPI document not found: neither the package data {packaged} "
        f"nor the repository file {repository} exists"
    )


@functools.cache
def spec_yaml_bytes() -> bytes:
    """The OpenAPI document exactly as written (YAML, UTF-8), for serving."""
    return _read_spec_bytes(_packaged_spec(), _REPOSITORY_SPEC)


@functools.cache
def load_spec() -> dict[str, object]:
    """The parsed OpenAPI document (shared and cached: do not mutate it)."""
    document = yaml.safe_load(spec_yaml_bytes())
    if not isinstance(document, dict) or not all(isinstance(key, str) for key in document):
        raise ValueError("the OpenAPI document is not a mapping with string keys")
    return document


@functools.cache
def spec_json_bytes() -> bytes:
    """The OpenAPI document as compact UTF-8 JSON, for serving."""
    return json.dumps(load_spec(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
