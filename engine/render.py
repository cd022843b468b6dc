"""Terminal rendering of summaries and explanations with rich.

rich measures East Asian wide characters, so Chinese labels line up.
"""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.table import Table

from .counterfactuals import HUGE, read_values, shortfall, value_text
from .explain_since import GRADES
from .terminal_table import print_indented, titled_table, words_fit
from .user_text import escape, one_line


def _e(value: Any) -> str:
    """User text (labels, conditions, reasons) shown verbatim: '[' must not start rich markup, control
    characters are seen, not obeyed (terminal_table.escape)."""
    return escape(str(value))


def fmt_number(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float) and not math.isfinite(value):
        return value_text(value)  # "∞", not "inf"
    if isinstance(value, float) and abs(value) >= HUGE:
        return f"{value:.6g}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) >= 1 or value == 0 else f"{value:.4g}"
    return str(value)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def print_summary(console: Console, summary: dict, labels_by_kind: dict[str, dict[str, str]], header: str) -> None:
    """``labels_by_kind``: per kind (tiers, subgrades, stages, service_levels) the label shown beside each id, ""
    where it is the id itself; kinds are apart, since a service level may share its id with a tier."""
    print_indented(console, header)  # markup; a long one wraps at spaces rather than at the terminal's edge
    tier_labels = labels_by_kind.get("tiers", {})
    total = summary["customers"] or 1
    # numbers never break (a revenue cut to "107,407…" was a figure lost); the revenue metric, which may be a
    # long name, goes in the title, where it wraps instead of widening a column of numbers
    title = "Customers per tier"
    if summary.get("revenue_metric"):
        title += f" (revenue: {_e(summary['revenue_metric'])})"

    def tier_table(with_labels: bool) -> Table:
        columns = ["Tier"] + (["Label"] if with_labels else []) + ["Customers>", "Share>"]
        if summary.get("revenue_metric"):
            columns += ["Revenue>", "Rev. share>"]
        table = titled_table(title, *columns, whole=("Tier", "Revenue"))
        for tier, row in summary["tiers"].items():
            cells = [_e(tier)] + ([_e(tier_labels.get(tier, ""))] if with_labels else [])
            cells += [fmt_number(row["customers"]), pct(row["customers"] / total)]
            if summary.get("revenue_metric"):
                cells += [fmt_number(row["revenue"]), pct(row["revenue_share"])]
            table.add_row(*cells)
        return table

    labelled = any(tier_labels.get(tier) for tier in summary["tiers"])  # else a Label column of empty cells
    tiers = tier_table(labelled)
    if not labelled or words_fit(console, tiers):
        console.print(tiers)
    else:
        # at 60 columns the figures left the labels a column of two characters: a Chinese label took a line for
        # every two of its characters; the labels get a table of their own instead
        console.print(tier_table(False))
        named = titled_table("Tier labels", "Tier", "Label", whole=("Tier",))
        for tier in summary["tiers"]:
            named.add_row(_e(tier), _e(tier_labels.get(tier, "")))
        console.print(named)
    if summary.get("overrides"):  # else an --overrides file, or the policy's, left no trace in what apply prints
        print_indented(console, f"{fmt_number(summary['overrides'])} customer(s) have the tier a manual override set "
                                f"(tier_rule override); `crm-rules explain` shows each one's override and the tier "
                                f"the rules alone give")
    if summary.get("subgrades"):
        subs = titled_table("Sub-grades", "Sub-grade", "Label", "Customers>")
        for sub, n in summary["subgrades"].items():
            subs.add_row(_e(sub), _e(labels_by_kind.get("subgrades", {}).get(sub, "")), fmt_number(n))
        console.print(subs)
    if summary.get("stages"):
        stages = list(summary["stages"])
        stage_labels = labels_by_kind.get("stages", {})
        counts = {(t, s): n for t, s, n in summary["tier_stage"]}

        def stage_grid(headings: list[str]) -> Table:
            grid = titled_table("Customers per tier and lifecycle stage", "Tier", *[_e(h) + ">" for h in headings])
            for tier in summary["tiers"]:
                grid.add_row(_e(tier), *[fmt_number(counts.get((tier, s), 0)) for s in stages])
            grid.add_row("[b]all[/b]", *[f"[b]{fmt_number(summary['stages'][s])}[/b]" for s in stages])
            return grid

        def stage_rows(whole: bool = False) -> Table:  # the grid turned: a stage a row, a tier a column (tiers are fewer)
            heads = [_e(t) for t in summary["tiers"]] + ["[b]all[/b]"]
            grid = titled_table("Customers per lifecycle stage and tier", "Stage", *[h + ">" for h in heads],
                                whole=("Stage", *heads) if whole else ())
            for s in stages:
                grid.add_row(_e(stage_labels.get(s) or s), *[fmt_number(counts.get((t, s), 0)) for t in summary["tiers"]],
                             f"[b]{fmt_number(summary['stages'][s])}[/b]")
            return grid

        # at 70 columns the labels broke mid-word ("Identifi" / "cation", "流失" / "期"): the grid is turned; at 60
        # neither way fits ("identifi" / "cation" heading a column of ids), and the turned grid shown row by row took
        # 37 lines for 4 tiers: the stages head the columns as S1, S2, ..., each named below the grid; row by row
        # only where even that does not fit
        names = [stage_labels.get(s) or s for s in stages]
        keys: list[str] = []
        grid = stage_grid(names)
        if not words_fit(console, grid):
            grid = stage_rows()
        if not words_fit(console, grid):
            keys = [f"S{i}" for i in range(1, len(stages) + 1)]
            grid = stage_grid(keys)
            if not words_fit(console, grid):
                keys, grid = [], stage_rows(whole=True)
        console.print(grid)
        for key, name in zip(keys, names):
            print_indented(console, f"  {key}: {_e(name)}")
    if summary.get("outputs"):
        out = titled_table("Plugin outputs", "Output", "Value", "Customers>")
        for name, counts in summary["outputs"].items():
            for i, (value, n) in enumerate(counts.items()):
                out.add_row(_e(name) if i == 0 else "", _e(value) if value != "" else "(none)", fmt_number(n))
        console.print(out)
    if summary.get("actions"):
        acts = titled_table("Actions", "Action", "Customers>")
        for name, n in summary["actions"].items():
            acts.add_row(_e(name), fmt_number(n))
        console.print(acts)
    if summary.get("service_levels"):
        service_labels = labels_by_kind.get("service_levels", {})
        labelled = any(service_labels.get(name) for name in summary["service_levels"])
        sl = titled_table("Service levels", "Service level", *(["Label"] if labelled else []), "Customers>")
        for name, n in summary["service_levels"].items():
            sl.add_row(_e(name) if name else "(none)", *([_e(service_labels.get(name, ""))] if labelled else []),
                       fmt_number(n))
        console.print(sl)


