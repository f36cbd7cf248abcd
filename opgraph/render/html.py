"""Self-contained HTML pages (issue 19): one file, its styles, script and data inside, nothing fetched.

Hand-written SVG and a small script rather than a charting library: the pages need log axes, points with hover
details, sortable tables and tabs, which fit in a few hundred lines; a vendored library (Plotly alone is over 3 MB)
would break the 2 MB budget of a page and add a licence to ship. Every number shown is rendered here, in Python, from
the same record the JSON format writes, and that JSON is embedded whole (`<script type="application/json"
id="opgraph-data">`) so that a script or a test reads exactly what the command line gives.
"""

from __future__ import annotations

import base64
import gzip
import html
import math

from opgraph.render.text import capacity as capacity_label

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
.wide{overflow-x:auto}.note{color:#555}table.facts{width:auto;min-width:min(100%,560px)}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:8px}.charts h3{margin:8px 0 0}
svg text{font:11px system-ui,sans-serif}.mark{fill-opacity:.8}
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
// The page's data, whichever way it is embedded (plain JSON, or gzip and base64 when large): a Promise of the record.
window.opgraphData = function () {
  var s = document.getElementById('opgraph-data');
  if (s.getAttribute('data-encoding') !== 'gzip+base64') { return Promise.resolve(JSON.parse(s.textContent)); }
  var bytes = Uint8Array.from(atob(s.textContent.trim()), function (c) { return c.charCodeAt(0); });
  return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).json();
};
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


PLAIN_UP_TO = 1_000_000  # characters of JSON embedded as they are; more (a sweep of 10,000 points) gzip and base64


def embedded(data_json: str) -> str:
    """The record's JSON as the page holds it: whole, closing tags inside it escaped; above PLAIN_UP_TO characters
    gzip-compressed and base64-encoded (about a fifth of the size), said by data-encoding="gzip+base64"."""
    if len(data_json) <= PLAIN_UP_TO:
        plain = data_json.replace("</", "<\\/")
        return f"<script type=\"application/json\" id=\"opgraph-data\">{plain}</script>"
    packed = base64.b64encode(gzip.compress(data_json.encode(), compresslevel=6, mtime=0)).decode()
    return f"<script type=\"application/gzip\" id=\"opgraph-data\" data-encoding=\"gzip+base64\">{packed}</script>"


def page(title: str, note: str, body: str, data_json: str, notes=()) -> str:
    """A whole page: the title as its heading; `note` (HTML) saying what its figures are, and that its data is the
    JSON; the record's own notes; the body; the record's JSON embedded (see `embedded`)."""
    head = (f"<h1>{esc(title)}</h1><p class=\"note\">{note} The page's data is the JSON of <code>--format json</code>, "
            f"embedded.</p>" + "".join(f"<p class=\"note\">note: {esc(n)}</p>" for n in notes))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>\n{head}{body}\n"
            f"{embedded(data_json)}\n<script>{SCRIPT}</script></body></html>\n")


def palette(names) -> dict[str, str]:
    """One colour a name, in order, from the bright scheme (repeating past seven)."""
    return {name: BRIGHT[i % len(BRIGHT)] for i, name in enumerate(names)}


def legend(colours: dict[str, str], extra: str = "") -> str:
    keys = " ".join(f"<span style=\"color:{c}\">&#9679;</span> {esc(n)}" for n, c in colours.items())
    return f"<p class=\"legend\">{keys}{esc(extra)}</p>"


