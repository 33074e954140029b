"""``AdminClient``: a thin, typed wrapper over ``httpx.Client`` for the admin API.

The daemon serves the admin API (``/api/v1/admin``) on a unix socket, where
requests are trusted, and on its HTTP port, where they need a bearer token
with the admin role. ``AdminClient("unix:/run/syncplayd/admin.sock")`` or
``AdminClient("http://127.0.0.1:8750", token=...)`` picks the transport.

Every method returns the decoded JSON answer. Failures are raised as
:class:`AdminError` subclasses whose ``str`` is one line for a human:

* :class:`DaemonUnreachable`: nothing answers at the URL (or not HTTP);
* :class:`TokenRefused`: ``401``, or ``403 forbidden`` from the admin check (a token
  without the admin role: the answer carries a ``WWW-Authenticate`` challenge);
* :class:`ProblemError`: any other problem document (``404 not-found``, ...).

This module stays light (no server imports) so that ``syncplayctl`` starts fast.
"""

from __future__ import annotations

import errno
from types import TracebackType
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx

ADMIN_PREFIX = "/api/v1/admin"
UNIX_PREFIX = "unix:"
DEFAULT_TIMEOUT = 10.0

JSON = dict[str, Any]


# -- errors ---------------------------------------------------------------------------
class AdminError(Exception):
    """The admin API could not do what was asked; ``str()`` is one line."""


class DaemonUnreachable(AdminError):
    """No daemon answers at the URL."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"cannot reach the daemon at {url}: {reason}")
        self.url = url
        self.reason = reason


class TokenRefused(AdminError):
    """The daemon refused the credentials (HTTP only)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"the admin token was refused ({status}: {detail})")
        self.status = status
        self.detail = detail


class ProblemError(AdminError):
    """Any other problem document from the daemon."""

    def __init__(self, status: int, code: str, detail: str, body: JSON) -> None:
        super().__init__(f"{detail} ({status} {code})")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body


# -- the client -------------------------------------------------------------------------
def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__context__ or exc.__cause__
    code = getattr(cause, "errno", None)
    if code is None and "[Errno" in text:
        for candidate in (errno.ENOENT, errno.ECONNREFUSED, errno.EACCES):
            if f"[Errno {candidate}]" in text:
                code = candidate
    hints = {
        errno.ENOENT: " (is syncplayd running, and is this its admin.socket?)",
        errno.ECONNREFUSED: " (is syncplayd running?)",
        errno.EACCES: " (your user needs write access to the socket: the daemon's group)",
    }
    return text + hints.get(code or 0, "")


