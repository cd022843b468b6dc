"""Bring an edited rule-table sheet back into the policy YAML.

Rows are matched by id; the sheet's order becomes the list's order.  Each row
that stays keeps its text (with the comment lines above it) and gets only the
edits its changed cells need; new rows are written in the style of their
neighbours; sub-grades whose tier changed move with their comments.  The new
text is re-read to check it holds exactly the intended data, then validated
with the engine's own loader reading it in the policy's place (so ``extends``
and relative paths resolve as they will) without writing anything; only a
valid result replaces the policy, atomically.
"""

from __future__ import annotations

import copy
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import yaml_edit as ye
from .errors import DataError, Diagnostic, PolicyError
from .expr_types import did_you_mean, with_article
from .ime_text import ascii_twin, describe, slips_in
from .output_file import refuse_read_only
from .rule_table import (ColumnSpec, PolicyText, TableSpec, export_spec, flatten, merged_column_order, require_editable,
                         require_own_table, schema_columns, table_spec, unflatten)
from .rule_table_cells import MISSING, CellProblem, as_text, read_cell, type_name
from .rule_table_io import Sheet, column_letter, listing, read_sheet
from .schema_validation import label_fix
from .yaml_source import format_path, index_at, line_col, load_yaml_text

if TYPE_CHECKING:
    from .policy_model import Policy


@dataclass
class CellChange:
    column: str
    old: Any  # MISSING shown as empty
    new: Any


@dataclass
class RowChange:
    kind: str  # added, removed, changed
    id: str
    sheet_row: int | None = None
    cells: list[CellChange] = field(default_factory=list)
    note: str = ""


@dataclass
class ImportResult:
    policy: str
    table: str
    sheet: str
    changes: list[RowChange]
    order: list[tuple[str, list[str], list[str]]]  # (group, old order, new order) where the order changed
    untouched_columns: list[str]  # table columns the sheet does not have: left as they are
    old_text: str
    new_text: str
    written: bool = False
    dry_run: bool = False
    policy_name: str | None = None
    policy_sha256: str | None = None
    notes: list[str] = field(default_factory=list)  # what the valid result may not do as meant

    @property
    def changed(self) -> bool:
        return self.new_text != self.old_text

    def as_json(self) -> dict:
        def cell(v):
            return None if v is MISSING else v

        # policy_file as `test --json` names a policy's file; "policy" (the same path) is kept for the scripts that read it
        return {"policy_file": self.policy, "policy": self.policy, "table": self.table, "sheet": self.sheet, "written": self.written,
                "dry_run": self.dry_run, "changed": self.changed,
                "changes": [{"kind": c.kind, "id": c.id, "sheet_row": c.sheet_row, "note": c.note or None,
                             "cells": [{"column": x.column, "old": cell(x.old), "new": cell(x.new)} for x in c.cells]}
                            for c in self.changes],
                "order": [{"group": g, "old": o, "new": n} for g, o, n in self.order],
                "untouched_columns": self.untouched_columns,
                "policy_name": self.policy_name, "policy_sha256": self.policy_sha256, "notes": self.notes}


@dataclass
class _OldRow:
    id: str
    data: dict  # the whole mapping, excluded keys included
    node: yaml.MappingNode
    group: Any  # subgrades: the tier id; else None
    position: int


@dataclass
class _NewRow:
    id: str
    sheet_row: int
    data: dict  # the whole mapping as it must be after the import
    group: Any


class _Problems:
    def __init__(self, sheet: Sheet):
        self.sheet = sheet
        self.items: list[str] = []

    def add(self, row: int, column: str | None, message: str, hint: str | None = None, index: int | None = None) -> None:
        """A problem at a row and column (named, or by ``index`` when the name is ambiguous)."""
        if index is None and column in self.sheet.header:
            index = self.sheet.header.index(column)
        self.items.append(f"{self.sheet.where(row, index, column)}: {message}" + (f" ({hint})" if hint else ""))

    def raise_if_any(self, policy: Path) -> None:
        if not self.items:
            return
        n = len(self.items)
        raise DataError(f"{n} problem{'s' if n != 1 else ''} in {self.sheet.file}; {policy} was not changed:"
                        + listing(self.items), hint="fix the cells in the spreadsheet and import again")


