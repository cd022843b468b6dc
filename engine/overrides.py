"""Manual overrides: a person fixes a customer's tier, with a reason, an author and an expiry.

Rules grade everyone; sometimes the business knows better (a strategic
partner, a customer under legal review).  Overrides come from a YAML or CSV
file, or a table in the user's database, and are applied after the rules:
`tier` sets the tier, `floor` keeps the customer at least that good,
`ceiling` at most that good.  Every override is checked, positioned and
recorded; an expired one is ignored with a note, never silently.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .errors import DataError, Diagnostic, PolicyError, UsageError
from .expr_sql import quote_identifier as q
from .expr_types import did_you_mean, is_iso_date
from .yaml_source import decode_utf8, load_yaml_file

KINDS = ("tier", "floor", "ceiling")
FIELDS = ("customer", *KINDS, "reason", "author", "expires")


@dataclass(frozen=True)
class Override:
    customer: str
    kind: str  # tier | floor | ceiling
    tier: str
    reason: str
    author: str
    expires: str | None
    where: str  # file:line, or table and row, for messages

    def as_json(self) -> str:
        return json.dumps({"kind": self.kind, "tier": self.tier, "reason": self.reason, "author": self.author,
                           "expires": self.expires, "source": self.where}, ensure_ascii=False)


def _record(values: dict, where: str, tiers: list[str]) -> tuple[Override | None, list[str]]:
    problems = []
    unknown = [k for k in values if k not in FIELDS and values[k] not in (None, "")]
    for key in unknown:
        problems.append(f"{where}: unknown field {key!r}{did_you_mean(key, FIELDS)}")
    kinds = [k for k in KINDS if values.get(k) not in (None, "")]
    if len(kinds) != 1:
        problems.append(f"{where}: give exactly one of tier, floor or ceiling (found {', '.join(kinds) or 'none'})")
    for key in ("customer", "reason", "author"):
        if values.get(key) in (None, ""):
            problems.append(f"{where}: {key} is required (who is overridden, why, and who decided)")
    expires = values.get("expires")
    expires = None if expires in (None, "") else str(expires)
    if expires is not None and not is_iso_date(expires):
        problems.append(f"{where}: expires {expires!r} is not a date; write it as YYYY-MM-DD")
    tier = str(values[kinds[0]]) if len(kinds) == 1 else None
    if tier is not None and tier not in tiers:
        problems.append(f"{where}: unknown tier {tier!r}{did_you_mean(tier, tiers)} (tiers: {', '.join(tiers)})")
    if problems:
        return None, problems
    return Override(str(values["customer"]), kinds[0], tier, str(values["reason"]), str(values["author"]), expires, where), []


def load_overrides_file(path: Path, tiers: list[str]) -> list[Override]:
    """Overrides from a YAML list or a CSV file (header: customer, tier|floor|ceiling, reason, author, expires)."""
    if not path.is_file():
        raise UsageError(f"overrides file {path} not found", hint="check the path (relative to the policy file)")
    records: list[tuple[dict, str]] = []
    if path.suffix.lower() == ".csv":
        text = decode_utf8(path.read_bytes(), str(path))
        reader = csv.DictReader(io.StringIO(text))
        records = [({k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}, f"{path}:{reader.line_num}")
                   for row in reader]
    else:
        doc = load_yaml_file(path)
        if not isinstance(doc.data, list):
            raise PolicyError(Diagnostic(str(path), 1, 1, "", "an overrides file is a list of overrides (- customer: ...)"))
        for i, item in enumerate(doc.data):
            pos = doc.position((i,))
            if not isinstance(item, dict):
                raise PolicyError(Diagnostic(pos.file, pos.line, pos.col, f"[{i}]", "each override is a mapping (customer, tier, reason, author)"))
            records.append((item, f"{pos.file}:{pos.line}"))
    return _checked(records, tiers)


def load_overrides_table(conn: sqlite3.Connection, schema: str, table: str, tiers: list[str]) -> list[Override]:
    from .database import table_columns

    columns = table_columns(conn, schema, table)
    if columns is None:
        raise DataError(f"the overrides table {table!r} does not exist", hint="create it, or fix overrides.table in the policy")
    rows = conn.execute(f"SELECT rowid, * FROM {q(schema)}.{q(table)}").fetchall()
    return _checked([(dict(zip(columns, row[1:])), f"table {table!r}, row {row[0]}") for row in rows], tiers)


def _checked(records: list[tuple[dict, str]], tiers: list[str]) -> list[Override]:
    problems, out, seen = [], [], {}
    for values, where in records:
        override, found = _record(values, where, tiers)
        problems += found
        if override is None:
            continue
        if override.customer in seen:
            problems.append(f"{where}: customer {override.customer!r} already has an override at {seen[override.customer]}")
            continue
        seen[override.customer] = where
        out.append(override)
    if problems:
        raise DataError("the overrides cannot be used:\n  - " + "\n  - ".join(problems),
                        hint="fix the overrides (one per customer: customer, tier|floor|ceiling, reason, author, expires)")
    return out


def split_expired(overrides: list[Override], as_of: str) -> tuple[list[Override], list[str]]:
    """The overrides in force on the as-of date, and a note for each expired one."""
    active, notes = [], []
    for o in overrides:
        if o.expires is not None and o.expires < as_of:
            notes.append(f"override of customer {o.customer} ({o.kind} {o.tier}) expired on {o.expires}: ignored ({o.where})")
        else:
            active.append(o)
    return active, notes
