"""Bad configuration at every key: one ``ConfigError``, one line, naming the key.

tests/test_config.py already throws random text and random mappings at the loader and
checks that only ``ConfigError`` comes out. This goes key by key: for every setting of
``syncplayd.config.SCHEMA`` a hostile YAML value (wrong types, out-of-range and
non-finite numbers, huge integers and strings, nested containers) and, for every
``SYNCPLAY_*`` name of ``ENV_NAMES``, hostile text (including what non-UTF-8 bytes in
the environment decode to). A refusal must name the key it is about (and the variable,
when the value came from the environment), on one line. Then the same through the real
``syncplayd --check-config`` process: exit 78, exactly one line on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncplayd.cli.common import EXIT_CONFIG
from syncplayd.config import (
    ENV_NAMES,
    SCHEMA,
    ConfigError,
    Settings,
    load_settings,
    load_settings_from_path,
)
from syncplayd.config._spec import LEAVES

BASE_ENV = {"HOME": "/home/fuzz"}  # the state folder is derived from it
KEYS = [spec.key for spec in SCHEMA]
LEAF = {".".join(path): leaf for path, leaf in LEAVES.items()}
# Cross-key rules: an error about one key may be reported at the other.
PARTNERS: dict[str, set[str]] = {key: {key} for key in KEYS}
for _key, _leaf in LEAF.items():
    if _leaf.meta.greater_than is not None:
        _other = ".".join((*_leaf.path[:-1], _leaf.meta.greater_than))
        PARTNERS[_key].add(_other)
        PARTNERS[_other].add(_key)
    if _leaf.meta.file_for is not None:
        _other = ".".join((*_leaf.path[:-1], _leaf.meta.file_for))
        PARTNERS[_key].add(_other)
        PARTNERS[_other].add(_key)


def read_file(path: str) -> str:
    """The ``*_file`` secrets: a real-looking secret for /run/..., unreadable otherwise."""
    if path.startswith("/run/"):
        return "s" * 40 + "\n"
    raise OSError(2, "No such file or directory")


def nest(key: str, value: object) -> dict[str, Any]:
    document: Any = value
    for part in reversed(key.split(".")):
        document = {part: document}
    result: dict[str, Any] = document
    return result


def assert_one_line(error: ConfigError) -> str:
    message = str(error)
    assert message.startswith("Error in configuration"), message
    assert len(message.splitlines()) == 1 and "\r" not in message, repr(message)
    return message


def load_or_error(
    text: str | None, environ: Mapping[str, str] = BASE_ENV
) -> Settings | ConfigError:
    """Settings, or the ConfigError; any other exception fails the test."""
    try:
        return load_settings(text, environ, read_file=read_file)
    except ConfigError as error:
        assert_one_line(error)
        return error


def assert_names(error: ConfigError, key: str, env: str | None = None) -> None:
    message = str(error)
    assert any(f"'{k}'" in message or k in message for k in PARTNERS[key]), (key, message)
    if env is not None:
        assert env in message, (env, message)


# -- YAML ----------------------------------------------------------------------------------
HUGE = 10**400
YAML_SAMPLES = [
    None, True, False, 0, -1, 1, 2**63, -(2**63) - 1, HUGE, -HUGE, 0.5, -0.0, 1e308,
    float("inf"), float("-inf"), float("nan"), "", " ", "5", "true", "yes", "null",
    "relative/path", "/abs/path", "x" * 100_000, "\u2028", "\x85", [], {}, [1], ["a", 1],
    {"a": 1}, [[[[[[["deep"]]]]]]], "127.0.0.1:99999", "sqlite:///", "mysql://x",
    "https://a.b/path", "10.0.0.0/33", "DEBUG",
]  # fmt: skip
yaml_values = st.one_of(
    st.sampled_from(YAML_SAMPLES),
    st.integers(),
    st.floats(),
    st.text(max_size=50),
    st.lists(st.integers() | st.text(max_size=5), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@settings(max_examples=1000, deadline=None, derandomize=True, database=None)
@given(key=st.sampled_from(KEYS), value=yaml_values)
def test_a_hostile_value_at_any_key_is_named(key: str, value: object) -> None:
    text = yaml.safe_dump(nest(key, value), width=10**9)
    result = load_or_error(text)
    if isinstance(result, ConfigError):
        assert_names(result, key)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("value", [{"a": 1}, [{"b": 2}]], ids=["mapping", "list-of-mappings"])
def test_a_container_where_a_value_belongs_is_refused_naming_the_key(
    key: str, value: object
) -> None:
    result = load_or_error(yaml.safe_dump(nest(key, value)))
    assert isinstance(result, ConfigError), key
    assert_names(result, key)


def _out_of_range(key: str) -> list[object]:
    meta = LEAF[key].meta
    kind = LEAF[key].type.kind
    values: list[object] = []
    if meta.ge is not None:
        values.append(meta.ge - 1 if kind == "int" else meta.ge - 0.001)
    if meta.gt is not None:
        values.append(meta.gt)
    if meta.le is not None:
        values.append(meta.le + 1 if kind == "int" else meta.le + 0.001)
    if kind == "float" or (kind == "int" and meta.le is not None):
        values.append(HUGE)  # to a float setting: infinity
    if kind == "float" or (kind == "int" and (meta.ge, meta.gt) != (None, None)):
        values.append(-HUGE)
    if kind == "float":
        values += [float("nan"), float("inf"), float("-inf")]
    return values


RANGED = [(key, value) for key in KEYS for value in _out_of_range(key)]


@pytest.mark.parametrize(("key", "value"), RANGED, ids=[f"{k}={v!r:.12}" for k, v in RANGED])
def test_out_of_range_and_non_finite_numbers_are_refused_naming_the_key(
    key: str, value: object
) -> None:
    result = load_or_error(yaml.safe_dump(nest(key, value)))
    assert isinstance(result, ConfigError), (key, value)
    assert_names(result, key)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("raw", ["9" * 5_000, "!!int zz", "!!timestamp 2021-02-30", "!!float ''"])
def test_a_value_yaml_cannot_build_is_refused_naming_the_key(key: str, raw: str) -> None:
    """PyYAML's own failures used to give only a position, and a Python limit's wording."""
    *sections, last = key.split(".")
    text = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(sections))
    text += f"{'  ' * len(sections)}{last}: {raw}\n"
    result = load_or_error(text)
    assert isinstance(result, ConfigError)
    assert f"at '{key}'" in str(result) and "sys.set_int_max_str_digits" not in str(result)


@pytest.mark.parametrize(
    "text",
    [
        "server: [\n",
        "server:\n  listen: 1\n listen: 2\n",
        "server: {listen: 127.0.0.1:1, listen: 127.0.0.1:2}\n",
        "syncplay:\n\tsync: 1\n",
        "a: " + "[" * 10_000 + "]" * 10_000 + "\n",
        "a: " + "{b: " * 5_000 + "1" + "}" * 5_000 + "\n",
        "!!python/object/apply:os.system ['true']\n",
        "x: !!binary AAAA\n",
        "x: &a [*a]\n",  # a recursive alias
        "\ufeffserver:\n  listen: nowhere\n",
        "server:\n  listen: \x00\n",
        "server:\n  listen: \x7f\n",
        "---\nserver: {}\n---\nserver: {}\n",
        # Billion laughs: aliases share the nodes, so nothing is expanded.
        "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n"
        + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
            f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
            for i in range(8)
        ),
        "syncplay:\n  websocket:\n    allowed_origins: " + "[" * 3000 + "]" * 3000 + "\n",
    ],
)
def test_broken_documents_are_one_config_error(text: str) -> None:
    assert isinstance(load_or_error(text), ConfigError)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(data=st.binary(max_size=200))
def test_non_utf8_files_are_one_config_error(tmp_path_factory: Any, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "config.yaml"
    path.write_bytes(b"server:\n  listen: " + data + b"\xff\n")
    with pytest.raises(ConfigError) as caught:
        load_settings_from_path(str(path), BASE_ENV)
    message = assert_one_line(caught.value)
    assert "cannot read" in message and str(path) in message


# -- the environment ---------------------------------------------------------------------------
ENV_SAMPLES = [
    "", " ", "perhaps", "1.5", "1e400", "-1e400", "nan", "NaN", "inf", "-Infinity", "0x10",
    "9" * 5_000, "-" + "9" * 40, "+", "1_000", "١٢", "true\n", " 5 ", "relative", "/abs\x00path",
    "\udcff\udcfe", "x" * 100_000, "127.0.0.1:65536", "[::1", "sqlite:///",
    "postgres://h:port/db", "ftp://x", "https://a.b/p", "10.0.0.0/33", "a,,b", "short",
]  # fmt: skip
env_texts = st.one_of(
    st.sampled_from(ENV_SAMPLES),
    st.text(max_size=40),
    st.integers().map(str),
    st.floats().map(str),
)


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(key=st.sampled_from(KEYS), text=env_texts)
def test_a_hostile_environment_value_names_the_key_and_variable(key: str, text: str) -> None:
    env = ENV_NAMES[key]
    result = load_or_error(None, {**BASE_ENV, env: text})
    if isinstance(result, ConfigError):
        assert_names(result, key, env)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(environ=st.dictionaries(st.sampled_from(sorted(ENV_NAMES.values())), env_texts, max_size=6))
def test_several_bad_variables_name_one_of_them(environ: dict[str, str]) -> None:
    result = load_or_error(None, {**BASE_ENV, **environ})
    if isinstance(result, ConfigError):
        assert any(name in str(result) for name in environ), (environ, str(result))


@pytest.mark.parametrize("key", KEYS)
def test_non_utf8_bytes_in_any_variable_are_refused_naming_it(key: str) -> None:
    """os.environ decodes them to lone surrogates; a secret made of them crashed the
    loader with UnicodeEncodeError (it counts the secret's UTF-8 bytes)."""
    env = ENV_NAMES[key]
    result = load_or_error(None, {**BASE_ENV, env: "/\udcff\udcfe" * 20})
    assert isinstance(result, ConfigError), key
    assert_names(result, key, env)


@pytest.mark.parametrize(
    ("environ", "key", "env"),
    [
        # The bound came from the environment: the message named only the other key.
        (
            {"SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "100"},
            "syncplay.sync.heartbeat_interval_seconds",
            "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS",
        ),
        (
            {"SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "1"},
            "syncplay.sync.disconnect_timeout_seconds",
            "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS",
        ),
    ],
)
def test_a_cross_key_rule_names_the_variable_that_broke_it(
    environ: dict[str, str], key: str, env: str
) -> None:
    result = load_or_error(None, {**BASE_ENV, **environ})
    assert isinstance(result, ConfigError)
    assert_names(result, key, env)


# -- the real process: syncplayd --check-config ----------------------------------------------
def _check_config(
    tmp_path: Path, yaml_bytes: bytes | None, environ: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCPLAY_")}
    env |= {"SYNCPLAY_STATE_DIR": str(tmp_path / "state")} | environ
    args = [sys.executable, "-m", "syncplayd", "--check-config"]
    if yaml_bytes is not None:
        config = tmp_path / "config.yaml"
        config.write_bytes(yaml_bytes)
        args += ["--config", str(config)]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)


PROCESS_CASES: list[tuple[bytes | None, dict[str, str], list[str]]] = [
    (
        b"syncplay:\n  sync:\n    threshold_seconds: .nan\n",
        {},
        ["'syncplay.sync.threshold_seconds'"],
    ),
    (b"syncplay:\n  chat:\n    history_limit: 1e400\n", {}, ["'syncplay.chat.history_limit'"]),
    (
        b"server:\n  max_request_bytes: " + b"9" * 5000 + b"\n",
        {},
        ["'server.max_request_bytes'"],
    ),
    (b"logging:\n  level: [debug]\n", {}, ["'logging.level'"]),
    (b"server:\n  listen: \xff\xfe\n", {}, ["cannot read", "config.yaml"]),
    (
        None,
        {"SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND": "inf"},
        ["'syncplay.websocket.max_messages_per_second'", "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND"],
    ),
    (
        None,
        {"SYNCPLAY_DATABASE_POOL_SIZE": "9" * 5000},
        ["'database.pool_size'", "SYNCPLAY_DATABASE_POOL_SIZE"],
    ),
    (
        None,
        {"SYNCPLAY_LOG_LEVEL": "loud\nsecond line"},
        ["'logging.level'", "SYNCPLAY_LOG_LEVEL"],
    ),
    (
        None,
        {"SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "100"},
        ["syncplay.sync.heartbeat_interval_seconds", "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS"],
    ),
]


@pytest.mark.parametrize(("yaml_bytes", "environ", "expected"), PROCESS_CASES)
def test_check_config_prints_one_line_and_exits_78(
    tmp_path: Path, yaml_bytes: bytes | None, environ: dict[str, str], expected: list[str]
) -> None:
    result = _check_config(tmp_path, yaml_bytes, environ)
    assert result.returncode == EXIT_CONFIG, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("syncplayd: Error in configuration"), lines
    for fragment in expected:
        assert fragment in lines[0], (fragment, lines[0])


def test_check_config_with_non_utf8_bytes_in_the_environment(tmp_path: Path) -> None:
    """os.environ holds them as surrogate escapes; the one line must still be printable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCPLAY_")}
    env_bytes = {k.encode(): v.encode() for k, v in env.items()}
    env_bytes[b"SYNCPLAY_STATE_DIR"] = str(tmp_path / "state").encode()
    env_bytes[b"SYNCPLAY_LISTEN"] = b"\xff\xfe:80"
    result = subprocess.run(
        [sys.executable, "-m", "syncplayd", "--check-config"],
        env=env_bytes,  # bytes are accepted on POSIX
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == EXIT_CONFIG, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert b"'server.listen'" in lines[0] and b"SYNCPLAY_LISTEN" in lines[0], lines
