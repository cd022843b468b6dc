"""What a file given in the wrong place is, so that a command can say so and name the command that takes it.

Users give a workbook as the policy, a database as a policy test, a policy as ``--db``.  Read as what was
expected, each failed with a message about the wrong thing: a YAML error at byte 0xc7 of a ZIP archive, "no
test file crm.test.yaml next to this policy", SQLite's "file is not a database".  The first bytes tell a
database, a workbook or UTF-16 text for sure; a CSV or YAML file is told by its name only (its bytes are any
text), so callers ask about names only where a file did not read, or cannot be, what was expected.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError
from .output_file import SQLITE_HEADER

ZIP_HEADER = b"PK\x03\x04"
OLE2_HEADER = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SNIFF_BYTES = 16


@dataclass(frozen=True)
class FileKind:
    key: str  # sqlite, xlsx, xls, utf16, csv, yaml
    what: str  # "a SQLite database", for "x: is a SQLite database, not a policy"
    goes_to: str  # which command or option takes such a file, for the hint


SQLITE = FileKind("sqlite", "a SQLite database",
                  "a database is --db of apply, explain, diff, analyze and the other commands (or --results-db), "
                  "and import's --db")
XLSX = FileKind("xlsx", "an Excel workbook (.xlsx) or another ZIP archive",
                "an edited rule table goes back into its policy with crm-rules table import POLICY.yaml SHEET.xlsx "
                "--table NAME; data in a workbook is saved as 'CSV UTF-8' for crm-rules import")
XLS = FileKind("xls", "an Excel 97-2003 workbook (.xls)",
               "save it as .xlsx for crm-rules table import, or as 'CSV UTF-8' for crm-rules import")
UTF16 = FileKind("utf16", "UTF-16 text (Excel's 'Unicode Text')",
                 "save it as UTF-8 (in Excel: Save As > 'CSV UTF-8'; in an editor: encoding UTF-8)")
CSV = FileKind("csv", "a CSV file",
               "CSV files go to crm-rules import FILE.csv --db DB --table NAME (data), --overrides (manual "
               "overrides) and crm-rules table import POLICY.yaml FILE.csv --table NAME (an edited rule table)")
YAML = FileKind("yaml", "a YAML file (a policy or a policy test)",
                "a policy is --policy/-p (or the file of validate and table export/import); a policy test file "
                "(*.test.yaml) is run with crm-rules test")

_SIGNATURES = ((SQLITE_HEADER, SQLITE), (ZIP_HEADER, XLSX), (OLE2_HEADER, XLS),
               (codecs.BOM_UTF16_LE, UTF16), (codecs.BOM_UTF16_BE, UTF16))
_SUFFIXES = {".csv": CSV, ".tsv": CSV, ".yaml": YAML, ".yml": YAML, ".xlsx": XLSX, ".xls": XLS}


def kind_of_bytes(head: bytes, name: str | Path | None = None) -> FileKind | None:
    """The kind the first bytes prove; else, when ``name`` is given, the kind its extension says; else None."""
    for signature, kind in _SIGNATURES:
        if head.startswith(signature):
            return kind
    return _SUFFIXES.get(Path(name).suffix.lower()) if name is not None else None


def kind_of(path: Path) -> FileKind | None:
    """The kind of the file at ``path`` (None when unknown or unreadable: the caller's own read says why)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return None
    return kind_of_bytes(head, path)


def wrong_kind(file: str | Path, kind: FileKind, expected: str, hint: str | None = None) -> UsageError:
    """``file: is <kind>, not <expected>``, with where such a file goes (or ``hint``)."""
    return UsageError(f"{file}: is {kind.what}, not {expected}", hint=hint or kind.goes_to)
