"""``syncplayctl``: administer syncplayd (this issue: minting tokens)."""

from __future__ import annotations

import re
import sys
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import click

from syncplayd import __version__
from syncplayd.cli.common import load
from syncplayd.config import Settings
from syncplayd.identity import SECRET_FILE_NAME, Principal, encode_token

_DURATION = re.compile(r"^(?P<value>\d+)(?P<unit>[smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_TTL = timedelta(days=365)


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``1h`` or ``7d`` as a timedelta."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter("use a number and a unit: 90s, 15m, 1h or 7d")
    value = timedelta(**{_UNITS[match["unit"]]: int(match["value"])})
    if not timedelta(0) < value <= MAX_TTL:
        raise click.BadParameter("must be more than 0 and at most 365d")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    metavar="PATH",
    help="The daemon's YAML configuration [env: SYNCPLAY_CONFIG].",
)
@click.version_option(__version__, prog_name="syncplayctl")
@click.pass_context
def main(ctx: click.Context, config_path: str | None) -> None:
    """Administer a syncplayd server."""
    ctx.obj = load(config_path, {}, prog="syncplayctl")


@main.group()
def token() -> None:
    """Bearer tokens for trying the API."""


@token.command("create")
@click.option(
    "--user", "user_id", required=True, type=click.UUID, help="The user's UUID (the token's sub)."
)
@click.option("--name", required=True, help="Display name.")
@click.option("--admin", is_flag=True, help="Give the token the admin role.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 90s, 15m, 1h, 7d.")
@click.pass_obj
def token_create(settings: Settings, user_id: UUID, name: str, admin: bool, ttl: str) -> None:
    """Print a token signed with the daemon's secret."""
    lifetime = parse_duration(ttl)
    if not name.strip():
        raise click.BadParameter("must not be blank", param_hint="--name")
    secret = _secret(settings)
    principal = Principal(user_id=user_id, name=name.strip(), is_admin=admin)
    click.echo(
        encode_token(
            principal,
            secret,
            ttl=lifetime,
            audience=settings.auth.jwt_audience,
            issuer=settings.auth.jwt_issuer,
        )
    )


def _secret(settings: Settings) -> str:
    if settings.auth.jwt_secret is not None:
        return settings.auth.jwt_secret.reveal()
    path = Path(settings.server.state_dir) / SECRET_FILE_NAME
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        click.echo(
            f"syncplayctl: no auth.jwt_secret configured and no generated secret at {path} "
            "(start the daemon once, or set SYNCPLAY_AUTH_JWT_SECRET)",
            err=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
