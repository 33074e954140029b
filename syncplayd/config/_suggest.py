"""What an unknown key or environment variable probably meant, for the error's hint.

A newcomer's mistakes are of a few kinds, tried in this order (the first that fits wins):

* a dotted key written flat in YAML (``server.listen: ...``), which YAML does not nest;
* a real key in the wrong section (``sync:`` at the top level belongs under ``syncplay:``);
* a typo of a key of the same section (``listne`` for ``listen``);
* a typo of a key in another section.

Environment names are matched without their common ``SYNCPLAY_`` prefix (it would make every
name look alike), against each variable and against the spelling its YAML path would give
(``SYNCPLAY_WEBSOCKET_PING_INTERVAL_SECONDS`` for ``SYNCPLAY_WS_PING_INTERVAL_SECONDS``), since
the short names that differ from their path are where people guess wrong.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Final

from ._spec import BY_ENV, LEAVES
from ._values import close_matches, one_line, short

_Path = tuple[str, ...]

# Every key that can be written (sections and leaves), in the order of the schema (so that
# hints list them as config.example.yaml does), shallow keys first; and the keys by section
# and by name.
_KNOWN: Final[tuple[_Path, ...]] = tuple(
    sorted(dict.fromkeys(leaf[:i] for leaf in LEAVES for i in range(1, len(leaf) + 1)), key=len)
)
_KNOWN_SET: Final = frozenset(_KNOWN)
_CHILDREN: Final[dict[_Path, list[str]]] = defaultdict(list)
_BY_NAME: Final[dict[str, list[_Path]]] = defaultdict(list)
for _path in _KNOWN:
    _CHILDREN[_path[:-1]].append(_path[-1])
    _BY_NAME[_path[-1]].append(_path)
del _path

_ENV_PREFIX: Final = "SYNCPLAY_"


def _env_aliases() -> dict[str, str]:
    aliases: dict[str, str] = {}
    for env, leaf in BY_ENV.items():
        aliases[env.removeprefix(_ENV_PREFIX)] = env
        aliases.setdefault("_".join(leaf.path).upper(), env)
        if leaf.path[0] == "syncplay":
            aliases.setdefault("_".join(leaf.path[1:]).upper(), env)
    return aliases


_ENV_ALIASES: Final = _env_aliases()


@dataclass(frozen=True, slots=True)
class KeyHint:
    """A suggestion for an unknown key, and the keys it points to."""

    text: str
    paths: tuple[_Path, ...]


def _dotted(path: _Path) -> str:
    return ".".join(path)


def _one_of(paths: list[_Path]) -> str:
    quoted = [f"'{_dotted(p)}'" for p in paths]
    if len(quoted) == 1:
        return quoted[0]
    return "one of " + ", ".join(quoted[:-1]) + " or " + quoted[-1]


def suggest_key(path: _Path) -> KeyHint | None:
    """What the unknown key at ``path`` (a YAML key or an override path) probably meant."""
    prefix, name = path[:-1], path[-1]
    parts = tuple(name.split("."))
    if len(parts) > 1 and (*prefix, *parts) in _KNOWN_SET:
        nested = "".join(f"{part}: {{" for part in parts[:-1]) + f"{parts[-1]}: ..."
        nested += "}" * (len(parts) - 1)
        target = (*prefix, *parts)
        return KeyHint(
            f"YAML does not nest dotted keys: write '{_dotted(target)}' as {nested}", (target,)
        )
    elsewhere = [p for p in _BY_NAME.get(name, []) if p[:-1] != prefix]
    if len(elsewhere) == 1:
        (target,) = elsewhere
        if not target[:-1]:
            return KeyHint(f"'{name}' belongs at the top level", (target,))
        return KeyHint(
            f"'{name}' belongs under '{_dotted(target[:-1])}:' as '{_dotted(target)}'", (target,)
        )
    if elsewhere:
        return KeyHint(f"did you mean {_one_of(elsewhere)}?", tuple(elsewhere))
    siblings = [(*prefix, n) for n in close_matches(name, _CHILDREN.get(prefix, []))]
    if siblings:
        return KeyHint(f"did you mean {_one_of(siblings)}?", tuple(siblings))
    names = close_matches(name, _BY_NAME, n=1)
    if names:
        paths = _BY_NAME[names[0]]
        return KeyHint(f"did you mean {_one_of(paths)}?", tuple(paths))
    return None


def suggest_env(name: str) -> str | None:
    """The settings variable that the unknown ``SYNCPLAY_*`` variable ``name`` probably meant."""
    stem = name.removeprefix(_ENV_PREFIX)
    matches = close_matches(stem, _ENV_ALIASES, n=1)
    return _ENV_ALIASES[matches[0]] if matches else None


def env_warning(name: str) -> str:
    """The warning for an unknown ``SYNCPLAY_*`` variable, with a suggestion if one fits."""
    guess = suggest_env(name)
    hint = f"; did you mean {guess}?" if guess else ""
    return one_line(f"{short(name)} is not a setting and is ignored{hint}")
