"""The files crm-rules writes for the user: exports, reports, exported rule tables.

An output path is a promise about someone else's file, so it is checked before any work and
written in one step: the command never replaces the database or policy it reads (``--out crm.db``
on ``export`` once turned a database into CSV), never replaces any SQLite database, and never
leaves a half-written file where a complete one was expected.
"""

from __future__ import annotations

import os
import shlex
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .errors import DataError, UsageError

SQLITE_HEADER = b"SQLite format 3\x00"
# The files SQLite keeps beside a database: writing over one of them corrupts the database.
SQLITE_COMPANIONS = {"": "", "-wal": "the write-ahead log of ", "-shm": "the shared memory of ",
                     "-journal": "the journal of "}


def check_out(out: Path, *, reads: Mapping[str, Path | None] | None = None, example: str = "out.csv") -> None:
    """Fail before any work when ``out`` cannot or must not be written.

    :param reads: the files the command reads, by what they are (``"the --db file"``); ``out`` may be none of them.
    :param example: a file name for the hint when ``out`` is a directory.
    """
    out = Path(out)
    if str(out) == "-":  # the usual "standard output" of Unix tools; here it would be a file named '-'
        raise UsageError("--out - would write a file named '-'", hint=(
            "leave out --out to print to standard output" if example.endswith((".csv", ".json", ".xlsx"))
            else f"give a file name, e.g. --out {example}"))
    if out.is_dir():
        raise UsageError(f"--out {out} is a directory", hint=f"give a file name, e.g. --out {out / example}")
    _existing_folder(out)
    for role, read in (reads or {}).items():
        if read is not None and (part := part_of_database(out, read)) is not None:
            raise UsageError(f"--out {out} is {part}{role} ({read}), which this command reads; "
                             f"writing it would destroy it", hint="choose another output file name")
    if _is_sqlite_database(out):
        raise UsageError(f"--out {out} is a SQLite database; crm-rules does not overwrite a database with an export",
                         hint="choose another output file name")
    refuse_read_only(out)


def refuse_read_only(path: Path, label: str = "--out", hint: str | None = None) -> None:
    """Fail when ``path`` is an existing file its owner made read-only (chmod 444).

    The file is replaced by a rename, which only the folder's permissions govern: without this check
    a read-only file would protect nothing.  The mode bits count as well as the access check, which
    passes every file for root.
    """
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        return  # no file (yet), or none that can be checked: the write says what is wrong
    if not stat.S_ISREG(st.st_mode) or (os.access(path, os.W_OK) and st.st_mode & 0o222):
        return
    where = shlex.quote(str(path))
    if hint is None:
        hint = (f"choose another {label}, or make the file writable (chmod u+w {where}) if it may be replaced"
                if label == "--out" else f"make it writable (chmod u+w {where}) if it is meant to change, then run "
                                         f"the command again")
    raise DataError(f"{path} is read-only; nothing was written", hint=hint)


def write_atomic(path: Path, data: bytes, *, label: str = "--out", hint: str | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A full disk, a missing permission or an interruption leaves the old file (or none), never
    half of the new one; an operating-system failure becomes a message naming the file.

    :param label: what the messages call the file: the option that named it (``--out``), or its role
        (``the policy``) for a file the command rewrites rather than one the user chose to create.
    :param hint: the advice for every failure, in place of the advice for an ``--out`` file (choose another
        --out), which is wrong for a file whose place is fixed.
    """
    path = Path(path)
    parent = _existing_folder(path, label, hint)
    refuse_read_only(path, label)
    try:
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc, label, hint) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        _keep_owner(tmp, path)
        os.chmod(tmp, _new_file_mode(path))  # mkstemp makes it owner-only; a report is meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc, label, hint) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _existing_folder(path: Path, label: str = "--out", hint: str | None = None) -> Path:
    """The folder ``path`` is to be written in, which must exist: crm-rules creates files, not folders."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{label} {path}: directory {parent} does not exist",
                         hint=hint or f"create it first, or choose another {label}")
    return parent


def _cannot_write(path: Path, exc: OSError, label: str, hint: str | None) -> DataError:
    if isinstance(exc, IsADirectoryError) or path.is_dir():
        return DataError(f"{label} {path} is a directory", hint=hint or "give a file name")
    return DataError(f"{path}: cannot write the file ({exc.strerror or exc}); nothing was changed",
                     hint=hint or f"check the directory's permissions and the free disk space, or choose another {label}")


def part_of_database(path: Path, db: Path) -> str | None:
    """What ``path`` is of database ``db`` ("" for the file itself, "the write-ahead log of ", ...), or None."""
    for suffix, part in SQLITE_COMPANIONS.items():
        if same_file(path, f"{db}{suffix}"):
            return part
    return None


def same_file(a: Path | str | None, b: Path | str) -> bool:
    """Whether two paths name one file (through links, or a relative and an absolute path); None names none (the
    source_db of a run stored before runs recorded it)."""
    if a is None:
        return False
    a, b = Path(a), Path(b)
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return a.resolve() == b.resolve()


def _is_sqlite_database(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(SQLITE_HEADER)) == SQLITE_HEADER
    except OSError:
        return False


def _keep_owner(tmp: str, path: Path) -> None:
    """Give the new file the owner and group of the file it replaces, as far as the system allows.

    A policy shared through its group stays shared; a user who may not give the file away keeps it
    (with the old group, where they belong to it).
    """
    try:
        old = path.stat()
    except OSError:
        return  # a new file: the owner and group the system gives it
    for owner in (old.st_uid, -1):
        try:
            os.chown(tmp, owner, old.st_gid)
            return
        except OSError:
            continue


def _new_file_mode(path: Path) -> int:
    """The mode the file keeps if it exists, else what open() would give it under the umask."""
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
