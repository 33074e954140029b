"""Tests for syncplayd.config: the schema, the layered loader, its errors and its outputs.

Plain sync tests, table-driven; hypothesis checks that no input can make the loader fail with
anything but a one-line ConfigError.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from syncplayd.config import (
    ENV_NAMES,
    SCHEMA,
    ConfigError,
    Secret,
    Settings,
    SettingValue,
    dump_settings,
    load_settings,
    load_settings_from_path,
    mask_url,
    parse_listen,
    render_default_config,
    unknown_env_names,
    unknown_env_warnings,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"

# A fixed environment, so derived defaults do not depend on the machine running the tests.
ENV: Mapping[str, str] = {"STATE_DIRECTORY": "/var/lib/syncplayd"}
GOOD_SECRET = "s3cret-" + "x" * 40


def get(settings_: Settings, key: str) -> object:
    """Read a setting by dotted path."""
    return functools.reduce(getattr, key.split("."), settings_)


def load(
    yaml_text: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
) -> Settings:
    """load_settings with the fixed environment and an in-memory file system."""

    def read_file(path: str) -> str:
        if files is None or path not in files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return files[path]

    return load_settings(yaml_text, {**ENV, **(environ or {})}, overrides, read_file=read_file)


def error_of(
    yaml_text: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
) -> ConfigError:
    """The ConfigError that loading raises."""
    with pytest.raises(ConfigError) as info:
        load(yaml_text, environ, overrides, files)
    return info.value


def nested_yaml(key: str, value: object) -> str:
    """YAML that sets one dotted key."""
    node: object = value
    for part in reversed(key.split(".")):
        node = {part: node}
    return yaml.safe_dump(node)


# ---------------------------------------------------------------------------------------------
# Defaults and the schema
# ---------------------------------------------------------------------------------------------

DEFAULTS: list[tuple[str, object]] = [
    ("server.listen", "127.0.0.1:8750"),
    ("server.state_dir", Path("/var/lib/syncplayd")),
    ("server.max_request_bytes", 65536),
    ("server.allowed_hosts", ()),
    ("database.url", "sqlite:////var/lib/syncplayd/syncplayd.sqlite3"),
    ("database.auto_migrate", True),
    ("database.pool_size", 10),
    ("auth.jwt_secret", None),
    ("auth.jwt_secret_file", None),
    ("auth.jwt_leeway_seconds", 30),
    ("auth.jwt_audience", None),
    ("auth.jwt_issuer", None),
    ("logging.level", "info"),
    ("logging.format", "auto"),
    ("metrics.enabled", True),
    ("admin.socket", None),
    ("proxy.socket", None),
    ("proxy.trusted_addresses", ()),
    ("proxy.secret", None),
    ("proxy.secret_file", None),
    ("proxy.real_ip_from", ()),
    ("proxy.user_id_header", "X-Remote-User-Id"),
    ("proxy.user_name_header", "X-Remote-User-Name"),
    ("proxy.admin_header", "X-Remote-User-Admin"),
    ("web.enabled", True),
    ("web.media_url_template", "{content_id}"),
    ("web.allow_any_media_url", False),
    ("web.demo", False),
    ("web.demo_allow_remote", False),
    ("web.guest_token_hours", 12.0),
    ("syncplay.enabled", True),
    ("syncplay.rooms.default_max_participants", 50),
    ("syncplay.rooms.max_participants_limit", 1000),
    ("syncplay.rooms.max_room_age_hours", 24.0),
    ("syncplay.rooms.allow_public", True),
    ("syncplay.rooms.allow_password_protected", True),
    ("syncplay.rooms.max_rooms_per_user", 10),
    ("syncplay.rooms.failed_join_attempts", 10),
    ("syncplay.rooms.failed_join_attempts_per_address", 100),
    ("syncplay.rooms.failed_join_window_seconds", 300.0),
    ("syncplay.rooms.creates_per_hour", 20),
    ("syncplay.rooms.password_changes_per_hour", 20),
    ("syncplay.rooms.password_hash_memory_kib", 19456),
    ("syncplay.rooms.password_hash_time_cost", 2),
    ("syncplay.rooms.password_hash_parallelism", 1),
    ("syncplay.rooms.password_hash_concurrency", 2),
    ("syncplay.sync.threshold_seconds", 2.0),
    ("syncplay.sync.heartbeat_interval_seconds", 5.0),
    ("syncplay.sync.disconnect_timeout_seconds", 30.0),
    ("syncplay.sync.max_latency_ms", 500.0),
    ("syncplay.sync.ready_timeout_seconds", 30.0),
    ("syncplay.sync.slow_member_waits", 3),
    ("syncplay.sync.slow_member_window_seconds", 120.0),
    ("syncplay.chat.enabled", True),
    ("syncplay.chat.max_message_length", 1000),
    ("syncplay.chat.history_limit", 100),
    ("syncplay.chat.rate_limit_messages_per_minute", 60),
    ("syncplay.invitations.default_expiry_hours", 24.0),
    ("syncplay.invitations.code_length", 8),
    ("syncplay.invitations.max_live_per_room", 100),
    ("syncplay.invitations.creates_per_hour", 60),
    ("syncplay.websocket.read_buffer_size", 4096),
    ("syncplay.websocket.write_buffer_size", 4096),
    ("syncplay.websocket.ping_interval_seconds", 30.0),
    ("syncplay.websocket.pong_timeout_seconds", 60.0),
    ("syncplay.websocket.max_connections_per_user", 5),
    ("syncplay.websocket.joins_per_minute", 60.0),
    ("syncplay.websocket.max_messages_per_second", 20.0),
    ("syncplay.websocket.allowed_origins", ()),
    ("syncplay.cleanup.inactive_rooms_hours", 24.0),
    ("syncplay.cleanup.expired_invitations_hours", 48.0),
    ("syncplay.cleanup.ended_rooms_days", 30.0),
    ("syncplay.cleanup.events_days", 30.0),
    ("syncplay.cleanup.max_events_per_room", 10000),
    ("syncplay_bridge.listen", None),
    ("syncplay_bridge.tls_certificate", None),
    ("syncplay_bridge.tls_private_key", None),
    ("syncplay_bridge.max_connections", 1000),
    ("syncplay_bridge.motd", ""),
    ("cluster.enabled", False),
    ("cluster.node_id", None),
    ("cluster.url", None),
]


def test_defaults_table_covers_the_schema() -> None:
    assert [key for key, _ in DEFAULTS] == [spec.key for spec in SCHEMA]


@pytest.mark.parametrize(("key", "expected"), DEFAULTS)
def test_default(key: str, expected: object) -> None:
    value = get(load(), key)
    assert value == expected
    assert type(value) is type(expected)  # 24.0 and not 24: a float key holds a float


def test_schema_defaults_match_the_loaded_defaults() -> None:
    loaded = load()
    for spec in SCHEMA:
        if not spec.derived:
            assert get(loaded, spec.key) == spec.default, spec.key


def test_derived_defaults_are_marked() -> None:
    assert {spec.key for spec in SCHEMA if spec.derived} == {"server.state_dir", "database.url"}


def test_attribute_access_and_listen_helpers() -> None:
    settings_ = load()
    assert settings_.syncplay.sync.threshold_seconds == 2.0
    assert settings_.server.listen_host == "127.0.0.1"
    assert settings_.server.listen_port == 8750
    assert settings_.database.engine == "sqlite"
    assert settings_.database.sqlite_path == Path("/var/lib/syncplayd/syncplayd.sqlite3")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/syncplayd"}, "/var/lib/syncplayd"),
        # systemd joins several StateDirectory= entries with colons; ours is the first.
        ({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a"),
        ({"XDG_STATE_HOME": "/home/u/.state", "HOME": "/home/u"}, "/home/u/.state/syncplayd"),
        # A relative XDG_STATE_HOME is invalid per the XDG spec and ignored.
        ({"XDG_STATE_HOME": "state", "HOME": "/home/u"}, "/home/u/.local/state/syncplayd"),
        ({"HOME": "/home/u"}, "/home/u/.local/state/syncplayd"),
        (
            {"STATE_DIRECTORY": "/var/lib/x", "XDG_STATE_HOME": "/s", "HOME": "/h"},
            "/var/lib/x",
        ),
        ({"SYNCPLAY_STATE_DIR": "/srv/sp", "STATE_DIRECTORY": "/var/lib/x"}, "/srv/sp"),
    ],
)
def test_state_dir_default(environ: dict[str, str], expected: str) -> None:
    settings_ = load_settings(None, environ)
    assert settings_.server.state_dir == Path(expected)
    assert settings_.database.url == f"sqlite:///{expected}/syncplayd.sqlite3"


def test_state_dir_without_any_hint_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, {})
    assert info.value.path == ("server", "state_dir")
    assert "STATE_DIRECTORY" in str(info.value)


def test_database_url_follows_the_effective_state_dir() -> None:
    settings_ = load("server:\n  state_dir: /data\n", overrides={"server.state_dir": "/other"})
    assert settings_.database.url == "sqlite:////other/syncplayd.sqlite3"
    assert settings_.database.sqlite_path == Path("/other/syncplayd.sqlite3")


def test_every_key_has_a_unique_env_name() -> None:
    envs = [spec.env for spec in SCHEMA]
    assert len(envs) == len(set(envs))
    assert dict(ENV_NAMES) == {spec.key: spec.env for spec in SCHEMA}
    for env in envs:
        assert re.fullmatch(r"SYNCPLAY_[A-Z0-9_]+", env), env
        assert env != "SYNCPLAY_CONFIG"
        assert not env.startswith("SYNCPLAY_TEST_")


def test_every_spec_is_described() -> None:
    for spec in SCHEMA:
        assert spec.description, spec.key
        assert spec.type, spec.key
        assert spec.default_text, spec.key


EXPECTED_ENV_NAMES = {
    "server.listen": "SYNCPLAY_LISTEN",
    "server.state_dir": "SYNCPLAY_STATE_DIR",
    "server.max_request_bytes": "SYNCPLAY_MAX_REQUEST_BYTES",
    "server.allowed_hosts": "SYNCPLAY_ALLOWED_HOSTS",
    "database.url": "SYNCPLAY_DATABASE_URL",
    "database.auto_migrate": "SYNCPLAY_DATABASE_AUTO_MIGRATE",
    "database.pool_size": "SYNCPLAY_DATABASE_POOL_SIZE",
    "auth.jwt_secret": "SYNCPLAY_AUTH_JWT_SECRET",
    "auth.jwt_secret_file": "SYNCPLAY_AUTH_JWT_SECRET_FILE",
    "auth.jwt_leeway_seconds": "SYNCPLAY_AUTH_JWT_LEEWAY_SECONDS",
    "auth.jwt_audience": "SYNCPLAY_AUTH_JWT_AUDIENCE",
    "auth.jwt_issuer": "SYNCPLAY_AUTH_JWT_ISSUER",
    "logging.level": "SYNCPLAY_LOG_LEVEL",
    "logging.format": "SYNCPLAY_LOG_FORMAT",
    "metrics.enabled": "SYNCPLAY_METRICS_ENABLED",
    "admin.socket": "SYNCPLAY_ADMIN_SOCKET",
    "proxy.socket": "SYNCPLAY_PROXY_SOCKET",
    "proxy.trusted_addresses": "SYNCPLAY_PROXY_TRUSTED_ADDRESSES",
    "proxy.secret": "SYNCPLAY_PROXY_SECRET",
    "proxy.secret_file": "SYNCPLAY_PROXY_SECRET_FILE",
    "proxy.real_ip_from": "SYNCPLAY_PROXY_REAL_IP_FROM",
    "proxy.user_id_header": "SYNCPLAY_PROXY_USER_ID_HEADER",
    "proxy.user_name_header": "SYNCPLAY_PROXY_USER_NAME_HEADER",
    "proxy.admin_header": "SYNCPLAY_PROXY_ADMIN_HEADER",
    "web.enabled": "SYNCPLAY_WEB_ENABLED",
    "web.media_url_template": "SYNCPLAY_WEB_MEDIA_URL_TEMPLATE",
    "web.allow_any_media_url": "SYNCPLAY_WEB_ALLOW_ANY_MEDIA_URL",
    "web.demo": "SYNCPLAY_WEB_DEMO",
    "web.demo_allow_remote": "SYNCPLAY_WEB_DEMO_ALLOW_REMOTE",
    "web.guest_token_hours": "SYNCPLAY_WEB_GUEST_TOKEN_HOURS",
    "syncplay.enabled": "SYNCPLAY_ENABLED",
    "syncplay.rooms.default_max_participants": "SYNCPLAY_DEFAULT_MAX_PARTICIPANTS",
    "syncplay.rooms.max_participants_limit": "SYNCPLAY_MAX_PARTICIPANTS_LIMIT",
    "syncplay.rooms.max_room_age_hours": "SYNCPLAY_MAX_ROOM_AGE_HOURS",
    "syncplay.rooms.allow_public": "SYNCPLAY_ALLOW_PUBLIC_ROOMS",
    "syncplay.rooms.allow_password_protected": "SYNCPLAY_ALLOW_PASSWORD_ROOMS",
    "syncplay.rooms.max_rooms_per_user": "SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER",
    "syncplay.rooms.failed_join_attempts": "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS",
    "syncplay.rooms.failed_join_attempts_per_address": (
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS_PER_ADDRESS"
    ),
    "syncplay.rooms.failed_join_window_seconds": "SYNCPLAY_ROOMS_FAILED_JOIN_WINDOW_SECONDS",
    "syncplay.rooms.creates_per_hour": "SYNCPLAY_ROOMS_CREATES_PER_HOUR",
    "syncplay.rooms.password_changes_per_hour": "SYNCPLAY_ROOMS_PASSWORD_CHANGES_PER_HOUR",
    "syncplay.rooms.password_hash_memory_kib": "SYNCPLAY_ROOMS_PASSWORD_HASH_MEMORY_KIB",
    "syncplay.rooms.password_hash_time_cost": "SYNCPLAY_ROOMS_PASSWORD_HASH_TIME_COST",
    "syncplay.rooms.password_hash_parallelism": "SYNCPLAY_ROOMS_PASSWORD_HASH_PARALLELISM",
    "syncplay.rooms.password_hash_concurrency": "SYNCPLAY_ROOMS_PASSWORD_HASH_CONCURRENCY",
    "syncplay.sync.threshold_seconds": "SYNCPLAY_SYNC_THRESHOLD_SECONDS",
    "syncplay.sync.heartbeat_interval_seconds": "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS",
    "syncplay.sync.disconnect_timeout_seconds": "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS",
    "syncplay.sync.max_latency_ms": "SYNCPLAY_SYNC_MAX_LATENCY_MS",
    "syncplay.sync.ready_timeout_seconds": "SYNCPLAY_SYNC_READY_TIMEOUT_SECONDS",
    "syncplay.sync.slow_member_waits": "SYNCPLAY_SYNC_SLOW_MEMBER_WAITS",
    "syncplay.sync.slow_member_window_seconds": "SYNCPLAY_SYNC_SLOW_MEMBER_WINDOW_SECONDS",
    "syncplay.chat.enabled": "SYNCPLAY_CHAT_ENABLED",
    "syncplay.chat.max_message_length": "SYNCPLAY_CHAT_MAX_MESSAGE_LENGTH",
    "syncplay.chat.history_limit": "SYNCPLAY_CHAT_HISTORY_LIMIT",
    "syncplay.chat.rate_limit_messages_per_minute": "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE",
    "syncplay.invitations.default_expiry_hours": "SYNCPLAY_INVITE_EXPIRY_HOURS",
    "syncplay.invitations.code_length": "SYNCPLAY_INVITATIONS_CODE_LENGTH",
    "syncplay.invitations.max_live_per_room": "SYNCPLAY_INVITATIONS_MAX_LIVE_PER_ROOM",
    "syncplay.invitations.creates_per_hour": "SYNCPLAY_INVITATIONS_CREATES_PER_HOUR",
    "syncplay.websocket.read_buffer_size": "SYNCPLAY_WS_READ_BUFFER_SIZE",
    "syncplay.websocket.write_buffer_size": "SYNCPLAY_WS_WRITE_BUFFER_SIZE",
    "syncplay.websocket.ping_interval_seconds": "SYNCPLAY_WS_PING_INTERVAL_SECONDS",
    "syncplay.websocket.pong_timeout_seconds": "SYNCPLAY_WS_PONG_TIMEOUT_SECONDS",
    "syncplay.websocket.max_connections_per_user": "SYNCPLAY_WS_MAX_CONNECTIONS_PER_USER",
    "syncplay.websocket.joins_per_minute": "SYNCPLAY_WS_JOINS_PER_MINUTE",
    "syncplay.websocket.max_messages_per_second": "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND",
    "syncplay.websocket.allowed_origins": "SYNCPLAY_WS_ALLOWED_ORIGINS",
    "syncplay.cleanup.inactive_rooms_hours": "SYNCPLAY_CLEANUP_INACTIVE_ROOMS_HOURS",
    "syncplay.cleanup.expired_invitations_hours": "SYNCPLAY_CLEANUP_EXPIRED_INVITATIONS_HOURS",
    "syncplay.cleanup.ended_rooms_days": "SYNCPLAY_CLEANUP_ENDED_ROOMS_DAYS",
    "syncplay.cleanup.events_days": "SYNCPLAY_CLEANUP_EVENTS_DAYS",
    "syncplay.cleanup.max_events_per_room": "SYNCPLAY_CLEANUP_MAX_EVENTS_PER_ROOM",
    "syncplay_bridge.listen": "SYNCPLAY_BRIDGE_LISTEN",
    "syncplay_bridge.tls_certificate": "SYNCPLAY_BRIDGE_TLS_CERTIFICATE",
    "syncplay_bridge.tls_private_key": "SYNCPLAY_BRIDGE_TLS_PRIVATE_KEY",
    "syncplay_bridge.max_connections": "SYNCPLAY_BRIDGE_MAX_CONNECTIONS",
    "syncplay_bridge.motd": "SYNCPLAY_BRIDGE_MOTD",
    "cluster.enabled": "SYNCPLAY_CLUSTER_ENABLED",
    "cluster.node_id": "SYNCPLAY_CLUSTER_NODE_ID",
    "cluster.url": "SYNCPLAY_CLUSTER_URL",
}


def test_env_names_are_pinned() -> None:
    """Environment names are operator-facing: renaming one must be a deliberate change."""
    assert dict(ENV_NAMES) == EXPECTED_ENV_NAMES


# The seed design's `syncplay:` block, verbatim: it must load, to the defaults.
SEED_YAML = """\
syncplay:
  # Feature toggle
  enabled: true

  # Room settings
  rooms:
    default_max_participants: 50
    max_room_age_hours: 24
    allow_public: true
    allow_password_protected: true

  # Synchronization
  sync:
    threshold_seconds: 2          # Sync if offset > 2 sec
    heartbeat_interval_seconds: 5
    disconnect_timeout_seconds: 30
    max_latency_ms: 500           # Warn if latency > 500ms

  # Chat
  chat:
    enabled: true
    max_message_length: 1000
    history_limit: 100
    rate_limit_messages_per_minute: 60

  # Invitations
  invitations:
    default_expiry_hours: 24
    code_length: 8

  # WebSocket
  websocket:
    read_buffer_size: 4096
    write_buffer_size: 4096
    ping_interval_seconds: 30
    pong_timeout_seconds: 60
    max_connections_per_user: 5

  # Cleanup
  cleanup:
    inactive_rooms_hours: 24
    expired_invitations_hours: 48
