"""The text of policy tests: a pytest-like report, and a failing case's explanation rule by rule.

Plain text in the shape pytest users know (a line per file with a mark per
case, then each failure with expected against actual and why), so that the
``test`` command reads the same in a terminal and in a CI log.
"""

from __future__ import annotations

import math
from typing import Any

from rich.cells import cell_len

from .counterfactuals import is_literal, shortfall, value_text
from .policy_test_file import GRADES, tolerance, yaml_value


# ---- explanations ----------------------------------------------------------------------------

def _fmt(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, float) and not math.isfinite(value):
        return value_text(value)  # "∞", not "inf"
    if isinstance(value, (bool, int, float)):
        return yaml_value(value)  # true/false and numbers as the test file writes them (180000, 0.25)
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]" if value else "[] (none)"
    if isinstance(value, dict):
        if "approx" in value:  # the tolerance the comparison uses: by default relative to the value
            within = tolerance(value)
            return f"{_fmt(value['approx'])} ± {_fmt(within)}"
        if "min" in value and "max" in value:
            return f"between {_fmt(value['min'])} and {_fmt(value['max'])}"
        return f"at least {_fmt(value['min'])}" if "min" in value else f"at most {_fmt(value['max'])}"
    return str(value)


def _expected_fmt(key: str, value: Any) -> str:
    """An expected or actual value of a failing case: a metric's or attribute's text quoted, as YAML
    writes it ('180000' is text, 180000 a number); grades and action names as they are."""
    if isinstance(value, str) and key not in GRADES + ("credit_outcome",):
        return yaml_value(value)
    return _fmt(value)


