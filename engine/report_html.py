"""``crm-rules report``: one self-contained HTML page about a run, written atomically.

The page is built from :func:`report_data.gather` with f-strings; every value that comes from the
database (customer names, labels, reasons, owners) goes through ``html.escape``, and the only
script is the static table filter of :mod:`report_assets`, so a customer called
``<script>...`` is shown as text, never run.  Nothing is loaded at view time: CSS, script and
SVG charts are inline, and the page names no external address.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from . import __version__
from .database import connect
from .output_file import check_out, write_atomic
from .report_assets import CSS, JS
from .report_data import MAX_ROWS, gather
from .report_svg import (OTHER, OUTCOME_COLORS, STAGE_COLORS, column_chart, compact, esc, funnel_chart, hbar_chart,
                         pareto_chart, pct, stacked_chart, tier_color)

AGING_COLORS = ("#22c55e", "#facc15", "#fb923c", "#f97316", "#ef4444", "#b91c1c", "#7f1d1d")
CATEGORY_COLORS = ("#2563eb", "#0d9488", "#7c3aed", "#d97706", "#db2777", "#0891b2", "#64748b")


def write_report(db: Path, out: Path, run_id: int | None = None, policy: str | None = None,
                 results_db: Path | None = None, max_rows: int = MAX_ROWS, now: dt.datetime | None = None) -> dict:
    """Gather, render and write the report (temp file + rename: a failure leaves no half-written page)."""
    out = Path(out)
    check_out(out, reads={"the --db file": db, "the --results-db file": results_db}, example="report.html")
    if results_db is not None:
        connect(db, mode="ro").close()  # --db is then the customer data: a typo in it must not pass unnoticed
    data = gather(results_db or db, run_id, policy, source_db=db, max_rows=max_rows)
    generated = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    page = render(data, generated)
    write_atomic(out, page.encode("utf-8"))
    c = data["customers"]
    return {"out": str(out), "run_id": data["run"]["run_id"], "policy_name": data["run"]["policy_name"],
            "as_of": data["run"]["as_of"], "customers": c["total"], "rows": c["shown"], "bytes": len(page.encode("utf-8"))}


# --- helpers ---------------------------------------------------------------------------------------

class _Labels:
    """Tier, stage, sub-grade and service-level display names and tier colours, from crm_definitions."""

    def __init__(self, data: dict):
        d = data["definitions"]
        self.tier_ids = [t["id"] for t in data["tiers"]]
        self.colors = {t: tier_color(i) for i, t in enumerate(self.tier_ids)}
        self.names = {kind: {x["id"]: x["label"] for x in d.get(kind, [])} for kind in d}
        self.stage_ids = [s["id"] for s in d.get("stage", [])]

    def label(self, kind: str, id_) -> str:
        return self.names.get(kind, {}).get(id_, "") if id_ is not None else ""

    def full(self, kind: str, id_) -> str:
        label = self.label(kind, id_)
        return f"{id_} · {label}" if label else ("—" if id_ is None else str(id_))

    def tag(self, tier) -> str:
        if tier is None:
            return '<span class="muted">—</span>'
        return (f'<span class="tag" style="--c:{self.colors.get(tier, OTHER)}" title="{esc(self.label("tier", tier))}">'
                f'{esc(tier)}</span>')


def _n(x) -> str:
    return "—" if x is None else f"{x:,}" if isinstance(x, int) else f"{x:,.0f}"


def _value(x) -> tuple[str, str | None]:
    """(display text, sort value) of a stored metric value."""
    if x is None:
        return "—", ""
    if isinstance(x, bool):
        return ("true" if x else "false"), None  # as the policy writes it, not Python's True
    if not isinstance(x, (int, float)):
        return str(x), None
    if isinstance(x, int) or float(x).is_integer() and abs(x) >= 100:
        return f"{x:,.0f}", repr(x)
    return (f"{x:,.0f}" if abs(x) >= 1000 else f"{x:,.2f}"), repr(x)


def _section(id_: str, title: str, lead: str, body: str) -> str:
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{id_}"><h2>{esc(title)}</h2>{lead_html}{body}</section>'


# --- the page ----------------------------------------------------------------------------------

def render(data: dict, generated: str) -> str:
    labels = _Labels(data)
    run, policy = data["run"], data["policy"]
    title = f"{policy['name']} · as of {run['as_of']} · run {run['run_id']}"
    sections = [_pareto(data, labels), _tiers(data, labels), _funnels(data, labels), _transitions(data, labels),
                _credit(data, labels), _actions(data, labels), _customers(data, labels)]
    nav = "".join(f'<a href="#{i}">{esc(t)}</a>' for i, t in (
        ("pareto", "Pareto"), ("tiers", "Tiers"), ("lifecycle", "Lifecycle"), ("transitions", "Transitions"),
        ("credit", "Credit"), ("actions", "Actions"), ("customer-table", "Customers")))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="crm-rules {esc(__version__)}">
<link rel="icon" href="data:,">
<title>{esc(title)} · crm-rules report</title>
<style>{CSS}</style>
</head>
<body>
{_header(data, generated)}
<nav class="toc"><div class="wrap">{nav}</div></nav>
<main class="wrap">
{_kpis(data, labels)}
{_notes(data)}
{''.join(sections)}
</main>
<footer class="wrap">Generated {esc(generated)} by crm-rules {esc(__version__)} from run {run['run_id']}
(<code>crm_runs</code>, <code>crm_assignments</code>, <code>crm_actions</code>) of {esc(run['source_db'] or 'the database')}.
Self-contained: this file loads nothing from the network.</footer>
<script>{JS}</script>
</body>
</html>
"""