def _old_rows(spec: TableSpec, policy: PolicyText) -> tuple[list[_OldRow], yaml.Node]:
    """The table's current rows with their nodes (and the node of the list, or of the tier levels)."""
    seq = ye.node_at(policy.root, spec.path)
    items: Any = policy.data
    for part in spec.path:
        items = items[part]
    rows: list[_OldRow] = []
    if not isinstance(seq, yaml.SequenceNode):
        raise PolicyError(Diagnostic(str(policy.path), 1, 1, format_path(spec.path), "is not a list"))

    def check(node: yaml.Node, value: Any, path: tuple) -> None:
        if not isinstance(value, dict) or not isinstance(node, yaml.MappingNode):
            raise PolicyError(Diagnostic(str(policy.path), node.start_mark.line + 1, node.start_mark.column + 1,
                                         format_path(path), "every row of a rule table must be a mapping (id: ..., ...)"))

    for i, item in enumerate(items):
        check(seq.value[i], item, spec.path + (i,))
        if not spec.parent:
            rows.append(_OldRow(str(item.get("id")), item, seq.value[i], None, i))
            continue
        subs = ye.mapping_value(seq.value[i], "subgrades")
        for si, sub in enumerate(item.get("subgrades") or []):
            check(subs.value[si], sub, spec.path + (i, "subgrades", si))
            rows.append(_OldRow(str(sub.get("id")), sub, subs.value[si], str(item.get("id")), si))
    require_editable(spec, policy, "import again")
    return rows, seq


def _columns_of_sheet(spec: TableSpec, sheet: Sheet, old: list[_OldRow], problems: _Problems) -> list[ColumnSpec | None]:
    known, free = schema_columns(spec)
    existing = merged_column_order([list(flatten(r.data, spec.exclude)) for r in old])
    for path in existing:
        if path not in known:
            known[path] = ColumnSpec(".".join(path), path, "any")
    names = {c.name: c for c in known.values()}
    out: list[ColumnSpec | None] = []
    seen: dict[str, int] = {}
    for j, name in enumerate(sheet.header):
        if not name:
            filled = [(number, cells[j]) for number, cells in sheet.rows if j < len(cells) and cells[j] not in (None, "")]
            if filled:
                number, value = filled[0]
                more = f" (and {len(filled) - 1} more row{'s' if len(filled) > 2 else ''})" if len(filled) > 1 else ""
                problems.add(sheet.header_row, None, f"this column has no name but holds {as_text(value)!r} in row "
                             f"{number}{more}", f"put the column name in row {sheet.header_row}, or delete the column",
                             index=j)
            out.append(None)
            continue
        if name in seen:
            problems.add(sheet.header_row, name, f"column {name!r} appears twice (also column {column_letter(seen[name])})",
                         "delete one of them", index=j)
            out.append(None)
            continue
        seen[name] = j
        path = tuple(name.split("."))
        column = names.get(name)
        if column is None and any(path[: len(f)] == f and len(path) > len(f) for f in free) and all(path):
            column = ColumnSpec(name, path, "any")
        if column is None:
            suggestion = did_you_mean(name, names)
            listed = f"the {spec.title} have the columns: {', '.join(c.name for c in known.values() if c.kind != 'any' or c.path in existing)}"
            if not suggestion:  # a column of the user's own (notes, a check): say where such things can go
                elsewhere = "on another sheet of the workbook" if sheet.name is not None else "in another file"
                keep = " (or in the description column, which the policy keeps)" if "description" in names else ""
                listed = (f"a sheet holds only the table's columns: rename it to one of them, or delete it and keep "
                          f"notes {elsewhere}{keep}; {listed}")
            problems.add(sheet.header_row, name, f"unknown column {name!r}{suggestion}", index=j, hint=listed)
        out.append(column)
    for required in ("id",) + ((spec.parent,) if spec.parent else ()):
        if required not in seen:
            problems.add(sheet.header_row, None, f"there is no {required!r} column",
                         "rows are matched by id: keep the id column from the export" if required == "id" else
                         f"every sub-grade needs the {required!r} it belongs to")
    return out


