"""The part of a source scan (source_scans) or a window sort (window_workers) that runs in a worker
process, as a script of its own.

It imports nothing but the standard library, so that the process starts in a
few tens of milliseconds and needs neither the package nor the caller's main
module (source_scans runs this file with the same Python).  The work comes as
a JSON file named on the command line; a failure goes back as JSON on
stdout, with exit code 1.
"""

from __future__ import annotations

import json
import sqlite3
import sys

SCRATCH = "_crm_scratch"


def scan(source_uri: str, scratch_uri: str, work: list[tuple[str, str, dict]], cache_kib: int,
         timeout_s: float) -> None:
    """Run each ``(table, select, params)`` of ``work`` on the source into table ``table`` of a new scratch database."""
    conn = sqlite3.connect(source_uri, uri=True, isolation_level=None, timeout=timeout_s)
    try:
        conn.execute(f"PRAGMA temp.cache_size = -{cache_kib}")
        conn.execute(f"ATTACH DATABASE ? AS {SCRATCH}", (scratch_uri,))
        conn.execute(f"PRAGMA {SCRATCH}.journal_mode = OFF")  # a scratch file: nothing to recover
        conn.execute(f"PRAGMA {SCRATCH}.synchronous = OFF")
        for table, select, params in work:
            conn.execute(f'CREATE TABLE {SCRATCH}."{table}" AS {select}', params)
    finally:
        conn.close()


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    try:
        scan(job["source"], job["scratch"], job["work"], job["cache_kib"], job["timeout_s"])
    except sqlite3.Error as exc:
        json.dump({"error": str(exc), "kind": type(exc).__name__}, sys.stdout)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