def _header(data: dict, generated: str) -> str:
    run, policy = data["run"], data["policy"]
    version = f'<span class="ver">v{esc(policy["version"])}</span>' if policy["version"] else ""
    desc = f'<p class="desc">{esc(policy["description"].strip())}</p>' if policy["description"] else ""
    meta = [("As of", esc(run["as_of"])), ("Run", f"#{run['run_id']}"),
            ("Policy hash", f'<code title="sha256 {esc(policy["sha256"])}">{esc(policy["sha256"][:12])}</code>'),
            ("Customers", _n(run["customers"])), ("Finished", esc((run["finished_at"] or "")[:16].replace("T", " "))),
            ("Generated", esc(generated)), ("Engine", esc(run["engine_version"] or "?"))]
    items = "".join(f"<div><dt>{k}</dt><dd>{v}</dd></div>" for k, v in meta)
    return (f'<header class="top"><div class="wrap"><div class="brand">crm-rules · customer policy report</div>'
            f'<h1>{esc(policy["name"])}{version}</h1>{desc}<dl class="meta">{items}</dl></div></header>')


def _kpis(data: dict, labels: _Labels) -> str:
    tiers, run = data["tiers"], data["run"]
    total_rev = sum(t["revenue"] or 0 for t in tiers) if data["policy"]["revenue_metric"] else None
    cards = [("Customers graded", _n(run["customers"]), f"{len(tiers)} tiers")]
    if total_rev is not None:
        cards.append(("Revenue", compact(total_rev), f"{_n(total_rev)} · {data['policy']['revenue_label']}"))
    if tiers and tiers[0]["revenue_share"] is not None:
        top = tiers[0]
        cards.append((f"Tier {top['id']} share of revenue", pct(top["revenue_share"]),
                      f"from {pct(top['customer_share'])} of customers ({_n(top['customers'])})"))
    a = data["actions"]
    cards.append(("Actions", _n(a["total"]), f"{_n(a['due_soon'])} due by {a['soon']}"))
    for c in data["credit"][:1]:
        stopped = c["totals"].get("block", 0) + c["totals"].get("hold", 0)
        cards.append(("Credit hold or block", _n(stopped),
                      f"{pct(stopped / run['customers'] if run['customers'] else 0)} of customers ({c['label']})"))
    tr = data["transitions"]
    pruned = tr["pruned"]
    if tr["previous"]:
        t = tr["totals"]
        # moves between tiers of which one is gone (a tier renamed) are neither up nor down: said, not left out,
        # or "↑1 ↓0" stood for a run in which 662 customers left the renamed tier
        cards.append(("Tier changes", f"↑{t['upgrades']:,} ↓{t['downgrades']:,}",
                      f"since run #{tr['previous']['run_id']} ({tr['previous']['as_of']})"
                      + (f"; {t['unranked']:,} to or from a tier this run lacks" if t["unranked"] else "")
                      + (f"; {pruned:,} pruned between" if pruned else "")))
    elif pruned:  # the oldest run prune kept is not the policy's first
        cards.append(("Tier changes", "—", f"no earlier run kept ({pruned:,} pruned)"))
    elif tr["made_before"]:  # a backfill of the policy's earliest date
        cards.append(("Tier changes", "—", "earliest date of this policy (a backfill)"))
    else:
        cards.append(("Tier changes", "—", "first run of this policy"))
    body = "".join(f'<div class="kpi"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div>'
                   f'<div class="s">{esc(s)}</div></div>' for k, v, s in cards)
    return f'<div class="kpis">{body}</div>'


