"""Safe YAML loading that remembers where every value came from.

Policies are edited by hand, so every later error (schema, expression, data)
must point back to ``file:line:col``.  PyYAML's constructors lose positions,
so we compose the node graph ourselves and convert it, which also lets us
reject what a safe loader would let through silently: duplicate keys, custom
tags, and alias expansion bombs.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import Diagnostic, PolicyError, UsageError
from .file_kinds import SQLITE, UTF16, YAML, kind_of_bytes, wrong_kind
from .ime_text import FULL_WIDTH_INDENT, describe, key_colon, key_colon_fix

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
    # Plain words YAML read as something other than what they say (`NO` is false, `010` is 8), by position:
    # (the text as written, what YAML made of it as JSON writes it), for messages at that position.
    readings: dict[Position, tuple[str, str]] = field(default_factory=dict)
    # Keys written twice in one mapping (the first is kept), when the loader was asked to leave them to the
    # caller: a policy reports them with its schema and meaning problems, so one `validate` lists them all.
    duplicates: list[Diagnostic] = field(default_factory=list)
    # Names an `extends` child removed from its base (a metric set to null, the entries of a plugin section it
    # replaced): name -> removed_names.Removal, for the messages about a base that still uses one
    removed: dict[str, Any] = field(default_factory=dict)
    # Numbers of a [ ] list written with a thousands separator (`[-10d, 5,000]`), which YAML reads as several items
    # (5 and 0): the path of the first item -> the text as written, for a caller whose lists have no such items.
    grouped: dict[Path_, str] = field(default_factory=dict)

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


_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")  # what YAML counts as the end of a line


def line_col(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of ``text[index]``, lines counted as YAML (and the other messages) count them."""
    line, start = 1, 0
    for match in _LINE_BREAK.finditer(text, 0, index):
        line, start = line + 1, match.end()
    return line, index - start + 1


def index_at(text: str, line: int, col: int) -> int:
    """The index in ``text`` of the 1-based (line, column) a diagnostic names: the inverse of :func:`line_col`."""
    starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]
    return min(starts[max(1, min(line, len(starts))) - 1] + max(col, 1) - 1, len(text))


def _unprintable_error(file: str, text: str, exc: yaml.reader.ReaderError) -> PolicyError:
    """A character YAML does not allow (NUL, other control characters), at its own line and column.

    PyYAML gives only an offset into the text, so these used to be reported at 1:1."""
    char = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)[:1] or "?"
    line, col = line_col(text, exc.position) if isinstance(exc.position, int) else (1, 1)
    what = "control character" if unicodedata.category(char) == "Cc" else "character"
    if char == "\x00" and text.count("\x00") * 4 >= len(text):
        hint = "the file is full of NUL characters: it was probably saved as UTF-16; save it as UTF-8"
    else:
        hint = "delete it: most editors do not show it, so retype the text around that column"
    return PolicyError(Diagnostic(file, line, col, "", f"invalid YAML: {what} U+{ord(char):04X} is not allowed"), hint=hint)


# A value that starts with a quote and goes on after the closing one (`when: 'visit' = kind`), just before the mark.
_QUOTED_THEN_MORE = re.compile(r"""(?P<key>[^\s:{},\[\]#'"][^:{},\[\]#]*?):[ \t]+(?P<value>(?P<q>['"]).*?(?P=q))[ \t]*$""")
# A key, then a plain value that holds ': ' (`when: reason: late`), the second ':' at the mark.
_PLAIN_WITH_COLON = re.compile(r"""(?P<key>[^\s:{},\[\]#'"][^:{},\[\]#]*?):[ \t]+(?P<value>[^'"\s{\[#][^#]*?)[ \t]*$""")


