"""One compiled SQL statement of a run: the unit the compilers hand to the runner.

A run is compiled whole before its first statement executes, so a compiler may still change a
statement it handed out: window_sql adds the calls of a later layer to an earlier sort of the same
ordering, so that the ordering is sorted once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .window_sql import WindowSort


@dataclass
class Statement:
    sql: str
    params: dict = field(default_factory=dict)
    sort: WindowSort | None = None  # the window sort this statement computes, which window_workers may take over