def _notes(data: dict) -> str:
    notes = list(data["run"]["notes"])
    if data["errors"]:
        notes.append(f"{data['errors']:,} plugin error(s) were recorded for this run (crm_errors)")
    if data["run"]["overrides"]:
        notes.append(f"{data['run']['overrides']:,} customer(s) have a manual tier override")
    if not notes:
        return ""
    return '<div class="note warn" style="margin-bottom:22px">' + "<br>".join(esc(n) for n in notes) + "</div>"


# --- 1. Pareto ---------------------------------------------------------------------------------

def _pareto(data: dict, labels: _Labels) -> str:
    p, tiers = data["pareto"], data["tiers"]
    metric = data["policy"]["revenue_label"] or data["policy"]["revenue_metric"]
    if not p or not p["points"]:
        why = ("the policy names no revenue metric (summary: revenue:) and has no tier metric" if not p
               else "no customer has revenue in this run")
        return _section("pareto", "Pareto curve", "", f'<div class="note">No Pareto curve: {esc(why)}.</div>')
    segments, cutoffs = [], []
    x0 = y0 = 0.0
    for i, t in enumerate(tiers):
        x1 = x0 + t["customer_share"]
        y1 = y0 + (t["curve_share"] or 0)
        color = labels.colors[t["id"]]
        segments.append({"x0": x0, "x1": min(x1, 1.0), "id": t["id"], "color": color,
                         "title": f"{t['id']} {t['label']}: {t['customers']:,} customers, {pct(t['curve_share'])} of revenue"})
        if i < len(tiers) - 1 and t["customers"]:
            cutoffs.append({"x": min(x1, 1.0), "y": min(y1, 1.0), "color": color,
                            "label": f"{t['id']} ends: top {pct(x1)} of customers",
                            "sublabel": f"hold {pct(y1)} of revenue",
                            "title": f"tiers up to {t['id']}: {pct(x1)} of customers, {pct(y1)} of revenue"})
        x0, y0 = x1, y1
    chart = pareto_chart(p["points"], cutoffs, segments)
    pareto_policy = data["policy"]["tier_method"] == "pareto"
    rows = "".join(
        f"<tr><td>{labels.tag(t['id'])} <span class=tl>{esc(t['label'])}</span></td><td class=num>{_n(t['customers'])}</td>"
        f"<td class=num>{pct(t['customer_share'])}</td><td class=num>{pct(t['curve_share'])}</td>"
        + (f"<td class=num>{pct(t['target'], 0) if t['target'] is not None else 'rest'}</td>" if pareto_policy else "")
        + "</tr>" for t in tiers)
    target_head = "<th class=num title='cumulative revenue share the tier reaches up to'>Cut-off</th>" if pareto_policy else ""
    table = (f'<table class="compact"><thead><tr><th>Tier</th><th class=num>Cust.</th><th class=num>% cust.</th>'
             f'<th class=num>% rev.</th>{target_head}</tr></thead><tbody>{rows}</tbody></table>')
    extra = (f'<p class="muted">{p["negative"]:,} customer(s) with negative {esc(metric)} count as 0 on the curve '
             f'and in "% rev." here, as in Pareto tiers; the tier section shows net revenue.</p>' if p["negative"] else "")
    lead = (f"Customers sorted by {esc(metric)} (<code>{esc(data['policy']['revenue_metric'])}</code>), highest first; "
            f"the curve is the share of all revenue held by the top x% of customers. Dashed lines mark where each tier ends.")
    body = (f'<div class="card pareto"><div>{chart}</div><div><h3>Tiers<small>{esc(metric)}</small></h3>{table}{extra}'
            f'<p class="muted" style="margin-top:12px">The dashed diagonal is what an equal share for every customer would give.</p></div></div>')
    return _section("pareto", "Pareto curve", lead, body)