def _read_rows(spec: TableSpec, sheet: Sheet, columns: list[ColumnSpec | None], old: list[_OldRow],
               problems: _Problems) -> list[_NewRow]:
    by_id = {r.id: r for r in old}
    old_flat = {r.id: flatten(r.data, spec.exclude) for r in old}
    column_types: dict[tuple, list[str]] = {}
    for f in old_flat.values():
        for path, value in f.items():
            if value is not None:
                column_types.setdefault(path, []).append(type_name(value))
    sheet_paths = {c.path for c in columns if c is not None}
    rows: list[_NewRow] = []
    first_row: dict[str, int] = {}
    id_col = next((j for j, c in enumerate(columns) if c is not None and c.path == ("id",)), None)
    for number, cells in sheet.rows:
        values: dict[tuple, Any] = {}
        row_id = as_text(cells[id_col]).strip() if id_col is not None and cells[id_col] not in (None, "") else ""
        if not row_id:
            problems.add(number, "id", "the id is empty", "every row needs an id; rows are matched by it")
            continue
        if row_id in first_row:
            problems.add(number, "id", f"id {row_id!r} is also in row {first_row[row_id]}", "ids must be unique: rename or delete one row")
            continue
        first_row[row_id] = number
        original = old_flat.get(row_id, {})
        bad = False
        for j, column in enumerate(columns):
            if column is None or column.path == ("id",):
                continue
            raw = cells[j] if j < len(cells) else None
            try:
                value = read_cell(raw, column, original.get(column.path, MISSING), column_types.get(column.path, []),
                                  sheet.decimal_comma)
            except CellProblem as problem:
                problems.add(number, column.name, problem.message, problem.hint)
                bad = True
                continue
            if value is MISSING:
                if column.required:
                    problems.add(number, column.name, f"the {column.name} is empty",
                                 f"every row of the {spec.title} needs {with_article(column.name)}")
                    bad = True
                continue
            if column.kind == "text" and column.path == (spec.parent,):
                value = value.strip()
            values[column.path] = value
        if bad:
            continue
        # columns the sheet does not have keep their values; cleared cells remove the key
        merged: dict[tuple, Any] = {("id",): row_id}
        for p, v in original.items():
            if p not in sheet_paths:
                merged[p] = v
            elif p in values:
                merged[p] = values[p]
        for p, v in values.items():
            merged.setdefault(p, v)
        paths = list(merged)
        clash = next(((a, b) for a in paths for b in paths if len(a) < len(b) and b[: len(a)] == a), None)
        if clash:
            problems.add(number, ".".join(clash[1]), f"both {'.'.join(clash[0])} and {'.'.join(clash[1])} are set",
                         f"use either the whole {'.'.join(clash[0])} or its parts")
            continue
        if row_id in by_id:
            data = _reorder_like(unflatten(list(merged.items())), by_id[row_id].data)
            for key in spec.exclude:
                if key in by_id[row_id].data:
                    data[key] = by_id[row_id].data[key]
        else:
            order = [c.path for c in columns if c is not None]
            data = unflatten(sorted(merged.items(), key=lambda kv: (kv[0] != ("id",), order.index(kv[0]) if kv[0] in order else -1)))
        group = data.pop(spec.parent, None) if spec.parent else None
        rows.append(_NewRow(row_id, number, data, group))
    return rows


def _reorder_like(new: dict, old: dict) -> dict:
    """``new`` with the keys ``old`` has in ``old``'s order (recursively), then the new keys."""
    out = {}
    for k in old:
        if k in new:
            out[k] = _reorder_like(new[k], old[k]) if isinstance(new[k], dict) and isinstance(old[k], dict) else new[k]
    for k in new:
        if k not in out:
            out[k] = new[k]
    return out


