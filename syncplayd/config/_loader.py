"""The pure loader: YAML text + environment + overrides -> ``Settings``."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeAlias, TypeVar

import yaml

from ._schema import Section, Settings
from ._spec import (
    BY_ENV,
    FILE_PAIRS,
    LEAVES,
    PAIR_OF,
    SECTIONS,
    Leaf,
    check_value,
    fmt_num,
    from_text,
    from_yaml,
)
from ._suggest import env_warning, suggest_key
from ._values import (
    SQLITE_PREFIX,
    ConfigError,
    ConfigProblem,
    Invalid,
    Secret,
    SettingValue,
    describe,
)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reports bad scalars with a position."""

    def compose_mapping_node(self, anchor: dict[typing.Any, yaml.Node]) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        # Checked at compose time, where the node holds exactly what was written (merge keys
        # `<<` are expanded later and may legitimately repeat a key).
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                ident = (key_node.tag, key_node.value)
                if ident in seen:
                    raise yaml.composer.ComposerError(
                        problem=f"duplicate key {key_node.value!r}",
                        problem_mark=key_node.start_mark,
                    )
                seen.add(ident)
        return node

    def construct_document(self, node: yaml.Node) -> typing.Any:
        self._root = node  # for naming the key of a value that cannot be constructed
        return super().construct_document(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> typing.Any:
        try:
            return super().construct_object(node, deep)
        except (ArithmeticError, AttributeError, LookupError, TypeError, ValueError) as exc:
            # PyYAML's scalar constructors let whatever their parsing trips on escape for
            # well-formed YAML with bad content: `2021-02-30` (ValueError), `!!float ''`
            # (IndexError), `!!bool x` (KeyError), `!!timestamp x` (AttributeError), an integer
            # with too many digits... Report them like any other YAML error, with a position
            # and, since the document itself is well-formed, the key the value is at.
            reason = str(exc)
            if "integer string conversion" in reason:  # Python's limit on int() digits
                reason = "the number has too many digits"
            path = _path_to(getattr(self, "_root", None), node)
            at = f" at '{'.'.join(path)}'" if path else ""
            raise yaml.constructor.ConstructorError(
                problem=f"invalid value{at}: {reason}", problem_mark=node.start_mark
            ) from None


def _path_to(root: yaml.Node | None, target: yaml.Node) -> tuple[str, ...]:
    """The mapping keys leading to ``target`` in the composed document (iteratively: the
    document may be deep), or ``()``."""
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [] if root is None else [(root, ())]
    seen: set[int] = set()
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if id(node) in seen:
            continue  # an alias: already walked
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key is target:
                    return path
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                stack.append((value, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path) for item in node.value)
    return ()


def _parse_yaml(text: str) -> object:
    """Parse one YAML document; every PyYAML failure becomes a one-line ConfigError."""
    try:
        # The reader rejects control characters up front, in the constructor.
        loader = _StrictLoader(text)
    except yaml.reader.ReaderError as exc:
        position = int(exc.position)
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        raise ConfigError(
            f"invalid YAML at line {line}, column {column}: "
            f"character U+{int(exc.character):04X} is not allowed"
        ) from None
    try:
        data: object = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "syntax error"
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"invalid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - past the reader, PyYAML errors are marked
        raise ConfigError(f"invalid YAML: {exc}") from None
    except RecursionError:
        # The composer recurses once per nesting level; "[[[[...]]]]" exhausts the stack.
        raise ConfigError("invalid YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return data


@dataclass(frozen=True, slots=True)
class _Entry:
    value: SettingValue
    env: str | None  # the environment variable it came from, for error messages


_Layer: TypeAlias = dict[tuple[str, ...], _Entry]


@dataclass(slots=True)
class _Report:
    """The problems found so far, and the keys whose intended value is unknown because of them.

    Loading goes on past a problem so that one run names them all; a rule between keys (a
    derived default, ``greater_than``) is skipped when one of its keys is *tainted* (its value
    was bad, its section was not a mapping, or an unknown key looked like a misspelling of it),
    since it would only report the consequence of a problem already named.
    """

    problems: list[ConfigProblem] = field(default_factory=list)
    _tainted: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, problem: ConfigProblem, taints: Iterable[tuple[str, ...]] = ()) -> None:
        self.problems.append(problem)
        self._tainted.update(taints)

    def invalid(self, exc: Invalid, path: tuple[str, ...], env: str | None = None) -> None:
        self.add(ConfigProblem(str(exc), path, env, exc.hint), [path])

    def unknown_key(self, path: tuple[str, ...]) -> None:
        hint = suggest_key(path)
        if hint is None:
            self.add(ConfigProblem("unknown key", path))
        else:
            # Only settings are tainted: a misplaced section says nothing about the rules of
            # the section it resembles, which is set (or defaulted) as written.
            meant = [p for p in hint.paths if p in LEAVES]
            self.add(ConfigProblem("unknown key", path, hint=hint.text), meant)

    def tainted(self, *paths: tuple[str, ...]) -> bool:
        """Whether a problem touched any of ``paths`` (or a section holding one)."""
        return any(path[:i] in self._tainted for path in paths for i in range(len(path) + 1))


def _read_text(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def _yaml_layer(data: object, report: _Report) -> _Layer:
    layer: _Layer = {}
    if data is not None and not isinstance(data, dict):
        message = f"the top level must be a mapping, got {describe(data)}"
        report.add(ConfigProblem(message), [()])
        return layer
    _walk_yaml(data, (), layer, report)
    return layer


def _walk_yaml(node: object, prefix: tuple[str, ...], layer: _Layer, report: _Report) -> None:
    if node is None:
        return  # an empty section (everything below it commented out) is fine
    if not isinstance(node, dict):
        report.add(ConfigProblem(f"expected a mapping, got {describe(node)}", prefix), [prefix])
        return
    for key, raw in node.items():
        path = (*prefix, str(key))
        if not isinstance(key, str):
            # e.g. `1:` or `true:`, never a setting, and nothing to suggest
            report.add(ConfigProblem("unknown key", path))
        elif path in SECTIONS:
            _walk_yaml(raw, path, layer, report)
        elif (leaf := LEAVES.get(path)) is not None:
            try:
                layer[path] = _Entry(check_value(leaf, from_yaml(leaf.type, raw)), None)
            except Invalid as exc:
                report.invalid(exc, path)
        else:
            report.unknown_key(path)
    _check_pairs(layer, prefix, report, env_layer=False)


def _text_entry(leaf: Leaf, text: str, env: str | None) -> _Entry:
    return _Entry(check_value(leaf, from_text(leaf.type, text)), env)


def _env_layer(environ: Mapping[str, str], report: _Report) -> _Layer:
    layer: _Layer = {}
    for leaf in LEAVES.values():
        env = leaf.meta.env
        if env in environ:
            try:
                layer[leaf.path] = _text_entry(leaf, environ[env], env)
            except Invalid as exc:
                report.invalid(exc, leaf.path, env)
    _check_pairs(layer, None, report, env_layer=True)
    return layer


def _override_layer(overrides: Mapping[str, str], report: _Report) -> _Layer:
    layer: _Layer = {}
    for dotted, text in overrides.items():
        path = tuple(dotted.split("."))
        leaf = LEAVES.get(path)
        if leaf is None:
            report.unknown_key(path)
            continue
        try:
            layer[leaf.path] = _text_entry(leaf, text, None)
        except Invalid as exc:
            report.invalid(exc, leaf.path)
    _check_pairs(layer, None, report, env_layer=False)
    return layer


def _check_pairs(
    layer: _Layer, prefix: tuple[str, ...] | None, report: _Report, *, env_layer: bool
) -> None:
    for value_path, file_path in FILE_PAIRS:
        if prefix is not None and value_path[:-1] != prefix:
            continue
        value, file = layer.get(value_path), layer.get(file_path)
        if value and file and value.value is not None and file.value is not None:
            if env_layer:
                names = f"{LEAVES[value_path].meta.env} and {LEAVES[file_path].meta.env}"
            else:
                names = f"'{'.'.join(value_path)}' and '{'.'.join(file_path)}'"
            problem = ConfigProblem(f"{names} are both set; set only one", file_path, file.env)
            report.add(problem, [value_path, file_path])
            # Neither wins: leaving both out keeps the secret file from being read.
            del layer[value_path], layer[file_path]


def _apply(merged: _Layer, layer: _Layer) -> None:
    for path in layer:
        # A secret and its *_file spelling are one setting: whichever a layer sets replaces
        # both from the layers below it (the one it does not set falls back to its default).
        for member in PAIR_OF.get(path, ()):
            merged[member] = _Entry(LEAVES[member].default, None)
    merged.update(layer)


def _default_state_dir(environ: Mapping[str, str]) -> Path | None:
    # systemd's StateDirectory= sets STATE_DIRECTORY (colon-separated if several are listed;
    # ours is the first). Relative XDG_STATE_HOME values must be ignored per the XDG spec.
    state_directory = environ.get("STATE_DIRECTORY", "").split(":")[0]
    if state_directory.startswith("/"):
        return Path(state_directory)
    xdg = environ.get("XDG_STATE_HOME", "")
    if xdg.startswith("/"):
        return Path(xdg) / "syncplayd"
    home = environ.get("HOME", "")
    if home.startswith("/"):
        return Path(home) / ".local" / "state" / "syncplayd"
    return None


def _resolve_secret_files(merged: _Layer, read_file: Callable[[str], str], report: _Report) -> None:
    for value_path, file_path in FILE_PAIRS:
        entry = merged.get(file_path)
        if entry is None or entry.value is None:
            continue
        try:
            content = read_file(str(entry.value))
        except (OSError, ValueError) as exc:  # ValueError covers UnicodeDecodeError
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            message = f"cannot read {str(entry.value)!r}: {reason}"
            report.add(ConfigProblem(message, file_path, entry.env), [value_path])
            continue
        try:
            secret = check_value(LEAVES[value_path], Secret(content.strip()))
        except Invalid as exc:
            message = f"in {str(entry.value)!r}: {exc}"
            report.add(ConfigProblem(message, file_path, entry.env, exc.hint), [value_path])
            continue
        merged[value_path] = _Entry(secret, entry.env)


def _fill_derived(merged: _Layer, environ: Mapping[str, str], report: _Report) -> None:
    state_path = ("server", "state_dir")
    if state_path not in merged:
        if report.tainted(state_path):
            return  # the operator set it, wrongly: that is the problem to report
        state_dir = _default_state_dir(environ)
        if state_dir is None:
            report.add(
                ConfigProblem(
                    "no default can be derived: set it, or STATE_DIRECTORY, XDG_STATE_HOME or HOME",
                    state_path,
                )
            )
            return
        merged[state_path] = _Entry(state_dir, None)
    url_path = ("database", "url")
    if url_path not in merged:
        database = Path(str(merged[state_path].value)) / "syncplayd.sqlite3"
        merged[url_path] = _Entry(f"{SQLITE_PREFIX}{database}", None)


def _check_greater_than(merged: _Layer, report: _Report) -> None:
    for leaf in LEAVES.values():
        if leaf.meta.greater_than is None:
            continue
        other = (*leaf.path[:-1], leaf.meta.greater_than)
        if report.tainted(leaf.path, other):
            continue
        entry, bound_entry = merged[leaf.path], merged[other]
        bound = bound_entry.value
        if isinstance(entry.value, float) and isinstance(bound, float) and entry.value <= bound:
            # Either side may be the one the operator just changed: name both sources.
            source = f", from {bound_entry.env}" if bound_entry.env else ""
            message = (
                f"must be greater than {'.'.join(other)} ({fmt_num(bound)}{source}), "
                f"got {fmt_num(entry.value)}"
            )
            report.add(ConfigProblem(message, leaf.path, entry.env))


#: Keys that make sense only together: a certificate without its key (or the reverse).
TOGETHER: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("syncplay_bridge", "tls_certificate"), ("syncplay_bridge", "tls_private_key")),
)