def every(items: list, most: int) -> tuple[list, int]:
    """Every step-th item, at most `most` of them (a chart of tens of thousands of marks is unreadable), and
    the step."""
    step = max(1, -(-len(items) // most))
    return items[::step], step


def spread(values: list, most: int) -> list:
    """At most `most` of the values, evenly spread, the first and the last kept."""
    if len(values) <= most:
        return list(values)
    if most <= 1:
        return [values[0]]
    return [values[round(i * (len(values) - 1) / (most - 1))] for i in range(most)]


def facts(rows: list[tuple[str, str]]) -> str:
    """A two-column table of named figures (each name saying its unit and scope)."""
    cells = "".join(f"<tr><td class=text>{esc(k)}</td><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"<table class=\"facts\"><tbody>{cells}</tbody></table>"


def decades(values) -> bool:
    """Whether positive values span a decade or more: such an axis is drawn logarithmic."""
    values = [v for v in values if v > 0]
    return bool(values) and max(values) >= 10 * min(values)


def _tick(v: float, step: float | None = None) -> str:
    """A tick's label: plain numbers from 0.001 to a million, powers of ten beyond."""
    if v == 0:
        return "0"
    if step is None:  # a power of ten on a log axis
        e = round(math.log10(v))
        return f"{v:,.{max(0, -e)}f}" if -3 <= e <= 6 else f"1e{e}"
    return f"{v:,.{max(0, -math.floor(math.log10(step)))}f}"


class Axis:
    """One axis of a chart: logarithmic (whole decades) or linear (round steps, from zero if `zero`); `at` maps a
    value to a pixel between `start` and `end`."""

    def __init__(self, values: list[float], log: bool, start: float, end: float, zero: bool = True):
        self.log, self.start, self.end = log, start, end
        if log:
            lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
            self.lo, self.hi = lo, max(hi, lo + 1)
            self.ticks = [(10.0 ** e, _tick(10.0 ** e)) for e in range(self.lo, self.hi + 1)]
        else:
            top, low = max(values), min(values)
            top, low = (max(top, 0.0), min(low, 0.0)) if zero else (top, low if top > low else low - 1)
            raw = (top - low) / 5 or 1.0
            step = 10 ** math.floor(math.log10(raw))
            step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
            self.lo, self.hi = math.floor(low / step) * step, math.ceil(top / step) * step or step
            n = round((self.hi - self.lo) / step)
            self.ticks = [(self.lo + i * step, _tick(self.lo + i * step, step)) for i in range(n + 1)]

    def at(self, v: float) -> float:
        u = (math.log10(v) if self.log else v)
        return self.start + (u - self.lo) / (self.hi - self.lo) * (self.end - self.start)


def chart(points: list[tuple], lines_: list[tuple], x_label: str, y_label: str, *, x_log: bool = True,
          y_log: bool = True, width: int = 760, height: int = 420) -> str:
    """An SVG chart, each axis logarithmic or linear: points (x, y, colour, hover text[, filled, radius]) and
    lines ([(x, y)], colour, label[, dashed]); a line labelled "" has no text at its end (a legend names it)."""
    xs = [p[0] for p in points] + [x for ln in lines_ for x, _ in ln[0]]
    ys = [p[1] for p in points] + [y for ln in lines_ for _, y in ln[0]]
    if not xs:
        return "<p class=\"note\">nothing to draw</p>"
    left, right, top, bottom = 64, 24, 12, 44
    ax, ay = Axis(xs, x_log, left, width - right, zero=False), Axis(ys, y_log, height - bottom, top)
    out = [f"<svg role=\"img\" aria-label=\"{esc(y_label)} against {esc(x_label)}\" viewBox=\"0 0 {width} {height}\" "
           f"width=\"100%\" style=\"max-width:{width}px\">"]
    for v, label in ax.ticks:
        out.append(f"<line x1=\"{ax.at(v):.1f}\" x2=\"{ax.at(v):.1f}\" y1=\"{top}\" y2=\"{height - bottom}\" "
                   f"stroke=\"#eee\"/><text x=\"{ax.at(v):.1f}\" y=\"{height - bottom + 14}\" "
                   f"text-anchor=\"middle\">{label}</text>")
    for v, label in ay.ticks:
        out.append(f"<line x1=\"{left}\" x2=\"{width - right}\" y1=\"{ay.at(v):.1f}\" y2=\"{ay.at(v):.1f}\" "
                   f"stroke=\"#eee\"/><text x=\"{left - 4}\" y=\"{ay.at(v) + 4:.1f}\" text-anchor=\"end\">{label}</text>")
    scale = lambda log: " (log)" if log else ""  # noqa: E731
    out.append(f"<text x=\"{(left + width) / 2:.0f}\" y=\"{height - 8}\" text-anchor=\"middle\">"
               f"{esc(x_label)}{scale(x_log)}</text><text transform=\"rotate(-90)\" x=\"{-(height - bottom) / 2:.0f}\" "
               f"y=\"14\" text-anchor=\"middle\">{esc(y_label)}{scale(y_log)}</text>")
    for pts, colour, label, *dashed in lines_:
        path = " ".join(f"{ax.at(x):.1f},{ay.at(y):.1f}" for x, y in pts)
        dash = " stroke-dasharray=\"5 4\"" if dashed and dashed[0] else ""
        out.append(f"<polyline class=\"line\" points=\"{path}\" fill=\"none\" stroke=\"{colour}\" "
                   f"stroke-width=\"1.5\"{dash}>" + (f"<title>{esc(label)}</title>" if label else "") + "</polyline>")
        if label:
            x, y = pts[-1]
            out.append(f"<text x=\"{ax.at(x) - 4:.1f}\" y=\"{ay.at(y) - 4:.1f}\" text-anchor=\"end\">{esc(label)}</text>")
    for x, y, colour, text, *style in points:  # style: filled (default True), radius (default 4)
        filled, radius = (style + [True, 4])[:2] if style else (True, 4)
        paint = f"fill=\"{colour}\"" if filled else f"fill=\"none\" stroke=\"{colour}\""
        out.append(f"<circle class=\"mark\" cx=\"{ax.at(x):.1f}\" cy=\"{ay.at(y):.1f}\" r=\"{radius}\" {paint}>"
                   f"<title>{esc(text)}</title></circle>")
    out.append("</svg>")
    return "".join(out)


RING = "#222"  # crossover rings: dark, hollow and larger than the points, so they read over any curve's colour


def ring(x: float, y: float, text: str) -> tuple:
    """A chart point drawn as a hollow ring around (x, y), the curve's own point there: a crossover, with hover text."""
    return (x, y, RING, text, False, 7)


def first_compute(bounds) -> int | None:
    """The index of the first verdict that is compute-bound (where a curve turns so), or None."""
    return next((i for i, b in enumerate(bounds) if b == "compute"), None)


def table(table_id: str, headers: list[str], rows: list[tuple[list[tuple[str, object]], dict]]) -> str:
    """A sortable table: each row is its cells, (shown text, sort value), and its row attributes."""
    head = "".join(f"<th scope=\"col\"><button type=\"button\">{esc(h)}</button></th>" for h in headers)
    body = []
    for cells, attributes in rows:
        attrs_ = "".join(f" {k}=\"{esc(v)}\"" for k, v in attributes.items())
        tds = "".join(f"<td data-v=\"{esc(f'{v:.9g}' if isinstance(v, float) else v)}\""
                      f"{' class=text' if isinstance(v, str) else ''}>{esc(shown)}</td>" for shown, v in cells)
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




def dot_rows(rows: list[tuple[str, float | None, str, str]], x_label: str, never: str, width: int = 760) -> str:
    """One row a label with a mark at its value on a log axis (x_label's): rows (label, value or None, colour,
    hover text); a row without a value says `never` at the right instead of a mark."""
    if not rows:
        return "<p class=\"note\">nothing to draw</p>"
    left, right, top, pitch = 230, 24, 8, 18
    height = top + pitch * len(rows) + 40
    values = [v for _, v, *_ in rows if v] or [1.0]
    ax = Axis([1.0, *values], True, left, width - right)
    out = [f"<svg role=\"img\" aria-label=\"{esc(x_label)} of each row\" viewBox=\"0 0 {width} {height}\" "
           f"width=\"100%\" style=\"max-width:{width}px\">"]
    bottom = top + pitch * len(rows)
    for v, label in ax.ticks:
        out.append(f"<line x1=\"{ax.at(v):.1f}\" x2=\"{ax.at(v):.1f}\" y1=\"{top}\" y2=\"{bottom}\" stroke=\"#eee\"/>"
                   f"<text x=\"{ax.at(v):.1f}\" y=\"{bottom + 14}\" text-anchor=\"middle\">{label}</text>")
    out.append(f"<text x=\"{(left + width) / 2:.0f}\" y=\"{bottom + 32}\" text-anchor=\"middle\">{esc(x_label)} "
               f"(log)</text>")
    for i, (label, v, colour, text) in enumerate(rows):
        y = top + pitch * i + pitch / 2
        out.append(f"<text x=\"{left - 6}\" y=\"{y + 4:.1f}\" text-anchor=\"end\">{esc(label)}</text>"
                   f"<line x1=\"{left}\" x2=\"{width - right}\" y1=\"{y:.1f}\" y2=\"{y:.1f}\" stroke=\"#f4f4f4\"/>")
        if v:
            out.append(f"<circle class=\"mark\" cx=\"{ax.at(v):.1f}\" cy=\"{y:.1f}\" r=\"5\" fill=\"{colour}\">"
                       f"<title>{esc(text)}</title></circle>")
        else:
            out.append(f"<text x=\"{width - right}\" y=\"{y + 4:.1f}\" text-anchor=\"end\" fill=\"#777\">{esc(never)}"
                       f"<title>{esc(text)}</title></text>")
    out.append("</svg>")
    return "".join(out)


def bars(rows: list[tuple[str, float, str, str]], unit: str, width: int = 760) -> str:
    """Horizontal bars from zero, one a row: (label, value, colour, hover text), each with its value in `unit`."""
    if not rows:
        return "<p class=\"note\">nothing to draw</p>"
    left, right, pitch = 230, 90, 22
    top = max(v for _, v, *_ in rows) or 1.0
    out = [f"<svg role=\"img\" aria-label=\"{esc(unit)} of each row\" viewBox=\"0 0 {width} {pitch * len(rows) + 4}\" "
           f"width=\"100%\" style=\"max-width:{width}px\">"]
    for i, (label, v, colour, text) in enumerate(rows):
        y, w = 2 + pitch * i, max(v, 0) / top * (width - left - right)
        out.append(f"<text x=\"{left - 6}\" y=\"{y + 14}\" text-anchor=\"end\">{esc(label)}</text>"
                   f"<rect class=\"bar\" x=\"{left}\" y=\"{y + 2}\" width=\"{w:.1f}\" height=\"{pitch - 6}\" "
                   f"fill=\"{colour}\"><title>{esc(text)}</title></rect>"
                   f"<text x=\"{left + w + 4:.1f}\" y=\"{y + 14}\">{esc(f'{v:,.4g} {unit}')}</text>")
    out.append("</svg>")
    return "".join(out)


def stack(parts: list[tuple[str, float, str]], capacity: float, scope: str, width: int = 760) -> str:
    """A stacked bar of parts (label, bytes, colour) against a capacity (a dashed mark), in GB; `scope` says whose
    memory it is (one GPU)."""
    total = sum(v for _, v, _ in parts)
    left, right, height = 8, 8, 78
    scale = (width - left - right) / max(total, capacity, 1.0)
    out = [f"<svg role=\"img\" aria-label=\"memory of {esc(scope)} against its capacity\" viewBox=\"0 0 {width} "
           f"{height}\" width=\"100%\" style=\"max-width:{width}px\">"]
    x = left
    for label, v, colour in parts:
        w = v * scale
        out.append(f"<rect class=\"part\" x=\"{x:.1f}\" y=\"18\" width=\"{w:.1f}\" height=\"28\" fill=\"{colour}\">"
                   f"<title>{esc(label)}: {v / 1e9:,.2f} GB ({v / capacity:.1%} of {esc(scope)}'s "
                   f"{capacity_label(capacity)})</title></rect>")
        x += w
    cap = left + capacity * scale
    verdict = "fits" if total <= capacity else "DOES NOT FIT"
    out.append(f"<line x1=\"{cap:.1f}\" x2=\"{cap:.1f}\" y1=\"10\" y2=\"54\" stroke=\"#222\" stroke-dasharray=\"4 3\"/>"
               f"<text x=\"{min(cap, width - right):.1f}\" y=\"10\" text-anchor=\"end\">capacity {capacity_label(capacity)}"
               f"</text><text x=\"{left}\" y=\"70\">{esc(scope)}: {total / 1e9:,.2f} GB of {capacity_label(capacity)} "
               f"({total / capacity:.0%}): {verdict}</text></svg>")
    keys = " ".join(f"<span style=\"color:{c}\">&#9632;</span> {esc(label)} {v / 1e9:,.2f} GB" for label, v, c in parts)
    return "".join(out) + f"<p class=\"legend\">{keys}</p>"
