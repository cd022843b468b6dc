"""Rule tables: the lists in a policy that business staff edit as a spreadsheet.

Tier levels, sub-grades, lifecycle stages and service levels are tables in
all but name: one row per id, one column per key.  ``export_table`` flattens
one of them (nested maps as dotted columns such as ``payment.terms_days``,
lists of text as ``a; b``); ``import_table`` brings the edited sheet back into
the YAML file:

- rows are matched by ``id``: the sheet's order becomes the list's order, new
  rows are added where they stand, missing rows are removed;
- every cell is read as the type the policy has there (``rule_table_cells``),
  so numbers stay numbers and text stays text; a bad cell is reported by file,
  row and column with a fix;
- only what changed is rewritten (``rule_table_import`` with ``yaml_edit``):
  comments, key order, quoting and everything else in the file keep their
  bytes, so exporting and importing without edits gives back the identical
  file;
- the result is checked with the engine's own loader before the file is
  replaced atomically; an invalid result writes nothing.

This module says what a rule table is (which lists, which columns, how a row
flattens into cells), where it lives, and exports it.

Tables exist only where the file itself writes them: a section inherited
through ``extends`` lives in the parent file, and that is where it is edited.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import yaml_edit as ye
from .errors import DataError, Diagnostic, PolicyError, UsageError
from .policy_files import MAX_EXTENDS_DEPTH, resolve_policy_path, shipped_policies_dir
from .schema_validation import load_schema
from .yaml_source import decode_utf8, format_path, load_yaml_text

LIST_SEPARATOR = "; "
# What separates the items of a list in a cell: ';', or the full-width '；' a Chinese input method types for it
# (read as one item, '挽回优惠；离职调查' silently became a single focus).  ',' is no separator: items hold commas.
LIST_SEPARATORS = re.compile("[;\uff1b]")


# Ids are written 'A, B, C' (what an office user types for a list of names): an id holds no ',' or ';', so a ',', ';',
# their full-width twins and the enumeration comma '、' a Chinese input method types all separate them.
ID_LIST_SEPARATOR = ", "
ID_LIST_SEPARATORS = re.compile("[,;\uff0c\uff1b\u3001]")


def split_id_cell(text: str) -> list[str]:
    """The ids written in one cell: ``A, B, C`` (or ``A; B``, ``A、B``, ``[A, B]``), blanks and empty items dropped."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):  # the YAML flow list, copied from the file
        text = text[1:-1]
    return [part.strip().strip("'\"") for part in ID_LIST_SEPARATORS.split(text) if part.strip().strip("'\"")]


def split_list_cell(text: str) -> list[str]:
    """The items of a list written in one cell: ``a; b`` or ``a；b``, blanks around them and empty items dropped."""
    return [part.strip() for part in LIST_SEPARATORS.split(text) if part.strip()]


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    path: tuple  # where the list is (for subgrades: the list of tier levels holding them)
    section: str  # the top-level section that holds it
    exclude: tuple = ()  # keys of a row that are not columns (a tier's sub-grades are their own table)
    parent: str | None = None  # subgrades: the column naming the tier a row belongs to


TABLES: dict[str, TableSpec] = {
    "tiers": TableSpec("tiers", "tier levels", ("tiers", "levels"), "tiers", exclude=("subgrades",)),
    "subgrades": TableSpec("subgrades", "sub-grades of the tiers", ("tiers", "levels"), "tiers", parent="tier"),
    "stages": TableSpec("stages", "lifecycle stages", ("lifecycle", "stages"), "lifecycle"),
    "service_levels": TableSpec("service_levels", "service levels", ("service_levels",), "service_levels"),
}
ALIASES = {"levels": "tiers", "tiers.levels": "tiers", "sub-grades": "subgrades", "subgrade": "subgrades",
           "lifecycle": "stages", "lifecycle.stages": "stages", "service-levels": "service_levels",
           "service_level": "service_levels", "tier": "tiers", "stage": "stages"}


def table_spec(name: str) -> TableSpec:
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in TABLES:
        close = closest_table(name)
        raise UsageError(f"unknown table {name!r}" + (f"; did you mean {close!r}?" if close else ""),
                         hint=f"the rule tables are: {', '.join(TABLES)}")
    return TABLES[key]


_STOP_WORDS = {"of", "the", "table", "list"}