def _yaml_quoted(text: str) -> str:
    """``text`` as one quoted YAML scalar: in double quotes unless it holds one (or a backslash, an escape there)."""
    if '"' not in text and "\\" not in text:
        return f'"{text}"'
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quoting_hint(mark: Any, problem: str) -> str | None:
    """The fix for the two quoting slips YAML reports as something else (an indentation problem, a token that
    cannot start one): a condition that starts with a quote, and a value that holds ': '."""
    buffer, pointer = getattr(mark, "buffer", None), getattr(mark, "pointer", None)
    if not isinstance(buffer, str) or not isinstance(pointer, int):
        return None
    start = max(buffer.rfind("\n", 0, pointer), buffer.rfind("\r", 0, pointer)) + 1
    end = min((i for i in (buffer.find("\n", pointer), buffer.find("\r", pointer), buffer.find("\0", pointer))
               if i >= 0), default=len(buffer))
    before, rest = buffer[start:pointer], buffer[pointer:end]
    flow = re.search(r"[{\[]", before) is not None
    if flow:  # in a flow mapping the value ends at the next ',' or closing bracket (outside quotes)
        rest = re.match(r"""(?:[^,}\]'"]|'[^']*'|"[^"]*")*""", rest).group(0)
    else:
        rest = re.sub(r"\s+#.*$", "", rest)
    before_value = before.split("{")[-1].split("[")[-1].split(",")[-1] if flow else before.split("- ")[-1]
    if "expected <block end>" in problem or "cannot start any token" in problem or "expected ',' or '}'" in problem:
        m = _QUOTED_THEN_MORE.search(before_value.lstrip())
        if m and rest.strip():
            key, whole = m.group("key").strip(), (m.group("value") + " " + rest.strip()).strip()
            quoted = _yaml_quoted(whole)
            return (f"the value of '{key}' starts with a quote, so YAML ends it at the closing quote and "
                    f"reads the rest ({rest.strip()}) as extra; quote the whole value: {key}: {quoted}")
    if "mapping values are not allowed" in problem:
        m = _PLAIN_WITH_COLON.search(before_value.lstrip())
        if m:
            key, whole = m.group("key").strip(), (m.group("value") + ": " + rest.lstrip(": \t")).strip()
            quoted = _yaml_quoted(whole)
            return f"a value holding ': ' must be quoted: {key}: {quoted}"
    return None


_KEY_LINE = re.compile(r"^(?P<lead> *)(?P<dashes>(?:- +)*)(?P<key>[^\s#:'\"{\[][^:#]*?|'[^']*'|\"[^\"]*\"):(?: +(?P<value>.*?))?\s*$")


def _key_lines(buffer: str, upto: int) -> list[tuple[int, int, int | None, str, str | None]]:
    """(line number, key column, column of the '-' before it or None, key, value) of the lines before line ``upto``
    (0-based) that hold a key, nearest first; blank lines and comments are skipped."""
    lines = _LINE_BREAK.split(buffer.rstrip("\0"))
    found = []
    for number in range(min(upto, len(lines)) - 1, -1, -1):
        match = _KEY_LINE.match(lines[number])
        if match is None:
            if lines[number].strip() and not lines[number].lstrip().startswith("#"):
                found.append((number, len(lines[number]) - len(lines[number].lstrip(" ")), None, "", None))
            continue
        dashes = match["dashes"]
        dash = len(match["lead"]) + dashes.rfind("-") if dashes else None
        found.append((number, len(match["lead"]) + len(dashes), dash, match["key"].strip(), match["value"] or None))
    return found


