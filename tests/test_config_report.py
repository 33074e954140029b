"""A bad configuration is reported whole: every problem at once, each with its source and a hint.

The loader (``load_settings``) goes on past a problem and returns them all in one
``ConfigError``; a misspelt or misplaced key, a misspelt environment variable and a misspelt
placeholder in ``web.media_url_template`` each come with what was probably meant. The commands
(``syncplayd --check-config``, its start-up, ``syncplayctl config check``) print one problem per
line and exit 78.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner

from syncplayd.cli import ctl, daemon
from syncplayd.cli.common import EXIT_CONFIG
from syncplayd.config import (
    MEDIA_URL_PLACEHOLDERS,
    ConfigError,
    ConfigProblem,
    load_settings,
    load_settings_from_path,
)

REPO = Path(__file__).resolve().parent.parent
ENV: Mapping[str, str] = {"STATE_DIRECTORY": "/var/lib/syncplayd"}


def problems_of(
    yaml_text: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
) -> list[ConfigProblem]:
    """The problems loading reports (with ``ENV`` unless ``environ`` is given)."""
    with pytest.raises(ConfigError) as info:
        load_settings(yaml_text, ENV if environ is None else environ, overrides)
    return list(info.value.problems)


def one_problem(yaml_text: str | None = None, **kwargs: Mapping[str, str]) -> ConfigProblem:
    (problem,) = problems_of(yaml_text, **kwargs)
    return problem


# -- several problems at once ------------------------------------------------------------------
def test_every_problem_of_every_source_is_reported_in_one_error() -> None:
    text = (
        "server:\n"
        "  listne: 0.0.0.0:8750\n"  # unknown key
        "  max_request_bytes: 10\n"  # out of range
        "sync:\n"  # a section in the wrong place
        "  threshold_seconds: 3\n"
        "syncplay:\n"
        "  chat:\n"
        "    history_limit: lots\n"  # wrong type
        "  sync:\n"
        "    heartbeat_interval_seconds: 40\n"  # makes the default timeout (30) too short
    )
    environ = {**ENV, "SYNCPLAY_LOG_LEVEL": "loud", "SYNCPLAY_DATABASE_POOL_SIZE": "0"}
    problems = problems_of(text, environ, {"server.listen": "nowhere"})
    assert [(p.key, p.env) for p in problems] == [
        ("server.listne", None),
        ("server.max_request_bytes", None),
        ("sync", None),
        ("syncplay.chat.history_limit", None),
        ("database.pool_size", "SYNCPLAY_DATABASE_POOL_SIZE"),
        ("logging.level", "SYNCPLAY_LOG_LEVEL"),
        ("server.listen", None),
        ("syncplay.sync.disconnect_timeout_seconds", None),
    ]
    assert "must be between 1024 and 16777216, got 10" in problems[1].message
    assert "expected HOST:PORT" in problems[6].message
    assert "must be greater than syncplay.sync.heartbeat_interval_seconds" in problems[7].message


def test_the_error_is_one_line_of_all_problems_and_keeps_the_first_ones_fields() -> None:
    err = ConfigError.of(
        [
            ConfigProblem("unknown key", ("server", "listne"), hint="did you mean 'x'?"),
            ConfigProblem("expected a number, got 'a'", ("a", "b"), "SYNCPLAY_B"),
        ]
    )
    assert str(err) == (
        "Error in configuration at 'server.listne': unknown key; did you mean 'x'?; "
        "Error in configuration at 'a.b' (from SYNCPLAY_B): expected a number, got 'a'"
    )
    assert (err.message, err.path, err.env) == ("unknown key", ("server", "listne"), None)
    with pytest.raises(ValueError, match="at least one problem"):
        ConfigError.of([])


def test_a_rule_between_keys_is_skipped_when_one_of_them_is_already_wrong() -> None:
    # The timeout (3) is below the default heartbeat (5), but the heartbeat meant is unknown.
    environ = {
        **ENV,
        "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "x",
        "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "3",
    }
    problem = one_problem(environ=environ)
    assert problem.key == "syncplay.sync.heartbeat_interval_seconds"
    # A misspelt state_dir: the missing derived default is its consequence, not a second problem.
    problem = one_problem("server:\n  state_dirr: /srv/syncplayd\n", environ={})
    assert (problem.key, problem.hint) == (
        "server.state_dirr",
        "did you mean 'server.state_dir'?",
    )
    # A wrong state_dir likewise.
    assert one_problem("server:\n  state_dir: relative\n", environ={}).key == "server.state_dir"


def test_a_broken_file_does_not_hide_the_environment_problems() -> None:
    problems = problems_of("server: [\n", {"SYNCPLAY_LOG_LEVEL": "loud"})
    # Nothing of the file is known: no "no default for state_dir" although HOME is missing too.
    assert [(p.key, p.env) for p in problems] == [
        ("", None),
        ("logging.level", "SYNCPLAY_LOG_LEVEL"),
    ]
    assert problems[0].message.startswith("invalid YAML at line")


def test_an_unreadable_file_does_not_hide_the_environment_problems(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError) as info:
        load_settings_from_path(missing, {**ENV, "SYNCPLAY_LISTEN": "nowhere"})
    problems = info.value.problems
    assert [p.key for p in problems] == ["", "server.listen"]
    assert problems[0].message == f"cannot read {missing!r}: No such file or directory"


def test_secret_file_problems_come_with_the_others() -> None:
    def read_file(path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory", path)

    with pytest.raises(ConfigError) as info:
        load_settings(
            "auth: {jwt_secret_file: /run/missing}\nproxy: {secret_file: /run/gone}\n",
            {**ENV, "SYNCPLAY_LISTEN": "x"},
            read_file=read_file,
        )
    assert [p.key for p in info.value.problems] == [
        "server.listen",
        "auth.jwt_secret_file",
        "proxy.secret_file",
    ]


# -- suggestions for keys ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "key", "hint"),
    [
        # a typo of a key of the same section
        ("server:\n  listne: x\n", "server.listne", "did you mean 'server.listen'?"),
        ("databse: {}\n", "databse", "did you mean 'database'?"),
        # a real key in the wrong section
        ("sync: {}\n", "sync", "'sync' belongs under 'syncplay:' as 'syncplay.sync'"),
        (
            "server:\n  threshold_seconds: 3\n",
            "server.threshold_seconds",
            "'threshold_seconds' belongs under 'syncplay.sync:' as"
            " 'syncplay.sync.threshold_seconds'",
        ),
        ("syncplay:\n  web: {}\n", "syncplay.web", "'web' belongs at the top level"),
        # a name that several sections have, in the order of the schema
        (
            "enabled: true\n",
            "enabled",
            "did you mean one of 'metrics.enabled', 'web.enabled', 'syncplay.enabled',"
            " 'cluster.enabled' or 'syncplay.chat.enabled'?",
        ),
        # a dotted key written flat
        (
            "server.listen: 127.0.0.1:1\n",
            "server.listen",
            "YAML does not nest dotted keys: write 'server.listen' as server: {listen: ...}",
        ),
        (
            "syncplay:\n  sync.threshold_seconds: 3\n",
            "syncplay.sync.threshold_seconds",
            "YAML does not nest dotted keys: write 'syncplay.sync.threshold_seconds' as"
            " sync: {threshold_seconds: ...}",
        ),
        # misspelt and misplaced
        (
            "treshold_seconds: 3\n",
            "treshold_seconds",
            "did you mean 'syncplay.sync.threshold_seconds'?",
        ),
        # nothing like any key
        ("qqqqzzzz: 1\n", "qqqqzzzz", None),
        ("1: 2\n", "1", None),
    ],
)
def test_an_unknown_key_suggests_what_was_meant(text: str, key: str, hint: str | None) -> None:
    problem = one_problem(text)
    assert (problem.key, problem.message, problem.hint) == (key, "unknown key", hint)
    suffix = f"; {hint}" if hint else ""
    assert str(problem) == f"Error in configuration at '{key}': unknown key{suffix}"


def test_an_unknown_override_suggests_too() -> None:
    problem = one_problem(overrides={"sync.threshold_seconds": "3"})
    assert problem.hint == (
        "'threshold_seconds' belongs under 'syncplay.sync:' as 'syncplay.sync.threshold_seconds'"
    )


# -- web.media_url_template --------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    [
        "{content_id}",
        " {content_id} ",
        "/Videos/{content_id}/stream?static=true",
        "https://media.example/{content_type}/{content_id}.mp4?api_key={media_token}",
        "/fixed/video.webm",
    ],
)
def test_a_template_of_known_placeholders_is_accepted(template: str) -> None:
    settings = load_settings(None, {**ENV, "SYNCPLAY_WEB_MEDIA_URL_TEMPLATE": template})
    assert settings.web.media_url_template == template


@pytest.mark.parametrize(
    ("template", "message", "hint"),
    [
        (
            "/Videos/{contentid}/stream",
            "unknown placeholder {contentid}: the watch page replaces only {content_type},"
            " {content_id} and {media_token}",
            "did you mean {content_id}?",
        ),
        ("/V/{Content_Id}", "unknown placeholder {Content_Id}", "did you mean {content_id}?"),
        ("/V/{ content_id }", "unknown placeholder { content_id }", "did you mean {content_id}?"),
        (
            "/{type}/{contentid}?t={mediatoken}",
            "unknown placeholders {type}, {contentid}, {mediatoken}",
            "did you mean {content_id} for {contentid} and {media_token} for {mediatoken}?",
        ),
        ("/V/{}", "unknown placeholder {}", None),
        ("/V/{content_id", "a brace outside a placeholder in '/V/{content_id'", None),
        ("/V/content_id}", "a brace outside a placeholder", None),
    ],
)
def test_an_unknown_placeholder_is_an_error(template: str, message: str, hint: str | None) -> None:
    problem = one_problem(f"web:\n  media_url_template: {template!r}\n")
    assert problem.key == "web.media_url_template"
    assert problem.message.startswith(message), problem.message
    assert problem.hint == hint
    # From the environment, the variable is named.
    env = "SYNCPLAY_WEB_MEDIA_URL_TEMPLATE"
    assert one_problem(environ={**ENV, env: template}).env == env


def _replaced_by_the_page() -> set[str]:
    """The placeholder names the browser code substitutes (its ``/\\{name\\}/`` patterns)."""
    names: set[str] = set()
    for script in ("syncplay-client.js", "watch/watch-util.js"):
        source = (REPO / "syncplayd" / "web" / script).read_text(encoding="utf-8")
        for group in re.findall(r"\\\{\(?([a-z_|]+)\)?\\\}", source):
            names.update(group.split("|"))
    return names


def test_the_known_placeholders_are_those_the_page_replaces() -> None:
    assert set(MEDIA_URL_PLACEHOLDERS) == _replaced_by_the_page()


# -- the commands ------------------------------------------------------------------------------
BAD_FILE = (
    "server:\n"
    "  listne: 127.0.0.1:9000\n"
    "sync:\n"
    "  threshold_seconds: 3\n"
    "web:\n"
    "  media_url_template: /Videos/{contentid}/stream\n"
)
EXPECTED_LINES = [
    "Error in configuration at 'server.listne': unknown key; did you mean 'server.listen'?",
    "Error in configuration at 'sync': unknown key;"
    " 'sync' belongs under 'syncplay:' as 'syncplay.sync'",
    "Error in configuration at 'web.media_url_template': unknown placeholder {contentid}:"
    " the watch page replaces only {content_type}, {content_id} and {media_token};"
    " did you mean {content_id}?",
    "Error in configuration at 'syncplay.chat.history_limit' (from SYNCPLAY_CHAT_HISTORY_LIMIT):"
    " expected an integer, got 'lots'",
]
BAD_ENV = {"SYNCPLAY_CHAT_HISTORY_LIMIT": "lots", "SYNCPLAY_SYNC_THRESHOLD": "3"}
WARNING = (
    "warning: SYNCPLAY_SYNC_THRESHOLD is not a setting and is ignored;"
    " did you mean SYNCPLAY_SYNC_THRESHOLD_SECONDS?"
)


def _environment(tmp_path: Path, extra: Mapping[str, str]) -> dict[str, str | None]:
    """For ``CliRunner.invoke(env=...)``: the caller's ``SYNCPLAY_*`` unset (None), a state
    folder, and ``extra``."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SYNCPLAY_")}
    return unset | {"SYNCPLAY_STATE_DIR": str(tmp_path / "state"), **extra}