def _diff(spec: TableSpec, old: list[_OldRow], new: list[_NewRow]) -> tuple[list[RowChange], list]:
    old_by = {r.id: r for r in old}
    new_ids = {r.id for r in new}
    changes: list[RowChange] = []
    for r in new:
        after = flatten(r.data, spec.exclude)
        if spec.parent:
            after[(spec.parent,)] = r.group
        if r.id not in old_by:
            changes.append(RowChange("added", r.id, r.sheet_row,
                                     [CellChange(".".join(p), MISSING, v) for p, v in after.items() if p != ("id",)]))
            continue
        o = old_by[r.id]
        before = flatten(o.data, spec.exclude)
        if spec.parent:
            before[(spec.parent,)] = o.group
        cells = [CellChange(".".join(p), before.get(p, MISSING), after.get(p, MISSING))
                 for p in list(before) + [p for p in after if p not in before]
                 if not ye.same(before.get(p, MISSING), after.get(p, MISSING))]
        if cells:
            changes.append(RowChange("changed", r.id, r.sheet_row, cells))
    for o in old:
        if o.id not in new_ids:
            note = ""
            if spec.name == "tiers" and o.data.get("subgrades"):
                n = len(o.data["subgrades"])
                note = f"with its {n} sub-grade{'s' if n != 1 else ''}"
            changes.append(RowChange("removed", o.id, None, note=note))
    orders = []
    groups = list(dict.fromkeys([r.group for r in old] + [r.group for r in new]))
    new_group = {r.id: r.group for r in new}
    for g in groups:  # rows that stay in the group, before and after: a different sequence is a reorder
        before = [r.id for r in old if r.group == g and r.id in new_ids and new_group[r.id] == g]
        after = [r.id for r in new if r.group == g and r.id in old_by and old_by[r.id].group == g]
        if before != after:
            orders.append((g, [r.id for r in old if r.group == g], [r.id for r in new if r.group == g]))
    return changes, orders


# --- turning the new rows into text ------------------------------------------------------------


def _row_text(layout: ye.SequenceLayout, style: ye.Style, rows_flow: bool, data: dict, nl: str) -> str:
    if not layout.block:
        return ye.flow_text(data, style)
    if rows_flow:
        return " " * layout.dash_col + "- " + ye.flow_text(data, style) + nl
    return ye.block_item_text(data, layout.dash_col, layout.item_col, style, nl)


def _rows_flow(nodes: list[yaml.Node]) -> bool:
    flows = [ye.is_flow(n) for n in nodes]
    return bool(flows) and sum(flows) * 2 > len(flows)


def _chunk(text: str, layout: ye.SequenceLayout, index: int, edits: list[ye.Edit]) -> str:
    start, end = layout.chunks[index]
    return ye.apply_edits(text[start:end], edits, offset=start)


def _column_order(spec: TableSpec, sheet_columns: list[ColumnSpec | None], old: list[_OldRow]) -> list[str]:
    names = [c.name for c in sheet_columns if c is not None]
    existing = [".".join(p) for p in merged_column_order([list(flatten(r.data, spec.exclude)) for r in old])]
    return list(dict.fromkeys(["id"] + names + existing))  # a row starts with its id, wherever the sheet has it


def _edit_list(spec: TableSpec, policy: PolicyText, seq: yaml.SequenceNode, old: list[_OldRow], new: list[_NewRow],
               order: list[str]) -> list[ye.Edit]:
    """One edit replacing the table's list: kept rows keep their text (with their cell edits), new rows are emitted."""
    text = policy.text
    nl = ye.newline_of(text)
    layout = ye.sequence_layout(text, seq)
    nodes = [r.node for r in old]
    style = ye.learn_style(text, nodes)
    rows_flow = _rows_flow(nodes)
    old_by = {r.id: r for r in old}
    if not new:  # an empty list: `key: []`
        parent = ye.node_at(policy.root, spec.path[:-1]) if len(spec.path) > 1 else policy.root
        return [ye.MappingEditor(text, parent, style).replace_value(spec.path[-1], [])]
    chunks, origins = [], []
    for r in new:
        o = old_by.get(r.id)
        origins.append(o.position if o is not None else None)
        if o is None:
            chunks.append(_row_text(layout, style, rows_flow, r.data, nl))
            continue
        edits = ye.mapping_edits(ye.MappingEditor(text, o.node, style), o.data, r.data, order)
        chunks.append(_chunk(text, layout, o.position, edits))
    return [ye.rebuild_sequence(text, layout, chunks, origins)]


