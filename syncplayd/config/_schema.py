"""The settings tree: the one place where every setting is declared.

Each leaf field carries its default, environment variable name, description and constraints
(``Meta``); everything else (YAML keys, env parsing, overrides, docs, dump) is derived from these
classes by ``_spec``. To add a setting, add a field here and regenerate ``config.example.yaml``
(``render_default_config``); the tests fail until both agree.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, TypeVar

from ._values import (
    SQLITE_PREFIX,
    LogLevel,
    Secret,
    check_database_url,
    check_host,
    check_listen,
    check_media_url_template,
    check_network,
    check_node_id,
    check_node_url,
    check_origin,
    mask_url,
    parse_listen,
)

META_KEY: Final = "syncplayd.config"
#: The admin socket's file name in the state directory when ``admin.socket`` is not set.
ADMIN_SOCKET_NAME: Final = "admin.sock"
_V = TypeVar("_V")


@dataclass(frozen=True, slots=True)
class Meta:
    """What a leaf declares besides its type and default (see the field comments)."""

    env: str
    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    check: Callable[[str], str] | None = None  # applied to str values and to each list item
    min_bytes: int | None = None  # for secrets
    greater_than: str | None = None  # sibling key this value must exceed
    file_for: str | None = None  # this key is the *_file spelling of that sibling secret
    mask: Callable[[str], str] | None = None  # how to show a str value that may hold a password
    default_doc: str | None = None  # for derived defaults: how the default is computed
    example: str | None = None  # YAML for a commented-out example line


class _Options(typing.TypedDict, total=False):
    ge: float
    gt: float
    le: float
    check: Callable[[str], str]
    min_bytes: int
    greater_than: str
    file_for: str
    mask: Callable[[str], str]
    default_doc: str
    example: str


def _setting(default: _V, env: str, doc: str, **kwargs: typing.Unpack[_Options]) -> _V:
    # `field(default=...)` is typed as returning the default's type, so mypy's dataclass plugin
    # sees an ordinary default while the runtime sees a Field carrying our metadata.
    return field(default=default, metadata={META_KEY: Meta(env=env, doc=doc, **kwargs)})


def _derived(env: str, doc: str, **kwargs: typing.Unpack[_Options]) -> dict[str, Meta]:
    # Metadata for a field whose default depends on the environment: the dataclass field is
    # required (the loader always supplies it), the docs show `default_doc` instead.
    return {META_KEY: Meta(env=env, doc=doc, **kwargs)}


@dataclass(frozen=True, slots=True, repr=False)
class Section:
    """Base of every settings section: frozen, and a repr that hides passwords."""

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value: object = getattr(self, f.name)
            meta = f.metadata.get(META_KEY)
            if isinstance(meta, Meta) and meta.mask is not None and isinstance(value, str):
                value = meta.mask(value)
            parts.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ServerSettings(Section):
    """The HTTP/WebSocket listener and where the daemon keeps its state."""

    listen: str = _setting(
        "127.0.0.1:8750",
        "SYNCPLAY_LISTEN",
        "Address for HTTP and WebSocket, HOST:PORT; IPv6 as [::1]:8750; port 0 picks a free port.",
        check=check_listen,
    )
    state_dir: Path = field(
        metadata=_derived(
            "SYNCPLAY_STATE_DIR",
            "Directory for the SQLite database and other state (an absolute path).",
            default_doc="$STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/syncplayd, "
            "else ~/.local/state/syncplayd",
            example="/var/lib/syncplayd",
        )
    )
    max_request_bytes: int = _setting(
        65536,
        "SYNCPLAY_MAX_REQUEST_BYTES",
        "Largest HTTP request body, and largest WebSocket frame before the connection is cut"
        " (close 1009), in bytes; the protocol itself refuses frames above 16 KiB.",
        ge=1024,
        le=16777216,
    )

    allowed_hosts: tuple[str, ...] = _setting(
        (),
        "SYNCPLAY_ALLOWED_HOSTS",
        "Host names (or IP addresses) requests may name in their Host header, without a port,"
        " e.g. [media.example.org] (env: comma-separated); others get 421 host-not-allowed,"
        " WebSocket upgrades too."
        " Loopback addresses and localhost are always allowed. Empty: any host (set it:"
        " it stops DNS rebinding).",
        check=check_host,
    )

    @property
    def listen_host(self) -> str:
        """The host part of ``listen``, without IPv6 brackets."""
        return parse_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        """The port part of ``listen`` (0: the OS picks a free port)."""
        return parse_listen(self.listen)[1]


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class DatabaseSettings(Section):
    """Where rooms, chat and invitations are stored: SQLite (default) or PostgreSQL."""

    url: str = field(
        metadata=_derived(
            "SYNCPLAY_DATABASE_URL",
            "sqlite:///PATH (an absolute PATH gives four slashes), or postgresql://USER:PASSWORD"
            "@HOST/DB (postgres:// works too).",
            check=check_database_url,
            mask=mask_url,
            default_doc="sqlite:///<state_dir>/syncplayd.sqlite3",
            example='"postgresql://syncplayd@localhost/syncplayd"',
        )
    )
    auto_migrate: bool = _setting(
        True,
        "SYNCPLAY_DATABASE_AUTO_MIGRATE",
        "Apply pending schema migrations when the daemon starts.",
    )
    pool_size: int = _setting(
        10,
        "SYNCPLAY_DATABASE_POOL_SIZE",
        "Most database connections at once (PostgreSQL pool; SQLite reader connections).",
        ge=1,
        le=100,
    )

    @property
    def engine(self) -> Literal["sqlite", "postgresql"]:
        """Which database the URL names."""
        return "sqlite" if self.url.startswith(SQLITE_PREFIX) else "postgresql"

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a ``sqlite:///`` URL (everything after the prefix), else None."""
        if not self.url.startswith(SQLITE_PREFIX):
            return None
        return Path(self.url[len(SQLITE_PREFIX) :])


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class AuthSettings(Section):
    """How bearer JWTs issued by the media server are verified (HS256 shared secret)."""

    jwt_secret: Secret | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_AUTH_JWT_SECRET",
        "Shared HS256 secret, at least 32 bytes; prefer jwt_secret_file.",
        min_bytes=32,
        example='"<at least 32 random bytes>"',
    )
    jwt_secret_file: Path | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_AUTH_JWT_SECRET_FILE",
        "File whose content (stripped) is jwt_secret, e.g. a systemd credential.",
        file_for="jwt_secret",
        example="/run/credentials/syncplayd.service/jwt_secret",
    )
    jwt_leeway_seconds: int = _setting(
        30,
        "SYNCPLAY_AUTH_JWT_LEEWAY_SECONDS",
        "Clock skew tolerated when checking exp/nbf, in seconds.",
        ge=0,
        le=300,
    )
    jwt_audience: str | None = _setting(
        None, "SYNCPLAY_AUTH_JWT_AUDIENCE", "Required 'aud' claim; null: not checked."
    )
    jwt_issuer: str | None = _setting(
        None, "SYNCPLAY_AUTH_JWT_ISSUER", "Required 'iss' claim; null: not checked."
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class LoggingSettings(Section):
    """Log output."""

    level: LogLevel = _setting(  # noqa: RUF009 (a Field, see _setting)
        "info", "SYNCPLAY_LOG_LEVEL", "Minimum level logged: debug, info, warning or error."
    )
    format: Literal["auto", "text", "json"] = _setting(
        "auto",
        "SYNCPLAY_LOG_FORMAT",
        "Log format: auto (plain text on a terminal, JSON lines otherwise), text or json.",
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ProxySettings(Section):
    """Identity from a reverse proxy that authenticates users itself."""

    socket: Path | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_PROXY_SOCKET",
        "Unix socket (mode 0660) on which the daemon also serves the proxy; identity headers"
        " are believed on it. Put it in a folder only the proxy and the daemon can enter."
        " null: none.",
        example="/run/syncplayd-proxy/http.sock",
    )
    trusted_addresses: tuple[str, ...] = _setting(
        (),
        "SYNCPLAY_PROXY_TRUSTED_ADDRESSES",
        "Proxy addresses (IPs or CIDR networks, env: comma-separated) whose identity headers"
        " are believed over TCP when the request also carries the proxy secret (needs"
        " secret); empty: over TCP, identity headers are ignored and bearer tokens count.",
        check=check_network,
    )
    secret: Secret | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_PROXY_SECRET",
        "Shared secret, at least 32 bytes, the proxy sends in X-Syncplay-Proxy-Secret with"
        " identity headers over TCP (needs trusted_addresses); prefer secret_file.",
        min_bytes=32,
        example='"<at least 32 random bytes>"',
    )
    secret_file: Path | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_PROXY_SECRET_FILE",
        "File whose content (stripped) is secret, e.g. a systemd credential.",
        file_for="secret",
        example="/run/credentials/syncplayd.service/proxy_secret",
    )
    real_ip_from: tuple[str, ...] = _setting(
        (),
        "SYNCPLAY_PROXY_REAL_IP_FROM",
        "Proxy addresses (IPs or CIDR networks, env: comma-separated) whose X-Forwarded-For"
        " header names the client's address, read from the right past these addresses (for"
        " per-address limits); empty: the TCP peer is the client.",
        check=check_network,
    )
    user_id_header: str = _setting(
        "X-Remote-User-Id",
        "SYNCPLAY_PROXY_USER_ID_HEADER",
        "Header carrying the user's UUID, set by the trusted proxy.",
    )
    user_name_header: str = _setting(
        "X-Remote-User-Name",
        "SYNCPLAY_PROXY_USER_NAME_HEADER",
        "Header carrying the user's display name.",
    )
    admin_header: str = _setting(
        "X-Remote-User-Admin",
        "SYNCPLAY_PROXY_ADMIN_HEADER",
        "Header that marks an administrator when it is 'true'.",
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class AdminSettings(Section):
    """The admin API for syncplayctl."""

    socket: Path | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_ADMIN_SOCKET",
        "Unix socket of the admin API (mode 0660: file permissions are the guard);"
        " null: <state_dir>/admin.sock. Over HTTP the admin API needs an admin token.",
        example="/run/syncplayd/admin.sock",
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class MetricsSettings(Section):
    """Prometheus metrics."""

    enabled: bool = _setting(
        True,
        "SYNCPLAY_METRICS_ENABLED",
        "Serve Prometheus metrics at /metrics (block it at the proxy if it must stay private).",
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class WebSettings(Section):
    """The watch page at /syncplay/ and its demo mode."""

    enabled: bool = _setting(
        True,
        "SYNCPLAY_WEB_ENABLED",
        "Serve the watch page and the browser client library at /syncplay/.",
    )
    media_url_template: str = _setting(
        "{content_id}",
        "SYNCPLAY_WEB_MEDIA_URL_TEMPLATE",
        "How the watch page turns a room's content into a media URL: {content_type} and"
        " {content_id} are replaced (percent-encoded); the default, a lone {content_id}, takes"
        " the content id itself as the URL. Example: /Videos/{content_id}/stream?static=true."
        " {media_token} is the viewer's media server credential, which the page takes from its"
        " link (#media_token=...) and never sends to syncplayd (docs/integration.md)",
        check=check_media_url_template,
    )
    allow_any_media_url: bool = _setting(
        False,
        "SYNCPLAY_WEB_ALLOW_ANY_MEDIA_URL",
        "Let a room's media URL leave the template's base: with the default template, any"
        " http(s) URL on any host. Every member's browser then fetches the URL the room's"
        " owner chose, which hands that host their addresses. Off: a lone {content_id} must be"
        " a path on the page's own origin, and a value cannot climb out of a template's path.",
    )
    demo: bool = _setting(
        False,
        "SYNCPLAY_WEB_DEMO",
        "Demo mode: serve a test video and hand out guest tokens to anyone who opens the page"
        " (for trying syncplayd locally; never on a public server).",
    )
    demo_allow_remote: bool = _setting(
        False,
        "SYNCPLAY_WEB_DEMO_ALLOW_REMOTE",
        "Allow demo mode on a listen address other than loopback, where anyone who can reach"
        " it gets a guest token; false: the daemon refuses to start in demo mode there.",
    )
    guest_token_hours: float = _setting(
        12.0,
        "SYNCPLAY_WEB_GUEST_TOKEN_HOURS",
        "Lifetime of a demo-mode guest token, in hours.",
        gt=0,
        le=168,
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class RoomSettings(Section):
    """Watch-together rooms."""

    default_max_participants: int = _setting(
        50,
        "SYNCPLAY_DEFAULT_MAX_PARTICIPANTS",
        "Participant limit of a room that does not set its own.",
        ge=2,
        le=10000,
    )
    max_participants_limit: int = _setting(
        1000,
        "SYNCPLAY_MAX_PARTICIPANTS_LIMIT",
        "The largest participant limit a room may set (large watch parties: up to 10000;"
        " docs/benchmarks.md has the cost per member).",
        ge=2,
        le=10000,
    )
    max_room_age_hours: float = _setting(
        24.0, "SYNCPLAY_MAX_ROOM_AGE_HOURS", "Inactive rooms are ended after this many hours.", gt=0
    )
    allow_public: bool = _setting(
        True, "SYNCPLAY_ALLOW_PUBLIC_ROOMS", "Allow rooms that anyone can list and join."
    )
    allow_password_protected: bool = _setting(
        True, "SYNCPLAY_ALLOW_PASSWORD_ROOMS", "Allow rooms protected by a password."
    )
    max_rooms_per_user: int = _setting(
        10,
        "SYNCPLAY_ROOMS_MAX_ROOMS_PER_USER",
        "Active rooms one user may own at once.",
        ge=1,
        le=1000,
    )
    failed_join_attempts: int = _setting(
        10,
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS",
        "Wrong room passwords and invitation codes one user may try per window (joins and"
        " invitation look-ups); beyond that: 429 too-many-attempts until the window ends.",
        ge=1,
        le=10000,
    )
    failed_join_attempts_per_address: int = _setting(
        100,
        "SYNCPLAY_ROOMS_FAILED_JOIN_ATTEMPTS_PER_ADDRESS",
        "The same, per client address (an IPv6 /64) over all its users; 0: not counted per"
        " address. Behind a reverse proxy every client has the proxy's address and shares it.",
        ge=0,
        le=100000,
    )
    failed_join_window_seconds: float = _setting(
        300.0,
        "SYNCPLAY_ROOMS_FAILED_JOIN_WINDOW_SECONDS",
        "The window of the failed-attempt budgets, in seconds, from the first failure. With"
        " several nodes (cluster.enabled) the two budgets are counted in the database, for"
        " all nodes together.",
        gt=0,
        le=86400,
    )
    creates_per_hour: int = _setting(
        20,
        "SYNCPLAY_ROOMS_CREATES_PER_HOUR",
        "Rooms one user may create per hour (a burst of N, then one every 60/N"
        " minutes); beyond that: 429 rate-limited. Administrators are not limited.",
        ge=1,
        le=100000,
    )
    password_changes_per_hour: int = _setting(
        20,
        "SYNCPLAY_ROOMS_PASSWORD_CHANGES_PER_HOUR",
        "Room password changes (PUT with a password) one user may make per hour, as"
        " creates_per_hour counts; beyond that: 429 rate-limited. Administrators are not limited.",
        ge=1,
        le=100000,
    )
    password_hash_memory_kib: int = _setting(
        19456,
        "SYNCPLAY_ROOMS_PASSWORD_HASH_MEMORY_KIB",
        "Memory of one argon2id room-password hash, in KiB (OWASP: 19456 with time cost 2)."
        " Hashes stored with other parameters keep working.",
        ge=4096,
        le=1048576,
    )
    password_hash_time_cost: int = _setting(
        2,
        "SYNCPLAY_ROOMS_PASSWORD_HASH_TIME_COST",
        "Passes of one argon2id room-password hash.",
        ge=1,
        le=20,
    )
    password_hash_parallelism: int = _setting(
        1,
        "SYNCPLAY_ROOMS_PASSWORD_HASH_PARALLELISM",
        "Threads (lanes) of one argon2id room-password hash.",
        ge=1,
        le=16,
    )
    password_hash_concurrency: int = _setting(
        2,
        "SYNCPLAY_ROOMS_PASSWORD_HASH_CONCURRENCY",
        "Room-password hashes and checks that run at once (others wait their turn); the"
        " memory they take is at most this times password_hash_memory_kib.",
        ge=1,
        le=64,
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SyncSettings(Section):
    """Playback synchronisation."""

    threshold_seconds: float = _setting(
        2.0,
        "SYNCPLAY_SYNC_THRESHOLD_SECONDS",
        "A member whose position is off by more than this many seconds is seeked.",
        gt=0,
    )
    heartbeat_interval_seconds: float = _setting(
        5.0, "SYNCPLAY_HEARTBEAT_INTERVAL_SECONDS", "Seconds between client heartbeats.", gt=0
    )
    disconnect_timeout_seconds: float = _setting(
        30.0,
        "SYNCPLAY_DISCONNECT_TIMEOUT_SECONDS",
        "A member silent this long is marked disconnected; must exceed the heartbeat interval.",
        gt=0,
        greater_than="heartbeat_interval_seconds",
    )
    max_latency_ms: float = _setting(
        500.0,
        "SYNCPLAY_SYNC_MAX_LATENCY_MS",
        "One-way latency (half the measured round trip) above which a member is reported"
        " as lagging, in milliseconds.",
        gt=0,
    )
    ready_timeout_seconds: float = _setting(
        30.0,
        "SYNCPLAY_SYNC_READY_TIMEOUT_SECONDS",
        "How long the room waits for a buffering member before going on without it.",
        gt=0,
    )
    slow_member_waits: int = _setting(
        3,
        "SYNCPLAY_SYNC_SLOW_MEMBER_WAITS",
        "In a room that waits for slow members within the policy (the default), how many"
        " times one member's buffering may stop the room within slow_member_window_seconds;"
        " after that the room plays on and the member catches up alone.",
        ge=1,
        le=1000,
    )
    slow_member_window_seconds: float = _setting(
        120.0,
        "SYNCPLAY_SYNC_SLOW_MEMBER_WINDOW_SECONDS",
        "The window in which slow_member_waits counts a member's waits, in seconds.",
        gt=0,
        le=86400,
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ChatSettings(Section):
    """Room chat."""

    enabled: bool = _setting(True, "SYNCPLAY_CHAT_ENABLED", "Enable chat in rooms.")
    max_message_length: int = _setting(
        1000,
        "SYNCPLAY_CHAT_MAX_MESSAGE_LENGTH",
        "Longest chat message, in characters.",
        ge=1,
        le=10000,
    )
    history_limit: int = _setting(
        100,
        "SYNCPLAY_CHAT_HISTORY_LIMIT",
        "Largest page of chat history, and how much recent chat a joining member gets.",
        ge=1,
        le=1000,
    )
    rate_limit_messages_per_minute: int = _setting(
        60,
        "SYNCPLAY_CHAT_RATE_LIMIT_MESSAGES_PER_MINUTE",
        "Chat messages one member may send per minute.",
        ge=1,
        le=10000,
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class InvitationSettings(Section):
    """Invitation codes."""

    default_expiry_hours: float = _setting(
        24.0,
        "SYNCPLAY_INVITE_EXPIRY_HOURS",
        "Lifetime of an invitation that does not set its own, in hours (at most 30 days).",
        gt=0,
        le=720,
    )
    code_length: int = _setting(
        8, "SYNCPLAY_INVITATIONS_CODE_LENGTH", "Characters in an invitation code.", ge=6, le=32
    )
    max_live_per_room: int = _setting(
        100,
        "SYNCPLAY_INVITATIONS_MAX_LIVE_PER_ROOM",
        "Invitations of one room that are neither expired nor used up; beyond that:"
        " 409 too-many-invitations until some expire, are used up or are revoked.",
        ge=1,
        le=100000,
    )
    creates_per_hour: int = _setting(
        60,
        "SYNCPLAY_INVITATIONS_CREATES_PER_HOUR",
        "Invitations one user may create per hour, over all rooms (a burst of N, then"
        " one every 60/N minutes); beyond that: 429 rate-limited. Administrators are not limited.",
        ge=1,
        le=100000,
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class WebSocketSettings(Section):
    """WebSocket connections."""

    read_buffer_size: int = _setting(
        4096,
        "SYNCPLAY_WS_READ_BUFFER_SIZE",
        "Read buffer, in bytes (accepted for compatibility: the kernel sizes socket buffers).",
        ge=512,
        le=1048576,
    )
    write_buffer_size: int = _setting(
        4096,
        "SYNCPLAY_WS_WRITE_BUFFER_SIZE",
        "Write buffer, in bytes (accepted for compatibility: the kernel sizes socket buffers;"
        " a member that falls behind holds at most 256 messages or 1 MiB, then is too-slow).",
        ge=512,
        le=1048576,
    )
    ping_interval_seconds: float = _setting(
        30.0, "SYNCPLAY_WS_PING_INTERVAL_SECONDS", "Seconds between WebSocket pings.", gt=0
    )
    pong_timeout_seconds: float = _setting(
        60.0,
        "SYNCPLAY_WS_PONG_TIMEOUT_SECONDS",
        "A connection silent for this long is closed (the socket read timeout; at least 60 s).",
        gt=0,
    )
    max_connections_per_user: int = _setting(
        5,
        "SYNCPLAY_WS_MAX_CONNECTIONS_PER_USER",
        "Simultaneous WebSocket connections of one user.",
        ge=1,
        le=100,
    )
    joins_per_minute: float = _setting(
        60.0,
        "SYNCPLAY_WS_JOINS_PER_MINUTE",
        "WebSocket joins one user may make per minute on average (bursts of 20); more are"
        " refused with 'rate-limited' before any work is done.",
        gt=0,
        le=10000,
    )
    max_messages_per_second: float = _setting(
        20.0,
        "SYNCPLAY_WS_MAX_MESSAGES_PER_SECOND",
        "Frames a connection may send per second on average (bursts of twice that);"
        " more are refused with 'rate-limited'.",
        gt=0,
        le=10000,
    )
    allowed_origins: tuple[str, ...] = _setting(
        (),
        "SYNCPLAY_WS_ALLOWED_ORIGINS",
        "Browser origins allowed to connect (env: comma-separated); empty: same origin only.",
        check=check_origin,
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class CleanupSettings(Section):
    """Periodic maintenance."""

    inactive_rooms_hours: float = _setting(
        24.0,
        "SYNCPLAY_CLEANUP_INACTIVE_ROOMS_HOURS",
        "Rooms nobody is connected to, with no settings or playback change for this many"
        " hours, are ended (with rooms.max_room_age_hours: the smaller wins).",
        gt=0,
    )
    expired_invitations_hours: float = _setting(
        48.0,
        "SYNCPLAY_CLEANUP_EXPIRED_INVITATIONS_HOURS",
        "Invitations expired this many hours ago are deleted.",
        gt=0,
    )
    ended_rooms_days: float = _setting(
        30.0,
        "SYNCPLAY_CLEANUP_ENDED_ROOMS_DAYS",
        "Rooms ended this many days ago are deleted with their members, chat, invitations"
        " and events.",
        gt=0,
        le=36500,
    )
    events_days: float = _setting(
        30.0,
        "SYNCPLAY_CLEANUP_EVENTS_DAYS",
        "Room events (the playback and membership log) older than this many days are deleted.",
        gt=0,
        le=36500,
    )
    max_events_per_room: int = _setting(
        10000,
        "SYNCPLAY_CLEANUP_MAX_EVENTS_PER_ROOM",
        "Events kept per room: the oldest beyond this many are deleted.",
        ge=100,
        le=10000000,
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SyncplaySettings(Section):
    """The watch-together feature: rooms, sync, the WebSocket, chat and invitations."""

    enabled: bool = _setting(True, "SYNCPLAY_ENABLED", "Feature switch for watch-together.")
    rooms: RoomSettings = field(default_factory=RoomSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    invitations: InvitationSettings = field(default_factory=InvitationSettings)
    websocket: WebSocketSettings = field(default_factory=WebSocketSettings)
    cleanup: CleanupSettings = field(default_factory=CleanupSettings)


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class SyncplayBridgeSettings(Section):
    """The Syncplay-protocol listener: Syncplay desktop clients in syncplayd's rooms."""

    listen: str | None = _setting(
        None,
        "SYNCPLAY_BRIDGE_LISTEN",
        "Address for Syncplay desktop clients, HOST:PORT (Syncplay's own port is 8999; IPv6 as"
        " [::]:8999); null: off. With several nodes, give each one, reachable by the others:"
        " a client is relayed to the node that runs its room. See docs/syncplay-bridge.md.",
        check=check_listen,
        example='"0.0.0.0:8999"',
    )
    tls_certificate: Path | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_BRIDGE_TLS_CERTIFICATE",
        "PEM certificate chain for STARTTLS (with tls_private_key); null: clients that ask"
        " for TLS are told the server has none, and go on in plain text.",
        example="/etc/syncplayd/tls/fullchain.pem",
    )
    tls_private_key: Path | None = _setting(  # noqa: RUF009 (a Field, see _setting)
        None,
        "SYNCPLAY_BRIDGE_TLS_PRIVATE_KEY",
        "PEM private key of tls_certificate.",
        example="/etc/syncplayd/tls/privkey.pem",
    )
    max_connections: int = _setting(
        1000,
        "SYNCPLAY_BRIDGE_MAX_CONNECTIONS",
        "Simultaneous Syncplay connections; more are refused with an Error the client shows.",
        ge=1,
        le=100000,
    )
    motd: str = _setting(
        "",
        "SYNCPLAY_BRIDGE_MOTD",
        "Message of the day shown to Syncplay clients when they connect; empty: none.",
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ClusterSettings(Section):
    """Several daemons (nodes) serving one deployment on one PostgreSQL database."""

    enabled: bool = _setting(
        False,
        "SYNCPLAY_CLUSTER_ENABLED",
        "Run as one node of several on the same PostgreSQL database: each live room runs on"
        " one node, clients are routed by the room in the WebSocket URL (needs PostgreSQL;"
        " see docs/deployment.md, Several nodes).",
    )
    node_id: str | None = _setting(
        None,
        "SYNCPLAY_CLUSTER_NODE_ID",
        "This node's name, unique among the nodes (letters, digits, '.', '_', ':', '-');"
        " null: the host name and the listening port.",
        check=check_node_id,
        example="node-1",
    )
    url: str | None = _setting(
        None,
        "SYNCPLAY_CLUSTER_URL",
        "How the other nodes and operators reach this node's HTTP port (http://HOST:PORT);"
        " null: from server.listen.",
        check=check_node_url,
        example='"http://10.0.0.11:8750"',
    )


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Settings(Section):
    """The whole configuration: build it with ``load_settings``.

    ``server`` and ``database`` have no defaults here because their defaults depend on the
    environment (systemd's ``STATE_DIRECTORY``, ``XDG_STATE_HOME``, ``HOME``); tests get a
    complete tree with ``load_settings(None, {"STATE_DIRECTORY": str(tmp_path)})``.
    """

    server: ServerSettings
    database: DatabaseSettings
    auth: AuthSettings = field(default_factory=AuthSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    proxy: ProxySettings = field(default_factory=ProxySettings)
    web: WebSettings = field(default_factory=WebSettings)
    syncplay: SyncplaySettings = field(default_factory=SyncplaySettings)
    syncplay_bridge: SyncplayBridgeSettings = field(default_factory=SyncplayBridgeSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)

    def admin_socket_path(self) -> Path:
        """``admin.socket``, or ``<state_dir>/admin.sock`` when it is not set."""
        if self.admin.socket is not None:
            return Path(self.admin.socket)
        return Path(self.server.state_dir) / ADMIN_SOCKET_NAME
