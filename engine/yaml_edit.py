"""Edit YAML text in place, changing only the bytes of what changes.

Business staff edit a policy's rule tables in a spreadsheet; bringing the
sheet back must keep the file as they and their colleagues wrote it: every
comment, the key order, quoting, flow or block style, line wrapping.  A
round-trip library re-emits whole collections instead: ruamel.yaml re-wraps
multi-line flow lists, rewrites ``{score: 1}`` inside a flow list as
``score: 1``, drops an explicit ``null`` and turns ``59_999.99`` into
``059999.99`` in the shipped policies, so one edited cell would change lines
nobody touched.

PyYAML's composer (the engine's own loader, so values mean exactly what they
mean to the engine) gives the exact start and end of every node.  Edits here
replace those spans and nothing else; new text (a changed value, a new key, a
new row) is emitted in the style of its neighbours.  Callers re-parse the
result and check it holds exactly the intended data, so a mistake here can
never silently change a policy.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.emitter import Emitter

from .yaml_source import _Loader

STR_TAG = "tag:yaml.org,2002:str"
MERGE_TAG = "tag:yaml.org,2002:merge"

# Plain scalars that YAML 1.2 tools (editors, yaml-language-server) would not read as text, even
# where the engine's YAML 1.1 loader does: quote them so every reader agrees.
_YAML12_SPECIAL = re.compile(
    r"""~|null|Null|NULL|true|True|TRUE|false|False|FALSE
    |[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+
    |[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    |[-+]?\.(inf|Inf|INF)|\.nan|\.NaN|\.NAN""", re.X)
# What a YAML file may not hold as it is: characters outside YAML's printable set (DEL, C1 controls such as
# NEL, U+FFFE), which the loader refuses, and the line breaks NEL, LS and PS, which a quoted scalar folds
# into a space (NEL, for the engine's loader) or which tools disagree about; such text is written escaped.
_NEEDS_ESCAPE = re.compile("[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` with ``text`` (an insertion when start == end)."""

    start: int
    end: int
    text: str


def compose(text: str) -> yaml.Node:
    """The node tree of ``text``, composed exactly as the engine's loader does (no merging of ``<<`` keys)."""
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def apply_edits(text: str, edits: list[Edit], offset: int = 0) -> str:
    """``text`` with non-overlapping ``edits`` applied; positions are relative to ``offset``."""
    out: list[str] = []
    pos = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        start, end = e.start - offset, e.end - offset
        if start < pos or end < start or end > len(text):
            raise ValueError(f"overlapping or out-of-range edit {e!r}")
        out.append(text[pos:start])
        out.append(e.text)
        pos = end
    out.append(text[pos:])
    return "".join(out)


# --- reading the node tree ---------------------------------------------------------------------


def mapping_pairs(node: yaml.Node) -> list[tuple[str, yaml.Node, yaml.Node]]:
    return [(k.value, k, v) for k, v in node.value] if isinstance(node, yaml.MappingNode) else []


def mapping_value(node: yaml.Node, key: str) -> yaml.Node | None:
    for name, _, value in mapping_pairs(node):
        if name == key:
            return value
    return None


def node_at(root: yaml.Node, path: tuple) -> yaml.Node | None:
    node = root
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, yaml.SequenceNode) or part >= len(node.value):
                return None
            node = node.value[part]
        else:
            node = mapping_value(node, part)
            if node is None:
                return None
    return node


def is_flow(node: yaml.Node) -> bool:
    return bool(getattr(node, "flow_style", False))


def shared_or_merged(node: yaml.Node, root: yaml.Node | None = None) -> tuple[str, yaml.Node] | None:
    """Why ``node`` cannot be edited as text, and the node that is why; None when it can.

    An alias makes one node stand in two places (the composer gives both the same object), so text
    edited for one place changes the other too; that other place may be inside ``node`` or anywhere
    else in ``root``, the whole document (an anchor in one section used by an alias in a rule table).
    A ``<<`` merge key copies keys the text of the row does not hold.  The node returned is the
    anchored one (an alias keeps no position of its own) or the merge key.
    """
    uses: Counter = Counter()

    def count(n: yaml.Node) -> None:
        uses[id(n)] += 1
        if uses[id(n)] > 1:
            return
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                count(k)
                count(v)
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                count(v)

    count(root if root is not None else node)
    if root is not None and uses[id(node)] == 0:
        count(node)  # not in root: its aliases are only those inside it
    seen: set[int] = set()

    def walk(n: yaml.Node) -> tuple[str, yaml.Node] | None:
        if uses[id(n)] > 1:
            return "a YAML alias (*name)", n
        if id(n) in seen:
            return None
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                if k.tag == MERGE_TAG:
                    return "a YAML merge key (<<)", k
                found = walk(k) or walk(v)
                if found:
                    return found
        elif isinstance(n, yaml.SequenceNode):
            for v in n.value:
                found = walk(v)
                if found:
                    return found
        return None

    return walk(node)


def content_end(text: str, node: yaml.Node) -> int:
    """Where the node's own text ends.

    PyYAML ends a block collection at the next token (after any comments and blank lines that
    follow it) and a block scalar after its trailing line breaks; both are trimmed here.
    """
    if isinstance(node, yaml.ScalarNode):
        end = node.end_mark.index
        if node.style in ("|", ">"):
            while end > node.start_mark.index and text[end - 1] in " \t\r\n":
                end -= 1
        return end
    if is_flow(node) or not node.value:
        return node.end_mark.index
    if isinstance(node, yaml.MappingNode):
        key, value = node.value[-1]
        return max(content_end(text, key), content_end(text, value))
    return content_end(text, node.value[-1])


def line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def line_end(text: str, index: int) -> int:
    """Index just after the line break of the line holding ``index`` (or the end of the text)."""
    if index > 0 and text[index - 1] == "\n":
        return index
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def column(text: str, index: int) -> int:
    return index - line_start(text, index)


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def _dash_index(text: str, item: yaml.Node) -> int:
    """Index of the ``-`` that introduces a block sequence item."""
    i = item.start_mark.index - 1
    while i >= 0 and text[i] in " \t\r\n":
        i -= 1
    if i < 0 or text[i] != "-":
        raise ValueError("block sequence item without its '-'")
    return i


# --- sequences: rows and list items ------------------------------------------------------------


@dataclass
class SequenceLayout:
    """A sequence cut into one chunk per item and the gaps between them.

    In a block sequence a chunk is whole lines: the item's ``-`` line (with the comment lines
    directly above it, which describe the item and move with it) through the end of its last
    line.  In a flow sequence a chunk is the item's own text and the gaps are the separators;
    ``tail`` is what follows the last item before the ``]`` (its comment, a trailing comma).
    """

    node: yaml.SequenceNode
    block: bool
    chunks: list[tuple[int, int]]
    gaps: list[str]
    dash_col: int | None = None  # block: column of the '-'
    item_col: int | None = None  # block: column where the item's content starts
    tail: str = ""

    @property
    def region(self) -> tuple[int, int]:
        if self.chunks:
            return self.chunks[0][0], self.chunks[-1][1] + len(self.tail)
        pos = self.node.start_mark.index + 1  # just inside an empty '[]'
        return pos, pos


def sequence_layout(text: str, node: yaml.SequenceNode) -> SequenceLayout:
    items = node.value
    if is_flow(node):
        chunks = [(it.start_mark.index, content_end(text, it)) for it in items]
        gaps = [text[a[1]:b[0]] for a, b in zip(chunks, chunks[1:])]
        tail = text[chunks[-1][1]:node.end_mark.index - 1] if chunks else ""  # end_mark is just past the ']'
        return SequenceLayout(node, False, chunks, gaps, tail=tail)
    chunks = []
    previous_end = 0
    dash_col = item_col = None
    for item in items:
        dash = _dash_index(text, item)
        col = column(text, dash)
        if dash_col is None:
            dash_col = col
            item_col = column(text, item.start_mark.index) if line_start(text, item.start_mark.index) == line_start(text, dash) else col + 2
        start = line_start(text, dash)
        while start > previous_end:  # comment lines directly above the '-' belong to the item
            above = line_start(text, start - 1)
            line = text[above:start].rstrip("\r\n")
            if not line.strip().startswith("#") or len(line) - len(line.lstrip(" ")) < col:
                break
            start = above
        end = line_end(text, content_end(text, item))
        chunks.append((start, end))
        previous_end = end
    gaps = [text[a[1]:b[0]] for a, b in zip(chunks, chunks[1:])]
    return SequenceLayout(node, True, chunks, gaps, dash_col, item_col)


# What follows a flow item: its comma, the comment on the rest of its line, then line breaks and indentation.
_FLOW_AFTER = re.compile(r"((?:[ \t]*,)?)([ \t]*#[^\r\n]*)?(.*)", re.S)
_LINE_BREAK = re.compile(r"[ \t]*\r?\n")


def _flow_after(after: str) -> tuple[str, str, str]:
    comma, comment, rest = _FLOW_AFTER.fullmatch(after).groups()
    return comma, comment or "", rest


def rebuild_sequence(text: str, layout: SequenceLayout, new_chunks: list[str], origins: list[int | None]) -> Edit:
    """One edit that replaces the sequence's items by ``new_chunks`` (chunk texts, in order).

    ``origins`` names the original item each chunk is (None: a new item).  Gaps are reused position
    by position, so keeping every chunk in place gives back the original text byte for byte; extra
    gaps repeat the most common one.  In a flow sequence the comment after an item's comma
    (``{id: A},  # the best``) describes that item: it goes where the item goes, and a new item
    gets no copy of a neighbour's.
    """
    start, end = layout.region
    if not new_chunks:
        return Edit(start, end, "")
    if not layout.block:
        return Edit(start, end, _flow_items(text, layout, new_chunks, origins))
    common = Counter(layout.gaps).most_common(1)[0][0] if layout.gaps else ""
    parts = []
    original = text[start:end]
    nl = newline_of(text)
    for i, chunk in enumerate(new_chunks):
        if not chunk.endswith("\n"):
            chunk += nl
        parts.append(chunk)
        if i < len(new_chunks) - 1:
            parts.append(layout.gaps[i] if i < len(layout.gaps) else common)
    out = "".join(parts)
    if not original.endswith("\n") and out.endswith("\n"):
        out = out[: -len(nl)] if out.endswith(nl) else out[:-1]
    return Edit(start, end, out)


def _flow_items(text: str, layout: SequenceLayout, new_chunks: list[str], origins: list[int | None]) -> str:
    """The items of a flow sequence with their separators: the commas, line breaks and indentation
    of the position, the comment of the item."""
    after = layout.gaps + [layout.tail]  # what follows each original item
    comments = [_flow_after(a)[1] for a in after] if layout.chunks else []
    common = Counter(layout.gaps).most_common(1)[0][0] if layout.gaps else ", "
    indent = " " * column(text, layout.chunks[0][0]) if layout.chunks else ""
    parts = []
    last = len(new_chunks) - 1
    for k, (chunk, origin) in enumerate(zip(new_chunks, origins)):
        parts.append(chunk)
        if k == last:
            positional = layout.tail
        elif k < len(layout.gaps):
            positional = layout.gaps[k]
        else:  # a separator the list did not have: like the others, without their comment lines
            positional = "".join(line for line in common.splitlines(keepends=True) if not line.lstrip().startswith("#"))
        comma, _, rest = _flow_after(positional)
        comment = comments[origin] if origin is not None else ""
        if comment and not _LINE_BREAK.match(rest):  # a comment ends its line
            rest = newline_of(text) + indent + rest.lstrip(" \t")
        parts.append(comma + comment + rest)
    return "".join(parts)


def reindent(chunk: str, delta: int) -> str | None:
    """Shift every line of a block chunk by ``delta`` columns; None when it cannot shift left that far."""
    if delta == 0:
        return chunk
    lines = chunk.splitlines(keepends=True)
    out = []
    for line in lines:
        body = line.rstrip("\r\n")
        if not body.strip():
            out.append(line)
        elif delta > 0:
            out.append(" " * delta + line)
        elif len(body) - len(body.lstrip(" ")) >= -delta:
            out.append(line[-delta:])
        else:
            return None
    return "".join(out)


# --- emitting new text -------------------------------------------------------------------------

_emitter = Emitter(io.StringIO(), allow_unicode=True)


def _resolves_to_text(value: str) -> bool:
    """Would a plain scalar ``value`` read back as this text for the engine (YAML 1.1) and for YAML 1.2 tools?"""
    tag = _Loader.resolve(_Loader, yaml.ScalarNode, value, (True, False))
    return tag == STR_TAG and not _YAML12_SPECIAL.fullmatch(value)


def format_number(value: int | float) -> str:
    """A number as YAML the engine's loader reads back as the same number (YAML 1.1 floats need a '.')."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent[0] not in "+-":
            exponent = "+" + exponent
        text = f"{mantissa}e{exponent}"
    return text


def quote_single(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_double(value: str) -> str:
    return escape_unprintable(json.dumps(value, ensure_ascii=False))  # a JSON string is a valid YAML double-quoted scalar


def escape_unprintable(text: str) -> str:
    """JSON text with the characters JSON leaves as they are but YAML (or a terminal) cannot show written as escapes."""
    return _NEEDS_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def scalar_text(value: Any, flow: bool, style: str | None = None) -> str:
    """One-line YAML for a scalar in block or flow context, keeping ``style`` (a quote) when possible."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return format_number(value)
    if not isinstance(value, str):
        raise TypeError(f"not a scalar: {value!r}")
    printable = ("\n" not in value and "\r" not in value and not _NEEDS_ESCAPE.search(value)
                 and _emitter.analyze_scalar(value).allow_single_quoted)
    if style == '"' or not printable:
        return quote_double(value)
    if style == "'":
        return quote_single(value)
    analysis = _emitter.analyze_scalar(value)
    plain_ok = analysis.allow_flow_plain if flow else analysis.allow_block_plain
    if plain_ok and value and not analysis.multiline and _resolves_to_text(value):
        return value
    return quote_single(value)


def block_scalar_text(value: str, style: str, indent: int, nl: str) -> str | None:
    """``value`` as a ``|`` or ``>`` block scalar indented by ``indent``; None when that style cannot hold it."""
    body = value.rstrip("\n")
    trailing = len(value) - len(body)
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    lines = body.split("\n")
    if not body or any(line != line.rstrip() or line.startswith((" ", "\t")) for line in lines):
        return None
    if any(not ch.isprintable() for ch in body.replace("\n", "")):
        return None
    if style == ">" and len(lines) > 1:
        style = "|"  # a folded scalar would join the lines; a literal one keeps them
    return style + chomp + "".join(nl + " " * indent + line for line in lines) + nl * max(trailing - 1, 0)


def key_text(key: str) -> str:
    return scalar_text(key, flow=True)


def flow_text(value: Any, style: "Style | None" = None, path: tuple = ()) -> str:
    """``value`` in flow style; with a ``style``, text is quoted the way the neighbours quote that key."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key_text(k)}: {flow_text(v, style, path + (k,))}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(flow_text(v, style, path + ("[]",)) for v in value) + "]"
    return style.scalar(value, True, path) if style else scalar_text(value, flow=True)


@dataclass
class Style:
    """How new text should look, learnt from the neighbouring rows of the same table."""

    flow: dict[tuple, bool]  # key path inside a row -> written in flow style there
    quotes: dict[tuple, str | None] = field(default_factory=dict)  # key path -> how its text is mostly quoted
    map_step: int = 2  # indent of a nested block mapping's keys under its key
    seq_step: int = 2  # indent of a block list's '-' under its key
    short: int = 72  # a new collection without a precedent is written in flow style up to this length

    def wants_flow(self, path: tuple, value: Any) -> bool:
        if path in self.flow:
            return self.flow[path]
        return len(flow_text(value, self, path)) <= self.short

    def scalar(self, value: Any, flow: bool, path: tuple) -> str:
        quote = self.quotes.get(path) if isinstance(value, str) else None
        return scalar_text(value, flow, quote)


def learn_style(text: str, rows: list[yaml.Node]) -> Style:
    flow: dict[tuple, list[bool]] = {}
    quotes: dict[tuple, list[str | None]] = {}
    map_steps: list[int] = []
    seq_steps: list[int] = []

    def walk(node: yaml.Node, path: tuple) -> None:
        for name, key, value in mapping_pairs(node):
            if isinstance(value, yaml.ScalarNode) and value.tag == STR_TAG:
                quotes.setdefault(path + (name,), []).append(value.style if value.style in ("'", '"') else None)
            if isinstance(value, yaml.SequenceNode):
                for item in value.value:
                    if isinstance(item, yaml.ScalarNode) and item.tag == STR_TAG:
                        quotes.setdefault(path + (name, "[]"), []).append(item.style if item.style in ("'", '"') else None)
            if isinstance(value, (yaml.MappingNode, yaml.SequenceNode)):
                flow.setdefault(path + (name,), []).append(is_flow(value))
                if not is_flow(value) and value.value:
                    if isinstance(value, yaml.MappingNode):
                        map_steps.append(column(text, value.start_mark.index) - column(text, key.start_mark.index))
                    else:
                        seq_steps.append(column(text, _dash_index(text, value.value[0])) - column(text, key.start_mark.index))
                if isinstance(value, yaml.MappingNode):
                    walk(value, path + (name,))

    for row in rows:
        walk(row, ())
    common = {p: Counter(v).most_common(1)[0][0] for p, v in flow.items()}
    quoting = {p: Counter(v).most_common(1)[0][0] for p, v in quotes.items()}
    step = Counter(s for s in map_steps if s > 0).most_common(1)
    seq = Counter(s for s in seq_steps if s >= 0).most_common(1)
    return Style(common, quoting, step[0][0] if step else 2, seq[0][0] if seq else 2)


def entry_lines(key: str, value: Any, col: int, style: Style, path: tuple) -> list[str]:
    """Lines of ``key: value`` in a block mapping whose keys are at column ``col``."""
    head = " " * col + key_text(key) + ":"
    if isinstance(value, dict) and value and not style.wants_flow(path, value):
        lines = [head]
        for k, v in value.items():
            lines += entry_lines(k, v, col + style.map_step, style, path + (k,))
        return lines
    if isinstance(value, list) and value and not style.wants_flow(path, value):
        lines = [head]
        for item in value:
            text = flow_text(item, style, path + ("[]",)) if isinstance(item, (dict, list)) else \
                style.scalar(item, False, path + ("[]",))
            lines.append(" " * (col + style.seq_step) + "- " + text)
        return lines
    if isinstance(value, (dict, list)):
        return [head + " " + flow_text(value, style, path)]
    return [head + " " + style.scalar(value, False, path)]


def block_item_text(value: dict, dash_col: int, item_col: int, style: Style, nl: str) -> str:
    """A new block sequence item (a row): ``- first: ...`` then its other keys under the first."""
    lines: list[str] = []
    for k, v in value.items():
        lines += entry_lines(k, v, item_col, style, (k,))
    first = lines[0]
    lines[0] = " " * dash_col + "-" + " " * (item_col - dash_col - 1) + first[item_col:]
    return nl.join(lines) + nl


# --- mappings ----------------------------------------------------------------------------------


class MappingEditor:
    """Edits of one mapping node (a row, or a nested map such as ``payment``)."""

    def __init__(self, text: str, node: yaml.MappingNode, style: Style, path: tuple = ()):
        self.text = text
        self.node = node
        self.style = style
        self.path = path
        self.nl = newline_of(text)
        self.pairs = mapping_pairs(node)
        self.flow = is_flow(node)

    def index(self, key: str) -> int:
        return next(i for i, (name, _, _) in enumerate(self.pairs) if name == key)

    def key_col(self) -> int:
        return column(self.text, self.pairs[0][1].start_mark.index)

    def _on_dash_line(self, key_node: yaml.Node) -> bool:
        start = key_node.start_mark.index
        return bool(self.text[line_start(self.text, start):start].strip())

    def replace_value(self, key: str, value: Any) -> Edit:
        _, key_node, node = self.pairs[self.index(key)]
        start, end = node.start_mark.index, content_end(self.text, node)
        if isinstance(value, (dict, list)):
            new = flow_text(value, self.style, self.path + (key,))
            if not isinstance(node, yaml.ScalarNode) and not is_flow(node):
                return Edit(key_node.end_mark.index, end, ": " + new)  # a block collection becomes a flow one
        elif isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") and isinstance(value, str) and not self.flow:
            new = block_scalar_text(value, node.style, self._block_indent(node), self.nl) or scalar_text(value, False)
        else:
            quote = node.style if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"') else None
            new = scalar_text(value, self.flow, quote)
        if start == end:  # `key:` with nothing after it (null): write right after the ':'
            after = key_node.end_mark.index
            while after < len(self.text) and self.text[after] in " \t":
                after += 1
            if self.text[after:after + 1] == ":":
                return Edit(after + 1, after + 1, " " + new)
            return Edit(key_node.end_mark.index, key_node.end_mark.index, ": " + new)  # `{a: 1, b}`: b has no ':'
        return Edit(start, end, new)

    def _block_indent(self, node: yaml.ScalarNode) -> int:
        first = line_end(self.text, node.start_mark.index)
        nxt = self.text[first:line_end(self.text, first)]
        return len(nxt) - len(nxt.lstrip(" ")) if nxt.strip() else self.key_col() + 2

    def remove_keys(self, keys: set[str]) -> list[Edit]:
        """Edits removing ``keys`` (at least one key of the mapping stays, or it is a flow mapping)."""
        gone = [k in keys for k, _, _ in self.pairs]
        edits = []
        n = len(self.pairs)
        if self.flow:
            last_kept = max((i for i in range(n) if not gone[i]), default=None)
            for i, (_, key_node, value) in enumerate(self.pairs):
                if not gone[i]:
                    continue
                if last_kept is None:  # nothing stays: `{}`
                    edits.append(Edit(self.pairs[0][1].start_mark.index, content_end(self.text, self.pairs[-1][2]), ""))
                    break
                if i < last_kept:
                    edits.append(Edit(key_node.start_mark.index, self.pairs[i + 1][1].start_mark.index, ""))
                else:  # the tail after the last kept pair, separator included
                    edits.append(Edit(content_end(self.text, self.pairs[last_kept][2]), content_end(self.text, self.pairs[-1][2]), ""))
                    break
            return edits
        i = 0
        while i < n:
            name, key_node, value = self.pairs[i]
            if not gone[i]:
                i += 1
                continue
            if self._on_dash_line(key_node):  # `- key: v`: the next kept key moves up onto the '-' line
                j = next(j for j in range(i + 1, n) if not gone[j])
                edits.append(Edit(key_node.start_mark.index, self.pairs[j][1].start_mark.index, ""))
                i = j
                continue
            edits.append(Edit(line_start(self.text, key_node.start_mark.index),
                              line_end(self.text, content_end(self.text, value)), ""))
            i += 1
        return edits

    def insert_keys(self, after: str | None, items: list[tuple[str, Any]]) -> Edit:
        """Insert ``items`` after the key ``after`` (None: before the first key)."""
        if self.flow:
            body = ", ".join(f"{key_text(k)}: {flow_text(v, self.style, self.path + (k,))}" for k, v in items)
            if not self.pairs:
                pos = self.node.start_mark.index + 1
                return Edit(pos, pos, body)
            if after is None:
                pos = self.pairs[0][1].start_mark.index
                return Edit(pos, pos, body + ", ")
            pos = content_end(self.text, self.pairs[self.index(after)][2])
            return Edit(pos, pos, ", " + body)
        col = self.key_col()
        lines: list[str] = []
        for k, v in items:
            lines += entry_lines(k, v, col, self.style, self.path + (k,))
        if after is None:
            first = self.pairs[0][1]
            if self._on_dash_line(first):
                pos = first.start_mark.index
                return Edit(pos, pos, self.nl.join(lines)[col:] + self.nl + " " * col)
            pos = line_start(self.text, first.start_mark.index)
            return Edit(pos, pos, self.nl.join(lines) + self.nl)
        pos = line_end(self.text, content_end(self.text, self.pairs[self.index(after)][2]))
        prefix = "" if pos == 0 or self.text[pos - 1] == "\n" else self.nl
        return Edit(pos, pos, prefix + self.nl.join(lines) + self.nl)


def same(a: Any, b: Any) -> bool:
    """Equal as YAML data: types matter (true is not 1, "1" is not 1), 60 and 60.0 are the same number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _is_scalar(v: Any) -> bool:
    return not isinstance(v, (dict, list))


def value_edits(editor: MappingEditor, key: str, node: yaml.Node, old: Any, new: Any, order: list[str]) -> list[Edit]:
    """Edits turning the value of ``key`` from ``old`` into ``new``, touching as little text as possible."""
    if same(old, new):
        return []
    text = editor.text
    if isinstance(old, dict) and isinstance(new, dict) and isinstance(node, yaml.MappingNode) and any(k in new for k in old):
        prefix = key + "."
        sub = MappingEditor(text, node, editor.style, editor.path + (key,))
        return mapping_edits(sub, old, new, [c[len(prefix):] for c in order if c.startswith(prefix)])
    if isinstance(old, list) and isinstance(new, list) and old and new and isinstance(node, yaml.SequenceNode) \
            and all(map(_is_scalar, old + new)):
        return [list_edit(text, node, old, new, editor.style, editor.path + (key, "[]"))]
    return [editor.replace_value(key, new)]


def list_edit(text: str, node: yaml.SequenceNode, old: list, new: list, style: Style | None = None,
              path: tuple = ()) -> Edit:
    """A list of scalars changed: unchanged items keep their text (and comments), others are emitted."""
    import difflib

    layout = sequence_layout(text, node)

    def keys(values: list) -> list[str]:
        return [type(v).__name__ + ":" + json.dumps(v) for v in values]

    chunks: list[str] = []
    nl = newline_of(text)

    def scalar(v: Any, flow: bool) -> str:
        return style.scalar(v, flow, path) if style else scalar_text(v, flow)

    origins: list[int | None] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=keys(old), b=keys(new), autojunk=False).get_opcodes():
        if op == "equal":
            chunks += [text[a:b] for a, b in layout.chunks[i1:i2]]
            origins += range(i1, i2)
            continue
        if layout.block:
            pad = " " * layout.dash_col + "-" + " " * (layout.item_col - layout.dash_col - 1)
            chunks += [pad + scalar(v, False) + nl for v in new[j1:j2]]
        else:
            chunks += [scalar(v, True) for v in new[j1:j2]]
        origins += [None] * (j2 - j1)
    return rebuild_sequence(text, layout, chunks, origins)