def _edit_subgrades(policy: PolicyText, seq: yaml.SequenceNode, old: list[_OldRow], new: list[_NewRow],
                    order: list[str], problems: _Problems) -> list[ye.Edit]:
    """Edits of each tier's sub-grade list; a row whose tier changed moves (its text and comments with it)."""
    text = policy.text
    nl = ye.newline_of(text)
    levels = policy.data["tiers"]["levels"]
    level_ids = [str(level.get("id")) if isinstance(level, dict) else None for level in levels]
    for r in new:
        if r.group not in level_ids:
            typed = "".join(ascii_twin(ch) or ch for ch in str(r.group))  # 'Ａ' typed with a Chinese input method
            fix = ("; " + "; ".join(describe(ch) for ch in slips_in(str(r.group))) if typed in level_ids and typed != r.group
                   else label_fix(policy.data, ("tier",), r.group) or did_you_mean(str(r.group), [i for i in level_ids if i]))
            problems.add(r.sheet_row, "tier", f"unknown tier {r.group!r}{fix}",
                         f"the tiers in this file are: {', '.join(i for i in level_ids if i)}")
    problems.raise_if_any(policy.path)
    sub_nodes = {}
    for li, level_node in enumerate(seq.value):
        node = ye.mapping_value(level_node, "subgrades")
        if isinstance(node, yaml.SequenceNode):
            sub_nodes[level_ids[li]] = node
    layouts = {tier: ye.sequence_layout(text, node) for tier, node in sub_nodes.items()}
    all_nodes = [r.node for r in old]
    style = ye.learn_style(text, all_nodes)
    rows_flow = _rows_flow(all_nodes)
    level_style = ye.learn_style(text, list(seq.value))
    old_by = {r.id: r for r in old}
    # a layout for tiers without sub-grades yet: copy the indentation of another tier's list
    any_layout = next((lay for lay in layouts.values() if lay.block), None)
    edits: list[ye.Edit] = []
    for li, level_node in enumerate(seq.value):
        tier = level_ids[li]
        rows = [r for r in new if r.group == tier]
        editor = ye.MappingEditor(text, level_node, level_style)
        layout = layouts.get(tier)
        if layout is None:
            if not rows:
                continue
            data = [r.data for r in rows]
            if editor.flow or (any_layout is None and rows_flow):
                edits.append(editor.insert_keys(editor.pairs[-1][0], [("subgrades", data)]))
                continue
            key_col = editor.key_col()
            if any_layout is not None:
                dash_col = key_col + _seq_offset(text, any_layout, seq)
                item_col = dash_col + any_layout.item_col - any_layout.dash_col
            else:
                dash_col = key_col + level_style.seq_step
                item_col = dash_col + 2
            fake = ye.SequenceLayout(None, True, [], [], dash_col, item_col)
            body = "".join(_row_text(fake, style, rows_flow, d, nl) for d in data)
            last_value = editor.pairs[-1][2]
            pos = ye.line_end(text, ye.content_end(text, last_value))
            prefix = "" if pos == 0 or text[pos - 1] == "\n" else nl
            edits.append(ye.Edit(pos, pos, prefix + " " * key_col + "subgrades:" + nl + body))
            continue
        if not rows:
            edits += editor.remove_keys({"subgrades"})
            continue
        chunks, origins = [], []
        for r in rows:
            o = old_by.get(r.id)
            origins.append(o.position if o is not None and o.group == tier else None)
            if o is None:
                chunks.append(_row_text(layout, style, _rows_flow(list(layout.node.value)), r.data, nl))
                continue
            inner = ye.mapping_edits(ye.MappingEditor(text, o.node, style), o.data, r.data, order)
            source = layouts[o.group]
            chunk = _chunk(text, source, o.position, inner)
            if o.group != tier:  # moved from another tier: shift it to this list's indentation
                moved = None
                if source.block and layout.block:
                    moved = ye.reindent(chunk, layout.dash_col - source.dash_col)
                elif not source.block and not layout.block:
                    moved = chunk
                chunk = moved if moved is not None else _row_text(layout, style, _rows_flow(list(layout.node.value)), r.data, nl)
            chunks.append(chunk)
        edits.append(ye.rebuild_sequence(text, layout, chunks, origins))
    return edits


