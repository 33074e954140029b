"""Which characters user text may hold: the patterns the API and the service share.

Names, ids and codes end up on terminals (``syncplayctl`` tables, log lines,
``psql``), where control characters are commands: ESC starts escape sequences
(OSC 52 writes the clipboard), BEL rings, C1 characters (U+0080 to U+009F, CSI
among them) act like ESC sequences on some terminals. So names and ids refuse
every C0 control, DEL and every C1 control; chat keeps newline and tab, which
people type, and refuses the rest. PostgreSQL cannot store NUL at all.

The patterns are written for both Python's ``re`` (msgspec, jsonschema) and
ECMAScript (the OpenAPI contract): ``(?![\\s\\S])`` stands for "end of text",
because ``$`` also matches before a final newline in Python.
"""

from __future__ import annotations

import re
from typing import Final

#: C0 controls, DEL and C1 controls: refused in names, ids and codes.
CONTROL_CHARS: Final = r"\x00-\x1f\x7f-\x9f"
#: The same without tab and newline: refused in chat messages.
CHAT_CONTROL_CHARS: Final = r"\x00-\x08\x0b-\x1f\x7f-\x9f"

#: A name, id or code: no control character.
NO_CONTROL: Final = rf"^[^{CONTROL_CHARS}]*(?![\s\S])"
#: A chat message: no control character but tab and newline.
CHAT_TEXT: Final = rf"^[^{CHAT_CONTROL_CHARS}]*(?![\s\S])"

_CHAT_REFUSED: Final = re.compile(rf"[{CHAT_CONTROL_CHARS}]")


def chat_refusal(text: str) -> str | None:
    """Why ``text`` cannot be a chat message because of its characters, or ``None``."""
    if _CHAT_REFUSED.search(text):
        return "must not contain control characters (newlines and tabs are allowed)"
    return None
