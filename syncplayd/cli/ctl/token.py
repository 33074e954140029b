"""``syncplayctl token`` (offline): mint tokens signed with the daemon's secret."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import click

from syncplayd.cli import where
from syncplayd.cli.ctl.context import CtlContext, fail, parse_duration, pass_ctl
from syncplayd.cli.ctl.group import CtlGroup
from syncplayd.cli.output import echo_json
from syncplayd.identity import SECRET_FILE_NAME, Principal, encode_token

MAX_TTL = timedelta(days=365)


@click.group(cls=CtlGroup)
def token() -> None:
    """Mint tokens for the API and --token-file."""


@token.command("create")
@click.option(
    "--user", "user_id", required=True, type=click.UUID, help="The user's UUID (the token's sub)."
)
@click.option("--name", required=True, help="Display name.")
@click.option("--admin", is_flag=True, help="Give the token the admin role.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 1h, 7d.")
@pass_ctl
def token_create(ctl: CtlContext, user_id: UUID, name: str, admin: bool, ttl: str) -> None:
    """Print a token signed with the daemon's secret."""
    lifetime = parse_duration(ttl, longest=MAX_TTL)
    if not name.strip():
        raise click.BadParameter("must not be blank", param_hint="--name")
    settings = ctl.settings
    secret = _secret(ctl)
    principal = Principal(user_id=user_id, name=name.strip(), is_admin=admin)
    text = encode_token(
        principal,
        secret,
        ttl=lifetime,
        audience=settings.auth.jwt_audience,
        issuer=settings.auth.jwt_issuer,
    )
    if ctl.json:
        echo_json({"token": text, "expires_in_seconds": int(lifetime.total_seconds())})
    else:
        click.echo(text)


def _secret(ctl: CtlContext) -> str:
    settings = ctl.settings
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.reveal()
    path = Path(settings.server.state_dir) / SECRET_FILE_NAME
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        hint = where.secret_hint(settings, path, ctl.config_path, os.environ, Path.cwd())
        fail(f"no auth.jwt_secret configured and no generated secret at {path}: {hint}")
    except PermissionError:
        fail(
            f"cannot read the generated secret {path}: permission denied; run syncplayctl as"
            " the daemon's user (sudo -u syncplayd ...), or give the secret with"
            " SYNCPLAY_AUTH_JWT_SECRET or auth.jwt_secret_file"
        )
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the generated secret {path}: {exc}")