def _seq_offset(text: str, layout: ye.SequenceLayout, levels: yaml.SequenceNode) -> int:
    """How far another tier's ``subgrades:`` list is indented under its key."""
    for level in levels.value:
        for name, key, value in ye.mapping_pairs(level):
            if name == "subgrades" and value is layout.node:
                return layout.dash_col - ye.column(text, key.start_mark.index)
    return 2


# --- validation and writing --------------------------------------------------------------------

_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _parse_path(text: str) -> tuple:
    return tuple(int(m.group(2)) if m.group(2) is not None else m.group(1) for m in _PATH_PART.finditer(text))


def _culprits(changes: list[RowChange], orders: list) -> set[str]:
    """The rows an error about a whole list most likely comes from: those added or moved, else those changed.

    A new row or a new order is what breaks the order of pareto levels; a changed ``up_to`` is what
    breaks their increase.
    """
    moved = set()
    for _, before, after in orders:
        kept_before = [i for i in before if i in after]
        kept_after = [i for i in after if i in before]
        moved |= {a for a, b in zip(kept_before, kept_after) if a != b}
    return ({c.id for c in changes if c.kind == "added"} | moved) or {c.id for c in changes if c.kind == "changed"}


def _old_index(edits: list[ye.Edit], index: int) -> int:
    """Where a place in the edited text was in the policy as it is: the same text, shifted by the edits before it;
    inside an edit, the start of what the edit replaced (the table)."""
    shift = 0
    for e in sorted(edits, key=lambda e: (e.start, e.end)):
        start = e.start + shift
        if index < start:
            break
        if index < start + len(e.text):
            return e.start
        shift += len(e.text) - (e.end - e.start)
    return index - shift


def _sheet_problems(diagnostics: list[Diagnostic], spec: TableSpec, sheet: Sheet, new: list[_NewRow],
                    culprits: set[str], columns: list[ColumnSpec | None], policy: PolicyText, edits: list[ye.Edit],
                    new_text: str) -> list[str]:
    """The engine's diagnostics of the would-be file, each at a place the user can find.

    An error about a row is put at its sheet row and column (``t.xlsx: sheet 'tiers', row 3, column C (when)``),
    an error about the whole list at the sheet rows that most likely caused it (``culprits``): the line of a file
    that was never written meant nothing to someone editing a spreadsheet.  Any other error (a service level
    naming a tier the sheet removed) is at its line of the policy as it is now, where the user can look.
    """
    index = {c.name: j for j, c in enumerate(columns) if c is not None}
    rows: dict[tuple, _NewRow] = {}
    lists: dict[tuple, list[_NewRow]] = {}
    if spec.parent:
        levels = [str(level.get("id")) if isinstance(level, dict) else None for level in policy.data["tiers"]["levels"]]
        for li, tier in enumerate(levels):
            lists[spec.path + (li, "subgrades")] = [r for r in new if r.group == tier]
    else:
        lists[spec.path] = new
    for where, group in lists.items():
        for i, r in enumerate(group):
            rows[where + (i,)] = r
    on_sheet: list[tuple[tuple, str]] = []
    elsewhere: list[tuple[tuple, str]] = []
    for d in sorted(diagnostics):
        path = _parse_path(d.path)
        row = next(((prefix, r) for prefix, r in rows.items() if path[: len(prefix)] == prefix), None)
        if row is not None:
            prefix, r = row
            rest = [p for p in path[len(prefix):] if isinstance(p, str)]
            col = next((".".join(rest[:n]) for n in range(len(rest), 0, -1) if ".".join(rest[:n]) in index), None)
            where = sheet.where(r.sheet_row, index[col], col) if col else sheet.where(r.sheet_row)
            on_sheet.append(((r.sheet_row, index.get(col, -1), d.line, d.col), f"{where}: {d.message}"))
            continue
        numbers = [r.sheet_row for r in lists.get(path, []) if r.id in culprits]
        if numbers:
            on_sheet.append(((numbers[0], -1, d.line, d.col), f"{sheet.where(numbers)}: {d.message}"))
            continue
        line, col = d.line, d.col
        if d.file == str(policy.path) and d.line:
            line, col = line_col(policy.text, _old_index(edits, index_at(new_text, d.line, d.col)))
        elsewhere.append(((d.file, line, col), str(Diagnostic(d.file, line, col, d.path, d.message))))
    return [text for _, text in sorted(on_sheet)] + [text for _, text in sorted(elsewhere)]