# --- 2. tiers ---------------------------------------------------------------------------------

def _tiers(data: dict, labels: _Labels) -> str:
    tiers = data["tiers"]
    people = [{"name": t["id"], "sub": t["label"], "value": t["customers"], "color": labels.colors[t["id"]],
               "text": f"{t['customers']:,} · {pct(t['customer_share'])}"} for t in tiers]
    cards = [f'<div class="card"><h3>Customers per tier</h3>{hbar_chart(people, "Customers per tier")}</div>']
    if data["policy"]["revenue_metric"]:
        money = [{"name": t["id"], "sub": t["label"], "value": t["revenue"] or 0, "color": labels.colors[t["id"]],
                  "text": f"{compact(t['revenue'])} · {pct(t['revenue_share'])}",
                  "title": f"{t['id']}: {_n(t['revenue'])} ({pct(t['revenue_share'])})"} for t in tiers]
        cards.append(f'<div class="card"><h3>Revenue per tier<small>{esc(data["policy"]["revenue_label"])}</small></h3>'
                     f'{hbar_chart(money, "Revenue per tier")}</div>')
    else:
        cards.append('<div class="card"><h3>Revenue per tier</h3><p class="muted">The policy names no revenue metric.</p></div>')
    return _section("tiers", "Customers and revenue per tier", "", f'<div class="grid2">{"".join(cards)}</div>')


# --- 3. lifecycle funnels ------------------------------------------------------------------------

def _funnels(data: dict, labels: _Labels) -> str:
    grid = data["tier_stage"]
    stages = labels.stage_ids + sorted({s for cells in grid.values() for s in cells if s not in labels.stage_ids}
                                       - {None}, key=str)
    if not stages:
        return _section("lifecycle", "Lifecycle per tier", "",
                        '<div class="note">The policy defines no lifecycle stages.</div>')
    colors = {s: STAGE_COLORS[i % len(STAGE_COLORS)] for i, s in enumerate(stages)}
    cards = []
    for t in data["tiers"]:
        cells = grid.get(t["id"], {})
        total = sum(cells.values())
        if not total:
            continue
        items = [{"name": labels.label("stage", s) or s, "value": cells.get(s, 0), "color": colors[s],
                  "text": f"{cells.get(s, 0):,} · {pct(cells.get(s, 0) / total, 0)}",
                  "title": f"{t['id']} · {labels.label('stage', s) or s}: {cells.get(s, 0):,} of {total:,}"}
                 for s in stages]
        cards.append(f'<div class="card"><h3>{labels.tag(t["id"])} {esc(t["label"])}<small>{total:,} customers</small>'
                     f'</h3>{funnel_chart(items, "Lifecycle stages of tier " + t["id"])}</div>')
    lead = "Customers of each tier by lifecycle stage, in the policy's stage order; bar widths are relative within the tier."
    return _section("lifecycle", "Lifecycle per tier", lead, f'<div class="grid3">{"".join(cards)}</div>')


# --- 4. transitions ----------------------------------------------------------------------------

