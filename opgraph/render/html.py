"""Self-contained HTML pages (issue 19): one file, its styles, script and data inside, nothing fetched.

Hand-written SVG and a small script rather than a charting library: the pages need log axes, points with hover
details, sortable tables and tabs, which fit in a few hundred lines; a vendored library (Plotly alone is over 3 MB)
would break the 2 MB budget of a page and add a licence to ship. Every number shown is rendered here, in Python, from
the same record the JSON format writes, and that JSON is embedded whole (`<script type="application/json"
id="opgraph-data">`) so that a script or a test reads exactly what the command line gives.
"""

from __future__ import annotations

import html
import math

# Colours from Paul Tol's bright scheme, distinguishable under the common colour blindnesses.
BRIGHT = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB")
COLOURS = {"compute": BRIGHT[0], "memory": BRIGHT[1], "communication": BRIGHT[2], "latency": BRIGHT[3],
           "fused": BRIGHT[6]}

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1280px;padding:12px;color:#222}
h1{font-size:20px}h2{font-size:17px;margin-top:24px}h3{font-size:15px}
table{border-collapse:collapse;width:100%;margin:8px 0;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap}
th{text-align:left}td:first-child,td.text{text-align:left}
th button{font:inherit;font-weight:600;background:none;border:0;cursor:pointer;padding:0}
th button:focus{outline:2px solid #4477AA}
.tabs button{font:inherit;padding:4px 12px;margin-right:4px}.tabs button[aria-selected=true]{font-weight:700}
.filters{margin:6px 0}.filters input,.filters select{font:inherit;margin-right:8px}
.wide{overflow-x:auto}.note{color:#555}
svg text{font:11px system-ui,sans-serif}
@media (max-width:700px){body{font-size:12px}th,td{padding:2px 3px}}
"""

# Sorting (click or Enter on a column's button), filtering (text and verdict), tabs: progressive enhancement over
# tables that read fine without it.
SCRIPT = r"""
document.querySelectorAll('table.sortable').forEach(function (t) {
  t.querySelectorAll('th button').forEach(function (b, col) {
    b.addEventListener('click', function () {
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = b.getAttribute('data-dir') !== 'up';
      rows.sort(function (x, y) {
        var a = x.cells[col].getAttribute('data-v'), c = y.cells[col].getAttribute('data-v');
        var na = parseFloat(a), nc = parseFloat(c);
        var r = (!isNaN(na) && !isNaN(nc)) ? na - nc : String(a).localeCompare(String(c));
        return up ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
      t.querySelectorAll('th button').forEach(function (o) { o.removeAttribute('data-dir'); });
      b.setAttribute('data-dir', up ? 'up' : 'down');
    });
  });
});
document.querySelectorAll('.filters').forEach(function (f) {
  var t = document.getElementById(f.getAttribute('data-table'));
  function apply() {
    var text = f.querySelector('input').value.toLowerCase(), bound = f.querySelector('select').value;
    Array.prototype.forEach.call(t.tBodies[0].rows, function (r) {
      var ok = (!text || r.textContent.toLowerCase().indexOf(text) >= 0) &&
               (!bound || r.getAttribute('data-bound') === bound);
      r.style.display = ok ? '' : 'none';
    });
  }
  f.querySelector('input').addEventListener('input', apply);
  f.querySelector('select').addEventListener('change', apply);
});
document.querySelectorAll('.tabs').forEach(function (tabs) {
  var buttons = tabs.querySelectorAll('button');
  buttons.forEach(function (b) {
    b.addEventListener('click', function () {
      buttons.forEach(function (o) {
        o.setAttribute('aria-selected', o === b ? 'true' : 'false');
        document.getElementById(o.getAttribute('aria-controls')).hidden = o !== b;
      });
    });
  });
});
"""


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def page(title: str, body: str, data_json: str) -> str:
    """A whole page: title, body, the record's JSON embedded (closing tags inside it escaped)."""
    data = data_json.replace("</", "<\\/")
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n{body}\n"
            f"<script type=\"application/json\" id=\"opgraph-data\">{data}</script>\n"
            f"<script>{SCRIPT}</script></body></html>\n")


def table(table_id: str, headers: list[str], rows: list[tuple[list[tuple[str, object]], dict]]) -> str:
    """A sortable table: each row is its cells, (shown text, sort value), and its row attributes."""
    head = "".join(f"<th scope=\"col\"><button type=\"button\">{esc(h)}</button></th>" for h in headers)
    body = []
    for cells, attributes in rows:
        attrs_ = "".join(f" {k}=\"{esc(v)}\"" for k, v in attributes.items())
        tds = "".join(f"<td data-v=\"{esc(v)}\"{' class=text' if isinstance(v, str) else ''}>{esc(shown)}</td>"
                      for shown, v in cells)
        body.append(f"<tr{attrs_}>{tds}</tr>")
    return (f"<div class=\"wide\"><table class=\"sortable\" id=\"{esc(table_id)}\"><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>")


def filters(table_id: str, verdicts: list[str], label: str = "verdict", hint: str = "op, kind or kernel") -> str:
    """A text filter and a choice among the rows' data-bound values (their verdict, or another label's)."""
    options = "".join(f"<option value=\"{esc(v)}\">{esc(v)}</option>" for v in verdicts)
    return (f"<div class=\"filters\" data-table=\"{esc(table_id)}\"><label>filter <input type=\"search\" "
            f"placeholder=\"{esc(hint)}\"></label><label>{esc(label)} <select><option value=\"\">all</option>"
            f"{options}</select></label></div>")


def tabs(panels: list[tuple[str, str, str]]) -> str:
    """Tabs over panels (id, label, content); the first shown."""
    buttons = "".join(f"<button type=\"button\" role=\"tab\" aria-controls=\"{esc(i)}\" "
                      f"aria-selected=\"{'true' if n == 0 else 'false'}\">{esc(label)}</button>"
                      for n, (i, label, _) in enumerate(panels))
    sections = "".join(f"<section id=\"{esc(i)}\" role=\"tabpanel\"{' hidden' if n else ''}>{content}</section>"
                       for n, (i, _, content) in enumerate(panels))
    return f"<div class=\"tabs\" role=\"tablist\">{buttons}</div>{sections}"


def log_chart(points: list[tuple], lines_: list[tuple[list[tuple[float, float]], str, str]],
              x_label: str, y_label: str, width: int = 760, height: int = 420) -> str:
    """A log-log SVG chart: points (x, y, colour, hover text[, filled, radius]) and labelled lines ([(x, y)],
    colour, label)."""
    xs = [p[0] for p in points] + [x for ln in lines_ for x, _ in ln[0]]
    ys = [p[1] for p in points] + [y for ln in lines_ for _, y in ln[0]]
    if not xs:
        return "<p class=\"note\">nothing to draw</p>"
    x0, x1 = math.floor(math.log10(min(xs))), math.ceil(math.log10(max(xs)))
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
    left, right, top, bottom = 64, 12, 12, 44

    def px(x: float) -> float:
        return left + (math.log10(x) - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        return height - bottom - (math.log10(y) - y0) / (y1 - y0) * (height - top - bottom)
    out = [f"<svg role=\"img\" aria-label=\"{esc(y_label)} against {esc(x_label)}\" viewBox=\"0 0 {width} {height}\" "
           f"width=\"100%\" style=\"max-width:{width}px\">"]
    for e in range(x0, x1 + 1):
        out.append(f"<line x1=\"{px(10**e):.1f}\" x2=\"{px(10**e):.1f}\" y1=\"{top}\" y2=\"{height - bottom}\" "
                   f"stroke=\"#eee\"/><text x=\"{px(10**e):.1f}\" y=\"{height - bottom + 14}\" "
                   f"text-anchor=\"middle\">1e{e}</text>")
    for e in range(y0, y1 + 1):
        out.append(f"<line x1=\"{left}\" x2=\"{width - right}\" y1=\"{py(10**e):.1f}\" y2=\"{py(10**e):.1f}\" "
                   f"stroke=\"#eee\"/><text x=\"{left - 4}\" y=\"{py(10**e) + 4:.1f}\" text-anchor=\"end\">1e{e}</text>")
    out.append(f"<text x=\"{(left + width) / 2:.0f}\" y=\"{height - 8}\" text-anchor=\"middle\">{esc(x_label)}</text>"
               f"<text transform=\"rotate(-90)\" x=\"{-(height - bottom) / 2:.0f}\" y=\"14\" "
               f"text-anchor=\"middle\">{esc(y_label)}</text>")
    for pts, colour, label in lines_:
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        out.append(f"<polyline class=\"roof\" points=\"{path}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\">"
                   f"<title>{esc(label)}</title></polyline>")
        x, y = pts[-1]
        out.append(f"<text x=\"{px(x) - 4:.1f}\" y=\"{py(y) - 4:.1f}\" text-anchor=\"end\">{esc(label)}</text>")
    for x, y, colour, text, *style in points:  # style: filled (default True), radius (default 4)
        filled, radius = (style + [True, 4])[:2] if style else (True, 4)
        paint = f"fill=\"{colour}\" fill-opacity=\"0.8\"" if filled else f"fill=\"none\" stroke=\"{colour}\""
        out.append(f"<circle class=\"mark\" cx=\"{px(x):.1f}\" cy=\"{py(y):.1f}\" r=\"{radius}\" {paint}>"
                   f"<title>{esc(text)}</title></circle>")
    out.append("</svg>")
    return "".join(out)