def _check_together(merged: _Layer, report: _Report) -> None:
    for first, second in TOGETHER:
        if report.tainted(first, second):
            continue
        a, b = merged[first], merged[second]
        if (a.value is None) != (b.value is None):
            missing, given = (first, b) if a.value is None else (second, a)
            other = ".".join(second if missing == first else first)
            message = f"must be set together with {other}"
            report.add(ConfigProblem(message, missing, given.env))


def _check_cluster(merged: _Layer, report: _Report) -> None:
    enabled, url = ("cluster", "enabled"), ("database", "url")
    if report.tainted(enabled, url):
        return
    entry = merged[enabled]
    if entry.value is True and str(merged[url].value).startswith(SQLITE_PREFIX):
        message = "multi-node mode needs PostgreSQL (database.url is an SQLite file)"
        report.add(ConfigProblem(message, enabled, entry.env))


_S = TypeVar("_S", bound=Section)


def _build(cls: type[_S], prefix: tuple[str, ...], values: Mapping[tuple[str, ...], _Entry]) -> _S:
    kwargs: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        path = (*prefix, f.name)
        section = SECTIONS.get(path)
        if section is not None:
            kwargs[f.name] = _build(section, path, values)
        else:
            kwargs[f.name] = values[path].value
    return cls(**kwargs)


