"""The tables and target lines bench/run.py prints from its measurements.

Kept apart from the measuring so that they can be tested on made-up figures:
``sizes`` maps a size's name ("100,000/1,000,000") to its measurements, each
contender's ``total_s`` and ``peak_mb`` (crm-rules also its phases, peers their
rule evaluation and mismatches) and the row ``counts`` of its database.
"""

from __future__ import annotations

PEERS = ("zen", "rule-engine", "pandas")

#: Peak memory ratio between two runs on the same customers that still counts as "the same": the process's
#: high-water mark moves by a few MB between runs of one size.
MEMORY_SAME = 1.1
#: Time per order between two such runs that still counts as linear growth: what the machine's drift moves.
LINEAR = 1.1


def fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def table(sizes: dict) -> list[str]:
    """Markdown rows: seconds, ratio to the baseline and peak memory per measurement and size."""
    names = list(sizes)
    head = "| what | " + " | ".join(f"{n}: s | x base | MB" for n in names) + " |"
    lines = [head, "|---|" + "---:|" * (3 * len(names))]
    rows = [("baseline query", "baseline", "total_s"), ("crm-rules apply (all, written)", "crm-rules", "total_s"),
            ("  aggregation (all metrics)", "crm-rules", "aggregation_s"),
            ("  after aggregation", "crm-rules", "after_aggregation_s"), ("  rule evaluation", "crm-rules", "rules_s"),
            ("crm-rules apply, the peers' rules only (written)", "peer-rules", "total_s"),
            ("  aggregation (its metrics)", "peer-rules", "aggregation_s"),
            ("  after aggregation", "peer-rules", "after_aggregation_s"),
            ("crm-rules explain of one customer (new process)", "explain", "total_s")]
    for peer in PEERS:
        rows += [(f"{peer} end to end", peer, "total_s"), (f"  {peer} rule evaluation", peer, "rules_s")]
    for label, who, key in rows:
        cells = []
        present = False
        for n in names:
            r = sizes[n].get(who)
            value = r.get(key) if r else None
            present |= value is not None
            base = sizes[n]["baseline"]["total_s"]
            mem = r["peak_mb"] if r and key == "total_s" else None
            cells.append(f"{fmt(value)} | {fmt(value / base if value is not None else None)} | {fmt(mem, '.0f')}")
        if present:
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def targets(sizes: dict) -> list[str]:
    """The targets of issue 6 for the largest size measured, each with its measured value."""
    name = list(sizes)[-1]
    s = sizes[name]
    crm, base = s["crm-rules"], s["baseline"]["total_s"]
    out = [f"Targets at {name}:"]

    def line(what: str, value: float | None, ok: bool | None) -> None:
        verdict = "n/a" if ok is None else ("met" if ok else "NOT met")
        out.append(f"- {what}: {fmt(value)} ({verdict})")

    line("full policy / baseline (<= 1.3)", crm["total_s"] / base, crm["total_s"] / base <= 1.3)
    for peer, factor in (("zen", 20), ("rule-engine", 50)):
        if peer in s and s[peer].get("rules_s"):
            ratio = s[peer]["rules_s"] / max(crm["rules_s"], 1e-9)
            line(f"{peer} rule evaluation / crm-rules rule evaluation (>= {factor})", ratio, ratio >= factor)
    if "zen" in s and s["zen"].get("rules_s"):
        ratio = s["zen"]["rules_s"] / crm["after_aggregation_s"]
        line("zen rule evaluation / crm-rules everything after aggregation (>= 3)", ratio, ratio >= 3)
        if s.get("peer-rules", {}).get("after_aggregation_s"):  # the rules zen evaluates, and the credit check
            ratio = s["zen"]["rules_s"] / s["peer-rules"]["after_aggregation_s"]
            line("zen rule evaluation / crm-rules everything after aggregation, the peers' rules only (>= 3)",
                 ratio, ratio >= 3)
    if "pandas" in s:
        ratio = s["pandas"]["total_s"] / crm["total_s"]
        line("pandas end to end / crm-rules end to end, full policy (> 1)", ratio, ratio > 1)
        ratio = s["pandas"]["total_s"] / s["peer-rules"]["total_s"]
        line("pandas end to end / crm-rules end to end, the peers' rules only (> 1)", ratio, ratio > 1)
    line("crm-rules peak memory MB (< 1024)", crm["peak_mb"], crm["peak_mb"] < 1024)
    if "explain" in s:
        line("explain of one customer, new process, seconds (< 1)", s["explain"]["total_s"], s["explain"]["total_s"] < 1)
    line("crm-rules on the peers' rules only: answers differing from the full run",
         sum(s["peer-rules"]["mismatches"].values()), not any(s["peer-rules"]["mismatches"].values()))
    for peer in PEERS:
        if peer in s:
            line(f"{peer} answers differing from crm-rules", sum(s[peer].get("mismatches", {}).values()),
                 s[peer].get("exit_code") == 0)
    if len(sizes) > 1:
        first = list(sizes)[0]
        a, b = sizes[first], s
        line(f"crm-rules seconds per order, {name} / {first} (linear growth: about 1)",
             _per_order(b) / _per_order(a), None)
    for small, big in orders_alone(sizes):
        a, b = sizes[small], sizes[big]
        per_order = _per_order(b) / _per_order(a)
        line(f"crm-rules seconds per order, {big} / {small}: only the orders grow (linear or better: at most "
             f"{LINEAR})", per_order, per_order <= LINEAR)
        grown = b["crm-rules"]["peak_mb"] / a["crm-rules"]["peak_mb"]
        line(f"crm-rules peak memory, {big} / {small}: only the orders grow (independent: at most {MEMORY_SAME})",
             grown, grown <= MEMORY_SAME)
    return out


