"""The benchmark suite: crm-rules against the best hand-written query and against peers.

Usage:
    python bench/run.py                                  # 10k/100k and 100k/1M
    python bench/run.py --sizes 1000000x10000000 --repeat 3
    python bench/run.py --markdown bench/RESULTS.md      # also write the tables as Markdown
    python bench/run.py --sizes 100000x1000000,100000x10000000 --peers ''   # only the orders grow

For each size (customers x orders) it generates the database once
(bench/generate.py, cached under bench/.data/), then measures, each in a
fresh process and as the median of --repeat runs taken in rounds (each
contender once per round, so a drift of the machine's speed weighs on all
alike), with the peak memory (VmHWM) of that process:

- baseline: the best hand-written SQLite query (no extra index; the table
  scan with PRAGMA threads and the as-of cut in WHERE, the fastest plan
  found) computing, for every customer, the order aggregates the benchmark
  policy needs (12-month revenue, order count, last order date, profit,
  discount) into a table;
- crm-rules apply: the whole shipped `base` policy (metrics, RFM quintiles,
  Pareto tiers with sub-grades, lifecycle, service levels, value score,
  credit check, exit-barrier and churn actions), results written (to a fresh
  results database each time, so every run writes the same amount);
  with the split into aggregation (every metric), rule evaluation (tiers,
  sub-grades, stages, service levels) and everything after the aggregation
  (plugins, rules, actions, summary, writing the run);
- crm-rules apply of the peers' rules only (bench/peer_rules.yaml: the base
  policy without RFM scores, value score and actions, the credit check kept),
  results written: the same work as the peers, to compare the pandas script
  with; checked customer by customer against the full run;
- peers (bench/peers.py): GoRules zen-engine and the rule-engine package
  evaluating the same rules per customer after the same SQL aggregation, and
  the pandas script an analyst would write (from the raw tables, the credit
  verdict included); each verified to give the same tier, sub-grade, stage
  and service level to every customer;
- explain: `crm-rules explain` of one customer from the run just written,
  timed as a user meets it (wall time of a new `python -m crm_rules.cli`
  process, start-up included).

Every crm-rules process runs with the user cache (engine/user_cache.py)
already filled, as after a machine's first command (warm_user_cache), and
with its modules compiled to bytecode, as pip installs them (byte_compile).

Every figure is also given as a ratio to the baseline of the same size,
measured in the same run.  Sizes with the same customers and more orders
get a table of their own: how time and peak memory grow with the orders
alone.  The targets of issue 6 are checked at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT.parent))  # a checkout named crm_rules
sys.path.insert(0, str(HERE))
# The processes measured import the crm_rules this one does: a checkout named crm_rules comes first for them
# too, or they measured whatever version was installed (and one left half-removed failed to import).
CHILD_ENV = ({**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT.parent), os.environ.get("PYTHONPATH")]))}
             if ROOT.name == "crm_rules" else None)

from peers import compare_runs  # noqa: E402
from generate import generate  # noqa: E402
from report import PEERS, growth, table, targets  # noqa: E402

AS_OF = "2026-06-30"
POLICY = "base"
PEER_RULES = HERE / "peer_rules.yaml"  # the base policy cut down to what the peers compute

# Prepended to each measured script (as bench/peers.py measures itself).
PEAK_MB = textwrap.dedent("""
    import resource
    def peak_mb():
        # high-water mark since exec; ru_maxrss would also count the parent's memory before exec
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
""")

BASELINE = PEAK_MB + textwrap.dedent("""
    import json, sqlite3, sys, time
    from crm_rules.engine.date_windows import window_start  # the engine's definition of "12 months ending on"
    conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    conn.execute("PRAGMA threads=4")
    t = time.perf_counter()
    conn.execute('''CREATE TEMP TABLE agg AS
        SELECT customer_id,
               SUM(CASE WHEN order_date >= :start THEN amount END) AS revenue_12m,
               COUNT(CASE WHEN order_date >= :start THEN 1 END) AS orders_12m,
               MAX(order_date) AS last_order,
               SUM(CASE WHEN order_date >= :start THEN amount - cost END) AS profit_12m,
               SUM(CASE WHEN order_date >= :start THEN discount END) AS discount_12m
        FROM orders NOT INDEXED WHERE order_date < :next GROUP BY customer_id''',
        {"start": window_start(sys.argv[2], 12, "months"),
         "next": conn.execute("SELECT date(?, '+1 day')", (sys.argv[2],)).fetchone()[0]})
    seconds = time.perf_counter() - t
    print(json.dumps({"total_s": seconds, "peak_mb": peak_mb()}))