def _words(text: str) -> set[str]:
    """The words of a name, singular: ``tier_levels`` and ``Tier levels`` are {tier, level}."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w
            for w in re.split(r"[^a-z]+", text.lower()) if w and w not in _STOP_WORDS}


def _word_matches(word: str, words: set[str]) -> bool:
    return any(word == w or (min(len(word), len(w)) >= 3 and (w.startswith(word) or word.startswith(w)))
               or difflib.SequenceMatcher(None, word, w).ratio() >= 0.8 for w in words)


def closest_table(name: str) -> str | None:
    """The table a name that is none most likely means.

    Spelling alone misleads on names made of words: difflib found 'service_levels' closest to
    'tier_levels' (same length, same ending) although the user named the tiers.  So the words of the
    name are matched against each table's name, aliases and title first, spelling breaking ties; a
    name sharing no word is matched by spelling alone.
    """
    names: dict[str, list[str]] = {t: [t] for t in TABLES}
    for alias, t in ALIASES.items():
        names[t].append(alias)
    wanted = _words(name)
    best, best_score = None, (0, 0.6)
    for table, spellings in names.items():
        vocabulary = set().union(*(_words(n) for n in spellings + [TABLES[table].title]))
        shared = sum(_word_matches(w, vocabulary) for w in wanted)
        spelling = max(difflib.SequenceMatcher(None, name.strip().lower(), n).ratio() for n in spellings)
        score = (shared, spelling)
        if score > best_score:
            best, best_score = table, score
    return best


# --- columns: what the schema says a row may hold ----------------------------------------------


@dataclass
class ColumnSpec:
    """How the cells of a column are read: ``text``, ``number``, ``integer``, ``bool``, ``list`` (of text),
    ``text_or_list``, ``ids`` (one id or a list of ids, written ``A, B, C``: a service level's ``tier``),
    or ``any`` (free-form: the types the YAML already holds there)."""

    name: str
    path: tuple
    kind: str
    required: bool = False


def _item_schema(spec: TableSpec) -> dict:
    props = load_schema("policy.schema.json")["properties"]
    if spec.name in ("tiers", "subgrades"):
        levels = props["tiers"]["properties"]["levels"]["items"]
        return levels if spec.name == "tiers" else levels["properties"]["subgrades"]["items"]
    if spec.name == "stages":
        return props["lifecycle"]["properties"]["stages"]["items"]
    return props["service_levels"]["items"]


def _kind(schema: dict) -> str:
    if "oneOf" in schema:
        types = {alt.get("type") for alt in schema["oneOf"]}
        if types == {"string", "array"} and all("pattern" in alt.get("items", alt) for alt in schema["oneOf"]):
            return "ids"  # ids hold no separator, so a list of them is typed 'A, B, C'
        return "text_or_list" if types == {"string", "array"} else "any"
    t = schema.get("type")
    if t is None and "enum" in schema:
        return "text" if all(isinstance(v, str) for v in schema["enum"]) else "any"
    return {"string": "text", "number": "number", "integer": "integer", "boolean": "bool", "array": "list"}.get(t, "any")


def schema_columns(spec: TableSpec) -> tuple[dict[tuple, ColumnSpec], set[tuple]]:
    """Columns the schema knows (leaf paths) and the free-form maps (``attributes``) any sub-key of which is a column."""
    schema = _item_schema(spec)
    required = set(schema.get("required", []))
    known: dict[tuple, ColumnSpec] = {}
    free: set[tuple] = set()

    def walk(props: dict, prefix: tuple) -> None:
        for key, sub in props.items():
            path = prefix + (key,)
            if not prefix and key in spec.exclude:
                continue
            if sub.get("type") == "object":
                if "properties" in sub and sub.get("additionalProperties") is False:
                    walk(sub["properties"], path)
                else:
                    free.add(path)
                    known[path] = ColumnSpec(".".join(path), path, "any")
                continue
            known[path] = ColumnSpec(".".join(path), path, _kind(sub), required=not prefix and key in required)

    if spec.parent:
        known[(spec.parent,)] = ColumnSpec(spec.parent, (spec.parent,), "text", required=True)
    walk(schema.get("properties", {}), ())
    return known, free


# --- flattening rows into cells ----------------------------------------------------------------


def flatten(row: dict, exclude: tuple = ()) -> dict[tuple, Any]:
    """Leaf path -> value; maps become dotted columns unless a key could not be a column name."""
    leaves: dict[tuple, Any] = {}

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, dict) and value and all(isinstance(k, str) and k and "." not in k for k in value):
            for k, v in value.items():
                walk(v, path + (k,))
        else:
            leaves[path] = value

    for key, value in row.items():
        if key not in exclude:
            walk(value, (key,))
    return leaves


def _plain_list(value: list) -> bool:
    """Can the list be written as ``a; b; c`` and read back the same?"""
    return bool(value) and all(
        isinstance(v, str) and v and v == v.strip() and not LIST_SEPARATORS.search(v) and "\n" not in v for v in value
    ) and not value[0].startswith("[")


def to_cell(value: Any, kind: str | None = None) -> Any:
    """A leaf as a spreadsheet cell: scalars as they are, text lists as ``a; b`` (ids, ``kind`` "ids", as
    ``A, B, C``), anything else as JSON."""
    if kind == "ids" and isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return ID_LIST_SEPARATOR.join(value)
    if isinstance(value, list):
        return LIST_SEPARATOR.join(value) if _plain_list(value) else json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    return value


def unflatten(leaves: list[tuple[tuple, Any]]) -> dict:
    out: dict = {}
    for path, value in leaves:
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return out


def merged_column_order(rows: list[list[tuple]]) -> list[tuple]:
    """Columns in the order the YAML writes them: a key first seen in a later row goes right after
    the key that precedes it in that row."""
    order: list[tuple] = []
    for paths in rows:
        previous = None
        mine = set(paths)
        for p in paths:
            if p not in order:
                at = order.index(previous) + 1 if previous is not None else 0
                while at < len(order) and order[at] not in mine:  # past columns only other rows have
                    at += 1
                order.insert(at, p)
            previous = p
    return order


# --- where a table is ----------------------------------------------------------------------------


@dataclass
class TableInfo:
    name: str
    title: str
    yaml_path: str
    own: bool
    rows: int = 0
    columns: list[str] = field(default_factory=list)
    inherited_from: str | None = None  # the parent file that holds it, when it is inherited
    extends: str | None = None
    shipped: bool = False  # inherited from a shipped policy, which is not edited in place

    def as_json(self) -> dict:
        return {"table": self.name, "title": self.title, "yaml_path": self.yaml_path, "own": self.own,
                "rows": self.rows if self.own else None, "columns": self.columns if self.own else None,
                "inherited_from": self.inherited_from}


def is_shipped(path: Path) -> bool:
    """Whether ``path`` is one of the shipped policies (inside the installed package: not edited in place)."""
    return Path(path).resolve().parent == Path(str(shipped_policies_dir())).resolve()


def has_list(data: Any, path: tuple) -> bool:
    for part in path:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return isinstance(data, list)


@dataclass
class PolicyText:
    """A policy file as text, its data as the engine reads it, and its node tree with positions."""

    path: Path
    raw: bytes
    text: str
    bom: bool
    data: dict
    root: yaml.Node

    @classmethod
    def read(cls, path: Path, edit: bool = False) -> "PolicyText":
        """Read a policy file; for reading only, a shipped policy's name (``base``) will do."""
        path = Path(path)
        if path.is_dir():
            raise UsageError(f"{path}: is a directory, expected a policy file (YAML)")
        found = resolve_policy_path(str(path)) if not path.is_file() and len(path.parts) == 1 else None
        if found is not None and edit and found.resolve().parent == Path(str(shipped_policies_dir())).resolve():
            raise UsageError(f"{path} is a shipped policy ({found}); it is not edited in place",
                             hint="edit a copy: `crm-rules demo` writes the shipped policies into crm-demo/policies/")
        path = found or path
        if not path.is_file():
            raise UsageError(f"{path}: file not found", hint="give the path of the policy YAML file")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read ({exc.strerror or exc})",
                            hint="check the file's permissions") from None
        doc = load_yaml_text(raw, str(path))
        if not isinstance(doc.data, dict):
            raise PolicyError(Diagnostic(str(path), 1, 1, "", "a policy must be a mapping of sections (name, metrics, tiers, ...)"))
        text = decode_utf8(raw, str(path))
        return cls(path, raw, text, raw.startswith(b"\xef\xbb\xbf"), doc.data, ye.compose(text))