def _indentation(mark: Any, problem: str) -> tuple[str, str] | None:
    """(message, hint) for the line of ``mark`` (whose key the message is at), a line indented so that YAML cannot place it, said in the policy's terms: deeper than a
    key that already has a value (`label: x` then a deeper `sum: ...`), or at a column no key above it is at (3
    spaces between keys at 2 and 4, or at the '-' of a list item); None for any other error."""
    buffer, line = getattr(mark, "buffer", None), getattr(mark, "line", None)
    if not isinstance(buffer, str) or not isinstance(line, int):
        return None
    lines = _LINE_BREAK.split(buffer.rstrip("\0"))
    if line >= len(lines):
        return None
    here = _KEY_LINE.match(lines[line])
    above = _key_lines(buffer, line)
    if here is None or not above:
        return None
    key, column = here["key"].strip(), len(here["lead"]) + len(here["dashes"])
    if "mapping values are not allowed" in problem:
        number, at, _, other, value = above[0]
        if not other or value is None or column <= at or value[:1] in ("|", ">", "&", "*"):
            return None
        return (f"'{key}:' is indented more ({column} spaces) than '{other}:' on line {number + 1} ({at} spaces), which "
                f"has a value ({value}), so YAML reads '{key}:' as more of that value",
                f"a key indented more than the line above belongs to a key without a value; if '{key}' goes beside "
                f"'{other}', indent it {at} spaces like '{other}:'")
    if "expected <block end>" not in problem:
        return None
    levels, limit = [], None  # (column, "key" or "dash", line number, key, the line's key column), nearest first
    for number, at, dash, other, _ in above:  # the columns of the keys (and list items) still open at this line
        for col, what in ((at, "key"), (dash, "dash")):
            if col is not None and (limit is None or col < limit) and other:
                levels.append((col, what, number, other, at))
                limit = col
    if column in [col for col, what, *_ in levels if what == "key"]:
        return None
    items = [(number, other, at) for col, what, number, other, at in levels if what == "dash" and col == column]
    if items:
        number, other, first = items[0]
        return (f"'{key}:' is indented {column} spaces, like the '-' of the list item on line {number + 1}, so it is "
                f"neither a key of that item nor a new item",
                f"the keys of a list item line up with its first key: indent '{key}:' {first} spaces like '{other}:' "
                f"on line {number + 1}, or start a new item with '- '")
    # the nearest key on either side, unless a list item's '-' stands between: a key cannot move across it
    deeper = [(what, (col, number, other)) for col, what, number, other, _ in levels if col > column]
    shallower = [(what, (col, number, other)) for col, what, number, other, _ in levels if col < column]
    choices = [k for what, k in deeper[-1:] + shallower[:1] if what == "key"]
    if not choices:
        return None
    said = " or ".join(f"{col} spaces like '{other}:' (line {number + 1})" for col, number, other in choices)
    return (f"'{key}:' is indented {column} spaces, which lines up with no key above it",
            f"indent it as far as the keys it goes with: {said}")


def _missing_colon(exc: yaml.YAMLError) -> tuple[int, int, str] | None:
    """(line, column, message) for a key written without its ': ' (`window 12 months`, `window:12 months`), which YAML
    reads as one word and stumbles over on the next line; the place is the key's, where the fix goes."""
    opened = getattr(exc, "context_mark", None)
    if "could not find expected ':'" not in (getattr(exc, "problem", None) or "") or opened is None \
            or "simple key" not in (getattr(exc, "context", None) or ""):
        return None
    buffer = getattr(opened, "buffer", None)
    if not isinstance(buffer, str):
        return None
    written = _LINE_BREAK.split(buffer)[opened.line][opened.column:].split(" #")[0].rstrip()
    if match := re.fullmatch(r"(?P<key>[A-Za-z_][\w-]*):(?P<value>[^\s:].*)", written):
        return (opened.line + 1, opened.column + 1,
                f"YAML needs a space after the ':' of a key; write {match['key']}: {match['value']}")
    if match := re.fullmatch(r"(?P<key>[A-Za-z_][\w-]*)[ \t]+(?P<value>[^:]+)", written):
        return (opened.line + 1, opened.column + 1,
                f"'{match['key']}' has no ':' after it, so YAML does not read it as a key; write "
                f"{match['key']}: {match['value']}")
    return None


