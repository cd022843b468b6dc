"""The one error hierarchy of crm-rules.

Everything the *user* can get wrong (a policy, their data, a CLI argument)
raises a subclass of :class:`CrmRulesError`.  Only ``cli.py`` turns these into
clean messages and exit codes; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem at one place, printed as ``file:line:col: path: message``."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class CrmRulesError(Exception):
    """Base class of every error caused by input rather than by a bug."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class UsageError(CrmRulesError):
    """A command-line argument is wrong (missing file, bad date, bad option)."""

    exit_code = 2


class PolicyError(CrmRulesError):
    """A policy is invalid; carries every diagnostic found, not just the first."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic, *, hint: str | None = None,
                 subject: str | None = None):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics = sorted(diagnostics)
        # what the problems are in, for the summary line ("1 problem in cards.csv"); None: the policy
        self.subject = subject
        super().__init__("\n".join(str(d) for d in self.diagnostics), hint=hint)


class DataError(CrmRulesError):
    """The user's database or data file cannot be used as it is."""


class DamagedDatabaseError(DataError):
    """SQLite found damaged pages in a database file; nothing may be written into it."""

    def __init__(self, message: str, *, hint: str | None = None, files: frozenset = frozenset()):
        super().__init__(message, hint=hint)
        self.files = files  # resolved paths of the file, or of each file it may be when that cannot be told


class RunError(CrmRulesError):
    """A run failed while executing; no results were written."""


class PluginError(CrmRulesError):
    """A plugin could not be loaded or registered something invalid."""