def _parent_chain(policy: PolicyText) -> list[tuple[Path, dict]]:
    """The files ``extends`` leads to, nearest first, with their own data."""
    chain = []
    data, current = policy.data, policy.path
    seen = {policy.path.resolve()}
    while isinstance(data.get("extends"), str) and len(chain) < MAX_EXTENDS_DEPTH:
        parent = resolve_policy_path(data["extends"], current)
        if parent is None or parent.resolve() in seen:
            break
        seen.add(parent.resolve())
        data = load_yaml_text(parent.read_bytes(), str(parent)).data
        if not isinstance(data, dict):
            break
        chain.append((parent, data))
        current = parent
    return chain


def _rows_of(spec: TableSpec, data: dict) -> list[dict]:
    items = data
    for part in spec.path:
        items = items[part]
    if spec.parent:
        return [dict(sub, **{spec.parent: level.get("id")}) for level in items if isinstance(level, dict)
                for sub in (level.get("subgrades") or []) if isinstance(sub, dict)]
    return [item for item in items if isinstance(item, dict)]


def list_tables(policy_path: Path) -> list[TableInfo]:
    """Every rule table and where it is: in this file, inherited from a parent, or nowhere."""
    policy = PolicyText.read(policy_path)
    chain = None
    out = []
    for spec in TABLES.values():
        info = TableInfo(spec.name, spec.title, format_path(spec.path) + ("[].subgrades" if spec.parent else ""), False,
                         extends=policy.data.get("extends"))
        if has_list(policy.data, spec.path):
            table = export_spec(spec, policy)
            info.own, info.rows, info.columns = True, len(table.rows), table.columns
        else:
            chain = _parent_chain(policy) if chain is None else chain
            for parent, data in chain:
                if has_list(data, spec.path):
                    info.inherited_from, info.shipped = str(parent), is_shipped(parent)
                    break
        out.append(info)
    return out