def _transitions(data: dict, labels: _Labels) -> str:
    tr, run = data["transitions"], data["run"]
    pruned = tr["pruned"]
    if tr["previous"] is None and pruned:
        were = f"{pruned:,} earlier successful run{'s' if pruned != 1 else ''} of it {'were' if pruned != 1 else 'was'}"
        body = (f'<div class="note">Run #{run["run_id"]} has no earlier run of policy <b>{esc(run["policy_name"])}</b> '
                f'kept in this database: {were} pruned (<code>crm-rules prune</code>), so there is no previous run to '
                f'compare it with. The next run of the policy (a later <code>--as-of</code>) is compared with this '
                f'one.</div>')
        return _section("transitions", "Tier transitions", "", body)
    if tr["previous"] is None and tr["made_before"]:
        n = tr["made_before"]
        body = (f'<div class="note">Run #{run["run_id"]} grades the earliest date of policy '
                f'<b>{esc(run["policy_name"])}</b> in this database (a backfill, made after {n:,} '
                f'run{"s" if n != 1 else ""} of later dates): there is no run before it to compare it with. '
                f'The run of the next later date is compared with this one.</div>')
        return _section("transitions", "Tier transitions", "", body)
    if tr["previous"] is None:
        body = (f'<div class="note">Run #{run["run_id"]} is the first successful run of policy '
                f'<b>{esc(run["policy_name"])}</b> in this database: there is no previous run to compare it with. '
                f'Apply the policy again (a later <code>--as-of</code>) to see customers move between tiers.</div>')
        return _section("transitions", "Tier transitions", "", body)
    prev, totals = tr["previous"], tr["totals"]
    counts = {(c["from"], c["to"]): c["customers"] for c in tr["cells"]}
    befores = [t for t in tr["tiers"] if any(f == t for f, _ in counts)] + ([None] if any(f is None for f, _ in counts) else [])
    afters = list(labels.tier_ids) + [t for t in tr["tiers"] if t not in labels.tier_ids and any(to == t for _, to in counts)]
    afters += [None] if any(to is None for _, to in counts) else []
    rank = {t: i for i, t in enumerate(labels.tier_ids)}
    top_same = max((n for (f, to), n in counts.items() if f == to), default=1) or 1
    top_moved = max((n for (f, to), n in counts.items() if f != to), default=1) or 1
    head = "".join(f"<th>{labels.tag(t) if t is not None else 'removed'}</th>" for t in afters)
    rows = []
    for f in befores:
        cells = []
        for to in afters:
            n = counts.get((f, to), 0)
            diag = f is not None and f == to
            shade = _shade(rank, f, to, n / (top_same if diag else top_moved)) if n else ""
            cells.append(f'<td class="{"diag" if diag else ""}" style="{shade}" '
                         f'title="{esc(_move(f, to, n))}">{_n(n) if n else "·"}</td>')
        row_total = sum(counts.get((f, to), 0) for to in afters)
        head_cell = f'{labels.tag(f)} <span class="tl">{esc(labels.label("tier", f))}</span>' if f is not None else "new"
        rows.append(f'<tr><th class="row">{head_cell}</th>{"".join(cells)}'
                    f'<td class="total">{row_total:,}</td></tr>')
    col_totals = "".join(f'<td class="total">{sum(counts.get((f, to), 0) for f in befores):,}</td>' for to in afters)
    table = (f'<div class="card" style="overflow-x:auto"><table class="matrix" id="transition-matrix"><thead><tr>'
             f'<th class="row">before ↓ / after →</th>{head}<th class="total">total</th></tr></thead>'
             f'<tbody>{"".join(rows)}<tr><th class="row total">total</th>{col_totals}'
             f'<td class="total">{sum(counts.values()):,}</td></tr></tbody></table></div>')
    chips = (f'<div class="chips"><span class="chip up"><b>{totals["upgrades"]:,}</b> upgraded</span>'
             f'<span class="chip down"><b>{totals["downgrades"]:,}</b> downgraded</span>'
             f'<span class="chip" title="their tier stayed; their stage may have changed">'
             f'<b>{totals["kept_tier"]:,}</b> kept their tier</span>'
             f'<span class="chip"><b>{totals["new"]:,}</b> new</span>'
             f'<span class="chip"><b>{totals["removed"]:,}</b> removed</span>'
             + (f'<span class="chip"><b>{totals["unranked"]:,}</b> to or from a tier this run lacks</span>'
                if totals["unranked"] else "") + "</div>")
    changed = (f'<div class="note warn" style="margin-bottom:12px">The policy changed between the runs (sha256 '
               f'<code>{esc(prev["policy_sha256"][:12])}</code> → <code>{esc(run["policy_sha256"][:12])}</code>): '
               f'some moves come from the new rules, not from the customers.</div>' if prev["policy_changed"] else "")
    lead = (f"Tier of each customer in run #{prev['run_id']} (as of {esc(prev['as_of'])}, rows) and in this run "
            f"(as of {esc(run['as_of'])}, columns); the outlined diagonal kept their tier, green moved up, red moved down. "
            f"<code>crm-rules changes --run {run['run_id']}</code> lists them.")
    return _section("transitions", "Tier transitions", lead, changed + chips + table)