def _validated(policy: PolicyText, spec: TableSpec, sheet: Sheet, new: list[_NewRow], changes: list[RowChange],
               orders: list, columns: list[ColumnSpec | None], edits: list[ye.Edit], new_text: str,
               data: bytes) -> Policy:
    """The policy as the import would leave it, loaded and checked by the engine; DataError when it would be invalid."""
    from .policy_files import load_policy_document
    from .policy_model import build_policy, load_policy

    try:  # checked in the policy's place, so that extends and relative paths resolve as they will; nothing is written
        doc, files = load_policy_document(policy.path, data)
        return build_policy(doc, files)
    except PolicyError as exc:
        problems = _sheet_problems(exc.diagnostics, spec, sheet, new, _culprits(changes, orders), columns, policy,
                                   edits, new_text)
    before = ""
    try:
        load_policy(policy.path)
    except PolicyError:
        before = f" (it was already invalid before the import: crm-rules validate {policy.path})"
    removed = [c.id for c in changes if c.kind == "removed"]
    gone = (f"; the sheet removes {', '.join(map(repr, removed))}: where the policy still uses "
            f"{'it' if len(removed) == 1 else 'them'} (lines above), keep the row or change those lines first"
            if removed and any(not p.startswith(sheet.file + ":") for p in problems) else "")
    n = len(problems)
    raise DataError(f"{n} problem{'s' if n != 1 else ''}: with {sheet.file} the policy would be invalid, so "
                    f"{policy.path} was not changed{before}:" + listing(problems),
                    hint=f"fix the sheet and import again{gone}")


def _write(policy: PolicyText, data: bytes) -> None:
    """Replace the policy file in one step, or say why it cannot be; the file is never left half-written."""
    from .output_file import write_atomic

    target = policy.path.resolve() if policy.path.is_symlink() else policy.path  # a link stays a link
    try:
        unchanged = target.read_bytes() == policy.raw
    except OSError:
        unchanged = False
    if not unchanged:
        raise DataError(f"{policy.path} changed while the sheet was being imported; it was not overwritten",
                        hint="import again")
    write_atomic(target, data, label="the policy",
                 hint="the new file is written beside the policy and renamed over it: make the policy's folder "
                      "writable and free some disk space, then import again (--dry-run checks a sheet without writing)")


def _intended(policy: PolicyText, spec: TableSpec, new: list[_NewRow]) -> dict:
    data = copy.deepcopy(policy.data)
    if spec.parent:
        for level in data["tiers"]["levels"]:
            rows = [r.data for r in new if r.group == str(level.get("id"))]
            if rows:
                level["subgrades"] = rows
            else:
                level.pop("subgrades", None)
        return data
    target = data
    for part in spec.path[:-1]:
        target = target[part]
    target[spec.path[-1]] = [r.data for r in new]
    return data