def require_own_table(spec: TableSpec, policy: PolicyText) -> None:
    """Raise a clear error unless the file itself holds the table."""
    if has_list(policy.data, spec.path):
        return
    where = format_path(spec.path)
    for parent, data in _parent_chain(policy):
        if has_list(data, spec.path):
            if is_shipped(parent):  # "edit them in the parent" pointed into the installed package
                name = parent.name[: -len(".yaml")]
                stub = (f"`{spec.path[0]}: []`" if len(spec.path) == 1 else
                        f"`{spec.path[0]}: {{{spec.path[1]}: []}}`" if len(spec.path) == 2 and not spec.parent else
                        f"a {spec.section} section")
                hint = (f"{name} is a shipped policy, not edited in place: to change its {spec.title} for this policy, "
                        f"add {stub} to {policy.path.name} and import the sheet into it (`crm-rules table export "
                        f"{name} --table {spec.name} --out {spec.name}.csv` gives the parent's rows to start from)")
            else:
                hint = (f"edit them in the parent: crm-rules table export {parent} --table {spec.name} "
                        f"(or add a {spec.section} section to {policy.path.name} to override the parent's)")
            raise UsageError(
                f"{policy.path}: the {spec.title} are not in this file: they are inherited from {parent} "
                f"(extends: {policy.data.get('extends')}); {spec.section} is not written here", hint=hint)
    listed = [s.name for s in TABLES.values() if has_list(policy.data, s.path)]
    raise UsageError(f"{policy.path}: this policy has no {spec.title} ({where})",
                     hint=f"tables in this file: {', '.join(listed)}" if listed else "this file holds no rule tables")


_ANCHOR = re.compile(r"&([^\s,\[\]{}]+)")


def require_editable(spec: TableSpec, policy: PolicyText, then: str) -> None:
    """Refuse a table whose text a spreadsheet cannot round-trip, before anything is exported or read back.

    Import rewrites a row's own text; with an anchor and alias (one value in two places, inside the
    table or between it and another section) or a ``<<`` merge key (keys the row's text does not hold)
    that either fails or changes the other place too.  Export refuses it as well, so nobody edits a
    sheet that can never be imported.  ``then`` is the command to run once the rows are written out.
    """
    found = ye.shared_or_merged(ye.node_at(policy.root, spec.path), policy.root)
    if found is None:
        return
    why, node = found
    where = f"{policy.path}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"
    anchor = _ANCHOR.match(policy.text, node.start_mark.index)
    if why.endswith("(*name)"):
        name = anchor.group(1) if anchor else "name"
        what = f"a YAML alias (*{name}) of the anchor &{name} here: one value in two places"
    else:
        what = "a YAML merge key (<<) here: keys the rows' own text does not hold"
    raise UsageError(f"{where}: the {spec.title} use {what}, which a spreadsheet cannot round-trip",
                     hint=f"write the values out in full (without anchors, aliases and <<), then {then}")


# --- export ------------------------------------------------------------------------------------


@dataclass
class ExportedTable:
    name: str
    file: str
    columns: list[str]
    rows: list[list[Any]]  # cells: text, numbers, true/false or None


def export_spec(spec: TableSpec, policy: PolicyText) -> ExportedTable:
    rows = _rows_of(spec, policy.data)
    flat = [flatten(r, spec.exclude) for r in rows]
    order = merged_column_order([list(f) for f in flat])
    if not rows:  # an empty table still shows the columns it can have
        known, _ = schema_columns(spec)
        order = [p for p, c in known.items() if c.kind != "any"]
    first = [("id",)] + ([(spec.parent,)] if spec.parent else [])
    order = first + [p for p in order if p not in first]
    known, _ = schema_columns(spec)
    kinds = {p: known[p].kind if p in known else None for p in order}
    cells = [[to_cell(f[p], kinds[p]) if p in f else None for p in order] for f in flat]
    return ExportedTable(spec.name, str(policy.path), [".".join(p) for p in order], cells)


def export_table(policy_path: Path, table: str) -> ExportedTable:
    """The table as columns and rows of cells, ready for CSV or XLSX."""
    spec = table_spec(table)
    policy = PolicyText.read(policy_path)
    require_own_table(spec, policy)
    require_editable(spec, policy, "export again")
    return export_spec(spec, policy)