def _rule_lines(rules: list[dict]) -> list[str]:
    lines = []
    for r in rules:
        mark = "[green]✓[/green]" if r["matched"] else "[red]✗[/red]"
        chosen = " [b]← decides[/b]" if r["decided"] else ""
        if r["condition"] is None:
            lines.append(f"  {mark} {_e(r['id'])} ({_e(r['label'])}): default, applies when no rule above matches{chosen}")
            continue
        unknown = " (unknown: a value is missing)" if r.get("unknown") else ""
        lines.append(f"  {mark} {_e(r['id'])} ({_e(r['label'])}): {_e(r['condition'])}{unknown}{chosen}")
        if not r["matched"]:
            shown = len(lines)
            for c in r.get("checks", []):
                if c["passed"]:
                    continue
                values = _values_text([c])
                miss = shortfall(c)
                gap = f"; {miss}" if miss else ""
                state = "missing value" if c["passed"] is None else "failed"
                lines.append(f"      {state}: {_e(c['test'])}" + (f"  ({values}{gap})" if values else ""))
            if len(lines) == shown and (values := _values_text(r.get("checks", []))):
                lines.append(f"      with {values}")  # every test holds and a `not` fails the rule: their values
    return lines


def _values_text(checks: list[dict]) -> str:
    return _e(", ".join(read_values(checks)))


