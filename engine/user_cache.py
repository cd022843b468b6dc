"""A per-user folder for work every fresh process would otherwise redo.

A command such as ``explain`` answers in a few milliseconds once the policy is
loaded, but loading it in a new process first builds the expression grammar's
parse tables and checks each plugin's parameter schema against the JSON Schema
meta-schema: a quarter of a second together, a third of the command.  An
``apply`` also tokenizes the compiled SQL of its window functions (window_sql),
which imports sqlglot: a tenth of a second more.  These results depend only
on content (the grammar, a schema, a piece of SQL), so they are kept here
under a hash of that content and are rebuilt whenever it changes.

The folder is ``$CRM_RULES_CACHE_DIR``, else ``$XDG_CACHE_HOME/crm-rules``
(``~/.cache/crm-rules``; ``%LOCALAPPDATA%\\crm-rules`` on Windows).  It is
used only when it is the user's own; ``CRM_RULES_CACHE_DIR=`` (empty) turns it
off.  Any trouble with it (read-only home, a half-written file, a file from
another version) means working without it, never an error.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from functools import lru_cache
from pathlib import Path

ENV = "CRM_RULES_CACHE_DIR"


def content_key(*parts: str | bytes) -> str:
    """A file-name-safe hash of ``parts``: what a cached result was computed from."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:32]


def cache_dir() -> Path | None:
    """The cache folder, created if need be; None when it is turned off or not safely usable."""
    configured = os.environ.get(ENV)
    if configured == "":
        return None
    try:
        if configured:
            folder = Path(configured)
        elif os.name == "nt" and os.environ.get("LOCALAPPDATA"):
            folder = Path(os.environ["LOCALAPPDATA"]) / "crm-rules"
        else:
            folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "crm-rules"
    except RuntimeError:  # no home directory to expand
        return None
    return folder if _usable(folder) else None


@lru_cache(maxsize=None)
def _usable(folder: Path) -> bool:
    """Whether ``folder`` is (now made) the user's own and writable: checked once a process, not at every read."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
            return False  # someone else's folder: what it holds could have been planted
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def read(name: str) -> bytes | None:
    """The bytes stored under ``name``, or None."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        return (folder / name).read_bytes()
    except OSError:
        return None


def write(name: str, data: bytes) -> None:
    """Store ``data`` under ``name``, whole or not at all (readers never see half a file)."""
    folder = cache_dir()
    if folder is None:
        return
    try:
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass
