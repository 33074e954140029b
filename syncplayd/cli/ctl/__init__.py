"""``syncplayctl``: administer a syncplayd server.

Online commands go through :class:`~syncplayd.cli.admin_client.AdminClient` to
the daemon's admin API (its unix socket by default, or HTTP with an admin
token); offline ones (``token``, ``db``, ``config``) read the same
configuration as the daemon and never talk to it.

One module per command group, as in click's examples: ``context`` holds what
every command gets (:class:`CtlContext`), ``group`` the ``main`` group and its
global options, and this module puts the groups together.
"""

from __future__ import annotations

from syncplayd.cli.ctl import (
    chat,
    config_cmds,
    db,
    events,
    invitations,
    participants,
    rooms,
    status,
    token,
)
from syncplayd.cli.ctl.context import CtlContext
from syncplayd.cli.ctl.db import migrations_json
from syncplayd.cli.ctl.group import CtlGroup, main

__all__ = ["CtlContext", "CtlGroup", "main", "migrations_json"]


def register(group: CtlGroup) -> None:
    """Add every command of ``syncplayctl`` to ``group``."""
    group.add_command(status.status)
    group.add_command(rooms.rooms)
    group.add_command(participants.participants)
    group.add_command(chat.chat)
    group.add_command(invitations.invitations)
    group.add_command(events.events)
    group.add_command(token.token)
    group.add_command(db.db)
    group.add_command(config_cmds.config_group)


register(main)