def _yaml_error(file: str, exc: yaml.YAMLError) -> PolicyError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if (colon := _missing_colon(exc)) is not None:
        line, col, message = colon
        return PolicyError(Diagnostic(file, line, col, "", f"invalid YAML: {message}"))
    hint = None
    if "\t" in problem or "'\\t'" in problem:
        hint = "indent with spaces, not tabs"
    elif (quoting := _quoting_hint(mark, problem)) is not None:
        hint = quoting
    elif (indented := _indentation(mark, problem)) is not None:
        message, hint = indented
        line = _LINE_BREAK.split(mark.buffer)[mark.line]
        at = len(line) - len(line.lstrip(" -"))  # the key, not the ':' YAML stumbled on
        return PolicyError(Diagnostic(file, mark.line + 1, at + 1, "", f"invalid YAML: {message}"), hint=hint)
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


_MAX_READS = 60  # of a file mended for a slip; each is a parse of the whole file
_OPENERS = {"［": "[", "【": "[", "｛": "{", "“": '"', "‘": "'"}
_CLOSERS = {"］": "]", "】": "]", "｝": "}", "”": '"', "’": "'"}
_LINE_KEY = re.compile(r"^(?P<lead>[ \t\u3000]*(?:-[ \t\u3000]+)*)(?P<rest>.*)$", re.S)


def _error_at(exc: yaml.YAMLError) -> tuple:
    """What YAML stumbled over and where: a mend that changes neither is not what it stumbled over."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return getattr(exc, "problem", None), (mark.line, mark.column) if mark is not None else None


def _reach(error: yaml.YAMLError | None) -> tuple[bool, int]:
    """How far YAML reads a mended text: to its end, or to the error."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return error is None, mark.index if mark is not None else -1


def _error_after(text: str) -> yaml.YAMLError | None:
    """The error YAML finds in ``text`` (a mended file), or None."""
    try:
        _compose(text)
    except yaml.YAMLError as error:
        return error
    return None


def _lines(text: str) -> list[tuple[int, str]]:
    """(offset, text) of each line, lines counted as YAML counts them."""
    starts = [0] + [m.end() for m in _LINE_BREAK.finditer(text)]
    ends = [m.start() for m in _LINE_BREAK.finditer(text)] + [len(text)]
    return [(start, text[start:end]) for start, end in zip(starts, ends)]