def _load(
    yaml_text: str | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, str] | None,
    read_file: Callable[[str], str],
    report: _Report,
) -> Settings:
    merged: _Layer = {
        leaf.path: _Entry(leaf.default, None) for leaf in LEAVES.values() if not leaf.derived
    }
    if yaml_text is not None:
        try:
            data = _parse_yaml(yaml_text)
        except ConfigError as exc:
            # Nothing of the file is known, but the environment can still be checked.
            for problem in exc.problems:
                report.add(problem, [()])
        else:
            _apply(merged, _yaml_layer(data, report))
    _apply(merged, _env_layer(environ, report))
    if overrides:
        _apply(merged, _override_layer(overrides, report))
    _fill_derived(merged, environ, report)
    _resolve_secret_files(merged, read_file, report)
    _check_greater_than(merged, report)
    _check_together(merged, report)
    _check_cluster(merged, report)
    if report.problems:
        raise ConfigError.of(report.problems)
    return _build(Settings, (), merged)


def load_settings(
    yaml_text: str | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    *,
    read_file: Callable[[str], str] = _read_text,
) -> Settings:
    """Build the settings from defaults, YAML, the environment and overrides, in that order.

    Args:
        yaml_text: The configuration file's content; None (or an empty document) for none.
        environ: The environment, e.g. ``os.environ``; also supplies the derived defaults
            (``STATE_DIRECTORY``, ``XDG_STATE_HOME``, ``HOME``).
        overrides: Dotted path -> string value (CLI flags), parsed like environment values,
            e.g. ``{"server.listen": "127.0.0.1:0"}``.
        read_file: Reads a ``*_file`` secret; must raise OSError (or ValueError) on failure.

    Returns:
        The complete, validated, frozen settings tree.

    Raises:
        ConfigError: Anything is wrong. Its ``problems`` are every problem found, in the order
            file, environment, overrides, then the rules between keys; each names the key and,
            if it came from the environment, the variable, with a hint where one fits.
    """
    return _load(yaml_text, environ, overrides, read_file, _Report())


