"""Inline SVG charts for ``crm-rules report``, drawn in Python.

The page must work offline and from a file forever, so there is no chart library to load: each
chart is a small ``<svg>`` string with a ``viewBox`` (it scales with its card) and ``<title>``
tooltips.  Every text that comes from data passes through :func:`esc`; nothing here emits
script or external references.
"""

from __future__ import annotations

import unicodedata
from html import escape

TIER_COLORS = ("#2563eb", "#0d9488", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#64748b")
OUTCOME_COLORS = {"ok": "#16a34a", "warn": "#eab308", "hold": "#f97316", "block": "#dc2626"}
STAGE_COLORS = ("#6366f1", "#0ea5e9", "#14b8a6", "#84cc16", "#f59e0b", "#f43f5e", "#a855f7", "#64748b")
OTHER = "#94a3b8"
INK, MUTED, GRID = "#0f172a", "#64748b", "#e2e8f0"


def esc(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def tier_color(i: int) -> str:
    return TIER_COLORS[i % len(TIER_COLORS)]


def compact(x: float | None) -> str:
    """134217730 -> 134.2M: chart labels stay short; tables show the full number."""
    if x is None:
        return "—"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:,.1f}{unit}"
    return f"{x:,.0f}" if abs(x) >= 10 or x == int(x) else f"{x:,.2f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}%"


def _svg(width: int, height: int, body: str, label: str, cls: str = "chart") -> str:
    return (f'<svg class="{cls}" viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMidYMid meet" '
            f'role="img" aria-label="{esc(label)}">{body}</svg>')


def text_width(text: str, size: float, weight: str = "normal") -> float:
    """The width ``text`` takes at font size ``size``, estimated as a sans-serif font draws it: a Chinese or
    Japanese character one em, any other about 0.6 em (bold a little more).  An SVG text does not wrap."""
    em = 0.64 if weight in ("600", "700", "bold") else 0.6
    return size * sum(1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else em for ch in str(text))


def fitted(text: str, width: float, size: float, weight: str = "normal") -> str:
    """``text`` shortened with "…" to fit ``width`` pixels at ``size``; as it is when it fits."""
    text = str(text)
    if text_width(text, size, weight) <= width:
        return text
    while text and text_width(text + "…", size, weight) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = 12, fill: str = INK,
          weight: str = "normal", halo: bool = False, extra: str = "", fit: float | None = None) -> str:
    """An SVG text; with ``fit``, shortened to that many pixels (a long Chinese tier label drawn over the bars
    beside it, or cut off at the chart's left edge) and the whole text in its tooltip."""
    h = ' stroke="#fff" stroke-width="4" stroke-linejoin="round" paint-order="stroke"' if halo else ""
    shown = str(text) if fit is None else fitted(text, fit, size, weight)
    tip = f"<title>{esc(text)}</title>" if shown != str(text) else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" fill="{fill}" '
            f'font-weight="{weight}"{h}{extra}>{tip}{esc(shown)}</text>')


# --- Pareto curve --------------------------------------------------------------------------------

