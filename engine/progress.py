"""How long-running work tells the command line how far it is.

The engine only calls a ``Progress`` callback; whether that draws a bar (a
terminal), nothing (a pipe, ``--quiet``, a library caller) is the caller's
business, so the engine never writes to the terminal itself.
"""

from __future__ import annotations

from collections.abc import Callable

# (what is being done, units done, units in all or None when not known yet)
Progress = Callable[[str, int, "int | None"], None]


def silent(_what: str, _done: int, _total: int | None) -> None:
    """The default: report nothing."""
