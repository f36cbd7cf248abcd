"""`opgraph bench`: the kernels measured (or, in a dry run, to be measured), and the measurement CSV itself."""

from __future__ import annotations

from collections import Counter

from opgraph.analysis.bench import COLUMNS, LEFT_OUT, Bench
from opgraph.render import renderer
from opgraph.render.text import lines, table, to_csv, to_json


def measurement_csv(b: Bench) -> str:
    """The rows as the measurement CSV that validate and calibrate read."""
    return to_csv(list(COLUMNS), ([r.get(c, "") for c in COLUMNS] for r in b.rows))


@renderer(Bench, "table")
def as_text(b: Bench, fmt: str) -> str:
    counts = Counter(s.kind for s in b.specs)
    head = (f"measured {len(b.rows):,} kernels of {b.model}; wrote {b.out}" if b.rows else
            f"dry run: {len(b.specs):,} kernels of {b.model} would be measured")
    rows = [[s.kind, s.dtype, ", ".join(f"{k} {v:,}" for k, v in s.shape),
             f"{b.rows[i]['time_us']:,.2f}" if b.rows else "-"] for i, s in enumerate(b.specs)]
    return lines(head + " (" + ", ".join(f"{n:,} {k}" for k, n in counts.items()) + ")",
                 *(f"not timed: {n:,} {why}: {LEFT_OUT[why]}" for why, n in b.left_out), "",
                 table(rows, ["class", "dtype", "shape", "measured µs"], fmt))


@renderer(Bench, "json")
def as_json(b: Bench, fmt: str) -> str:
    return to_json({"model": b.model, "out": b.out,
                    "not_timed": [{"ops": n, "what": why, "why": LEFT_OUT[why]} for why, n in b.left_out], "kernels": [
        {"class": s.kind, "dtype": s.dtype, **dict(s.shape), "time_us": b.rows[i]["time_us"] if b.rows else None}
        for i, s in enumerate(b.specs)]})