def pareto_chart(points: list[tuple[float, float]], cutoffs: list[dict], segments: list[dict]) -> str:
    """The cumulative revenue curve, each tier's stretch shaded in its colour, cut-offs marked.

    ``cutoffs``: {x, y, label} points where a tier ends; ``segments``: {x0, x1, id, color} per tier.
    """
    W, H, L, R, T, B = 860, 430, 60, 28, 18, 56
    pw, ph = W - L - R, H - T - B

    def px(x: float) -> float:
        return L + x * pw

    def py(y: float) -> float:
        return T + (1 - y) * ph

    def at(x: float) -> float:  # the curve's value at x (linear between samples)
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            if x0 <= x <= x1:
                return y0 if x1 == x0 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return points[-1][1]

    parts = []
    for i in range(6):
        v = i / 5
        parts.append(f'<line x1="{L}" y1="{py(v):.1f}" x2="{W - R}" y2="{py(v):.1f}" stroke="{GRID}"/>')
        parts.append(f'<line x1="{px(v):.1f}" y1="{T}" x2="{px(v):.1f}" y2="{T + ph}" stroke="{GRID}"/>')
        parts.append(_text(L - 8, py(v) + 4, f"{int(v * 100)}%", anchor="end", size=11, fill=MUTED))
        parts.append(_text(px(v), T + ph + 18, f"{int(v * 100)}%", anchor="middle", size=11, fill=MUTED))
    for s in segments:
        inside = [(x, y) for x, y in points if s["x0"] < x < s["x1"]]
        poly = [(s["x0"], 0.0), (s["x0"], at(s["x0"]))] + inside + [(s["x1"], at(s["x1"])), (s["x1"], 0.0)]
        d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in poly)
        parts.append(f'<polygon class="area" points="{d}" fill="{s["color"]}" fill-opacity="0.16">'
                     f'<title>{esc(s["title"])}</title></polygon>')
        if s["x1"] - s["x0"] > 0.04:
            parts.append(_text(px((s["x0"] + s["x1"]) / 2), T + ph - 10, s["id"], anchor="middle", size=15,
                               fill=s["color"], weight="700"))
    parts.append(f'<line x1="{px(0)}" y1="{py(0)}" x2="{px(1)}" y2="{py(1)}" stroke="{OTHER}" stroke-dasharray="4 4"/>')
    line = " ".join(f"{'M' if i == 0 else 'L'}{px(x):.1f},{py(y):.1f}" for i, (x, y) in enumerate(points))
    parts.append(f'<path class="curve" d="{line}" fill="none" stroke="{INK}" stroke-width="2.4" stroke-linejoin="round"/>')
    for c in cutoffs:
        x, y = px(c["x"]), py(c["y"])
        parts.append(f'<line x1="{x:.1f}" y1="{T + ph}" x2="{x:.1f}" y2="{y:.1f}" stroke="{c["color"]}" '
                     f'stroke-width="1.5" stroke-dasharray="5 4"/>')
        parts.append(f'<line x1="{L}" y1="{y:.1f}" x2="{x:.1f}" y2="{y:.1f}" stroke="{c["color"]}" '
                     f'stroke-width="1.5" stroke-dasharray="5 4"/>')
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#fff" stroke="{c["color"]}" stroke-width="2.5">'
                     f'<title>{esc(c["title"])}</title></circle>')
        parts.append(_text(x + 10, y + 18, c["label"], size=12, weight="600", fill=c["color"], halo=True))
        parts.append(_text(x + 10, y + 33, c["sublabel"], size=11, fill=MUTED, halo=True))
    parts.append(_text(L + pw / 2, H - 10, "Share of customers, by revenue (highest first)", anchor="middle",
                       size=12, fill=MUTED))
    parts.append(_text(16, T + ph / 2, "Cumulative share of revenue", anchor="middle", size=12, fill=MUTED,
                       extra=f' transform="rotate(-90 16 {T + ph / 2:.1f})"'))
    return _svg(W, H, "".join(parts), "Pareto curve of revenue")


# --- bars ----------------------------------------------------------------------------------------

def hbar_chart(items: list[dict], label: str, *, label_width: int = 230, width: int = 560) -> str:
    """Horizontal bars: items {name, sub, value, text, color, title}; the longest bar fills the width."""
    row, top = 46, 6
    height = top + row * max(1, len(items)) + 4
    bar_x, bar_w = label_width, width - label_width - 90
    top_value = max((i["value"] or 0 for i in items), default=0) or 1
    parts = []
    for n, item in enumerate(items):
        y = top + n * row
        w = max(2.0, bar_w * (item["value"] or 0) / top_value) if item["value"] else 0
        parts.append(_text(0, y + 18, item["name"], size=13, weight="700", fill=item["color"], fit=bar_x - 10))
        if item.get("sub"):
            parts.append(_text(0, y + 35, item["sub"], size=11.5, fill=MUTED, fit=bar_x - 10))
        parts.append(f'<rect x="{bar_x}" y="{y + 8}" width="{bar_w}" height="24" rx="5" fill="#f1f5f9"/>')
        parts.append(f'<rect class="bar" x="{bar_x}" y="{y + 8}" width="{w:.1f}" height="24" rx="5" '
                     f'fill="{item["color"]}"><title>{esc(item.get("title", item["text"]))}</title></rect>')
        parts.append(_text(bar_x + bar_w + 10, y + 25, item["text"], size=12.5, weight="600"))
    return _svg(width, height, "".join(parts), label)


