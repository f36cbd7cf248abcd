"""`opgraph validate`: predicted against measured kernel times, and the error distribution."""

from __future__ import annotations

from opgraph.analysis.validate import SHAPE_COLUMNS, Stats, Validation
from opgraph.render import renderer
from opgraph.render.text import header, heading, lines, table, to_csv, to_json

HEADERS = ["kernels", "median |error|", "p90 |error|", "median error", "predicted too fast"]


def _row(label: str, s: Stats) -> list[str]:
    return [label, f"{s.count:,}", f"{s.median:.1%}", f"{s.p90:.1%}", f"{s.bias:+.1%}", f"{s.too_fast:.0%}"]


def _stats(s: Stats) -> dict:
    return {"count": s.count, "median_abs_error": s.median, "p90_abs_error": s.p90, "median_error": s.bias,
            "share_too_fast": s.too_fast}


@renderer(Validation, "table", "markdown")
def as_text(v: Validation, fmt: str) -> str:
    hw = v.hardware
    out = header(f"opgraph validate: {v.source or 'measurements'} against {hw.display_name} ({hw.name})", fmt,
                 [f"{len(v.measurements):,} measured kernels; predicted: the roofline (FLOPs at the datasheet peak, "
                  f"bytes at the datasheet bandwidth, the larger)",
                  "error = (predicted - measured) / measured: negative is too fast"])
    out += ["", heading("by class", fmt), "",
            table([_row(k, s) for k, s in v.by_class.items()] + [_row("all", v.overall)], ["class", *HEADERS], fmt,
                  colalign=("left", "right", "right", "right", "right", "right")),
            "", heading("by regime (the roofline's verdict)", fmt), "",
            table([_row(k, s) for k, s in v.by_regime.items()], ["regime", *HEADERS], fmt,
                  colalign=("left", "right", "right", "right", "right", "right"))]
    errors = v.errors
    worst = sorted(range(len(errors)), key=lambda i: abs(errors[i]), reverse=True)[:5]
    rows = [[v.measurements[i].kind, ", ".join(f"{k} {n:,}" for k, n in v.measurements[i].shape.items()),
             f"{v.measurements[i].time_s * 1e6:,.2f}", f"{v.roofline_s[i] * 1e6:,.2f}", f"{errors[i]:+.0%}"]
            for i in worst]
    out += ["", heading("largest errors", fmt), "",
            table(rows, ["class", "shape", "measured µs", "predicted µs", "error"], fmt,
                  colalign=("left", "left", "right", "right", "right"))]
    return lines(out)


@renderer(Validation, "json")
def as_json(v: Validation, fmt: str) -> str:
    errors = v.errors
    return to_json({
        "source": v.source, "hardware": v.hardware.name, "predicted": "roofline", "units": {"*_s": "s"},
        "overall": _stats(v.overall), "by_class": {k: _stats(s) for k, s in v.by_class.items()},
        "by_regime": {k: _stats(s) for k, s in v.by_regime.items()},
        "rows": [{"row": m.row, "class": m.kind, "dtype": m.dtype, **m.shape, "measured_s": m.time_s,
                  "roofline_s": float(t), "bound": b, "error": float(e)}
                 for m, t, b, e in zip(v.measurements, v.roofline_s, v.bound, errors)]})


@renderer(Validation, "csv")
def as_csv(v: Validation, fmt: str) -> str:
    errors = v.errors
    return to_csv(["row", "class", "dtype", *SHAPE_COLUMNS, "measured_s", "roofline_s", "bound", "error"],
                  ([m.row, m.kind, m.dtype, *(m.shape.get(c, "") for c in SHAPE_COLUMNS), m.time_s, float(t), b,
                    float(e)] for m, t, b, e in zip(v.measurements, v.roofline_s, v.bound, errors)))