def _setting_lines(key: str, value: Any, indent: str) -> list[str]:
    """A service level's setting as its author wrote it in the YAML, a mapping one entry a line, and not as
    Python prints it (``payment: {'terms_days': 60}``, ``perks: []``, ``True``)."""
    if isinstance(value, dict):
        return [f"{indent}{_e(key)}:"] + [line for k, v in value.items() for line in _setting_lines(k, v, indent + "  ")]
    return [f"{indent}{_e(key)}: {_e(_setting(value))}"]


def _setting(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(_setting, value)) if value else "none"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_setting(v)}" for k, v in value.items()) + "}"
    return value if isinstance(value, str) else value_text(value)  # free text unquoted


def since_lines(since: dict | None, sha256: str) -> list[str]:
    """What changed for the customer since the policy's previous run (explain_since), and what made the move: an
    explanation of one run said why a grade is what it is, never why it is not what it was last month."""
    if since is None:
        return []
    run = f"run {since['run_id']} (as of {since['as_of']})"
    if not since["in_previous"]:
        return [f"[b]New since {run}[/b]: the customer was not in that run."]
    moves = [f"{words} {_e(c['before'] or '—')} → {_e(c['after'] or '—')}"
             for c in since["changes"] for key, words in GRADES if key == c["grade"]]
    lines = [f"[b]Since {run}[/b]: {', '.join(moves) if moves else 'no grade changed'}."]
    lines += [f"  {_e(m['name'])}: {_e(value_text(m['before']))} → {_e(value_text(m['after']))}" for m in since["metrics"]]
    if since["override"] == "began":
        lines.append("  a manual override sets the tier now (see the override above)")
    elif since["override"] == "ended":
        lines.append(f"  a manual override set the tier in run {since['run_id']}; it has ended (expired or removed), "
                     f"and the rules give the tier now")
    if not moves:
        return lines
    if since["policy_changed"]:
        def version(v: Any, sha: str) -> str:
            return (f"version {_e(v)}, " if v else "") + f"sha256 {sha[:12]}"

        tier = next((c for c in since["changes"] if c["grade"] == "tier"), None)
        old_rules = since.get("tier_by_previous_rules")
        if tier is not None and old_rules is not None:
            by_old = f"the tier rules of run {since['run_id']}'s policy give tier {_e(old_rules)} on this run's values"
            cause = (f"{by_old} too: the data moved the tier, not the policy change" if old_rules == tier["after"] else
                     f"{by_old}: the policy change moved the tier" if old_rules == tier["before"] else
                     f"{by_old}: the data and the policy change both moved the tier")
        elif not since["metrics"]:
            cause = "none of the values the rules of these grades read changed: the move comes from the policy change"
        else:
            cause = (f"`crm-rules diff NEW_POLICY --against-run {since['run_id']}` shows which moves the rules' change "
                     f"alone makes")
        lines.append(f"  the policy changed since that run ({version(since['policy_version'], since['policy_sha256'])}"
                     f" → {version(since['policy_version_now'], sha256)}): {cause}")
    elif since["same_date"] and since["override"] is None:
        lines.append("  the same policy graded the same date in that run: the data changed since")
    if since["other_database"]:
        lines.append(f"  run {since['run_id']} graded another database file")
    return lines