def _shade(rank: dict, before, after, share: float) -> str:
    """Cell colour: grey kept the tier, green moved up, red moved down, blue new, removed or unranked."""
    if before == after:
        rgb = "100,116,139"
    elif before in rank and after in rank:
        rgb = "22,163,74" if rank[after] < rank[before] else "220,38,38"
    else:
        rgb = "37,99,235"
    return f"background:rgba({rgb},{0.08 + 0.42 * share:.2f})"


def _move(before, after, n: int) -> str:
    return f"{before if before is not None else 'new'} → {after if after is not None else 'removed'}: {n:,}"


# --- 5. credit ---------------------------------------------------------------------------------

def _outcome_keys(totals: dict) -> list[str]:
    known = [k for k in OUTCOME_COLORS if k in totals]
    return known + sorted((k for k in totals if k not in OUTCOME_COLORS), key=lambda k: (k is None, str(k)))


def _aging_chart(buckets: list[dict], title: str) -> str:
    items = [{"name": b["label"], "value": b["amount"] or 0, "text": compact(b["amount"] or 0),
              "sub": f"{b['customers']:,} customers" if b.get("customers") is not None else "",
              "color": AGING_COLORS[min(i, len(AGING_COLORS) - 1)] if buckets[0]["label"] == "not yet due"
              else AGING_COLORS[min(i + 1, len(AGING_COLORS) - 1)],
              "title": f"{b['label']}: {_n(b['amount'])}"} for i, b in enumerate(buckets)]
    return f'<div class="card"><h3>Receivables aging<small>{esc(title)}</small></h3>{column_chart(items, "Receivables aging")}</div>'


def _credit(data: dict, labels: _Labels) -> str:
    blocks = []
    for c in data["credit"]:
        keys = _outcome_keys(c["totals"])
        colors = {k: OUTCOME_COLORS.get(k, OTHER) for k in keys}
        rows = [{"name": "All", "sub": f"{sum(c['totals'].values()):,} customers", "counts": c["totals"]}]
        rows += [{"name": t["id"], "sub": t["label"], "color": labels.colors[t["id"]], "counts": c["by_tier"].get(t["id"], {})}
                 for t in data["tiers"] if c["by_tier"].get(t["id"])]
        legend = "".join(f'<span><span class="dot" style="background:{colors[k]}"></span>{esc(k)} '
                         f'<b>{c["totals"][k]:,}</b></span>' for k in keys)
        outcome = (f'<div class="card"><h3>Credit outcome<small>{esc(c["label"])} · '
                   f'<code>{esc(c["name"])}_outcome</code></small></h3>'
                   f'{stacked_chart(rows, keys, colors, "Credit outcome per tier")}<div class="legend">{legend}</div></div>')
        aging = (_aging_chart(c["aging"], f"open on {data['run']['as_of']}, by days past due")
                 if c["aging"] else '<div class="card"><p class="muted">This credit check stores no aging buckets.</p></div>')
        blocks.append(f'<div class="grid2">{outcome}{aging}</div>')
    if not data["credit"]:
        src = data["aging_source"] or {}
        note = '<div class="note">This run has no credit check, so there are no credit outcomes.</div>'
        if src.get("buckets"):
            aging = _aging_chart(src["buckets"], f"computed from {src['table']} in {src['db']} as of {data['run']['as_of']}")
            blocks.append(f'{note}<div class="grid2" style="margin-top:16px">{aging}<div></div></div>')
        else:
            blocks.append(f'{note}<p class="muted">No receivables aging: {esc(src.get("reason", "not available"))}.</p>')
    lead = "What the credit check decided for each customer (ok / warn / hold / block) and the receivables that are open, by days past due."
    return _section("credit", "Credit and receivables", lead, "".join(blocks))


