"""Benchmark: `crm-rules apply` against a hand-written aggregation baseline.

Usage: python bench/apply_scale.py [--customers 100000] [--repeat 3] [--policy base]

Generates (once, cached under bench/.data/) a demo database of the given size,
then measures, in the same run and on the same file:

- baseline: the hand-written SQLite query computing, for every customer, the
  order aggregates a grading needs (12-month revenue, order count, last order
  date, profit, discount) into a table;
- core: `crm-rules apply --dry-run` with the policy stripped of its plugin
  sections (scores, credit, actions) and of service levels that depend on them;
- apply: the same with the whole policy, plugins included (value score, RFM,
  credit check, exit-barrier and churn actions).

Each figure is the median of --repeat runs in a fresh process, reported as a
ratio to the baseline together with the peak memory of that process.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

HERE = Path(__file__).parent

BASELINE = textwrap.dedent("""
    import resource, sqlite3, sys, time
    conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
    conn.execute("PRAGMA threads=2")
    t = time.perf_counter()
    conn.execute('''CREATE TEMP TABLE agg AS
        SELECT customer_id,
               SUM(CASE WHEN order_date >= date(:d, '-12 months', '+1 day') AND order_date < date(:d, '+1 day') THEN amount END) AS revenue_12m,
               COUNT(CASE WHEN order_date >= date(:d, '-12 months', '+1 day') AND order_date < date(:d, '+1 day') THEN 1 END) AS orders_12m,
               MAX(CASE WHEN order_date < date(:d, '+1 day') THEN order_date END) AS last_order,
               SUM(CASE WHEN order_date >= date(:d, '-12 months', '+1 day') AND order_date < date(:d, '+1 day') THEN amount - cost END) AS profit_12m,
               SUM(CASE WHEN order_date >= date(:d, '-12 months', '+1 day') AND order_date < date(:d, '+1 day') THEN discount END) AS discount_12m
        FROM orders NOT INDEXED GROUP BY customer_id''', {"d": sys.argv[2]})
    print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")

APPLY = textwrap.dedent("""
    import resource, sys, time
    from pathlib import Path
    from crm_rules.engine.policy_model import load_policy
    from crm_rules.engine.runner import apply_policy
    policy = load_policy(sys.argv[3])
    t = time.perf_counter()
    apply_policy(Path(sys.argv[1]), policy, sys.argv[2], dry_run=True)
    print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def without_plugins(policy: str, directory: Path) -> Path:
    """The resolved policy minus everything plugins compute, as a file."""
    from crm_rules.engine.policy_model import load_policy

    document = dict(load_policy(policy).document)
    for section in ("scores", "credit", "actions"):
        document.pop(section, None)
    document["service_levels"] = [s for s in document.get("service_levels", []) if "when" not in s]
    if "summary" in document:
        document["summary"] = {k: v for k, v in document["summary"].items() if k != "key_metrics"}
    path = directory / "core.yaml"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def measure(code: str, *args: str) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--policy", default="base")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from crm_rules.engine.demo_data import DEMO_AS_OF, generate_demo_database

    data = HERE / ".data"
    data.mkdir(exist_ok=True)
    db = data / f"demo_{args.customers}.db"
    if not db.exists():
        print(f"generating {db} ...", file=sys.stderr)
        counts = generate_demo_database(db, customers=args.customers)
        (data / f"demo_{args.customers}.json").write_text(json.dumps(counts))
    counts = json.loads((data / f"demo_{args.customers}.json").read_text())

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        core = without_plugins(args.policy, Path(tmp))
        for name, code, extra in (("baseline", BASELINE, ()), ("core", APPLY, (str(core),)), ("apply", APPLY, (args.policy,))):
            runs = [measure(code, str(db), DEMO_AS_OF, *extra) for _ in range(args.repeat)]
            results[name] = {"seconds": statistics.median(r[0] for r in runs), "peak_mb": max(r[1] for r in runs) / 1024}
    base = results["baseline"]["seconds"]
    if args.json:
        print(json.dumps({"counts": counts, "results": results}))
        return
    print(f"{counts['customers']:,} customers, {counts['orders']:,} orders, {counts['receivables']:,} receivables, "
          f"{counts['interactions']:,} interactions; median of {args.repeat}")
    print(f"{'what':<10} {'seconds':>9} {'x baseline':>11} {'peak MB':>9}")
    for name, r in results.items():
        print(f"{name:<10} {r['seconds']:>9.2f} {r['seconds'] / base:>11.2f} {r['peak_mb']:>9.0f}")
    print(f"plugin overhead: apply / core = {results['apply']['seconds'] / results['core']['seconds']:.2f}")


if __name__ == "__main__":
    main()