def load_settings_from_path(
    path: str | None,
    environ: Mapping[str, str],
    overrides: Mapping[str, str] | None = None,
    *,
    read_file: Callable[[str], str] = _read_text,
) -> Settings:
    """Read the configuration file (if any) and load it as ``load_settings`` does.

    Args:
        path: The YAML file; None means ``$SYNCPLAY_CONFIG`` if set and non-empty, else no file.
        environ: As for ``load_settings``.
        overrides: As for ``load_settings``.
        read_file: Reads the file and any ``*_file`` secrets.

    Raises:
        ConfigError: The file cannot be read, or the configuration is invalid (an unreadable
            file is one problem; the environment and overrides are still checked).
    """
    report = _Report()
    env = None
    if path is None and environ.get("SYNCPLAY_CONFIG"):
        path, env = environ["SYNCPLAY_CONFIG"], "SYNCPLAY_CONFIG"
    text = None
    if path is not None:
        try:
            text = read_file(path)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            report.add(ConfigProblem(f"cannot read {path!r}: {reason}", env=env), [()])
    return _load(text, environ, overrides, read_file, report)


def unknown_env_names(environ: Mapping[str, str]) -> list[str]:
    """``SYNCPLAY_*`` variables in ``environ`` that set nothing (likely typos), sorted.

    The loader ignores them; the daemon may log them as a warning. ``SYNCPLAY_CONFIG`` and
    ``SYNCPLAY_TEST_*`` are not settings and are not reported.
    """
    return sorted(
        name
        for name in environ
        if name.startswith("SYNCPLAY_")
        and name not in BY_ENV
        and name != "SYNCPLAY_CONFIG"
        and not name.startswith("SYNCPLAY_TEST_")
    )


def unknown_env_warnings(environ: Mapping[str, str]) -> list[str]:
    """One line for each of ``unknown_env_names``, with the variable it probably misspells,
    e.g. ``"SYNCPLAY_SYNC_THRESHOLD is not a setting and is ignored; did you mean
    SYNCPLAY_SYNC_THRESHOLD_SECONDS?"``.
    """
    return [env_warning(name) for name in unknown_env_names(environ)]
