"""Safe YAML loading that remembers where every value came from.

Policies are edited by hand, so every later error (schema, expression, data)
must point back to ``file:line:col``.  PyYAML's constructors lose positions,
so we compose the node graph ourselves and convert it, which also lets us
reject what a safe loader would let through silently: duplicate keys, custom
tags, and alias expansion bombs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Diagnostic, PolicyError, UsageError

MAX_POLICY_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000

Path_ = tuple[str | int, ...]

_STANDARD_TAGS = {
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: dates stay strings for the schema."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


# The same loader on libyaml's parser, where PyYAML was built with it: ten times faster (4 ms against
# 42 ms for the base policy, paid by every command that loads one).
_FastLoader = None
if getattr(yaml, "__with_libyaml__", False):
    class _FastLoader(yaml.CSafeLoader):  # type: ignore[no-redef]
        """CSafeLoader with _Loader's resolvers."""

    _FastLoader.yaml_implicit_resolvers = _Loader.yaml_implicit_resolvers


def _compose(text: str) -> yaml.Node | None:
    """The node tree of ``text``.  Text that libyaml does not parse is parsed again by PyYAML, whose
    error wording and positions the messages are written for (and which is stricter in places)."""
    if _FastLoader is not None:
        loader = _FastLoader(text)
        try:
            return loader.get_single_node()
        except yaml.YAMLError:
            pass
        finally:
            loader.dispose()
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


@dataclass(frozen=True)
class Position:
    file: str
    line: int
    col: int


@dataclass
class SourceDocument:
    """Plain data plus the position of each value and of each mapping key."""

    file: str
    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)
    styles: dict[Path_, str] = field(default_factory=dict)  # quoting style of scalars
    block_indent: dict[Path_, int] = field(default_factory=dict)  # content column of | and > scalars

    def position(self, path: Path_) -> Position:
        """Best known position for ``path``: its key, else its value, else the nearest parent."""
        path = tuple(path)
        while True:
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return Position(self.file, 1, 1)
            path = path[:-1]

    def value_position(self, path: Path_) -> Position:
        path = tuple(path)
        return self.values.get(path) or self.position(path)

    def text_position(self, path: Path_, line: int, col: int) -> Position:
        """File position of (line, col) inside the scalar text at ``path``."""
        start = self.value_position(path)
        style = self.styles.get(tuple(path))
        if style in ("|", ">"):
            indent = self.block_indent.get(tuple(path), start.col)
            return Position(start.file, start.line + line, col + indent)
        if line == 1:
            return Position(start.file, start.line, start.col + col - 1 + (1 if style in ("'", '"') else 0))
        return Position(start.file, start.line + line - 1, col)


def format_path(path: Path_) -> str:
    """``tiers.levels[0].when`` style, the way users think of their YAML."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def _diagnostic(file: str, mark: Any, message: str, path: str = "") -> Diagnostic:
    line = mark.line + 1 if mark is not None else 1
    col = mark.column + 1 if mark is not None else 1
    return Diagnostic(file, line, col, path, message)


def _yaml_error(file: str, exc: yaml.YAMLError) -> PolicyError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    hint = None
    if "\t" in problem or "'\\t'" in problem:
        hint = "indent with spaces, not tabs"
    elif "mapping values are not allowed" in problem or "expected <block end>" in problem:
        hint = "check the indentation of this line against the lines above it"
    context = getattr(exc, "context", None)
    opened = getattr(exc, "context_mark", None)
    if context and opened is not None and opened is not mark:
        context += f" that starts at line {opened.line + 1}, column {opened.column + 1}"
        if "flow" in context and hint is None:
            hint = "a bracket or brace opened there is not closed (or a ':' inside it needs quotes)"
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return PolicyError(_diagnostic(file, mark, message), hint=hint)


def decode_utf8(raw: bytes, file: str) -> str:
    """Decode strictly, naming the line of the first bad byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise PolicyError(
            Diagnostic(file, line, col, "", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})"),
            hint="save the file as UTF-8",
        ) from None


def load_yaml_file(path: Path, display_name: str | None = None) -> SourceDocument:
    """Read and parse one YAML file; raises PolicyError with its position on any problem."""
    name = display_name or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(Diagnostic(name, 0, 0, "", "file not found")) from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory, expected a policy file (YAML)") from None
    except OSError as exc:
        raise PolicyError(Diagnostic(name, 0, 0, "", f"cannot read: {exc.strerror}")) from None
    return load_yaml_text(raw, name)


def load_yaml_text(raw: bytes | str, file: str) -> SourceDocument:
    if isinstance(raw, bytes):
        if raw.startswith(b"SQLite format 3\x00"):
            raise UsageError(f"{file}: is a SQLite database, not a policy",
                             hint="did you swap --db and --policy? The policy is the YAML file")
        if len(raw) > MAX_POLICY_BYTES:
            raise PolicyError(Diagnostic(file, 0, 0, "", f"file is larger than {MAX_POLICY_BYTES // (1024 * 1024)} MB"),
                              hint="a policy is a few hundred lines; is this the right file?")
        text = decode_utf8(raw, file)
    else:
        text = raw
    try:
        node = _compose(text)
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    if node is None:
        raise PolicyError(Diagnostic(file, 1, 1, "", "the file is empty"), hint="start from a shipped policy, e.g. `crm-rules demo`")
    doc = SourceDocument(file, None)
    converter = _Converter(doc, _Loader(""), text.splitlines())
    doc.data = converter.convert(node, ())
    return doc


class _Converter:
    def __init__(self, doc: SourceDocument, loader: yaml.SafeLoader, lines: list[str]):
        self.doc = doc
        self.lines = lines
        self.loader = loader
        self.count = 0

    def _pos(self, node: yaml.Node) -> Position:
        return Position(self.doc.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def _fail(self, node: yaml.Node, path: Path_, message: str, hint: str | None = None) -> PolicyError:
        return PolicyError(
            _diagnostic(self.doc.file, node.start_mark, message, format_path(path)), hint=hint
        )

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise self._fail(node, path, f"document expands to more than {MAX_NODES} values", hint="avoid deeply nested aliases")
        if node.tag not in _STANDARD_TAGS:
            raise self._fail(node, path, f"tag {node.tag!r} is not allowed", hint="policies hold plain data only")
        self.doc.values.setdefault(path, self._pos(node))
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise self._fail(key_node, path, "mapping keys must be plain text")
                if key_node.tag not in _STANDARD_TAGS:
                    raise self._fail(key_node, path, f"tag {key_node.tag!r} is not allowed", hint="policies hold plain data only")
                key = self.loader.construct_object(key_node)
                if not isinstance(key, str):
                    key = str(key).lower() if isinstance(key, bool) else "null" if key is None else str(key)
                if key in result:
                    first = self.doc.keys[path + (key,)]
                    raise self._fail(key_node, path + (key,), f"duplicate key {key!r} (first defined at line {first.line})", hint="remove or rename one of them")
                self.doc.keys[path + (key,)] = self._pos(key_node)
                result[key] = self.convert(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        if node.style:
            self.doc.styles[path] = node.style
            if node.style in ("|", ">") and node.start_mark.line + 1 < len(self.lines):
                content = self.lines[node.start_mark.line + 1]
                self.doc.block_indent[path] = len(content) - len(content.lstrip(" "))
        try:
            return self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            raise _yaml_error(self.doc.file, exc) from None