def _slip_candidates(text: str, exc: yaml.YAMLError):
    """(offset, message, mended texts) of each Chinese input method slip that may be what YAML stumbled over, most
    likely first: on the lines of the plain scalar the error is in (YAML reads `id：A` and the lines that go on
    from it as one word, and stumbles on the next line), and in the flow collection it is in."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return
    lines = _lines(text)
    if not 0 <= mark.line < len(lines):
        return
    context, opened = getattr(exc, "context", None) or "", getattr(exc, "context_mark", None)
    if opened is not None and "flow" in context and opened.index < mark.index:
        region = text[opened.index:mark.index]
        for i in reversed([i for i, ch in enumerate(region) if ch in "，、"][-5:]):
            at = opened.index + i
            yield at, f"{describe(text[at])}, which separates the entries of {{ }} and [ ]", [text[:at] + "," + text[at + 1:]]
    numbers = [opened.line] if opened is not None and "simple key" in context and opened.line < mark.line else []
    for number in range(mark.line, max(-1, mark.line - 20), -1):
        start, line = lines[number]
        if number not in numbers:
            numbers.append(number)
        own_key = re.search(r"(?<![:：]):(?:[ \t]|$)", line.split(" #")[0]) and not re.search("[：\u3000]", line)
        if number < mark.line and own_key:
            break  # a key of its own, well typed: the scalar cannot have started above it
    for number in sorted(numbers):  # the first slip is the likeliest cause: YAML stumbles after it
        start, line = lines[number]
        lead, rest = _LINE_KEY.match(line).group("lead", "rest")
        if "\u3000" in lead:
            at = start + lead.index("\u3000")
            # as wide as it shows (two columns), or as many spaces as were typed: whichever YAML reads further
            yield (at, FULL_WIDTH_INDENT,
                   [text[:start] + lead.replace("\u3000", width) + text[start + len(lead):] for width in ("  ", " ")])
        found = key_colon(rest.split(" #")[0])
        if found is not None:
            key, sep, _ = found
            at = start + len(lead) + rest.index(sep, len(key))
            yield (at + len(sep) - 1, key_colon_fix(rest.split(" #")[0]), [text[:at] + ": " + text[at + len(sep):]])
        for i, ch in enumerate(line):
            if ch in _OPENERS and (not line[:i].strip(" \t\u3000") or line[:i].rstrip(" \t\u3000")[-1] in ":-[{,"):
                closer = next((j for j in range(i + 1, len(line)) if line[j] in _CLOSERS), None)
                fixed = line[:i] + _OPENERS[ch] + line[i + 1:]
                also = ""
                if closer is not None:
                    fixed = fixed[:closer] + _CLOSERS[line[closer]] + fixed[closer + 1:]
                    also = f", and {_CLOSERS[line[closer]]!r} for {line[closer]!r}"
                yield start + i, describe(ch) + also, [text[:start] + fixed + text[start + len(line):]]


def _ime_slips(file: str, text: str, exc: yaml.YAMLError) -> tuple[list[Diagnostic], yaml.YAMLError | None]:
    """The Chinese input method slips (`tier：A`, `{a: 1，b: 2}`, a full-width space) YAML stumbled over, each
    at its own place, and the error YAML finds once they are mended (None when none is left).

    YAML's own message is about where it stumbled, often the next line ("could not find expected ':'"), and
    says nothing of a character that looks like the ASCII one.  A slip is named only when mending it moves
    YAML's error on, so one that is not what YAML stumbled over (a '：' in Chinese text) is never named; the
    file is mended and read again for the next one, so that every slip is listed at once."""
    found: list[Diagnostic] = []
    original, shifts = text, []  # (offset in the mended text, characters added there)

    def place(at: int) -> tuple[int, int]:
        return line_col(original, at - sum(added for where, added in shifts if where < at))

    reads = 0
    while exc is not None and reads < _MAX_READS:
        for at, message, mended in _slip_candidates(text, exc):
            reads += len(mended)
            if reads > _MAX_READS:
                break
            moved = [(again, fixed) for fixed in mended
                     if (again := _error_after(fixed)) is None or _error_at(again) != _error_at(exc)]
            if not moved:
                continue
            again, fixed = max(moved, key=lambda m: _reach(m[0]))
            line, col = place(at)
            found.append(Diagnostic(file, line, col, "", f"invalid YAML: {message}"))
            shifts.append((at, len(fixed) - len(text)))
            text, exc = fixed, again
            break
        else:
            break
    if exc is not None and found:  # what is left, at its place in the file as written
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        found += [replace(d, line=line, col=col) for d in _yaml_error(file, exc).diagnostics
                  for line, col in [place(mark.index) if mark is not None else (d.line, d.col)]]
    return found, exc


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


def refuse_non_yaml(raw: bytes, file: str, expected: str) -> None:
    """A database, a workbook or a CSV file given as ``expected`` (a YAML file) is said to be one.

    Read as YAML, a workbook was "not valid UTF-8 (byte 0xc7)" and a CSV file "must be a mapping".  UTF-16
    YAML is left to the reader, which names it as YAML in the wrong encoding.
    """
    kind = kind_of_bytes(raw[:16], file)
    if kind is None or kind in (YAML, UTF16):
        return
    hint = "did you swap --db and --policy? The policy is the YAML file" if kind is SQLITE and expected == "a policy" \
        else f"{expected} is a YAML file; {kind.goes_to}"
    raise wrong_kind(file, kind, expected, hint)


DUPLICATE_HINT = "remove or rename one of them"


def load_yaml_file(path: Path, display_name: str | None = None, *, defer_duplicates: bool = False) -> SourceDocument:
    """Read and parse one YAML file; raises PolicyError with its position on any problem.

    ``defer_duplicates``: see :func:`load_yaml_text`."""
    name = display_name or str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(Diagnostic(name, 0, 0, "", "file not found")) from None
    except IsADirectoryError:
        raise UsageError(f"{name}: is a directory, expected a policy file (YAML)") from None
    except OSError as exc:
        raise PolicyError(Diagnostic(name, 0, 0, "", f"cannot read: {exc.strerror}")) from None
    return load_yaml_text(raw, name, defer_duplicates=defer_duplicates)


def load_yaml_text(raw: bytes | str, file: str, *, defer_duplicates: bool = False) -> SourceDocument:
    """Parse one YAML text; raises PolicyError with its position on any problem.

    Every key written twice in a mapping is found, not just the first one.  They are raised together, or,
    with ``defer_duplicates``, kept in ``doc.duplicates`` (with the first of each key's values in the data)
    for the caller to report beside the problems it finds itself.
    """
    if isinstance(raw, bytes):
        refuse_non_yaml(raw, file, "a policy")
        if len(raw) > MAX_POLICY_BYTES:
            raise PolicyError(Diagnostic(file, 0, 0, "", f"file is larger than {MAX_POLICY_BYTES // (1024 * 1024)} MB"),
                              hint="a policy is a few hundred lines; is this the right file?")
        text = decode_utf8(raw, file)
    else:
        text = raw
    try:
        node = _compose(text)
    except yaml.reader.ReaderError as exc:
        raise _unprintable_error(file, text, exc) from None
    except yaml.YAMLError as exc:
        slips, _ = _ime_slips(file, text, exc)
        if not slips:
            raise _yaml_error(file, exc) from None
        raise PolicyError(slips, hint="type YAML's punctuation and spaces with the input method in half-width "
                                      "(English) mode") from None
    if node is None:
        raise PolicyError(Diagnostic(file, 1, 1, "", "the file is empty"), hint="start from a shipped policy, e.g. `crm-rules demo`")
    doc = SourceDocument(file, None)
    converter = _Converter(doc, _Loader(""), text.splitlines())
    doc.duplicates = converter.duplicate_keys(node)
    doc.data = converter.convert(node, ())
    if doc.duplicates and not defer_duplicates:
        raise PolicyError(doc.duplicates, hint=DUPLICATE_HINT)
    return doc


_MERGE_TAG = "tag:yaml.org,2002:merge"
_TAG_NAMES = {"tag:yaml.org,2002:int": "a whole number (!!int)", "tag:yaml.org,2002:float": "a number (!!float)",
              "tag:yaml.org,2002:timestamp": "a date (!!timestamp)", "tag:yaml.org,2002:bool": "true or false (!!bool)"}
# What PyYAML's conversion of a tagged scalar raises (`!!int abc`, `!!bool maybe`), where its parser raises YAMLError.
_CONVERSION_ERRORS = (ValueError, KeyError, TypeError)
_MERGE_HINT = "write `<<: *defaults` (one mapping) or `<<: [*a, *b]` (mappings), or write the keys out"

_Pair = tuple[str, yaml.Node, yaml.Node]  # key, key node, value node


class _Converter:
    def __init__(self, doc: SourceDocument, loader: yaml.SafeLoader, lines: list[str]):
        self.doc = doc
        self.lines = lines
        self.loader = loader
        self.count = 0
        self.open: set[int] = set()  # the mappings and lists being converted: an alias to one of them is a cycle
        self.merged: dict[int, list[_Pair]] = {}  # a mapping's pairs with its << merges done, once per mapping

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
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.open:
                raise self._fail(node, path, "a YAML alias (*name) here stands for a mapping or list that contains it, "
                                             "which never ends", hint="copy the values instead of using the alias")
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.SequenceNode):
                    if node.flow_style:
                        self._grouped(node.value, path)
                    return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
                result: dict[str, Any] = {}
                for key, key_node, value_node in self._pairs(node, path):
                    self.doc.keys[path + (key,)] = self._pos(key_node)
                    result[key] = self.convert(value_node, path + (key,))
                return result
            finally:
                self.open.discard(id(node))
        if node.style:
            self.doc.styles[path] = node.style
            if node.style in ("|", ">") and node.start_mark.line + 1 < len(self.lines):
                content = self.lines[node.start_mark.line + 1]
                self.doc.block_indent[path] = len(content) - len(content.lstrip(" "))
        try:
            value = self.loader.construct_object(node)
        except yaml.YAMLError as exc:
            raise _yaml_error(self.doc.file, exc) from None
        except _CONVERSION_ERRORS:
            raise self._unconvertible(node, path, "numbers, dates and text") from None
        if not node.style and not isinstance(value, str):
            self._read_as(node, json.dumps(value))
        return value

    def _grouped(self, items: list[yaml.Node], path: Path_) -> None:
        """Note each run of items that is one number written with thousands separators (`5,000`, `1,500,000.50`):
        a number of 1 to 3 digits, then numbers of 3 digits, each after a ',' with no space."""
        def plain(node: yaml.Node, pattern: str) -> bool:
            return isinstance(node, yaml.ScalarNode) and not node.style and re.fullmatch(pattern, node.value) is not None

        i = 0
        while i < len(items):
            last = i
            if plain(items[i], r"[-+]?[1-9][0-9]{0,2}"):
                while last + 1 < len(items) and plain(items[last + 1], r"[0-9]{3}(?:\.[0-9]+)?"):
                    end, start = items[last].end_mark, items[last + 1].start_mark
                    line = self.lines[end.line] if end.line < len(self.lines) else ""
                    if not (end.line == start.line and start.column == end.column + 1 and line[end.column:start.column] == ","):
                        break
                    last += 1
                    if "." in items[last].value:
                        break
            if last > i:
                self.doc.grouped[path + (i,)] = ",".join(n.value for n in items[i:last + 1])
            i = last + 1

    def _read_as(self, node: yaml.ScalarNode, read: str) -> None:
        if node.value and node.value.lower() != read:  # nothing written (`summary:`) is no word read otherwise
            self.doc.readings[self._pos(node)] = (node.value, read)

    def duplicate_keys(self, root: yaml.Node) -> list[Diagnostic]:
        """Every key written a second (third, ...) time in the same mapping, anywhere in the document.

        A walk of its own, so that the mappings inside a duplicate's value (which the data leaves out) are
        searched too; each node is visited once, so aliases cost nothing more.  Keys that are not plain
        text are left to the conversion, which reports them.
        """
        found: list[Diagnostic] = []
        seen: set[int] = set()
        stack: list[tuple[yaml.Node, Path_]] = [(root, ())]
        while stack:
            node, path = stack.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, yaml.SequenceNode):
                stack.extend((item, path + (i,)) for i, item in reversed(list(enumerate(node.value))))
            elif isinstance(node, yaml.MappingNode):
                first: dict[str, yaml.Node] = {}
                children = []
                for key_node, value_node in node.value:
                    if key_node.tag == _MERGE_TAG:
                        children.append((value_node, path))
                        continue
                    key = self._plain_key(key_node)
                    if key is None:
                        continue
                    if key in first:
                        line = first[key].start_mark.line + 1
                        found.append(_diagnostic(self.doc.file, key_node.start_mark,
                                                 f"duplicate key {key!r} (first defined at line {line})",
                                                 format_path(path + (key,))))
                    else:
                        first[key] = key_node
                    children.append((value_node, path + (key,)))
                stack.extend(reversed(children))
        return sorted(found)

    def _read_key(self, key_node: yaml.ScalarNode) -> str:
        """A key is a name or a value of a table, kept as written: YAML 1.1 would read a risk table's `NO: 0.9`
        (Norway) as the key false, which no region matches, `yes` as true and `0012` as the octal 10."""
        key = self.loader.construct_object(key_node)
        return key if isinstance(key, str) else key_node.value

    def _plain_key(self, key_node: yaml.Node) -> str | None:
        """The key as :meth:`_key` reads it, or None for one that :meth:`_key` rejects."""
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag not in _STANDARD_TAGS:
            return None
        try:
            return self._read_key(key_node)
        except (yaml.YAMLError, *_CONVERSION_ERRORS):  # `? !!int abc`: the conversion meets it again
            # PyYAML keeps a node whose construction failed as "being built": built again, it would be "recursive"
            self.loader.recursive_objects.pop(key_node, None)
            return None

    def _key(self, key_node: yaml.Node, path: Path_) -> str:
        if not isinstance(key_node, yaml.ScalarNode):
            raise self._fail(key_node, path, "mapping keys must be plain text")
        if key_node.tag not in _STANDARD_TAGS:
            raise self._fail(key_node, path, f"tag {key_node.tag!r} is not allowed", hint="policies hold plain data only")
        try:
            return self._read_key(key_node)
        except yaml.YAMLError as exc:
            raise _yaml_error(self.doc.file, exc) from None
        except _CONVERSION_ERRORS:  # `? !!int abc`
            raise self._unconvertible(key_node, path, "keys") from None

    def _unconvertible(self, node: yaml.ScalarNode, path: Path_, read: str) -> PolicyError:
        """A tagged scalar its tag cannot convert (`!!int abc`); ``read``: what policies read as written."""
        return self._fail(node, path, f"{node.value!r} is not {_TAG_NAMES.get(node.tag, node.tag)}",
                          hint=f"remove the !! tag: policies read {read} as written")

    def _pairs(self, node: yaml.MappingNode, path: Path_, merging: frozenset[int] = frozenset()) -> list[_Pair]:
        """The mapping's (key, key node, value node) in the order written, with YAML merge keys done.

        ``<<: *defaults`` (or ``<<: [*a, *b]``) brings in the keys of those mappings where it stands;
        a key the mapping writes itself wins over a merged one, and of several merged mappings the
        first that has a key wins (YAML's rules).  Merged values keep the positions of the text they
        come from, so an error in one points at the anchored mapping.  Of two keys written in the same
        mapping the first is kept: :meth:`duplicate_keys` reports the others.
        """
        if id(node) in self.merged:
            return self.merged[id(node)]
        own: dict[str, yaml.Node] = {}
        groups: list[list[_Pair]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                if not all(isinstance(s, yaml.MappingNode) for s in sources):
                    raise self._fail(key_node, path, "a YAML merge key (<<) takes a mapping or a list of mappings",
                                     hint=_MERGE_HINT)
                group: list[_Pair] = []
                for source in sources:
                    if id(source) in merging or source is node:
                        raise self._fail(key_node, path, "a YAML merge key (<<) here merges a mapping into itself",
                                         hint="merge another mapping, or write the keys out")
                    group += self._pairs(source, path, merging | {id(node)})
                groups.append(group)
                continue
            key = self._key(key_node, path)
            if key in own:
                continue  # reported by duplicate_keys
            own[key] = key_node
            groups.append([(key, key_node, value_node)])
        pairs: list[_Pair] = []
        taken: set[str] = set()
        for group in groups:
            for key, key_node, value_node in group:
                if key in taken or (key in own and own[key] is not key_node):
                    continue  # merged, but written in this mapping or merged from an earlier mapping
                taken.add(key)
                pairs.append((key, key_node, value_node))
        self.merged[id(node)] = pairs
        return pairs