""")

# apply_policy, with the time of each compiled statement recorded by phase.
APPLY = PEAK_MB + textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    import crm_rules.engine.runner as runner
    from crm_rules.engine.policy_model import load_policy
    phases = {"aggregation": 0.0, "rules": 0.0}
    RULES = ("_crm_graded", "_crm_overridden", "_crm_result")
    plain = runner._execute
    def timed(conn, operations, as_of, as_of_next):
        for op in operations:
            t = time.perf_counter()
            plain(conn, [op], as_of, as_of_next)
            if any(name in getattr(op, "sql", "")[:80] for name in RULES):
                phases["rules"] += time.perf_counter() - t
    runner._execute = timed
    scans = runner.run_scans
    def timed_scans(*args, **kwargs):  # the sources' GROUP BYs (in parallel processes when big)
        t = time.perf_counter()
        scans(*args, **kwargs)
        phases["aggregation"] += time.perf_counter() - t
    runner.run_scans = timed_scans
    policy = load_policy(sys.argv[3])
    t = time.perf_counter()
    outcome = runner.apply_policy(Path(sys.argv[1]), policy, sys.argv[2], results_db=Path(sys.argv[4]))
    total = time.perf_counter() - t
    print(json.dumps({"total_s": total, "aggregation_s": phases["aggregation"], "rules_s": phases["rules"],
                      "after_aggregation_s": total - phases["aggregation"], "run_id": outcome.run_id,
                      # the worker processes' peak (scans, window sorts) added: an upper bound of what the run held at once
                      "peak_mb": peak_mb() + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
""")


# `crm-rules explain` of one customer, in a new process timed from outside: what a user waits for.
EXPLAIN = textwrap.dedent("""
    import json, resource, sqlite3, subprocess, sys, time
    db, as_of, policy, results = sys.argv[1:5]
    customer = sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
        "SELECT id FROM customers ORDER BY id LIMIT 1 OFFSET (SELECT count(*) / 2 FROM customers)").fetchone()[0]
    args = [sys.executable, "-m", "crm_rules.cli", "explain", customer, "--db", db, "-p", policy, "--as-of", as_of,
            "--results-db", results]
    t = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0 or "from run" not in done.stdout:  # it must answer from the stored run
        sys.exit(done.stdout[-2000:] + done.stderr[-2000:])
    print(json.dumps({"total_s": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
""")


def run_json(args: list[str]) -> dict:
    done = subprocess.run(args, capture_output=True, text=True, env=CHILD_ENV)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"{' '.join(args[:3])} failed:\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1])
    result["exit_code"] = done.returncode
    return result


def median_of(runs: list[dict]) -> dict:
    out = dict(runs[-1])
    for key in runs[0]:
        if key.endswith("_s") and all(isinstance(r.get(key), (int, float)) for r in runs):
            out[key] = statistics.median(r[key] for r in runs)
    out["peak_mb"] = max(r["peak_mb"] for r in runs)
    out["runs"] = len(runs)
    return out


def in_rounds(repeat: int, contenders: dict[str, tuple[list[str], Callable[[], None] | None]], size: str) -> dict:
    """name -> the median of ``repeat`` runs of that contender's command, run in rounds of one run each.

    Rounds, not one contender's runs after another's: this machine's speed drifts by a fifth over an
    hour, and a size's runs take up to half an hour; in rounds the drift weighs on every contender alike,
    so the ratios to the baseline hold even when the seconds move.
    """
    runs: dict[str, list[dict]] = {name: [] for name in contenders}
    for round_ in range(1, repeat + 1):
        for name, (args, before) in contenders.items():
            print(f"{size}: {name} ({round_} of {repeat})", file=sys.stderr, flush=True)
            if before:
                before()
            runs[name].append(run_json(args))
    return {name: median_of(done) for name, done in runs.items()}


def database(customers: int, orders: int) -> Path:
    data = HERE / ".data"
    data.mkdir(exist_ok=True)
    db = data / f"bench_{customers}_{orders}.db"
    if not db.exists():
        print(f"generating {db.name} ...", file=sys.stderr, flush=True)
        generate(db, customers, orders)
    return db


def _engine_digest() -> str:
    """Digest of the engine's and built-in plugins' source: a reference run is reused only by the same code."""
    import hashlib

    import crm_rules.engine

    root = Path(crm_rules.engine.__file__).resolve().parent.parent
    h = hashlib.sha256()
    for path in sorted([*root.glob("engine/*.py"), *root.glob("plugins/*.py"), *root.glob("policies/*.yaml")]):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()