def print_explanation(console: Console, e: dict) -> None:
    # the heading lines wrap at spaces: printed as they were, a terminal of 60 or 80 columns broke them at its edge
    print_indented(console, f"[b]Customer {one_line(str(e['customer_id']))}[/b] {one_line(e['customer_name'] or '')} — "
                            f"policy {_e(e['policy'])} (sha256 {e['policy_sha256'][:12]}), as of {e['as_of']}")
    o = e.get("override")
    if o:
        effect = f"sets the tier to {e['tier']['id']}" if o["applied"] else f"changes nothing (the rules give {o['rule_tier']})"
        print_indented(console, f"[b]Override[/b] ({o['kind']} {_e(o['tier'])}) {_e(effect)}: {_e(o['reason'])} — "
                                f"{_e(o['author'])}" + (f", until {o['expires']}" if o.get("expires") else "")
                                + f" ({_e(o['source'])})")
        if o["applied"]:
            console.print(f"  the rules alone give tier {o['rule_tier']}", highlight=False)
    for line in since_lines(e.get("since"), e["policy_sha256"]):
        print_indented(console, line)
    why = e.get("why") or {}
    for part in ("tier", "subgrade", "stage"):
        if why.get(part):
            because = why[part]["because"]
            print_indented(console, f"[b]{_e(because[0].upper() + because[1:])}.[/b]")
            for sentence in why[part]["up"] + why[part]["down"]:
                print_indented(console, f"  → {_e(sentence)}")
    rows = [(_e(name), "(attribute)", _e(fmt_number(value))) for name, value in e["attributes"].items()]
    rows += [(_e(m["name"]), _e(m["label"]), _e(fmt_number(m["value"]))) for m in e["metrics"]
             if not m["internal"] or m["name"].startswith("_tier")]  # a plugin's helper metric: its outputs are listed
    table = titled_table("Metrics", "Metric", "Label", "Value>", whole=("Metric",))  # the name the rules use
    for row in rows:
        table.add_row(*row)
    if not words_fit(console, table):
        # beside the metric names a label had a column of ten cells at 60 columns: "receivable" over "s", a
        # Chinese label five lines of five characters; under its name it has the name's width
        table = titled_table("Metrics", "Metric", "Value>", whole=())
        for name, label, value in rows:
            table.add_row(f"{name}\n[dim]{label}[/dim]" if label else name, value)
    console.print(table)
    for f in e.get("source_filters") or []:
        if f["rows"] is None:
            print_indented(console, f"[dim]data.{f['source']}.where ({_e(f['where'])}) filters {_e(repr(f['table']))}; "
                                    f"the customer's rows were not counted: the table is big and has no index on "
                                    f"its customer column (`crm-rules index` proposes one)[/dim]")
            continue
        dropped = f"{f['dropped']:,} of" if f["dropped"] else "none of"
        print_indented(console, f"[dim]data.{f['source']}.where ({_e(f['where'])}) drops {dropped} the customer's "
                                f"{f['rows']:,} rows of {_e(repr(f['table']))} dated on or before {e['as_of']}; the "
                                f"metrics read the others[/dim]")
    t = e["tier"]
    decided = (f"set by the override; the rules alone give {_e(o['rule_tier'])}" if o and o["applied"]
               else f"decided by rule {_e(t['rule'])}")
    console.print()
    print_indented(console, f"[b]Tier {_e(t['id'])}[/b] (method {t['method']}, {decided}):")
    for line in _rule_lines(t["rules"]):
        print_indented(console, line)
    if e.get("subgrade"):
        s = e["subgrade"]
        console.print()
        print_indented(console, f"[b]Sub-grade {_e(s['id'])}[/b] (decided by rule {_e(s['rule'])}):")
        for line in _rule_lines(s["rules"]):
            print_indented(console, line)
    if e.get("stage"):
        s = e["stage"]
        strategy = f" — strategy: {_e(s['strategy'])}" if s.get("strategy") else ""
        console.print()
        print_indented(console, f"[b]Lifecycle stage {_e(s['id'])}[/b] (decided by rule {_e(s['rule'])}){strategy}:")
        for line in _rule_lines(s["rules"]):
            print_indented(console, line)
    sl = e.get("service_level")
    if sl:
        scope = ", ".join(f"{k} {_e(sl[k])}" for k in ("tier", "subgrade", "stage") if sl.get(k))
        if len(sl.get("tiers") or []) > 1:  # an entry written for several tiers: say it is shared, and with whom
            scope += f"; one entry for tiers {_e(', '.join(sl['tiers']))}"
        console.print()
        print_indented(console, f"[b]Service level {_e(sl['id'])}[/b] (for {scope}):")
        for k, v in sl.items():
            if k not in ("id", "tier", "tiers", "subgrade", "stage"):
                for line in _setting_lines(k, v, "  "):
                    print_indented(console, line)
    elif e.get("service_level") is None:
        console.print("\n[b]Service level[/b]: none defined for this tier/stage")
    if e.get("actions"):
        console.print("\n[b]Actions[/b]:")
        for a in e["actions"]:
            print_indented(console, f"  {a['due_date']} p{a['priority']} {_e(a['action'])} ({a['category']}, "
                                    f"{_e(a['plugin'])}): {_e(a['reason'] or '')}")