def stacked_chart(rows: list[dict], keys: list[str], colors: dict, label: str, width: int = 560) -> str:
    """100% stacked bars: rows {name, sub, counts: {key: n}}; segment text when wide enough."""
    label_width, row, top = 190, 44, 4
    bar_w = width - label_width - 8
    height = top + row * len(rows) + 4
    parts = []
    for n, r in enumerate(rows):
        y = top + n * row
        total = sum(r["counts"].values()) or 1
        parts.append(_text(0, y + 18, r["name"], size=13, weight="700", fill=r.get("color", INK), fit=label_width - 10))
        parts.append(_text(0, y + 34, r.get("sub", ""), size=11, fill=MUTED, fit=label_width - 10))
        x = float(label_width)
        for key in keys:
            v = r["counts"].get(key, 0)
            if not v:
                continue
            w = bar_w * v / total
            title = f"{r['name']}: {key} {v:,} ({v / total:.1%})"
            parts.append(f'<rect class="bar" x="{x:.1f}" y="{y + 8}" width="{w:.1f}" height="26" '
                         f'fill="{colors.get(key, OTHER)}"><title>{esc(title)}</title></rect>')
            if w > 34:
                parts.append(_text(x + w / 2, y + 25, f"{v / total:.0%}", anchor="middle", size=11, fill="#fff",
                                   weight="600"))
            x += w
    return _svg(width, height, "".join(parts), label)


def column_chart(items: list[dict], label: str, width: int = 560) -> str:
    """Vertical columns: items {name, value, text, sub, color}."""
    height, top, bottom = 250, 26, 48
    ph = height - top - bottom
    n = max(1, len(items))
    slot = width / n
    top_value = max((i["value"] or 0 for i in items), default=0) or 1
    parts = [f'<line x1="0" y1="{top + ph}" x2="{width}" y2="{top + ph}" stroke="{GRID}"/>']
    for k, item in enumerate(items):
        h = ph * max(item["value"] or 0, 0) / top_value
        x = k * slot + slot * 0.18
        w = slot * 0.64
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{top + ph - h:.1f}" width="{w:.1f}" height="{max(h, 1):.1f}" '
                     f'rx="4" fill="{item["color"]}"><title>{esc(item.get("title", item["text"]))}</title></rect>')
        parts.append(_text(x + w / 2, top + ph - h - 7, item["text"], anchor="middle", size=12, weight="600"))
        parts.append(_text(x + w / 2, top + ph + 18, item["name"], anchor="middle", size=12, fit=slot - 6))
        if item.get("sub"):
            parts.append(_text(x + w / 2, top + ph + 34, item["sub"], anchor="middle", size=11, fill=MUTED,
                               fit=slot - 6))
    return _svg(width, height, "".join(parts), label)


def funnel_chart(items: list[dict], label: str, width: int = 380) -> str:
    """A funnel of centred bars: items {name, value, text, color}; widths relative to the largest."""
    row, label_w, value_w = 34, 150, 92
    bar_w = width - label_w - value_w
    height = row * max(1, len(items)) + 4
    top_value = max((i["value"] for i in items), default=0) or 1
    parts = []
    for k, item in enumerate(items):
        y = k * row + 2
        w = bar_w * item["value"] / top_value
        cx = label_w + bar_w / 2
        parts.append(_text(label_w - 10, y + 20, item["name"], anchor="end", size=12, fit=label_w - 12))
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{bar_w}" height="24" rx="4" fill="#f8fafc"/>')
        if item["value"]:
            parts.append(f'<rect class="bar" x="{cx - max(w, 2) / 2:.1f}" y="{y + 4}" width="{max(w, 2):.1f}" '
                         f'height="24" rx="4" fill="{item["color"]}"><title>{esc(item["title"])}</title></rect>')
        parts.append(_text(label_w + bar_w + 10, y + 20, item["text"], size=12, weight="600"))
    return _svg(width, height, "".join(parts), label, cls="chart funnel")
