"""Names that an ``extends`` child removed while the base still uses them, said as what they are.

An operator whose data has no discounts writes ``discount_12m: null`` under ``metrics`` in a policy that extends
``base``, and ``credit: {}`` for no credit checks.  The base's score factors and service levels still name
them, and the errors read "unknown metric 'discount_12m'; did you mean 'contacts_12m'?" at a line of the
shipped base: a name the user had just seen in it, a wrong suggestion, and no word of the line that removed it.
The merge records what each child removes (``record``), and the message names that line and how to leave the
name out of the inherited section too (``note``).

A customer attribute removed with ``region: null`` under ``data.customers.attributes`` (the table has no such
column) while a condition still reads it got "unknown metric or attribute 'region'" and a "did you mean" of
another name; each file records its own (``record_attributes``), an ``extends`` chain or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .plugin_api import PLUGIN_SECTIONS
from .yaml_source import Position, SourceDocument


@dataclass(frozen=True)
class Removal:
    where: Position  # the child's line that removes the name
    how: str  # what that line does, for the message
    keep: str = "keep what defines it"  # the other fix: bring the name back


def record(base: Any, child: Any, path: tuple, base_doc: SourceDocument, child_doc: SourceDocument,
           out: SourceDocument) -> None:
    """Note in ``out.removed`` the names of ``base`` that ``child`` removes at ``path`` of the merge (the top level,
    or ``metrics``), with the line that removes each."""
    if not (isinstance(base, dict) and isinstance(child, dict)):
        return
    if path == ("metrics",):
        for name in base:
            if name in child and child[name] is None:
                out.removed[name] = Removal(child_doc.position(path + (name,)), f"`{name}: null` under metrics")
    elif path == ():
        for section in PLUGIN_SECTIONS:  # entries with outputs named after them (value, value_grade)
            if section not in child or not isinstance(base.get(section), dict):
                continue
            kept = child[section] if isinstance(child[section], dict) else {}
            for entry in base[section]:
                if entry not in kept:
                    out.removed[entry] = Removal(
                        child_doc.position((section,)),
                        f"the {section} section there replaces the whole {section} section of {base_doc.file}, "
                        f"and has no entry {entry!r}")


def record_attributes(doc: SourceDocument) -> None:
    """Note in ``doc.removed`` the customer attributes that ``doc`` maps to nothing (``region: null``)."""
    data = doc.data.get("data") if isinstance(doc.data, dict) else None
    customers = data.get("customers") if isinstance(data, dict) else None
    attributes = customers.get("attributes") if isinstance(customers, dict) else None
    if not isinstance(attributes, dict):
        return
    for name, ref in attributes.items():
        if ref is None and isinstance(name, str):
            doc.removed[name] = Removal(
                doc.position(("data", "customers", "attributes", name)),
                f"`{name}: null` under data.customers.attributes: the customers table has no such column",
                f"map {name} to a column of yours (data.customers.attributes.{name}: COLUMN)")


def note(removed: dict[str, Removal], name: str, at: Position, path: tuple, top: str | None = None) -> str | None:
    """': <file:line:col> removes it (...); <how to leave it out here>' for an unknown ``name`` reported at ``at``
    (the place that names it, at ``path`` of the policy), or None when no child removed it.

    ``top``: the file the user loaded (the last child).  A name that it reads and one of its bases removed (a
    company base without a region column, a child that grades by region) is left out where it is read, in the
    user's own file, not by writing a section of one's own."""
    removal = removed.get(name)
    entry = None
    if removal is None:  # an output of a removed plugin entry: value_grade of scores.value
        entry = next((e for e in removed if name.startswith(e + "_")), None)
        removal = removed.get(entry) if entry is not None else None
    if removal is None:
        return None
    where = f"{removal.where.file}:{removal.where.line}:{removal.where.col}"
    what = f"it is an output of entry {entry!r}, which {where} removes" if entry else f"{where} removes it"
    section = str(path[0]) if path else ""
    if at.file in (removal.where.file, top):
        fix = f"leave it out here too, or {removal.keep}"
    elif section == "metrics" and len(path) > 1:
        fix = (f"metric {path[1]}, which uses it, comes from {at.file}: remove it too (`{path[1]}: null` under "
               f"metrics) or redefine it" + ("" if removal.keep == Removal.keep else f"; or {removal.keep}"))
    else:
        fix = (f"this {section} section comes from {at.file}: write your own {section} section without it (it "
               f"replaces the base's whole section), or {removal.keep}")
    return f"{what} ({removal.how}); {fix}"