def reference_run(db: Path) -> int:
    """A run of the policy by this very code, stored in the benchmark database: what peers are checked against."""
    from crm_rules.engine.policy_model import load_policy
    from crm_rules.engine.runner import apply_policy

    marker = db.with_name(db.name + ".reference.json")
    known = json.loads(marker.read_text(encoding="utf-8")) if marker.exists() else {}
    digest = _engine_digest()
    if digest in known:
        return known[digest]
    print(f"writing the reference run into {db.name} ...", file=sys.stderr, flush=True)
    run_id = apply_policy(db, load_policy(POLICY), AS_OF).run_id
    marker.write_text(json.dumps({digest: run_id}), encoding="utf-8")
    return run_id


def measure_size(customers: int, orders: int, repeat: int, peers: list[str]) -> dict:
    db = database(customers, orders)
    run_id = reference_run(db)
    byte_compile()
    warm_user_cache()
    counts = {t: n for t, n in sqlite3.connect(db).execute(
        "SELECT 'customers', count(*) FROM customers UNION ALL SELECT 'orders', count(*) FROM orders "
        "UNION ALL SELECT 'receivables', count(*) FROM receivables UNION ALL SELECT 'interactions', count(*) FROM interactions "
        "UNION ALL SELECT 'contracts', count(*) FROM contracts")}
    results = {"counts": counts}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        out, same_work = Path(tmp) / "results.db", Path(tmp) / "peer-rules.db"
        contenders = {"baseline": ([py, "-c", BASELINE, str(db), AS_OF], None),
                      "crm-rules": ([py, "-c", APPLY, str(db), AS_OF, POLICY, str(out)], _deleting(out)),
                      "explain": ([py, "-c", EXPLAIN, str(db), AS_OF, POLICY, str(out)], None),
                      "peer-rules": ([py, "-c", APPLY, str(db), AS_OF, str(PEER_RULES), str(same_work)],
                                     _deleting(same_work))}
        for peer in peers:
            contenders[peer] = ([py, str(HERE / "peers.py"), peer, str(db), "--as-of", AS_OF, "--run", str(run_id)], None)
        results.update(in_rounds(repeat, contenders, f"{customers:,} x {orders:,}"))
        peer_rules = results["peer-rules"]  # run_id: of its last run, the one its results file holds
        _, peer_rules["mismatches"], _ = compare_runs(same_work, peer_rules["run_id"], db, run_id)
    return results


def byte_compile() -> None:
    """Compile the measured crm_rules (and these scripts) to bytecode, as ``pip install`` does.

    A checkout run with PYTHONDONTWRITEBYTECODE set has no __pycache__, so every measured process compiled
    the engine's modules from source: a quarter of a second of each `explain` (0.25 s of 0.9 s), and the
    plugins imported during `apply`.  A user's installed crm-rules does not pay that; neither do the peers,
    whose packages pip compiled.  Bytecode that is already there and current is left as it is.
    """
    import compileall

    import crm_rules

    root = Path(crm_rules.__file__).resolve().parent
    for folder in (root / "engine", root / "plugins", HERE):
        compileall.compile_dir(folder, maxlevels=0, quiet=1)
    for module in root.glob("*.py"):
        compileall.compile_file(module, quiet=1)


def warm_user_cache() -> None:
    """Fill the user cache (engine/user_cache.py) as a machine's first command would, so no measured run pays
    for it: the grammar tables, the checked schemas and the tokens of both policies' compiled SQL, by a dry run
    of each on a small database (the SQL is the same at every size)."""
    from crm_rules.engine.policy_model import load_policy
    from crm_rules.engine.runner import apply_policy

    small = database(2_000, 20_000)
    for policy in (POLICY, str(PEER_RULES)):
        apply_policy(small, load_policy(policy), AS_OF, dry_run=True)


def _deleting(results: Path) -> Callable[[], None]:
    """What runs before each apply writing to ``results``: a fresh database (and no WAL), so every run writes alike."""
    def delete() -> None:
        for p in results.parent.glob(results.name + "*"):
            p.unlink()
    return delete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000x100000,100000x1000000",
                        help="comma-separated CUSTOMERSxORDERS, e.g. 1000000x10000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated, or '' for none")
    parser.add_argument("--json", type=Path, help="also write every measurement as JSON here")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    args = parser.parse_args()
    peers = [p for p in args.peers.split(",") if p]
    sizes = {}
    for size in args.sizes.split(","):
        customers, orders = (int(x) for x in size.lower().split("x"))
        sizes[f"{customers:,}/{orders:,}"] = measure_size(customers, orders, args.repeat, peers)
    lines = [f"Median of {args.repeat} runs each, taken in rounds, fresh process per run; "
             "peak memory = the process's VmHWM.", ""]
    lines += table(sizes) + [""]
    if grown := growth(sizes):
        lines += ["Where only the orders grow:", ""] + grown + [""]
    lines += targets(sizes)
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(sizes, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
