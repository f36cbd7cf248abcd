"""`opgraph validate`: predicted against measured kernel times, and the error distribution."""

from __future__ import annotations

from opgraph.analysis.validate import SHAPE_COLUMNS, Stats, Validation
from opgraph.render import renderer
from opgraph.render.text import header, heading, lines, table, to_csv, to_json

HEADERS = ["kernels", "median |error|", "p90 |error|", "median error", "too fast"]
ALIGN = ("left", "left", "right", "right", "right", "right", "right")


def _row(predictor: str, label: str, s: Stats) -> list[str]:
    return [label, predictor, f"{s.count:,}", f"{s.median:.1%}", f"{s.p90:.1%}", f"{s.bias:+.1%}",
            f"{s.too_fast:.0%}"]


def stats_record(s: Stats) -> dict:
    return {"count": s.count, "median_abs_error": s.median, "p90_abs_error": s.p90, "median_error": s.bias,
            "share_too_fast": s.too_fast}


def _group_table(v: Validation, group: str, fmt: str) -> str:
    rows = []
    for key in v.stats["roofline"][group]:
        rows += [_row(p, key, v.stats[p][group][key]) for p in v.predictors if key in v.stats[p][group]]
    if group == "class":
        rows += [_row(p, "all", v.stats[p]["all"]["all"]) for p in v.predictors]
    return table(rows, [group, "predicted by", *HEADERS], fmt, colalign=ALIGN)


@renderer(Validation, "table", "markdown")
def as_text(v: Validation, fmt: str) -> str:
    hw, tm = v.hardware, v.hardware.timing
    model = (f"the time model calibrated from {tm.source or tm.name}" if tm.calibrated else
             "no calibration for this GPU: the expected time is the roofline")
    out = header(f"opgraph validate: {v.source or 'measurements'} against {hw.display_name} ({hw.name})", fmt,
                 [f"{len(v.measurements):,} measured kernels; roofline: FLOPs at the datasheet peak, bytes at the "
                  f"datasheet bandwidth, the larger; expected: {model}",
                  "error = (predicted - measured) / measured: negative is too fast",
                  *(f"note: {n}" for n in v.notes)])
    out += ["", heading("by class", fmt), "", _group_table(v, "class", fmt),
            "", heading("by regime (the expected model's verdict)", fmt), "", _group_table(v, "regime", fmt)]
    errors = v.errors(v.predictors[-1])
    worst = sorted(range(len(errors)), key=lambda i: abs(errors[i]), reverse=True)[:5]
    rows = [[v.measurements[i].kind, ", ".join(f"{k} {n:,}" for k, n in v.measurements[i].shape.items()),
             f"{v.measurements[i].time_s * 1e6:,.2f}", f"{v.roofline_s[i] * 1e6:,.2f}", f"{v.expected_s[i] * 1e6:,.2f}",
             f"{errors[i]:+.0%}"] for i in worst]
    out += ["", heading("largest errors", fmt), "",
            table(rows, ["class", "shape", "measured µs", "roofline µs", "expected µs", "error"], fmt,
                  colalign=("left", "left", "right", "right", "right", "right"))]
    return lines(out)


@renderer(Validation, "json")
def as_json(v: Validation, fmt: str) -> str:
    roof, exp = v.errors("roofline"), v.errors("expected")
    return to_json({
        "source": v.source, "hardware": v.hardware.name, "calibration": v.hardware.timing.name,
        "calibrated": v.hardware.timing.calibrated, "units": {"*_s": "s"}, "notes": list(v.notes),
        "stats": {p: {g: {k: stats_record(s) for k, s in groups.items()} for g, groups in v.stats[p].items()}
                  for p in v.predictors},
        "rows": [{"row": m.row, "class": m.kind, "dtype": m.dtype, **m.shape, "measured_s": m.time_s,
                  "roofline_s": float(r), "expected_s": float(e), "regime": g, "roofline_error": float(re),
                  "expected_error": float(ee)}
                 for m, r, e, g, re, ee in zip(v.measurements, v.roofline_s, v.expected_s, v.regime, roof, exp)]})


@renderer(Validation, "csv")
def as_csv(v: Validation, fmt: str) -> str:
    roof, exp = v.errors("roofline"), v.errors("expected")
    return to_csv(["row", "class", "dtype", *SHAPE_COLUMNS, "measured_s", "roofline_s", "expected_s", "regime",
                   "roofline_error", "expected_error"],
                  ([m.row, m.kind, m.dtype, *(m.shape.get(c, "") for c in SHAPE_COLUMNS), m.time_s, float(r), float(e),
                    g, float(re), float(ee)]
                   for m, r, e, g, re, ee in zip(v.measurements, v.roofline_s, v.expected_s, v.regime, roof, exp)))


MOST_DRAWN = 3000  # marks on the chart at most


def versus(points: list[tuple], x_label: str, y_label: str) -> str:
    """Predicted against measured, log-log, with the diagonal where they agree: points (measured, predicted,
    colour, hover text)."""
    from opgraph.render.html import chart

    lo = min(min(p[0] for p in points), min(p[1] for p in points))
    hi = max(max(p[0] for p in points), max(p[1] for p in points))
    return chart(points, [([(lo, lo), (hi, hi)], "#222", "predicted = measured")], x_label, y_label)


@renderer(Validation, "html")
def as_html(v: Validation, fmt: str) -> str:
    """Predicted against measured, log-log, one colour a class, each row on hover; the error table by class. The
    page's data is the JSON."""
    import json

    from opgraph.render.html import esc, every, legend, page, palette, table

    data = as_json(v, "json")
    d = json.loads(data)
    predictor = v.predictors[-1]
    classes = sorted({r["class"] for r in d["rows"]})
    colour = palette(classes)
    shape = [c for c in SHAPE_COLUMNS]
    drawn, step = every(d["rows"], MOST_DRAWN)
    points = [(r["measured_s"] * 1e6, r[f"{predictor}_s"] * 1e6, colour[r["class"]],
               f"row {r['row']}: {r['class']} {r['dtype']} " + ", ".join(f"{k} {r[k]:,}" for k in shape if k in r)
               + f"; measured {r['measured_s'] * 1e6:,.2f} µs, {predictor} {r[f'{predictor}_s'] * 1e6:,.2f} µs, "
                 f"error {r[f'{predictor}_error']:+.0%}") for r in drawn]
    picture = versus(points, "measured time (µs)", f"{predictor} time (µs)")
    stats = d["stats"][predictor]
    rows = [([(k, k), (f"{s['count']:,}", s["count"]), (f"{s['median_abs_error']:.1%}", s["median_abs_error"]),
              (f"{s['p90_abs_error']:.1%}", s["p90_abs_error"]), (f"{s['median_error']:+.1%}", s["median_error"])],
             {"data-op": k}) for group in ("class", "all") for k, s in stats[group].items()]
    title = f"opgraph validate: {d['source']} against {v.hardware.display_name} ({v.hardware.name})"
    note = (f"{len(d['rows']):,} measured kernels, each predicted by the {esc(predictor)} time "
            f"({esc(d['calibration'])}); error = (predicted - measured) / measured; {len(drawn):,} of them drawn"
            + (f" (every {step}th row)" if step > 1 else "") + ".")
    body = (f"{legend(colour)}{picture}<h2>errors by class</h2>"
            + table("errors", ["class", "kernels", "median |error|", "p90 |error|", "median error"], rows))
    return page(title, note, body, data)