"""


def test_seed_yaml_block_loads_to_the_defaults() -> None:
    assert load(SEED_YAML) == load()


def test_file_variant_env_name_follows_its_secret() -> None:
    assert ENV_NAMES["auth.jwt_secret_file"] == ENV_NAMES["auth.jwt_secret"] + "_FILE"


# ---------------------------------------------------------------------------------------------
# Layers and precedence
# ---------------------------------------------------------------------------------------------

# The seed's environment names are a public contract: name, value, key, parsed value.
SEED_ENV: list[tuple[str, str, str, object]] = [
    ("SYNCPLAY_ENABLED", "false", "syncplay.enabled", False),
    ("SYNCPLAY_DEFAULT_MAX_PARTICIPANTS", "12", "syncplay.rooms.default_max_participants", 12),
    ("SYNCPLAY_MAX_ROOM_AGE_HOURS", "6.5", "syncplay.rooms.max_room_age_hours", 6.5),
    ("SYNCPLAY_SYNC_THRESHOLD_SECONDS", "0.5", "syncplay.sync.threshold_seconds", 0.5),
    ("SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS", "3", "syncplay.sync.heartbeat_interval_seconds", 3.0),
    ("SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS", "45", "syncplay.sync.disconnect_timeout_seconds", 45.0),
    ("SYNCPLAY_CHAT_ENABLED", "no", "syncplay.chat.enabled", False),
    ("SYNCPLAY_CHAT_MAX_MESSAGE_LENGTH", "280", "syncplay.chat.max_message_length", 280),
    ("SYNCPLAY_CHAT_HISTORY_LIMIT", "20", "syncplay.chat.history_limit", 20),
    ("SYNCPLAY_ALLOW_PUBLIC_ROOMS", "off", "syncplay.rooms.allow_public", False),
    ("SYNCPLAY_ALLOW_PASSWORD_ROOMS", "0", "syncplay.rooms.allow_password_protected", False),
    ("SYNCPLAY_INVITE_EXPIRY_HOURS", "72", "syncplay.invitations.default_expiry_hours", 72.0),
    ("SYNCPLAY_WS_READ_BUFFER_SIZE", "8192", "syncplay.websocket.read_buffer_size", 8192),
    ("SYNCPLAY_WS_WRITE_BUFFER_SIZE", "16384", "syncplay.websocket.write_buffer_size", 16384),
    ("SYNCPLAY_WS_PING_INTERVAL_SECONDS", "15", "syncplay.websocket.ping_interval_seconds", 15.0),
    ("SYNCPLAY_WS_PONG_TIMEOUT_SECONDS", "20", "syncplay.websocket.pong_timeout_seconds", 20.0),
]


@pytest.mark.parametrize(("env", "text", "key", "expected"), SEED_ENV)
def test_seed_env_name_sets_its_key(env: str, text: str, key: str, expected: object) -> None:
    assert ENV_NAMES[key] == env
    settings_ = load(environ={env: text})
    assert get(settings_, key) == expected
    # ...and nothing else.
    changed = _diff(dump_settings(load()), dump_settings(settings_))
    assert changed == {key}


def _diff(a: Mapping[str, object], b: Mapping[str, object], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name in a:
        left, right = a[name], b[name]
        if isinstance(left, dict) and isinstance(right, dict):
            out |= _diff(left, right, f"{prefix}{name}.")
        elif left != right:
            out.add(prefix + name)
    return out


# A valid non-default value for every key, as environment/override text, and its parsed value.
SAMPLES: dict[str, tuple[str, SettingValue]] = {
    "server.listen": ("[::1]:0", "[::1]:0"),
    "server.state_dir": ("/srv/syncplayd", Path("/srv/syncplayd")),
    "server.max_request_bytes": ("1024", 1024),
    "server.allowed_hosts": (
        " Media.Example.org. ,[::1], 192.0.2.7",
        ("media.example.org", "::1", "192.0.2.7"),
    ),
    "database.url": ("postgresql://sp:pw@db:5432/sp", "postgresql://sp:pw@db:5432/sp"),
    "database.auto_migrate": ("FALSE", False),
    "database.pool_size": ("100", 100),
    "auth.jwt_secret": (GOOD_SECRET, Secret(GOOD_SECRET)),
    "auth.jwt_secret_file": ("/run/secret", Path("/run/secret")),
    "auth.jwt_leeway_seconds": ("0", 0),
    "auth.jwt_audience": ("jellyfin", "jellyfin"),
    "auth.jwt_issuer": ("https://media.example", "https://media.example"),
    "logging.level": ("WARNING", "warning"),
    "logging.format": ("json", "json"),
    "metrics.enabled": ("false", False),
    "admin.socket": ("/run/syncplayd/admin.sock", Path("/run/syncplayd/admin.sock")),
    "proxy.socket": ("/run/syncplayd-proxy/http.sock", Path("/run/syncplayd-proxy/http.sock")),
    "proxy.trusted_addresses": ("127.0.0.1, 10.0.0.0/8", ("127.0.0.1/32", "10.0.0.0/8")),
    "proxy.secret": (GOOD_SECRET, Secret(GOOD_SECRET)),
    "proxy.secret_file": ("/run/secret", Path("/run/secret")),
    "proxy.real_ip_from": ("::1, fd00::/8", ("::1/128", "fd00::/8")),
    "proxy.user_id_header": ("X-User", "X-User"),
    "proxy.user_name_header": ("X-Name", "X-Name"),
    "proxy.admin_header": ("X-Admin", "X-Admin"),
    "web.enabled": ("no", False),
    "web.media_url_template": ("/Videos/{content_id}", "/Videos/{content_id}"),
    "web.allow_any_media_url": ("true", True),
    "web.demo": ("true", True),
    "web.demo_allow_remote": ("yes", True),
    "web.guest_token_hours": ("1.5", 1.5),
    "syncplay.enabled": ("Off", False),
    "syncplay.rooms.default_max_participants": ("2", 2),
    "syncplay.rooms.max_participants_limit": ("5000", 5000),
    "syncplay.rooms.max_room_age_hours": ("0.25", 0.25),
    "syncplay.rooms.allow_public": ("no", False),
    "syncplay.rooms.allow_password_protected": ("false", False),
    "syncplay.rooms.max_rooms_per_user": ("1000", 1000),
    "syncplay.rooms.failed_join_attempts": ("3", 3),
    "syncplay.rooms.failed_join_attempts_per_address": ("0", 0),
    "syncplay.rooms.failed_join_window_seconds": ("0.5", 0.5),
    "syncplay.rooms.creates_per_hour": ("5", 5),
    "syncplay.rooms.password_changes_per_hour": ("7", 7),
    "syncplay.rooms.password_hash_memory_kib": ("65536", 65536),
    "syncplay.rooms.password_hash_time_cost": ("3", 3),
    "syncplay.rooms.password_hash_parallelism": ("4", 4),
    "syncplay.rooms.password_hash_concurrency": ("1", 1),
    "syncplay.sync.threshold_seconds": ("1e-1", 0.1),
    "syncplay.sync.heartbeat_interval_seconds": ("2", 2.0),
    "syncplay.sync.disconnect_timeout_seconds": ("10", 10.0),
    "syncplay.sync.max_latency_ms": ("250", 250.0),
    "syncplay.sync.ready_timeout_seconds": ("12.5", 12.5),
    "syncplay.sync.slow_member_waits": ("5", 5),
    "syncplay.sync.slow_member_window_seconds": ("60", 60.0),
    "syncplay.chat.enabled": ("0", False),
    "syncplay.chat.max_message_length": ("10000", 10000),
    "syncplay.chat.history_limit": ("1", 1),
    "syncplay.chat.rate_limit_messages_per_minute": ("5", 5),
    "syncplay.invitations.default_expiry_hours": ("720", 720.0),
    "syncplay.invitations.code_length": ("32", 32),
    "syncplay.invitations.max_live_per_room": ("3", 3),
    "syncplay.invitations.creates_per_hour": ("9", 9),
    "syncplay.websocket.read_buffer_size": ("512", 512),
    "syncplay.websocket.write_buffer_size": ("1048576", 1048576),
    "syncplay.websocket.ping_interval_seconds": ("5", 5.0),
    "syncplay.websocket.pong_timeout_seconds": ("7.5", 7.5),
    "syncplay.websocket.max_connections_per_user": ("100", 100),
    "syncplay.websocket.joins_per_minute": ("30", 30.0),
    "syncplay.websocket.max_messages_per_second": ("2.5", 2.5),
    "syncplay.websocket.allowed_origins": (
        " https://A.example , http://b.example:8080,",
        ("https://a.example", "http://b.example:8080"),
    ),
    "syncplay.cleanup.inactive_rooms_hours": ("1", 1.0),
    "syncplay.cleanup.expired_invitations_hours": ("0.5", 0.5),
    "syncplay.cleanup.ended_rooms_days": ("1.5", 1.5),
    "syncplay.cleanup.events_days": ("0.25", 0.25),
    "syncplay.cleanup.max_events_per_room": ("500", 500),
    "syncplay_bridge.listen": ("[::]:8999", "[::]:8999"),
    "syncplay_bridge.tls_certificate": ("/etc/tls/cert.pem", Path("/etc/tls/cert.pem")),
    "syncplay_bridge.tls_private_key": ("/etc/tls/key.pem", Path("/etc/tls/key.pem")),
    "syncplay_bridge.max_connections": ("50", 50),
    "syncplay_bridge.motd": ("Welcome", "Welcome"),
    "cluster.enabled": ("true", True),
    "cluster.node_id": ("node-1", "node-1"),
    "cluster.url": ("http://10.0.0.11:8750/", "http://10.0.0.11:8750"),
}
SECRET_FILES = {"/run/secret": GOOD_SECRET + "\n"}


def test_samples_cover_the_schema() -> None:
    assert set(SAMPLES) == set(ENV_NAMES)


#: Keys that are only valid with a partner (the loader's TOGETHER rule), and that partner.
PARTNERS = {
    "syncplay_bridge.tls_certificate": "syncplay_bridge.tls_private_key",
    "syncplay_bridge.tls_private_key": "syncplay_bridge.tls_certificate",
}
#: Keys whose sample needs another key set (multi-node mode needs PostgreSQL).
NEEDS = PARTNERS | {"cluster.enabled": "database.url"}


@pytest.mark.parametrize("key", list(SAMPLES))
def test_every_env_name_sets_its_key(key: str) -> None:
    text, expected = SAMPLES[key]
    environ = {ENV_NAMES[key]: text}
    if key in NEEDS:
        environ[ENV_NAMES[NEEDS[key]]] = SAMPLES[NEEDS[key]][0]
    settings_ = load(environ=environ, files=SECRET_FILES)
    assert get(settings_, key) == expected


@pytest.mark.parametrize("key", list(SAMPLES))
def test_every_key_can_be_overridden(key: str) -> None:
    text, expected = SAMPLES[key]
    overrides = {key: text}
    if key in NEEDS:
        overrides[NEEDS[key]] = SAMPLES[NEEDS[key]][0]
    assert get(load(overrides=overrides, files=SECRET_FILES), key) == expected


def test_multi_node_mode_needs_postgresql() -> None:
    with pytest.raises(ConfigError, match=r"'cluster\.enabled'.*needs PostgreSQL"):
        load(overrides={"cluster.enabled": "true"}, files=SECRET_FILES)
    assert load(
        overrides={"cluster.enabled": "true", "database.url": SAMPLES["database.url"][0]},
        files=SECRET_FILES,
    ).cluster.enabled


@pytest.mark.parametrize(
    ("key", "value"),
    [("cluster.node_id", "node 1"), ("cluster.node_id", "x" * 65), ("cluster.url", "ftp://h"),
     ("cluster.url", "http://h:1/path"), ("cluster.url", "http://user@h:1")],
)  # fmt: skip
def test_bad_node_settings_are_refused(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load(overrides={key: value}, files=SECRET_FILES)


@pytest.mark.parametrize(("key", "partner"), list(PARTNERS.items()))
def test_a_key_without_its_partner_is_refused(key: str, partner: str) -> None:
    with pytest.raises(ConfigError, match=f"'{partner}'.*must be set together with {key}"):
        load(overrides={key: SAMPLES[key][0]}, files=SECRET_FILES)


def test_file_secret_becomes_the_secret() -> None:
    settings_ = load(environ={"SYNCPLAY_AUTH_JWT_SECRET_FILE": "/run/secret"}, files=SECRET_FILES)
    assert settings_.auth.jwt_secret == Secret(GOOD_SECRET)  # stripped of its newline


YAML_CASES: list[tuple[str, str, object]] = [
    ("server:\n  listen: '0.0.0.0:80'\n", "server.listen", "0.0.0.0:80"),
    ("server:\n  state_dir: /data\n", "server.state_dir", Path("/data")),
    ("database:\n  url: postgres://u@h/db\n", "database.url", "postgres://u@h/db"),
    ("auth:\n  jwt_audience: sp\n", "auth.jwt_audience", "sp"),
    ("logging:\n  level: DEBUG\n", "logging.level", "debug"),
    ("syncplay:\n  enabled: no\n", "syncplay.enabled", False),  # YAML 1.1 booleans
    ("syncplay:\n  sync:\n    threshold_seconds: 3\n", "syncplay.sync.threshold_seconds", 3.0),
    (
        "syncplay:\n  websocket:\n    allowed_origins: [https://x.example]\n",
        "syncplay.websocket.allowed_origins",
        ("https://x.example",),
    ),
    ("syncplay:\n  rooms:\n", "syncplay.rooms.max_rooms_per_user", 10),  # empty section
    ("", "syncplay.enabled", True),  # empty file
    ("# only comments\n", "syncplay.enabled", True),
    ("null\n", "syncplay.enabled", True),
    ("auth:\n  jwt_issuer: null\n", "auth.jwt_issuer", None),
]


@pytest.mark.parametrize(("text", "key", "expected"), YAML_CASES)
def test_yaml_sets_key(text: str, key: str, expected: object) -> None:
    assert get(load(text), key) == expected


PRECEDENCE: list[tuple[str | None, dict[str, str], dict[str, str], float]] = [
    (None, {}, {}, 2.0),
    ("syncplay: {sync: {threshold_seconds: 3}}", {}, {}, 3.0),
    ("syncplay: {sync: {threshold_seconds: 3}}", {"SYNCPLAY_SYNC_THRESHOLD_SECONDS": "4"}, {}, 4.0),
    (None, {"SYNCPLAY_SYNC_THRESHOLD_SECONDS": "4"}, {"syncplay.sync.threshold_seconds": "5"}, 5.0),
    (
        "syncplay: {sync: {threshold_seconds: 3}}",
        {"SYNCPLAY_SYNC_THRESHOLD_SECONDS": "4"},
        {"syncplay.sync.threshold_seconds": "5"},
        5.0,
    ),
    ("syncplay: {sync: {threshold_seconds: 3}}", {}, {"syncplay.sync.threshold_seconds": "5"}, 5.0),
]


@pytest.mark.parametrize(("text", "environ", "overrides", "expected"), PRECEDENCE)
def test_precedence(
    text: str | None, environ: dict[str, str], overrides: dict[str, str], expected: float
) -> None:
    """defaults < YAML < environment < overrides."""
    assert load(text, environ, overrides).syncplay.sync.threshold_seconds == expected


def test_layers_merge_per_key() -> None:
    settings_ = load(
        "syncplay:\n  sync:\n    threshold_seconds: 3\n    max_latency_ms: 100\n",
        {"SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "4"},
    )
    assert settings_.syncplay.sync.threshold_seconds == 3.0
    assert settings_.syncplay.sync.max_latency_ms == 100.0
    assert settings_.syncplay.sync.heartbeat_interval_seconds == 4.0


def test_empty_env_value_clears_an_optional_key() -> None:
    assert (
        load("auth: {jwt_audience: sp}", {"SYNCPLAY_AUTH_JWT_AUDIENCE": ""}).auth.jwt_audience
        is None
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [(t, True) for t in ("true", "TRUE", "1", "yes", "On", " on ")]
    + [(t, False) for t in ("false", "False", "0", "no", "NO", "off")],
)
def test_env_booleans(text: str, expected: bool) -> None:
    assert load(environ={"SYNCPLAY_ENABLED": text}).syncplay.enabled is expected


def test_unknown_env_is_ignored_and_reported_with_the_variable_meant() -> None:
    environ = {
        "SYNCPLAY_SYNC_THRESHOLD": "abc",
        # the spelling the YAML path gives, where the variable's name is shorter
        "SYNCPLAY_WEBSOCKET_PING_INTERVAL_SECONDS": "10",
        "SYNCPLAY_ROOMS_DEFAULT_MAX_PARTICIPANTS": "9",
        "SYNCPLAY_LISTN": "127.0.0.1:1",
        "SYNCPLAY_SOMETHING_ELSE_ENTIRELY": "x",
        "SYNCPLAY_CONFIG": "/etc/syncplayd/config.yaml",
        "SYNCPLAY_TEST_DATABASE_URL": "postgresql://x",
        "SYNCPLAY_ENABLED": "true",
        "PATH": "/usr/bin",
    }
    assert load(environ=environ) == load()  # only warnings: the environment is shared
    assert unknown_env_names(environ) == [
        "SYNCPLAY_LISTN",
        "SYNCPLAY_ROOMS_DEFAULT_MAX_PARTICIPANTS",
        "SYNCPLAY_SOMETHING_ELSE_ENTIRELY",
        "SYNCPLAY_SYNC_THRESHOLD",
        "SYNCPLAY_WEBSOCKET_PING_INTERVAL_SECONDS",
    ]
    assert unknown_env_warnings(environ) == [
        "SYNCPLAY_LISTN is not a setting and is ignored; did you mean SYNCPLAY_LISTEN?",
        "SYNCPLAY_ROOMS_DEFAULT_MAX_PARTICIPANTS is not a setting and is ignored;"
        " did you mean SYNCPLAY_DEFAULT_MAX_PARTICIPANTS?",
        "SYNCPLAY_SOMETHING_ELSE_ENTIRELY is not a setting and is ignored",
        "SYNCPLAY_SYNC_THRESHOLD is not a setting and is ignored;"
        " did you mean SYNCPLAY_SYNC_THRESHOLD_SECONDS?",
        "SYNCPLAY_WEBSOCKET_PING_INTERVAL_SECONDS is not a setting and is ignored;"
        " did you mean SYNCPLAY_WS_PING_INTERVAL_SECONDS?",
    ]


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_error_message_format_from_env() -> None:
    err = error_of(environ={"SYNCPLAY_SYNC_THRESHOLD_SECONDS": "abc"})
    assert str(err) == (
        "Error in configuration at 'syncplay.sync.threshold_seconds' "
        "(from SYNCPLAY_SYNC_THRESHOLD_SECONDS): expected a number, got 'abc'"
    )
    assert err.path == ("syncplay", "sync", "threshold_seconds")
    assert err.env == "SYNCPLAY_SYNC_THRESHOLD_SECONDS"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "syncplay:\n  sync:\n    treshold_seconds: 2\n",
            "Error in configuration at 'syncplay.sync.treshold_seconds': unknown key;"
            " did you mean 'syncplay.sync.threshold_seconds'?",
        ),
        (
            "servr:\n  listen: x\n",
            "Error in configuration at 'servr': unknown key; did you mean 'server'?",
        ),
        ("syncplay:\n  sync:\n    threshold_seconds:\n      x: 1\n", None),
        ("1: 2\n", "Error in configuration at '1': unknown key"),
        (
            "syncplay:\n  sync:\n    threshold_seconds: '5'\n",
            "Error in configuration at 'syncplay.sync.threshold_seconds': "
            "expected a number, got '5'",
        ),
        (
            "syncplay: 5\n",
            "Error in configuration at 'syncplay': expected a mapping, got 5",
        ),
        ("- a\n- b\n", "Error in configuration: the top level must be a mapping, got a list"),
        ("just text\n", "Error in configuration: the top level must be a mapping, got 'just text'"),
    ],
)
def test_yaml_structure_errors(text: str, message: str | None) -> None:
    err = error_of(text)
    if message is not None:
        assert str(err) == message
    assert err.env is None


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("server:\n  listen: [a\n", "line 3, column 1"),
        ("a: b: c\n", "line 1, column 5"),
        ("server:\n\tlisten: x\n", "line 2, column 1"),
        ("server:\n  listen: a\n  listen: b\n", "line 3, column 3"),  # duplicate key
        ("when: 2021-02-30\n", "line 1, column 7"),  # a date that does not exist
        ("x: !!int abc\n", "line 1, column 4"),
        # PyYAML's own constructors fail on these with IndexError, KeyError, AttributeError.
        ("x: !!float ''\n", "line 1, column 4"),
        ("x: !!bool maybe\n", "line 1, column 4"),
        ("x: !!timestamp soon\n", "line 1, column 4"),
        ("x: !!python/name:os.system ''\n", "line 1, column 4"),
        ("x: \x07\n", "line 1, column 4"),  # a control character
        ("a: 1\n---\nb: 2\n", "line 2, column 1"),  # two documents
    ],
)
def test_bad_yaml_is_one_line_with_position(text: str, where: str) -> None:
    err = error_of(text)
    message = str(err)
    assert message.startswith("Error in configuration: invalid YAML at ")
    assert where in message
    assert "\n" not in message
    assert err.path == ()


def test_duplicate_key_is_named() -> None:
    assert "duplicate key 'listen'" in str(error_of("server:\n  listen: a\n  listen: b\n"))


def test_merge_keys_are_not_duplicates() -> None:
    text = "syncplay:\n  sync:\n    <<: {threshold_seconds: 3}\n    threshold_seconds: 4\n"
    assert load(text).syncplay.sync.threshold_seconds == 4.0


def test_deeply_nested_yaml_is_a_config_error() -> None:
    err = error_of("[" * 5000 + "]" * 5000)
    assert "\n" not in str(err)


class _Skip:
    """Marks a BAD_VALUES case that has no spelling in that source."""


SKIP = _Skip()

# (key, YAML value, env/override text, expected part of the message).
BAD_VALUES: list[tuple[str, object, str | _Skip, str]] = [
    ("syncplay.sync.threshold_seconds", "abc", "abc", "expected a number, got 'abc'"),
    ("syncplay.sync.threshold_seconds", True, "true", "expected a number, got"),
    ("syncplay.sync.threshold_seconds", 0, "0.0", "must be greater than 0, got 0"),
    ("syncplay.sync.threshold_seconds", -1.5, "-1.5", "must be greater than 0, got -1.5"),
    ("syncplay.sync.threshold_seconds", math.nan, "nan", "expected a finite number, got"),
    ("syncplay.sync.threshold_seconds", math.inf, "inf", "expected a finite number, got"),
    ("syncplay.sync.threshold_seconds", SKIP, "1e999", "finite number"),
    ("syncplay.sync.threshold_seconds", [1], "1,5", "expected a number, got"),
    ("syncplay.chat.history_limit", "5", "5.0", "expected an integer, got '5"),
    ("syncplay.chat.history_limit", 5.0, "five", "expected an integer, got"),
    ("syncplay.chat.history_limit", True, "1e3", "expected an integer, got"),
    ("syncplay.chat.history_limit", 0, "0", "must be between 1 and 1000, got 0"),
    ("syncplay.chat.history_limit", 1001, "1001", "must be between 1 and 1000, got 1001"),
    ("syncplay.chat.history_limit", 10**100, "9" * 5000, "large"),
    ("syncplay.invitations.default_expiry_hours", 721, "721", "greater than 0 and at most 720"),
    ("syncplay.enabled", "yes", "maybe", "expected a boolean"),
    ("syncplay.enabled", 1, "2", "expected a boolean"),
    ("server.listen", "localhost", "localhost", "expected HOST:PORT"),
    ("server.listen", "::1:8750", "::1:8750", "expected HOST:PORT (IPv6 as [::1]:8750)"),
    ("server.listen", "[::g]:80", "[::g]:80", "not an IPv6 address"),
    ("server.listen", "1.2.3.4:65536", "host:99999999", "the port must be between 0 and 65535"),
    ("server.listen", "300.1.1.1:80", "300.1.1.1:80", "not an IPv4 address"),
    ("server.listen", "bad_host:80", "-x:80", "not a valid host name"),
    ("server.listen", 8750, SKIP, "expected a string, got 8750"),
    ("server.state_dir", "relative/dir", "relative", "expected an absolute path"),
    ("server.state_dir", None, "", "expected an absolute path"),
    ("database.url", "mysql://u:hunter2@h/db", "mysql://u:hunter2@h/db", "sqlite:///, postgresql"),
    ("database.url", "sqlite:///", "sqlite:///", "needs a file path"),
    ("database.url", "sqlite://x.db", "sqlite:x.db", "expected a URL starting with sqlite:///"),
    ("database.url", "postgresql://h:port/db", "postgres://h:99999999/db", "invalid PostgreSQL"),
    ("database.pool_size", 0, "101", "must be between 1 and 100"),
    ("auth.jwt_leeway_seconds", -1, "301", "must be between 0 and 300"),
    ("logging.level", "verbose", "trace", "expected one of debug, info, warning, error"),
    ("logging.level", None, SKIP, "expected one of debug, info, warning, error, got null"),
    ("syncplay.websocket.allowed_origins", "https://a.example", SKIP, "expected a list of strings"),
    ("syncplay.websocket.allowed_origins", [1], SKIP, "expected a list of strings, got a list"),
    ("syncplay.websocket.allowed_origins", ["https://a.example/"], "ftp://x", "expected an origin"),
    ("syncplay.websocket.allowed_origins", ["*"], "https://u@a.example", "expected an origin"),
    (
        "syncplay.sync.disconnect_timeout_seconds",
        5,
        "4",
        "must be greater than syncplay.sync.heartbeat",
    ),
    ("auth.jwt_secret", "short", "short", "the secret must be at least 32 bytes long"),
    ("auth.jwt_secret", 12345, SKIP, "expected a string, got 12345"),
    ("auth.jwt_secret_file", "secret.txt", "secret.txt", "expected an absolute path"),
    ("web.media_url_template", "/V/{contentid}", "/V/{id}", "unknown placeholder {"),
    ("web.media_url_template", "/V/{content_id", "{content_id}}", "a brace outside"),
]


BAD_VALUE_CASES = [
    pytest.param(source, key, value, message, id=f"{source}-{key}-{value!r:.40}")
    for key, raw, text, message in BAD_VALUES
    for source, value in (("yaml", raw), ("env", text), ("override", text))
    if not isinstance(value, _Skip)
]


@pytest.mark.parametrize(("source", "key", "value", "message"), BAD_VALUE_CASES)
def test_bad_value(source: str, key: str, value: object, message: str) -> None:
    """A bad value from any source names the key, and the variable if it came from the env."""
    if source == "yaml":
        err = error_of(nested_yaml(key, value))
        assert err.env is None
    elif source == "env":
        err = error_of(environ={ENV_NAMES[key]: str(value)})
        assert err.env == ENV_NAMES[key]
        assert f"(from {ENV_NAMES[key]}): " in str(err)
    else:
        err = error_of(overrides={key: str(value)})
        assert err.env is None
    assert err.path == tuple(key.split("."))
    rendered = str(err)
    assert rendered.startswith(f"Error in configuration at '{key}'")
    assert message in rendered
    assert "\n" not in rendered
    assert "hunter2" not in rendered


def test_unknown_override_key() -> None:
    err = error_of(overrides={"syncplay.sync.treshold_seconds": "2"})
    assert str(err) == (
        "Error in configuration at 'syncplay.sync.treshold_seconds': unknown key;"
        " did you mean 'syncplay.sync.threshold_seconds'?"
    )
    assert "unknown key" in str(error_of(overrides={"syncplay.sync": "2"}))


def test_cross_field_error_names_the_env_source() -> None:
    err = error_of(environ={"SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS": "40"})
    # The rule belongs to the timeout, which is at its default here.
    assert err.path == ("syncplay", "sync", "disconnect_timeout_seconds")
    assert err.env is None
    err = error_of(environ={"SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS": "5"})
    assert err.env == "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS"
    assert "(from SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS)" in str(err)


def test_error_messages_stay_on_one_line() -> None:
    err = error_of('syncplay:\n  "a\\nb\\u2028c": 1\n')
    assert str(err) == "Error in configuration at 'syncplay.a\\nb\\u2028c': unknown key"
    assert len(str(err).splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# Secrets and *_file variants
# ---------------------------------------------------------------------------------------------


def test_secret_file_from_yaml() -> None:
    settings_ = load("auth:\n  jwt_secret_file: /run/secret\n", files=SECRET_FILES)
    assert settings_.auth.jwt_secret is not None
    assert settings_.auth.jwt_secret.reveal() == GOOD_SECRET
    assert settings_.auth.jwt_secret_file == Path("/run/secret")


def test_unreadable_secret_file_names_the_key() -> None:
    err = error_of(environ={"SYNCPLAY_AUTH_JWT_SECRET_FILE": "/run/missing"})
    assert err.path == ("auth", "jwt_secret_file")
    assert str(err) == (
        "Error in configuration at 'auth.jwt_secret_file' (from SYNCPLAY_AUTH_JWT_SECRET_FILE): "
        "cannot read '/run/missing': No such file or directory"
    )
    err = error_of("auth: {jwt_secret_file: /run/missing}")
    assert str(err).startswith("Error in configuration at 'auth.jwt_secret_file': cannot read")


def test_secret_file_read_errors_of_any_kind() -> None:
    def read_file(path: str) -> str:
        raise PermissionError(13, "Permission denied", path)

    with pytest.raises(ConfigError, match="Permission denied"):
        load_settings("auth: {jwt_secret_file: /x}", ENV, read_file=read_file)

    def undecodable(path: str) -> str:
        return b"\xff".decode()

    with pytest.raises(ConfigError, match="cannot read '/x'"):
        load_settings("auth: {jwt_secret_file: /x}", ENV, read_file=undecodable)


def test_short_secret_in_file_is_an_error_at_the_file_key() -> None:
    err = error_of(environ={"SYNCPLAY_AUTH_JWT_SECRET_FILE": "/s"}, files={"/s": "tiny\n"})
    assert err.path == ("auth", "jwt_secret_file")
    assert "at least 32 bytes" in str(err)
    assert "tiny" not in str(err)


@pytest.mark.parametrize(
    ("text", "environ", "overrides"),
    [
        (f"auth: {{jwt_secret: {GOOD_SECRET}, jwt_secret_file: /run/secret}}", {}, {}),
        (
            None,
            {
                "SYNCPLAY_AUTH_JWT_SECRET": GOOD_SECRET,
                "SYNCPLAY_AUTH_JWT_SECRET_FILE": "/run/secret",
            },
            {},
        ),
        (None, {}, {"auth.jwt_secret": GOOD_SECRET, "auth.jwt_secret_file": "/run/secret"}),
    ],
)
def test_value_and_file_in_one_layer_is_an_error(
    text: str | None, environ: dict[str, str], overrides: dict[str, str]
) -> None:
    err = error_of(text, environ, overrides, SECRET_FILES)
    assert "are both set" in str(err)
    assert GOOD_SECRET not in str(err)


def test_a_higher_layer_replaces_value_and_file_together() -> None:
    # YAML names a file that does not exist; the environment's value wins and the file is unread.
    settings_ = load(
        "auth: {jwt_secret_file: /run/missing}", {"SYNCPLAY_AUTH_JWT_SECRET": GOOD_SECRET}
    )
    assert settings_.auth.jwt_secret == Secret(GOOD_SECRET)
    assert settings_.auth.jwt_secret_file is None
    settings_ = load(
        f"auth: {{jwt_secret: {'y' * 40}}}",
        {"SYNCPLAY_AUTH_JWT_SECRET_FILE": "/run/secret"},
        files=SECRET_FILES,
    )
    assert settings_.auth.jwt_secret == Secret(GOOD_SECRET)


def test_secret_never_shows() -> None:
    settings_ = load(
        environ={
            "SYNCPLAY_AUTH_JWT_SECRET": GOOD_SECRET,
            "SYNCPLAY_DATABASE_URL": "postgresql://sp:hunter2@db/sp?password=hunter3",
        }
    )
    secret = settings_.auth.jwt_secret
    assert secret is not None
    for shown in (repr(secret), str(secret), f"{secret}", repr(settings_), str(settings_)):
        assert GOOD_SECRET not in shown
        assert "hunter2" not in shown
        assert "hunter3" not in shown
    assert str(secret) == "**********"
    dumped = dump_settings(settings_)
    assert GOOD_SECRET not in str(dumped)
    assert "hunter" not in str(dumped)
    assert dumped["auth"] == {
        "jwt_secret": "**********",
        "jwt_secret_file": None,
        "jwt_leeway_seconds": 30,
        "jwt_audience": None,
        "jwt_issuer": None,
    }
    assert dumped["database"] == {
        "url": "postgresql://sp:**********@db/sp?password=**********",
        "auto_migrate": True,
        "pool_size": 10,
    }
    revealed = dump_settings(settings_, mask_secrets=False)["auth"]
    assert isinstance(revealed, dict)
    assert revealed["jwt_secret"] == GOOD_SECRET


def test_secret_type() -> None:
    a, b = Secret("x" * 32), Secret("x" * 32)
    assert a == b
    assert hash(a) == hash(b)
    assert a != Secret("y" * 32)
    assert a != "x" * 32  # never equal to a plain string
    assert a.reveal() == "x" * 32
    with pytest.raises(AttributeError):
        a._value = "changed"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("sqlite:////var/lib/x.db", "sqlite:////var/lib/x.db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("postgresql://u:p@h:5432/db", "postgresql://u:**********@h:5432/db"),
        ("postgres://:p@h/db", "postgres://:**********@h/db"),
        (
            "postgresql:///db?host=/run&password=p",
            "postgresql:///db?host=%2Frun&password=**********",
        ),
        ("postgresql://[::1", "**********"),  # unparseable: hide it all
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# ---------------------------------------------------------------------------------------------
# Frozen tree, helpers, dump
# ---------------------------------------------------------------------------------------------


def test_settings_are_frozen() -> None:
    settings_ = load()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings_.server = settings_.server  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings_.syncplay.sync.threshold_seconds = 1.0  # type: ignore[misc]
    assert hash(settings_) == hash(load())  # frozen and hashable, usable as a cache key


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8750", "127.0.0.1", 8750),
        ("192.0.2.1:0", "192.0.2.1", 0),
        ("[::1]:8750", "::1", 8750),
        ("[::]:65535", "::", 65535),
        ("localhost:80", "localhost", 80),
        ("media.example.org:443", "media.example.org", 443),
    ],
)
def test_parse_listen(listen: str, host: str, port: int) -> None:
    assert parse_listen(listen) == (host, port)
    settings_ = load(overrides={"server.listen": listen})
    assert (settings_.server.listen_host, settings_.server.listen_port) == (host, port)


@pytest.mark.parametrize("listen", ["", ":80", "host", "host:", "[::1]", "a b:1", "[x]:1"])
def test_parse_listen_rejects(listen: str) -> None:
    with pytest.raises(ValueError, match=r"HOST:PORT|address|host name"):
        parse_listen(listen)


def test_postgres_engine() -> None:
    database = load(overrides={"database.url": "postgres://u@h/db"}).database
    assert database.engine == "postgresql"
    assert database.sqlite_path is None


def test_dump_round_trips_through_yaml() -> None:
    files = ("auth.jwt_secret_file", "proxy.secret_file")  # their values would be dumped too
    overrides = {key: text for key, (text, _) in SAMPLES.items() if key not in files}
    settings_ = load(overrides=overrides)
    text = yaml.safe_dump(dump_settings(settings_, mask_secrets=False))
    assert load_settings(text, {}) == settings_


# ---------------------------------------------------------------------------------------------
# config.example.yaml
# ---------------------------------------------------------------------------------------------


def test_example_file_is_generated_from_the_schema() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == render_default_config(), (
        "config.example.yaml is stale: write render_default_config() to it"
    )


def test_example_file_loads_to_the_defaults() -> None:
    assert load(EXAMPLE.read_text(encoding="utf-8")) == load()


def _example_keys() -> dict[str, tuple[bool, list[str]]]:
    """Dotted key -> (commented out?, the comment block above it), parsed from indentation."""
    found: dict[str, tuple[bool, list[str]]] = {}
    sections: list[str] = []
    comments: list[str] = []
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"( *)(# )?([a-z_]+):(.*)", line)
        if match is None:
            comments = [*comments, line.strip()] if line.strip().startswith("#") else []
            continue
        indent, commented, name, rest = match.groups()
        depth = len(indent) // 2
        key = ".".join([*sections[:depth], name])
        if not commented and not rest.strip():  # a section header
            sections = [*sections[:depth], name]
        elif key in ENV_NAMES:
            found[key] = (commented is not None, comments)
        comments = []
    return found


def test_example_file_documents_every_key_with_its_env_name() -> None:
    found = _example_keys()
    assert set(found) == set(ENV_NAMES)
    for spec in SCHEMA:
        _, comments = found[spec.key]
        assert any(f"env {spec.env};" in c for c in comments), spec.key
        assert any(f"default {spec.default_text}" in c for c in comments), spec.key
        assert len(comments) >= 2, spec.key  # a description line, then env and default
    assert {key for key, (commented, _) in found.items() if commented} == {
        "server.state_dir",
        "database.url",
        "auth.jwt_secret",
        "auth.jwt_secret_file",
        "admin.socket",
        "proxy.socket",
        "proxy.secret",
        "proxy.secret_file",
        "syncplay_bridge.listen",
        "syncplay_bridge.tls_certificate",
        "syncplay_bridge.tls_private_key",
        "cluster.node_id",
        "cluster.url",
    }


# ---------------------------------------------------------------------------------------------
# Files and SYNCPLAY_CONFIG
# ---------------------------------------------------------------------------------------------


def test_load_from_path(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("syncplay:\n  chat:\n    enabled: false\n", encoding="utf-8")
    assert not load_settings_from_path(str(config), ENV).syncplay.chat.enabled
    via_env = load_settings_from_path(None, {**ENV, "SYNCPLAY_CONFIG": str(config)})
    assert not via_env.syncplay.chat.enabled
    assert load_settings_from_path(None, ENV) == load()
    assert load_settings_from_path(None, {**ENV, "SYNCPLAY_CONFIG": ""}) == load()
    overridden = load_settings_from_path(str(config), ENV, {"syncplay.chat.enabled": "yes"})
    assert overridden.syncplay.chat.enabled


def test_load_from_missing_path(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        load_settings_from_path(None, {**ENV, "SYNCPLAY_CONFIG": missing})
    assert str(info.value) == (
        f"Error in configuration (from SYNCPLAY_CONFIG): cannot read {missing!r}: "
        "No such file or directory"
    )


# ---------------------------------------------------------------------------------------------
# Properties: whatever the input, Settings or a one-line ConfigError
# ---------------------------------------------------------------------------------------------


def assert_settings_or_config_error(
    text: str | None,
    environ: Mapping[str, str] = ENV,
    overrides: Mapping[str, str] | None = None,
) -> None:
    """Load; only a Settings or a one-line ConfigError may come out."""
    try:
        result = load_settings(text, environ, overrides, read_file=lambda path: "f" * 40)
    except ConfigError as err:
        message = str(err)
        assert len(message.splitlines()) == 1
        assert message.startswith("Error in configuration")
    else:
        assert isinstance(result, Settings)


_SECTION_KEYS = sorted({part for spec in SCHEMA for part in spec.path})
_NAMES = st.sampled_from(_SECTION_KEYS) | st.text(max_size=12)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(
        ["127.0.0.1:0", "[::1]:1", "sqlite:////x", "postgres://u:p@h/db", "/abs", "https://a.b"]
    )
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_NAMES, children, max_size=4),
    max_leaves=12,
)


@st.composite
def yaml_documents(draw: st.DrawFn) -> str:
    """YAML mappings mixing real setting paths, near-misses and random keys and values."""
    paths = st.sampled_from([spec.path for spec in SCHEMA]) | st.lists(
        _NAMES, min_size=1, max_size=4
    )
    document: dict[str, object] = {}
    for path, value in draw(st.lists(st.tuples(paths, _VALUES), max_size=6)):
        node = document
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                break
            node = child
        else:
            node[path[-1]] = value
    return yaml.safe_dump(document, allow_unicode=draw(st.booleans()))


@settings(deadline=None, max_examples=300)
@given(st.text())
def test_property_any_text(text: str) -> None:
    assert_settings_or_config_error(text)


# Fragments that reach PyYAML's less-travelled paths: tags, anchors, merges, flow syntax.
_YAML_TOKENS = [
    *"[]{}:-,&*!|>'\"%@`#?\n \t.a1=~<",
    *("!!int ", "!!float ", "!!bool ", "!!null ", "!!str ", "!!binary ", "!!timestamp "),
    *("!!set ", "!!omap ", "!!pairs ", "!!seq ", "!!map ", "!!python/name:os.system "),
    *("<<: ", "&a ", "*a ", "syncplay:", "\n  ", "server: ", "2001-12-14", "0x1F", "1:20"),
]


@settings(deadline=None, max_examples=300)
@given(st.lists(st.sampled_from(_YAML_TOKENS), max_size=30).map("".join))
def test_property_yaml_like_text(text: str) -> None:
    assert_settings_or_config_error(text)


@settings(deadline=None, max_examples=300)
@given(yaml_documents())
def test_property_any_yaml_mapping(text: str) -> None:
    assert_settings_or_config_error(text)


@settings(deadline=None, max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(sorted(ENV_NAMES.values())),
        st.text() | st.sampled_from([text for text, _ in SAMPLES.values()]),
    )
)
def test_property_any_environment(environ: dict[str, str]) -> None:
    assert_settings_or_config_error(None, {**ENV, **environ})


@settings(deadline=None, max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(sorted(ENV_NAMES)) | st.text(max_size=20),
        st.text() | st.sampled_from([text for text, _ in SAMPLES.values()]),
    )
)
def test_property_any_overrides(overrides: dict[str, str]) -> None:
    assert_settings_or_config_error(None, ENV, overrides)


@settings(deadline=None, max_examples=100)
@given(st.sets(st.sampled_from(sorted(SAMPLES))))
def test_property_valid_values_round_trip(keys: set[str]) -> None:
    """Any combination of valid values loads, and its unmasked dump loads back to the same."""
    keys.discard("auth.jwt_secret_file")  # its value would be dumped beside it
    keys.discard("proxy.secret_file")
    keys |= {NEEDS[key] for key in keys if key in NEEDS}
    settings_ = load(overrides={key: SAMPLES[key][0] for key in keys})
    for key in keys:
        assert get(settings_, key) == SAMPLES[key][1]
    dumped = yaml.safe_dump(dump_settings(settings_, mask_secrets=False))
    assert load_settings(dumped, {}) == settings_