# --- 6. actions --------------------------------------------------------------------------------

def _actions(data: dict, labels: _Labels) -> str:
    a = data["actions"]
    if not a["total"]:
        return _section("actions", "Action queue", "", '<div class="note">This run produced no actions.</div>')
    cats = {c["category"]: CATEGORY_COLORS[i % len(CATEGORY_COLORS)] for i, c in enumerate(a["by_category"])}
    bars = [{"name": x["action"], "sub": f"{x['category']} · {x['plugin']}", "value": x["count"],
             "color": cats.get(x["category"], OTHER), "text": f"{x['count']:,}",
             "title": f"{x['action']}: {x['count']:,} actions for {x['customers']:,} customers; "
                      f"{x['due_soon']:,} due by {a['soon']}"} for x in a["by_action"]]
    legend = "".join(f'<span><span class="dot" style="background:{cats[c["category"]]}"></span>{esc(c["category"])} '
                     f'<b>{c["count"]:,}</b></span>' for c in a["by_category"])
    chart = (f'<div class="card"><h3>Actions by type<small>{a["total"]:,} in all</small></h3>'
             f'{hbar_chart(bars, "Actions by type", label_width=200)}<div class="legend">{legend}</div></div>')
    action_rows = "".join(
        f'<tr><td>{esc(x["action"])}</td><td>{esc(x["category"])}</td><td class=num>{x["count"]:,}</td>'
        f'<td class=num>{x["customers"]:,}</td><td class=num>{_n(x["priority"])}</td><td class=nowrap>{esc(x["next_due"] or "—")}</td>'
        f'<td class=num>{x["due_soon"]:,}</td></tr>' for x in a["by_action"])
    prio = " ".join(f'<span class="pill">P{esc(p["priority"]) if p["priority"] is not None else "–"}: '
                    f'{p["count"]:,}</span>' for p in a["by_priority"])
    summary = (f'<div class="card"><h3>Queue<small>{a["due_soon"]:,} due within {a["days"]} days (by {esc(a["soon"])})'
               f'</small></h3><div class="chips">{prio}</div><table><thead><tr><th>Action</th><th>Category</th>'
               f'<th class=num>Actions</th><th class=num>Customers</th><th class=num>Top prio.</th><th>Next due</th>'
               f'<th class=num>Due soon</th></tr></thead><tbody>{action_rows}</tbody></table></div>')
    owner_rows = "".join(
        f'<tr><td>{esc(o["owner"]) if o["owner"] is not None else "<span class=muted>(unassigned)</span>"}</td>'
        f'<td class=num>{o["count"]:,}</td><td class=num>{o["due_soon"]:,}</td><td class=num>{_n(o["priority"])}</td></tr>'
        for o in a["by_owner"])
    more = (f'<p class="muted">… and {a["owners"] - len(a["by_owner"]):,} more owners with {a["owners_more"]:,} actions.</p>'
            if a["owners"] > len(a["by_owner"]) else "")
    owners = (f'<div class="card"><h3>By owner<small>{a["owners"]:,} owners</small></h3><table><thead><tr><th>Owner</th>'
              f'<th class=num>Actions</th><th class=num>Due soon</th><th class=num>Top prio.</th></tr></thead>'
              f'<tbody>{owner_rows}</tbody></table>{more}</div>')
    due_rows = "".join(
        f'<tr><td class=nowrap>{esc(x["due_date"])}</td><td class=num>{_n(x["priority"])}</td><td>{esc(x["action"])}</td>'
        f'<td class=mono>{esc(x["customer_id"])}</td><td>{esc(x["customer_name"] or "")}</td><td>{labels.tag(x["tier"])}</td>'
        f'<td>{esc(x["owner"] or "—")}</td><td>{esc(x["reason"] or "")}</td></tr>' for x in a["due_soon_list"])
    shown = len(a["due_soon_list"])
    due_note = f" (first {shown:,} of {a['due_soon']:,})" if a["due_soon"] > shown else ""
    due = (f'<div class="card" style="margin-top:16px"><h3>Due soon<small>due by {esc(a["soon"])}{due_note}</small></h3>'
           + (f'<div class="scroll" style="max-height:420px"><table><thead><tr><th>Due</th><th class=num>Prio.</th>'
              f'<th>Action</th><th>Customer</th><th>Name</th><th>Tier</th><th>Owner</th><th>Reason</th></tr></thead>'
              f'<tbody>{due_rows}</tbody></table></div>' if due_rows else '<p class="muted">Nothing is due soon.</p>')
           + "</div>")
    lead = (f"The work this run queued in <code>crm_actions</code>: what, for whom, and by when. "
            f"<code>crm-rules actions --run {data['run']['run_id']}</code> lists every action.")
    return _section("actions", "Action queue", lead,
                    f'<div class="grid2">{chart}{owners}</div><div style="margin-top:16px">{summary}</div>{due}')


