"""Configuration: one frozen, typed settings tree and one pure loader.

The package is split by concern: ``_values`` (Secret, ConfigError, checks), ``_schema`` (the
settings classes, i.e. the schema), ``_spec`` (the flat table derived from them and per-value
parsing), ``_loader`` (YAML and layering), ``_suggest`` (what a misspelt key or variable
probably meant) and ``_output`` (dump and the example file).

Theory of operation
-------------------
The settings classes below *are* the schema. Every leaf field is declared once, with its type
annotation, its default, its environment variable name, a one-line description and its
constraints; YAML keys, environment names, ``--set``-style override paths, ``dump_settings`` and
the commented example file (``render_default_config``) are all derived from that one declaration.
Nothing maps keys by hand, so a key cannot be documented under one name and read under another
(hypercorn's 35-branch mapping is the bug class this avoids).

``load_settings`` is a pure function of its arguments: the YAML text, an environment mapping and
overrides. It reads no global state; the only I/O it can do goes through the injected
``read_file`` (for ``*_file`` secrets), so tests pass a fake and the daemon passes the real one.

Layers are applied per key, lowest first::

    defaults < YAML < environment < overrides (CLI flags)

Each layer is parsed and validated on its own, so an error names the source that is wrong
(``(from SYNCPLAY_X)`` when it came from the environment) even if a higher layer would have
replaced the value. Then the derived defaults are filled in (``server.state_dir`` from the
systemd/XDG environment, ``database.url`` from the state directory), ``*_file`` secrets are read,
and cross-field rules are checked.

Loading does not stop at the first problem: every layer and every rule is checked, and the one
``ConfigError`` carries all the problems (``ConfigError.problems``), each with its key, its
variable and a hint where one fits (``did you mean 'server.listen'?``), so one run of
``--check-config`` names everything to fix. A rule between keys is skipped when one of its keys
already has a problem, because it would only report that problem's consequence.

Rules worth knowing:

* Unknown YAML keys and unknown override paths are errors (typos must not be silently ignored).
  Unknown ``SYNCPLAY_*`` environment variables are ignored, because the environment is shared
  with other programs; ``unknown_env_names`` lists them and ``unknown_env_warnings`` words a
  warning for each, with the variable it probably misspells, so the daemon can warn.
  ``SYNCPLAY_CONFIG`` (the file path) and ``SYNCPLAY_TEST_*`` are not settings.
* YAML values must have the exact type: ``"5"`` is not an integer and ``true`` is not a number;
  an integer is accepted where a number (float) is expected. NaN and infinities are rejected.
* Environment and override values are strings, parsed per type: booleans accept
  true/false, 1/0, yes/no, on/off (any case); lists are comma-separated. For an optional key an
  empty string means null, which is how a lower layer's value can be cleared.
* A secret with a ``*_file`` variant (``auth.jwt_secret`` / ``auth.jwt_secret_file``) is one
  setting with two spellings: a layer that sets either replaces both from lower layers, and a
  layer that sets both is an error. The file's content, stripped, becomes the secret, which fits
  systemd's ``LoadCredential=`` (``SYNCPLAY_AUTH_JWT_SECRET_FILE=%d/jwt_secret``).
"""

from __future__ import annotations

from ._loader import (
    load_settings,
    load_settings_from_path,
    unknown_env_names,
    unknown_env_warnings,
)
from ._output import (
    dump_settings,
    render_default_config,
)
from ._schema import (
    AuthSettings,
    ChatSettings,
    CleanupSettings,
    DatabaseSettings,
    InvitationSettings,
    LoggingSettings,
    RoomSettings,
    ServerSettings,
    Settings,
    SyncplayBridgeSettings,
    SyncplaySettings,
    SyncSettings,
    WebSettings,
    WebSocketSettings,
)
from ._spec import (
    ENV_NAMES,
    SCHEMA,
    SettingSpec,
)
from ._values import (
    MEDIA_URL_PLACEHOLDERS,
    ConfigError,
    ConfigProblem,
    LogLevel,
    PlainValue,
    Secret,
    SettingValue,
    mask_url,
    parse_listen,
)

__all__ = [
    "ENV_NAMES",
    "MEDIA_URL_PLACEHOLDERS",
    "SCHEMA",
    "AuthSettings",
    "ChatSettings",
    "CleanupSettings",
    "ConfigError",
    "ConfigProblem",
    "DatabaseSettings",
    "InvitationSettings",
    "LogLevel",
    "LoggingSettings",
    "PlainValue",
    "RoomSettings",
    "Secret",
    "ServerSettings",
    "SettingSpec",
    "SettingValue",
    "Settings",
    "SyncSettings",
    "SyncplayBridgeSettings",
    "SyncplaySettings",
    "WebSettings",
    "WebSocketSettings",
    "dump_settings",
    "load_settings",
    "load_settings_from_path",
    "mask_url",
    "parse_listen",
    "render_default_config",
    "unknown_env_names",
    "unknown_env_warnings",
]