def import_table(policy_path: Path, table: str, sheet_path: Path, dry_run: bool = False,
                 encoding: str | None = None) -> ImportResult:
    """Bring an edited sheet back into the policy file; nothing is written unless the result is a valid policy."""
    spec = table_spec(table)
    policy_path = Path(policy_path)
    policy = PolicyText.read(policy_path, edit=True)
    require_own_table(spec, policy)
    if not dry_run:  # before the sheet is read: its problems, once fixed, would only lead here
        refuse_read_only(policy.path, "the policy",
                         hint=f"make it writable (chmod u+w {shlex.quote(str(policy.path))}) if it is meant to "
                              f"change, then import again; --dry-run checks the sheet and shows the changes "
                              f"without writing")
    sheet = read_sheet(Path(sheet_path), spec.name, key="id", encoding=encoding)
    problems = _Problems(sheet)
    old, seq = _old_rows(spec, policy)
    columns = _columns_of_sheet(spec, sheet, old, problems)
    problems.raise_if_any(policy.path)
    new = _read_rows(spec, sheet, columns, old, problems)
    problems.raise_if_any(policy.path)
    changes, orders = _diff(spec, old, new)
    order = _column_order(spec, columns, old)
    sheet_names = {c.name for c in columns if c is not None}
    untouched = [c for c in export_spec(spec, policy).columns if c not in sheet_names]
    result = ImportResult(str(policy_path), spec.name, sheet.file, changes, orders, untouched, policy.text, policy.text,
                          dry_run=dry_run)
    if spec.parent:
        edits = _edit_subgrades(policy, seq, old, new, order, problems)
    else:
        edits = _edit_list(spec, policy, seq, old, new, order)
    new_text = ye.apply_edits(policy.text, edits)
    if not changes and not orders:
        if new_text != policy.text:  # rebuilding an unchanged table must give back every byte
            raise RuntimeError(f"internal error: an unchanged {spec.name} table did not give back {policy.path} as it was")
        return result
    _check_text(policy, spec, new, new_text)
    result.new_text = new_text
    data = (b"\xef\xbb\xbf" if policy.bom else b"") + new_text.encode("utf-8")
    loaded = _validated(policy, spec, sheet, new, changes, orders, columns, edits, new_text, data)
    result.policy_name, result.policy_sha256 = loaded.name, loaded.sha256
    result.notes = _tiers_left_without_service(policy, loaded)
    if not dry_run:
        _write(policy, data)
        result.written = True
    return result


def _tiers_without_service(policy: Policy) -> list[str]:
    named = {s.tier for s in policy.service_levels}
    return [t.id for t in policy.tiers if t.id not in named] if policy.service_levels else []


def _tiers_left_without_service(policy: PolicyText, loaded: Policy) -> list[str]:
    """A note for each tier the import leaves without any service level, which it had, or which is new.

    A tier added in the tiers sheet is valid without one, and so is a service levels sheet that drops a tier's
    last row; the run then gives its customers none ("281 customer(s) match no service level"), which the
    import should say while the sheet is still open, not the first month-end run.
    """
    from .policy_model import load_policy

    after = _tiers_without_service(loaded)
    if not after:
        return []
    try:
        before = set(_tiers_without_service(load_policy(policy.path)))
    except PolicyError:
        before = set()
    return [f"tier {t!r} has no service level: its customers will get none (add a row with tier {t}, or add {t} to "
            f"a row's list of tiers such as 'A, B', in the service_levels table: crm-rules table export {shlex.quote(str(policy.path))} --table service_levels "
            f"--out service_levels.xlsx)"
            for t in after if t not in before]


def _check_text(policy: PolicyText, spec: TableSpec, new: list[_NewRow], new_text: str) -> None:
    """The edited text must hold exactly the intended data: the new table and everything else unchanged."""
    try:
        got = load_yaml_text(new_text, str(policy.path)).data
    except PolicyError as exc:
        raise RuntimeError(f"internal error: editing {policy.path} produced invalid YAML ({exc}); nothing was written") from None
    want = _intended(policy, spec, new)
    if not ye.same(got, want):
        raise RuntimeError(f"internal error: the edited {policy.path} does not hold the imported {spec.name} exactly; "
                           f"nothing was written")