# --- 7. customers ------------------------------------------------------------------------------

def _customers(data: dict, labels: _Labels) -> str:
    c = data["customers"]
    metrics = c["metrics"]
    numeric = [all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in
                   (r[6 + i] for r in c["rows"])) for i in range(len(metrics))]
    heads = ["<th>Customer</th>", "<th>Name</th>", "<th>Tier</th>", "<th>Sub-grade</th>", "<th>Stage</th>",
             "<th>Service level</th>"]
    heads += [f'<th{" class=num data-type=num" if numeric[i] else ""} title="{esc(m["label"])}">{esc(m["name"])}</th>'
              for i, m in enumerate(metrics)]
    body = []
    for r in c["rows"]:
        cid, name, tier, sub, stage, service = r[:6]
        cells = [f'<td class=mono>{esc(cid)}</td>', f'<td class=name>{esc(name or "")}</td>',
                 f'<td data-v="{esc(tier)}">{labels.tag(tier)}</td>',
                 f'<td title="{esc(labels.label("subgrade", sub))}">{esc(sub or "—")}</td>',
                 f'<td data-v="{esc(stage or "")}">{esc(labels.label("stage", stage) or stage or "—")}</td>',
                 f'<td title="{esc(labels.label("service_level", service))}">{esc(service or "—")}</td>']
        for i, v in enumerate(r[6:]):
            text, key = _value(v)
            if numeric[i]:
                cells.append(f'<td class=num data-v="{esc(key)}">{esc(text)}</td>')
            elif text in OUTCOME_COLORS:
                cells.append(f'<td><span class="pill {text}">{esc(text)}</span></td>')
            else:
                cells.append(f"<td>{esc(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    by = f" by {esc(data['policy']['revenue_label'])}, highest first" if c["ordered_by"] else " by customer id"
    if c["shown"] < c["total"]:
        first = "top" if c["ordered_by"] else "first"
        note = (f'<div class="note warn" style="margin-bottom:10px">This page embeds the {first} {c["shown"]:,} of '
                f'{c["total"]:,} customers{by}, to stay fast to open. '
                f'<code>crm-rules export --run {data["run"]["run_id"]}</code> gives all of them; '
                f'<code>--rows</code> changes how many the report embeds.</div>')
    else:
        note = ""
    who = f"{c['shown']:,} of {c['total']:,} customers" if c["shown"] < c["total"] else "Every graded customer"
    lead = f"{who}{by}. Type to filter (id, name, tier, stage, service level, any value); click a column header to sort."
    toolbar = (f'<div class="toolbar"><input id="customer-search" type="search" autocomplete="off" '
               f'placeholder="Filter customers: id, name, tier, stage, service level…" aria-label="Filter customers">'
               f'<span id="customer-count" class="muted">{c["shown"]:,} rows</span></div>')
    table = (f'<div class="scroll"><table id="customers"><thead><tr>{"".join(heads)}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table></div>')
    return _section("customer-table", "Customers", lead, note + toolbar + table)
