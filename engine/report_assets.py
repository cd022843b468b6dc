"""The report page's stylesheet and script, inlined into every report.

Inline because the file must open anywhere, offline, years later: no CDN, no web font, no
network at view time.  The font stack names the common CJK system fonts so Chinese tier and
stage labels render on Windows, macOS and Linux.  The script only filters and sorts the
customer table; the page reads fine without it.
"""

CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f4f6fb; --card:#fff; --accent:#2563eb; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; background: var(--bg); color: var(--ink); font-size: 14px; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans CJK SC",
    "Noto Sans SC", "Source Han Sans SC", "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei",
    "WenQuanYi Micro Hei", sans-serif; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
.wrap { max-width: 1320px; margin: 0 auto; padding: 0 28px; }
header.top { background: linear-gradient(120deg, #0f172a 0%, #1e3a8a 100%); color: #fff; padding: 26px 0 22px; }
header.top .brand { font-size: 12px; letter-spacing: .08em; text-transform: uppercase; color: #93c5fd; font-weight: 600; }
header.top h1 { margin: 4px 0 2px; font-size: 28px; font-weight: 700; letter-spacing: -.01em; }
header.top h1 .ver { font-size: 15px; font-weight: 500; color: #bfdbfe; margin-left: 8px; }
header.top .desc { margin: 0 0 14px; color: #cbd5e1; max-width: 880px; }
dl.meta { display: flex; flex-wrap: wrap; gap: 10px 34px; margin: 0; }
dl.meta div { min-width: 0; }
dl.meta dt { font-size: 11px; text-transform: uppercase; letter-spacing: .06em; color: #93c5fd; }
dl.meta dd { margin: 0; font-weight: 600; color: #fff; }
dl.meta code { color: #fff; font-size: 13px; }
nav.toc { background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 5; }
nav.toc .wrap { display: flex; gap: 4px; overflow-x: auto; }
nav.toc a { color: var(--muted); text-decoration: none; padding: 11px 12px; font-weight: 600; font-size: 13px;
  white-space: nowrap; border-bottom: 2px solid transparent; }
nav.toc a:hover { color: var(--accent); border-bottom-color: var(--accent); }
main.wrap { padding-top: 22px; padding-bottom: 40px; }
.kpis { display: grid; grid-template-columns: repeat(auto-fit, minmax(190px, 1fr)); gap: 14px; margin-bottom: 22px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 14px 16px;
  box-shadow: 0 1px 2px rgba(15,23,42,.04); }
.kpi .k { font-size: 12px; color: var(--muted); font-weight: 600; }
.kpi .v { font-size: 24px; font-weight: 700; margin-top: 2px; letter-spacing: -.01em; }
.kpi .s { font-size: 12px; color: var(--muted); }
section { margin: 0 0 22px; scroll-margin-top: 56px; }
section > h2 { font-size: 18px; margin: 0 0 4px; }
section > p.lead { margin: 0 0 12px; color: var(--muted); }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); gap: 16px; }
.grid3 { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 16px 18px;
  box-shadow: 0 1px 2px rgba(15,23,42,.04); min-width: 0; }
.card h3 { margin: 0 0 10px; font-size: 14px; font-weight: 700; }
.card h3 small { font-weight: 500; color: var(--muted); margin-left: 6px; }
.pareto { display: grid; grid-template-columns: minmax(0, 2fr) minmax(370px, 1fr); gap: 18px; align-items: start; }
@media (max-width: 980px) { .pareto, .grid2 { grid-template-columns: 1fr; } }
svg.chart { display: block; max-width: 100%; height: auto; overflow: visible; }
svg.chart text { font-family: inherit; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #f8fafc; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:last-child td { border-bottom: 0; }
td.nowrap, td.mono { white-space: nowrap; }
table.compact td, table.compact th { padding: 6px 8px; }
table.compact .tl { display: block; margin-top: 2px; color: var(--muted); font-size: 12px; }
table.compact td:first-child { min-width: 140px; }
.tag { display: inline-block; min-width: 24px; padding: 1px 7px; border-radius: 999px; font-weight: 700; font-size: 12px;
  color: #fff; background: var(--c, #64748b); text-align: center; }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600;
  background: #f1f5f9; color: #334155; }
.pill.ok { background: #dcfce7; color: #166534; } .pill.warn { background: #fef9c3; color: #854d0e; }
.pill.hold { background: #ffedd5; color: #9a3412; } .pill.block { background: #fee2e2; color: #991b1b; }
.dot { display: inline-block; width: 10px; height: 10px; border-radius: 3px; margin-right: 6px; vertical-align: -1px; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 16px; margin-top: 8px; font-size: 12px; color: var(--muted); }
.note { background: #eff6ff; border: 1px solid #bfdbfe; color: #1e3a8a; border-radius: 10px; padding: 12px 14px; }
.note.warn { background: #fffbeb; border-color: #fde68a; color: #78350f; }
.muted { color: var(--muted); }
.matrix { width: auto; min-width: 60%; }
.matrix td, .matrix th { text-align: center; min-width: 96px; font-variant-numeric: tabular-nums; }
.matrix th.row { text-align: left; color: var(--ink); font-weight: 600; }
.matrix th.row .tl { color: var(--muted); font-weight: 500; margin-left: 4px; }
.matrix td.diag { font-weight: 700; outline: 2px solid rgba(15,23,42,.25); outline-offset: -2px; }
.matrix td.total, .matrix th.total { background: #f8fafc; font-weight: 600; }
.chips { display: flex; flex-wrap: wrap; gap: 8px; margin: 0 0 12px; }
.chip { background: #fff; border: 1px solid var(--line); border-radius: 999px; padding: 4px 12px; font-size: 13px; }
.chip b { font-size: 14px; }
.chip.up b { color: #15803d; } .chip.down b { color: #b91c1c; }
.toolbar { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; margin-bottom: 10px; }
.toolbar input { flex: 1 1 320px; max-width: 520px; padding: 9px 12px; border: 1px solid #cbd5e1; border-radius: 8px;
  font: inherit; outline: none; }
.toolbar input:focus { border-color: var(--accent); box-shadow: 0 0 0 3px rgba(37,99,235,.15); }
.scroll { max-height: 640px; overflow: auto; border: 1px solid var(--line); border-radius: 10px; }
.scroll thead th { position: sticky; top: 0; z-index: 1; box-shadow: inset 0 -1px 0 var(--line); }
#customers th { cursor: pointer; user-select: none; }
#customers th:hover { color: var(--ink); }
#customers th::after { content: "\\2195"; opacity: .3; margin-left: 4px; font-size: 11px; }
#customers th[aria-sort=ascending]::after { content: "\\2191"; opacity: .9; }
#customers th[aria-sort=descending]::after { content: "\\2193"; opacity: .9; }
#customers tbody tr:hover { background: #f8fafc; }
#customers td { white-space: nowrap; vertical-align: middle; }
#customers td.name { white-space: normal; min-width: 250px; max-width: 360px; }
footer { color: var(--muted); font-size: 12px; padding: 10px 0 30px; }
@media print { nav.toc { display: none; } .scroll { max-height: none; overflow: visible; } body { background: #fff; } }
"""

JS = """
(function () {
  'use strict';
  var table = document.getElementById('customers');
  if (!table || !table.tBodies.length) { return; }
  var body = table.tBodies[0];
  var items = Array.prototype.map.call(body.rows, function (row) {
    return { row: row, text: row.textContent.toLowerCase() };
  });
  var input = document.getElementById('customer-search');
  var count = document.getElementById('customer-count');
  var total = items.length;
  function fmt(n) { return n.toLocaleString('en-US'); }
  function filter() {
    var q = input.value.trim().toLowerCase();
    var shown = 0;
    for (var i = 0; i < items.length; i++) {
      var hit = !q || items[i].text.indexOf(q) !== -1;
      items[i].row.hidden = !hit;
      if (hit) { shown++; }
    }
    count.textContent = q ? fmt(shown) + ' of ' + fmt(total) + ' rows match' : fmt(total) + ' rows';
  }
  if (input) { input.addEventListener('input', filter); filter(); }
  var collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
  var heads = table.tHead.rows[0].cells;
  function value(item, col, numeric) {
    var cell = item.row.cells[col];
    if (numeric) {
      var raw = cell.getAttribute('data-v');
      return raw === null || raw === '' ? null : parseFloat(raw);
    }
    var text = cell.getAttribute('data-v');
    text = text === null ? cell.textContent.trim() : text;
    return text === '' || text === '\\u2014' ? null : text;
  }
  function sortBy(col) {
    var th = heads[col];
    var numeric = th.getAttribute('data-type') === 'num';
    var current = th.getAttribute('aria-sort');
    var dir = current ? (current === 'ascending' ? -1 : 1) : (numeric ? -1 : 1);
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute('aria-sort'); }
    th.setAttribute('aria-sort', dir === 1 ? 'ascending' : 'descending');
    var keyed = items.map(function (item, index) { return { item: item, v: value(item, col, numeric), i: index }; });
    keyed.sort(function (a, b) {
      if (a.v === null || b.v === null) { return a.v === b.v ? a.i - b.i : (a.v === null ? 1 : -1); }
      var c = numeric ? a.v - b.v : collator.compare(a.v, b.v);
      return c === 0 ? a.i - b.i : c * dir;
    });
    var frag = document.createDocumentFragment();
    items = keyed.map(function (k) { frag.appendChild(k.item.row); return k.item; });
    body.appendChild(frag);
  }
  Array.prototype.forEach.call(heads, function (th, col) {
    th.tabIndex = 0;
    th.addEventListener('click', function () { sortBy(col); });
    th.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(col); }
    });
  });
})();
"""
