"""Output: ``dump_settings`` (for ``config show``) and the commented default file."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path
from typing import Final

from ._schema import Section, Settings
from ._spec import LEAVES, SCHEMA, SECTIONS, Leaf, yaml_literal
from ._values import PlainValue, Secret


def _plain(leaf: Leaf, value: object, mask_secrets: bool) -> PlainValue:
    if isinstance(value, Secret):
        return Secret.MASK if mask_secrets else value.reveal()
    if isinstance(value, str) and leaf.meta.mask is not None and mask_secrets:
        return leaf.meta.mask(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [str(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"unexpected value {type(value).__name__} at {leaf.path}")  # pragma: no cover


def _dump_section(section: Section, prefix: tuple[str, ...], mask: bool) -> dict[str, PlainValue]:
    out: dict[str, PlainValue] = {}
    for f in dataclasses.fields(section):
        path = (*prefix, f.name)
        value: object = getattr(section, f.name)
        if isinstance(value, Section):
            out[f.name] = _dump_section(value, path, mask)
        else:
            out[f.name] = _plain(LEAVES[path], value, mask)
    return out


def dump_settings(settings: Settings, mask_secrets: bool = True) -> dict[str, PlainValue]:
    """The settings as nested plain data (YAML/JSON-ready), e.g. for ``config show``.

    Args:
        settings: The tree to dump.
        mask_secrets: Replace secrets and the password in a database URL with ``**********``.
            With False the result, written as YAML, loads back to the same settings (unless
            a ``*_file`` secret is set, as the file and its value would then both be present).
    """
    return _dump_section(settings, (), mask_secrets)


_HEADER: Final = """\
# syncplayd configuration: every setting, with its environment variable and default.
#
# Generated from the schema in syncplayd/config/_schema.py (render_default_config); edit the
# schema, not this file. Every key is optional: delete what you do not change.
# Precedence: defaults < this file < environment variables < command-line overrides.
# Unknown keys are errors; unknown SYNCPLAY_* environment variables are ignored.
# In the environment, booleans are true/false, yes/no, on/off or 1/0; lists are comma-separated;
# an empty value sets an optional key to null.
"""


def render_default_config() -> str:
    """The commented default configuration file (the content of ``config.example.yaml``)."""
    lines = [_HEADER.rstrip("\n")]
    by_path = {spec.path: spec for spec in SCHEMA}
    previous: tuple[str, ...] = ()
    for path, leaf in LEAVES.items():
        # Open every section between the previous key and this one.
        common = 0
        while common < len(previous) - 1 and previous[common] == path[common]:
            common += 1
        for depth in range(common, len(path) - 1):
            indent = "  " * depth
            doc = (SECTIONS[path[: depth + 1]].__doc__ or "").strip().splitlines()[0]
            lines += ["", f"{indent}# {doc}", f"{indent}{path[depth]}:"]
        previous = path
        spec, indent = by_path[path], "  " * (len(path) - 1)
        lines.append("")
        lines += textwrap.wrap(
            spec.description, 100, initial_indent=f"{indent}# ", subsequent_indent=f"{indent}# "
        )
        facts = f"env {spec.env}; default {spec.default_text}"
        if spec.constraints:
            facts += f"; allowed {spec.constraints}"
        lines.append(f"{indent}# {facts}")
        if leaf.meta.example is not None:
            lines.append(f"{indent}# {path[-1]}: {leaf.meta.example}")
        else:
            lines.append(f"{indent}{path[-1]}: {yaml_literal(leaf.default)}")
    return "\n".join(lines) + "\n"