def mapping_edits(editor: MappingEditor, old: dict, new: dict, order: list[str]) -> list[Edit]:
    """Edits turning mapping ``old`` into ``new``; new keys go where ``order`` (column order) puts them.

    Keys that stay keep their place; a new key goes after the last staying key that comes before
    it in ``order`` (keys ``order`` does not name are never used as anchors).
    """
    nodes = {name: value for name, _, value in editor.pairs}
    kept = [k for k in old if k in new]
    edits: list[Edit] = []
    for k in kept:
        edits += value_edits(editor, k, nodes[k], old[k], new[k], order)
    removed = {k for k in old if k not in new}
    if removed:
        edits += editor.remove_keys(removed)
    rank = {k: i for i, k in enumerate(dict.fromkeys(c.split(".")[0] for c in order))}
    groups: dict[str | None, list[str]] = {}
    for k in (k for k in new if k not in old):
        anchors = [c for c in kept if c in rank and rank[c] < rank.get(k, len(rank))]
        anchor = max(anchors, key=editor.index) if anchors else None
        if anchor is None and not kept and editor.pairs:
            anchor = editor.pairs[-1][0]  # every old key goes: add after the last, whose removal ends there
        groups.setdefault(anchor, []).append(k)
    for anchor, ks in groups.items():
        edits.append(editor.insert_keys(anchor, [(k, new[k]) for k in ks]))
    return edits