class AdminClient:
    """The admin API at ``url`` (``unix:/path`` or ``http[s]://host[:port]``)."""

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        headers = {"Accept": "application/json"}
        if url.startswith(UNIX_PREFIX):
            path = url[len(UNIX_PREFIX) :]
            if not path:
                raise ValueError("a unix: URL needs a socket path, as in unix:/run/x.sock")
            base_url = "http://syncplayd"
            transport = transport or httpx.HTTPTransport(uds=path)
        elif url.startswith(("http://", "https://")):
            base_url = url.rstrip("/")
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
        else:
            raise ValueError("the URL must start with unix:, http:// or https://")
        self.needs_token = not url.startswith(UNIX_PREFIX)
        self.has_token = token is not None
        self._http = httpx.Client(
            base_url=base_url + ADMIN_PREFIX,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str | int | float | bool | None] | None = None,
        body: JSON | None = None,
    ) -> JSON:
        """One call: the decoded JSON answer, or an :class:`AdminError`."""
        query = {k: _query_value(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, path, params=query, json=body)
        except httpx.TransportError as exc:
            raise DaemonUnreachable(self.url, _reason(exc)) from None
        try:
            data = response.json()
        except ValueError:
            raise DaemonUnreachable(
                self.url, f"the answer is not JSON (HTTP {response.status_code}): not syncplayd?"
            ) from None
        if not isinstance(data, dict):
            raise DaemonUnreachable(self.url, "the answer is not a JSON object: not syncplayd?")
        if response.is_success:
            return data
        status = response.status_code
        code = str(data.get("code", "http-error"))
        detail = str(data.get("detail") or response.reason_phrase)
        # The admin check's 403 carries a Bearer challenge (insufficient_scope); a 403
        # without one is the service refusing the request itself (the owner cannot be banned).
        challenged = "WWW-Authenticate" in response.headers
        if status == 401 or (status == 403 and code == "forbidden" and challenged):
            if status == 401 and not self.has_token:
                detail = "no token given: pass --token-file with an admin token"
            raise TokenRefused(status, detail)
        raise ProblemError(status, code, detail, data)

    # -- status and config ------------------------------------------------------------------
    def status(self) -> JSON:
        """Version, uptime, live rooms, connections and database health."""
        return self.request("GET", "/status")

    def config(self) -> JSON:
        """The running daemon's settings, secrets masked."""
        return self.request("GET", "/config")

    # -- rooms ---------------------------------------------------------------------------------
    def list_rooms(
        self,
        *,
        status: str = "active",
        public_only: bool = False,
        user: UUID | None = None,
        content_type: str | None = None,
        content_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JSON:
        """A page of rooms (``status``: ``active``, ``ended`` or ``all``)."""
        params: dict[str, str | int | float | bool | None] = {
            "status": status,
            "public": True if public_only else None,
            "user": str(user) if user else None,
            "content_type": content_type,
            "content_id": content_id,
            "limit": limit,
            "offset": offset,
        }
        return self.request("GET", "/rooms", params=params)

    def create_room(
        self,
        *,
        owner_id: UUID,
        owner_name: str,
        name: str,
        content_type: str,
        content_id: str,
        is_public: bool = False,
        password: str | None = None,
        max_participants: int | None = None,
        playback_control: str | None = None,
        content_title: str | None = None,
        content_duration: float | None = None,
    ) -> JSON:
        """Create a room owned by ``owner_id``, named ``owner_name`` among its members.

        Its queue starts with its content, titled ``content_title`` and lasting
        ``content_duration`` seconds when they are given.
        """
        body: JSON = {
            "owner_id": str(owner_id),
            "name": name,
            "content_type": content_type,
            "content_id": content_id,
            "owner_name": owner_name,
            "is_public": is_public,
        }
        optional = {
            "password": password,
            "max_participants": max_participants,
            "playback_control": playback_control,
            "content_title": content_title,
            "content_duration": content_duration,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        return self.request("POST", "/rooms", body=body)

    def get_room(self, room_id: UUID) -> JSON:
        """A room with its live state (``live``)."""
        return self.request("GET", f"/rooms/{room_id}")

    def update_room(self, room_id: UUID, changes: JSON) -> JSON:
        """Change settings; ``{"password": None}`` removes the password."""
        return self.request("PATCH", f"/rooms/{room_id}", body=changes)

    def end_room(self, room_id: UUID, *, purge: bool = False) -> JSON:
        """End a room; ``purge`` deletes it with its history."""
        return self.request("DELETE", f"/rooms/{room_id}", params={"purge": purge or None})

    # -- the play queue ------------------------------------------------------------------------
    def queue(self, room_id: UUID) -> JSON:
        """The room's play queue: its items in order, the current one, repeat and shuffle."""
        return self.request("GET", f"/rooms/{room_id}/queue")

    def queue_add(
        self,
        room_id: UUID,
        *,
        content_type: str,
        content_id: str,
        title: str | None = None,
        duration: float | None = None,
        play_next: bool = False,
    ) -> JSON:
        """Add an item at the end, or right after the current one (``play_next``)."""
        body: JSON = {"content_type": content_type, "content_id": content_id}
        if title is not None:
            body["title"] = title
        if duration is not None:
            body["duration"] = duration
        if play_next:
            body["play_next"] = True
        return self.request("POST", f"/rooms/{room_id}/queue/items", body=body)

    def queue_remove(self, room_id: UUID, item_id: UUID) -> JSON:
        """Remove an item (the current one: the next in play order becomes current)."""
        return self.request("DELETE", f"/rooms/{room_id}/queue/items/{item_id}")

    def queue_move(self, room_id: UUID, item_id: UUID, index: int) -> JSON:
        """Move an item to ``index`` (0 is the first; beyond the end is the end)."""
        path = f"/rooms/{room_id}/queue/items/{item_id}/move"
        return self.request("POST", path, body={"index": index})

    def queue_clear(self, room_id: UUID) -> JSON:
        """Remove every item but the current one."""
        return self.request("DELETE", f"/rooms/{room_id}/queue/items")

    def queue_play(self, room_id: UUID, item_id: UUID) -> JSON:
        """Make an item the current one."""
        return self.request("POST", f"/rooms/{room_id}/queue/play", body={"item_id": str(item_id)})

    def queue_step(self, room_id: UUID, current_item_id: UUID, *, forward: bool) -> JSON:
        """Next (``forward``) or previous, from ``current_item_id``.

        A stale id (the room has moved on since it was read) changes nothing, so that two
        "next" sent for the same item advance once.
        """
        path = f"/rooms/{room_id}/queue/{'next' if forward else 'previous'}"
        return self.request("POST", path, body={"current_item_id": str(current_item_id)})

    def queue_mode(
        self, room_id: UUID, *, repeat: str | None = None, shuffle: bool | None = None
    ) -> JSON:
        """Set repeat (``none``, ``one``, ``all``) and/or shuffle."""
        body: JSON = {}
        if repeat is not None:
            body["repeat"] = repeat
        if shuffle is not None:
            body["shuffle"] = shuffle
        return self.request("PUT", f"/rooms/{room_id}/queue/mode", body=body)

    # -- participants ------------------------------------------------------------------------
    def participants(self, room_id: UUID, *, connected: bool = False) -> JSON:
        """The room's participants, with their live session counts."""
        params: dict[str, str | int | float | bool | None] = {"connected": connected or None}
        return self.request("GET", f"/rooms/{room_id}/participants", params=params)

    def kick(self, room_id: UUID, user_id: UUID, *, reason: str | None = None) -> JSON:
        """Remove a participant and close their live sessions (``reason`` is shown to them)."""
        body: JSON = {} if reason is None else {"reason": reason}
        return self.request("POST", f"/rooms/{room_id}/participants/{user_id}/kick", body=body)

    def set_role(self, room_id: UUID, user_id: UUID, role: str) -> JSON:
        """Make a participant a ``moderator`` or a ``member``; the participant after."""
        path = f"/rooms/{room_id}/participants/{user_id}/role"
        return self.request("PUT", path, body={"role": role})

    def transfer(self, room_id: UUID, user_id: UUID) -> JSON:
        """Make a participant the room's owner (the old owner stays as a moderator)."""
        return self.request("POST", f"/rooms/{room_id}/transfer", body={"user_id": str(user_id)})

    # -- bans and mutes ------------------------------------------------------------------------
    def bans(self, room_id: UUID) -> JSON:
        """The bans in force in a room, newest first."""
        return self.request("GET", f"/rooms/{room_id}/bans")

    def ban(
        self,
        room_id: UUID,
        user_id: UUID,
        *,
        reason: str | None = None,
        expires_in_minutes: float | None = None,
    ) -> JSON:
        """Ban a user (a participant or not) from a room; banning again replaces the terms."""
        body = _sanction(reason, expires_in_minutes)
        return self.request("PUT", f"/rooms/{room_id}/bans/{user_id}", body=body)

    def unban(self, room_id: UUID, user_id: UUID) -> JSON:
        """Lift a ban."""
        return self.request("DELETE", f"/rooms/{room_id}/bans/{user_id}")

    def mute(
        self,
        room_id: UUID,
        user_id: UUID,
        *,
        reason: str | None = None,
        expires_in_minutes: float | None = None,
    ) -> JSON:
        """Keep a participant from posting chat; muting again replaces the terms."""
        body = _sanction(reason, expires_in_minutes)
        return self.request("PUT", f"/rooms/{room_id}/mutes/{user_id}", body=body)

    def unmute(self, room_id: UUID, user_id: UUID) -> JSON:
        """Let a muted participant post again."""
        return self.request("DELETE", f"/rooms/{room_id}/mutes/{user_id}")

    # -- chat ------------------------------------------------------------------------------------
    def chat_history(self, room_id: UUID, *, limit: int = 50, offset: int = 0) -> JSON:
        """A page of chat, newest first."""
        params: dict[str, str | int | float | bool | None] = {"limit": limit, "offset": offset}
        return self.request("GET", f"/rooms/{room_id}/chat", params=params)

    def delete_chat(self, message_id: UUID) -> JSON:
        """Delete one chat message."""
        return self.request("DELETE", f"/chat/{message_id}")

    # -- invitations -------------------------------------------------------------------------
    def create_invitation(
        self,
        room_id: UUID,
        *,
        invited_user_id: UUID | None = None,
        expires_in_hours: float | None = None,
        max_uses: int | None = None,
    ) -> JSON:
        """Create an invitation to a room."""
        body: JSON = {}
        if invited_user_id is not None:
            body["invited_user_id"] = str(invited_user_id)
        if expires_in_hours is not None:
            body["expires_in_hours"] = expires_in_hours
        if max_uses is not None:
            body["max_uses"] = max_uses
        return self.request("POST", f"/rooms/{room_id}/invitations", body=body)

    def list_invitations(
        self, room_id: UUID | None = None, *, limit: int = 50, offset: int = 0
    ) -> JSON:
        """A page of a room's invitations (every room's without one), newest first."""
        params: dict[str, str | int | float | bool | None] = {"limit": limit, "offset": offset}
        path = "/invitations" if room_id is None else f"/rooms/{room_id}/invitations"
        return self.request("GET", path, params=params)

    def get_invitation(self, code: str) -> JSON:
        """An invitation (expired and used-up ones too) with its room's summary."""
        return self.request("GET", f"/invitations/{quote(code, safe='')}")

    def revoke_invitation(self, code: str) -> JSON:
        """Delete an invitation."""
        return self.request("DELETE", f"/invitations/{quote(code, safe='')}")

    def purge_expired_invitations(self, *, older_than_hours: float = 0.0) -> JSON:
        """Delete invitations that expired more than ``older_than_hours`` ago."""
        body: JSON = {"older_than_hours": older_than_hours}
        return self.request("POST", "/invitations/purge-expired", body=body)

    # -- events ------------------------------------------------------------------------------
    def events(
        self, room_id: UUID, *, limit: int = 50, offset: int = 0, after: int | None = None
    ) -> JSON:
        """A page of the room's events, newest first; with ``after``, newer ones oldest first."""
        params: dict[str, str | int | float | bool | None] = {
            "limit": limit,
            "offset": offset,
            "after": after,
        }
        return self.request("GET", f"/rooms/{room_id}/events", params=params)


def _sanction(reason: str | None, expires_in_minutes: float | None) -> JSON:
    body: JSON = {}
    if reason is not None:
        body["reason"] = reason
    if expires_in_minutes is not None:
        body["expires_in_minutes"] = expires_in_minutes
    return body


def _query_value(value: str | int | float | bool) -> str | int | float:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