def _per_order(measured: dict) -> float:
    return measured["crm-rules"]["total_s"] / measured["counts"]["orders"]


def orders_alone(sizes: dict) -> list[tuple[str, str]]:
    """Pairs of sizes (fewer orders, more orders) with the same number of customers: where only the orders grow."""
    names = sorted(sizes, key=lambda n: (sizes[n]["counts"]["customers"], sizes[n]["counts"]["orders"]))
    return [(a, b) for a, b in zip(names, names[1:])
            if sizes[a]["counts"]["customers"] == sizes[b]["counts"]["customers"]
            and sizes[a]["counts"]["orders"] < sizes[b]["counts"]["orders"]]


def growth(sizes: dict) -> list[str]:
    """Markdown rows: how time and peak memory grow from one size to the next with the same customers.

    Sizes that grow customers and orders together mix two causes; with the customers fixed, the ratio
    of time to the ratio of orders shows whether time is linear in the orders, and peak memory whether it
    depends on them at all."""
    pairs = orders_alone(sizes)
    if not pairs:
        return []
    lines = ["| customers | orders | orders x | what | time x | time per order x | peak MB |",
             "|---:|---:|---:|---|---:|---:|---|"]
    for small, big in pairs:
        a, b = sizes[small], sizes[big]
        k = b["counts"]["orders"] / a["counts"]["orders"]
        for label, who in (("baseline query", "baseline"), ("crm-rules apply (all, written)", "crm-rules"),
                           ("crm-rules apply, the peers' rules only", "peer-rules")):
            if who in a and who in b:
                t = b[who]["total_s"] / a[who]["total_s"]
                lines.append(f"| {a['counts']['customers']:,} | {a['counts']['orders']:,} → {b['counts']['orders']:,} "
                             f"| {k:.1f} | {label} | {t:.2f} | {t / k:.2f} "
                             f"| {a[who]['peak_mb']:.0f} → {b[who]['peak_mb']:.0f} |")
    return lines