@pytest.mark.parametrize("args", [["--check-config"], []], ids=["check-config", "start-up"])
def test_the_daemon_prints_every_problem_on_its_own_line_and_exits_78(
    tmp_path: Path, args: list[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BAD_FILE)
    done = subprocess.run(
        [sys.executable, "-m", "syncplayd", "--config", str(config), *args],
        env={
            k: v for k, v in (os.environ | _environment(tmp_path, BAD_ENV)).items() if v is not None
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_CONFIG, done.stderr
    assert done.stdout == ""
    assert done.stderr.splitlines() == [f"syncplayd: {line}" for line in [WARNING, *EXPECTED_LINES]]


def test_syncplayctl_config_check_prints_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(BAD_FILE)
    result = CliRunner().invoke(
        ctl.main, ["--config", str(config), "config", "check"], env=_environment(tmp_path, BAD_ENV)
    )
    assert result.exit_code == EXIT_CONFIG
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"syncplayctl: {line}" for line in [WARNING, *EXPECTED_LINES]
    ]


EXPOSED = {
    "SYNCPLAY_LISTEN": "0.0.0.0:8750",
    "SYNCPLAY_WEB_DEMO": "true",
    "SYNCPLAY_PROXY_TRUSTED_ADDRESSES": "127.0.0.1",
}


def test_the_daemon_reports_every_refused_combination(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        daemon.main, ["--check-config"], env=_environment(tmp_path, EXPOSED)
    )
    assert result.exit_code == EXIT_CONFIG
    lines = result.stderr.splitlines()
    assert [line.partition(":")[0] for line in lines] == ["syncplayd", "syncplayd"]
    assert "at 'web.demo'" in lines[0] and "at 'proxy.trusted_addresses'" in lines[1]


def test_syncplayctl_config_check_refuses_what_the_daemon_refuses(tmp_path: Path) -> None:
    result = CliRunner().invoke(ctl.main, ["config", "check"], env=_environment(tmp_path, EXPOSED))
    assert result.exit_code == EXIT_CONFIG
    lines = result.stderr.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("syncplayctl: Error in configuration at 'web.demo': demo mode")