def _explained(value: Any) -> str:
    """A value in a failing case's explanation, as explain shows it (0.8771, not 0.877100419527447)."""
    return value_text(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _fmt(value)


def _rule_lines(rules: list[dict]) -> list[str]:
    """Plain-text rule list of an explanation: each rule, whether it matched, and what failed."""
    lines = []
    for r in rules:
        mark = "✓" if r["matched"] else "✗"
        chosen = "  <- decides" if r["decided"] else ""
        label = f" ({r['label']})" if r.get("label") and r["label"] != r["id"] else ""
        if r["condition"] is None:
            lines.append(f"  {mark} {r['id']}{label}: default, when no rule above matches{chosen}")
            continue
        unknown = " (unknown: a value is missing)" if r.get("unknown") else ""
        lines.append(f"  {mark} {r['id']}{label}: {' '.join(r['condition'].split())}{unknown}{chosen}")
        for c in r.get("checks", []):
            if c["passed"] and not r["decided"]:
                continue
            values = ", ".join(f"{k} = {_explained(v)}" for k, v in c.get("values", {}).items() if not is_literal(k))
            miss = shortfall(c, _explained)
            gap = f"; {miss}" if miss else ""
            state = "passed" if c["passed"] else "missing value" if c["passed"] is None else "failed"
            lines.append(f"      {state}: {c['test']}" + (f"  ({values}{gap})" if values else ""))
    return lines


def explanation_text(e: dict, actions: list[dict] | None = None, metric_names: list[str] = ()) -> str:
    """Plain text of ``explain_customer``'s result: the tier, sub-grade and stage rules, service level and actions."""
    t = e["tier"]
    lines = [f"Tier {t['id']} (method {t['method']}, decided by rule {t['rule']}):", *_rule_lines(t["rules"])]
    if e.get("subgrade"):
        s = e["subgrade"]
        lines += [f"Sub-grade {_fmt(s['id'])} (decided by rule {s['rule']}):", *_rule_lines(s["rules"])]
    if e.get("stage"):
        s = e["stage"]
        lines += [f"Lifecycle stage {_fmt(s['id'])} (decided by rule {s['rule']}):", *_rule_lines(s["rules"])]
    sl = e.get("service_level")
    if sl:
        scope = ", ".join(f"{k} {sl[k]}" for k in ("tier", "subgrade", "stage") if sl.get(k))
        lines.append(f"Service level {sl['id']} (the most specific entry for {scope})")
    else:
        lines.append("Service level: none matches this tier/sub-grade/stage")
    values = {m["name"]: m["value"] for m in e["metrics"]}
    values.update(e.get("attributes", {}))
    shown = [n for n in metric_names if n in values]
    if shown:
        lines.append("Values: " + ", ".join(f"{n} = {_fmt(values[n])}" for n in shown))
    if actions is not None:
        if actions:
            lines.append("Actions:")
            lines += [f"  {a['action']} ({a['generator']}): {a['reason'] or ''}" for a in actions]
        else:
            lines.append("Actions: none")
    return "\n".join(lines)


# ---- text output -----------------------------------------------------------------------------

def _banner(text: str, char: str = "=", width: int = 78) -> str:
    """``text`` centred in a rule ``width`` terminal cells wide: a Chinese case name takes two cells a
    character, so len() would make its rule longer than the others."""
    text = f" {text} "
    left = max(3, (width - cell_len(text)) // 2)
    return char * left + text + char * max(3, width - cell_len(text) - left)


def _pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` terminal cells (what ``f"{text:<{width}}"`` does for ASCII only)."""
    return text + " " * max(0, width - cell_len(text))


def format_report(report: dict, coverage: bool = False, width: int = 78) -> str:
    """pytest-like text: a line per file with a mark per case, each failure with expected vs actual and why; its
    rules ``width`` cells wide (78, less in a narrower terminal: there a rule of 78 took two lines)."""
    out = []
    by_file: dict[str, list[dict]] = {}
    for c in report["cases"]:
        by_file.setdefault(c["file"], []).append(c)
    for f in report["files"]:
        marks = "".join("." if c["passed"] else "F" for c in by_file.get(f["file"], []))
        population = f" + {f['population']:,} population" if f["population"] else ""
        out.append(f"{f['file']} (policy {f['policy']}, as of {f['as_of']}, {f['cases']:,} case{'s' if f['cases'] != 1 else ''}{population}) {marks}")
        out += [f"  note: {note}" for note in f.get("test_notes", ())]
    if report["failures"]:
        out += ["", _banner("FAILURES", width=width)]
        for fail in report["failures"]:
            out.append(_banner(f"{fail['file']}::{fail['name']}", "_", width=width))
            out.append(f"{fail['where']}: customer {fail['customer_id']}")
            key_width = max(cell_len(m["key"]) for m in fail["mismatches"])
            for m in fail["mismatches"]:
                if m["key"] == "actions_include":
                    out.append(f"  {_pad(m['key'], key_width)}  missing {_fmt(m['missing'])}; actual {_fmt(m['actual'])}")
                else:
                    out.append(f"  {_pad(m['key'], key_width)}  expected {_expected_fmt(m['key'], m['expected'])}, "
                               f"got {_expected_fmt(m['key'], m['actual'])}")
            if fail.get("explanation"):
                out.append(f"why (crm-rules explain {fail['customer_id']}):")
                out += ["  " + line for line in fail["explanation"].splitlines()]
            out.append("")
    if coverage:
        out += ["", _banner("rule coverage", width=width)]
        for entry in report["coverage"]:
            parts = []
            for kind, title in (("tiers", "tiers"), ("subgrades", "sub-grades"), ("stages", "stages"),
                                ("service_levels", "service levels")):
                n = len(entry[kind]["rules"])
                if n:
                    parts.append(f"{title} {len(entry[kind]['exercised'])}/{n}")
            out.append(f"{entry['policy']} ({entry['policy_file']}): " + ", ".join(parts))
            for kind, title in (("tiers", "tier"), ("subgrades", "sub-grade"), ("stages", "stage"),
                                ("service_levels", "service level")):
                for r in entry[kind]["rules"]:
                    if not r["cases"]:
                        default = ", default" if r["default"] else ""
                        out.append(f"  not exercised: {title} {r['id']} ({r['where']}{default})")
    summary = []
    if report["failed"]:
        summary.append(f"{report['failed']:,} failed")
    summary.append(f"{report['passed']:,} passed")
    out += ["", _banner(f"{', '.join(summary)} in {report['seconds']:.2f}s ({len(report['files'])} file"
                        f"{'s' if len(report['files']) != 1 else ''})", width=width)]
    return "\n".join(out).lstrip("\n")
