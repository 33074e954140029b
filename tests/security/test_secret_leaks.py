"""Secrets that reached an operator's screen or log: ``sslpassword`` and HTTP/2 headers.

* libpq's ``sslpassword`` (the client key's passphrase) in a database URL was shown
  as it is by ``syncplayctl config show`` and the admin API's ``/config``.
* At log level ``debug`` the HTTP/2 header codec (hpack) logged every header it
  decoded, cookies and media-server tokens included, in a form no redaction
  pattern recognises.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from syncplayd.cli.ctl import main as ctl
from syncplayd.config import dump_settings, load_settings
from syncplayd.config._values import mask_url
from tests.daemon_process import run_daemon

SSL_PASSWORD = "client-key-passphrase-4711"
DATABASE_URL = f"postgresql://sp@db.example/sp?sslmode=verify-full&sslpassword={SSL_PASSWORD}"


@pytest.mark.parametrize(
    "url",
    [
        DATABASE_URL,
        f"postgresql://sp:pw-in-userinfo@db/sp?sslpassword={SSL_PASSWORD}&password=x",
        f"postgres://db/sp?SSLPASSWORD={SSL_PASSWORD}",
    ],
)
def test_mask_url_hides_the_ssl_key_passphrase(url: str) -> None:
    masked = mask_url(url)
    assert SSL_PASSWORD not in masked
    assert "pw-in-userinfo" not in masked
    assert "db" in masked  # the rest stays readable


def test_config_show_and_the_admin_dump_hide_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in list(os.environ):
        if name.startswith("SYNCPLAY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("SYNCPLAY_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("SYNCPLAY_DATABASE_URL", DATABASE_URL)
    shown = CliRunner().invoke(ctl, ["config", "show"])
    assert shown.exit_code == 0, shown.output
    assert "sslpassword=" in shown.output
    assert SSL_PASSWORD not in shown.output
    # What GET /api/v1/admin/config answers.
    settings = load_settings(
        None, {"STATE_DIRECTORY": str(tmp_path)}, {"database.url": DATABASE_URL}
    )
    assert SSL_PASSWORD not in json.dumps(dump_settings(settings, mask_secrets=True))


def test_debug_logging_over_http2_shows_no_cookie_or_token(tmp_path: Path) -> None:
    cookie = "jellyfin_session=cookie-value-5f3a9c1e"
    media_token = "media-server-token-0b7e22d4"
    env = {"SYNCPLAY_LOG_LEVEL": "debug", "SYNCPLAY_LOG_FORMAT": "text"}
    with run_daemon(f"sqlite:///{tmp_path / 'db.sqlite3'}", tmp_path / "state", env) as daemon:
        # HTTP/2 without TLS (prior knowledge), as a proxy speaking h2c would send it.
        with httpx.Client(http1=False, http2=True, timeout=10) as h2:
            answer = h2.get(
                daemon.base_url + "/healthz",
                headers={"Cookie": cookie, "X-Emby-Token": media_token},
            )
        assert answer.http_version == "HTTP/2"
        assert answer.status_code == 200
        daemon.stop()
        log = "\n".join(daemon.log_lines)
    assert "hypercorn.error: Running on" in log  # debug level: third-party info lines pass
    assert "cookie-value-5f3a9c1e" not in log
    assert media_token not in log
