"""What every renderer shares: numbers for people, tables, headings, JSON and CSV text.

Tables use human units stated in their headers (GFLOP, MB = 10^6 bytes, GB = 10^9 bytes, µs); JSON and CSV
carry exact integers in base units (FLOP, byte) and seconds. This module and its siblings in
`opgraph.render` are the only users of tabulate, json and csv output.
"""

from __future__ import annotations

import csv
import io
import json
import math

from tabulate import tabulate

TABLE_FORMATS = {"table": "simple", "markdown": "github"}


# -- numbers for people ------------------------------------------------------------------------------
def sig(value: float, digits: int = 3) -> str:
    """`digits` significant figures without scientific notation, thousands separated: 0.000524, 14.3, 1,234.

    >>> sig(0.00052431), sig(14.349), sig(1234.5), sig(float("inf"))
    ('0.000524', '14.3', '1,234', '∞')
    """
    if value == 0:
        return "0"
    if math.isinf(value):
        return "∞"
    if math.isnan(value):
        return "undefined"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{min(decimals, 9)}f}"


def scaled(value: float, unit: str, *, base: int = 1000) -> str:
    """A value with an SI prefix chosen to fit: 16.1 GB, 8.03 B params, 475 TFLOP.

    >>> scaled(16_060_522_496, "B"), scaled(475e12, "FLOP")
    ('16.1 GB', '475 TFLOP')
    """
    prefixes = ["", "k", "M", "G", "T", "P", "E"]
    i = 0
    while abs(value) >= base and i < len(prefixes) - 1:
        value /= base
        i += 1
    return f"{sig(value)} {prefixes[i]}{unit}"


def seconds(s: float) -> str:
    """Seconds in the unit that reads best: s, ms or µs.

    >>> seconds(2.5), seconds(0.00578), seconds(3.1e-7)
    ('2.50 s', '5.78 ms', '0.310 µs')
    """
    if s >= 1 or not math.isfinite(s):
        return f"{sig(s)} s"
    if s >= 1e-3:
        return f"{sig(s * 1e3)} ms"
    return f"{sig(s * 1e6)} µs"


def gb(n: float, decimals: int = 2) -> str:
    """Bytes as decimal gigabytes: gb(84_805_000_000) == '84.81 GB'."""
    return f"{n / 1e9:,.{decimals}f} GB"


def capacity(n: float) -> str:
    """A GPU's memory in decimal gigabytes, as every other figure, and in the binary ones its datasheet counts:
    capacity(80 * 2**30) == '85.9 GB (80 GiB)'."""
    return f"{n / 1e9:,.1f} GB ({n / 2**30:,.0f} GiB)"


def sizes(described: dict) -> str:
    """A phase's own sizes, as the user named them: 'batch 32, context 1,024'."""
    return ", ".join(f"{k} {v:,}" for k, v in described.items())


# -- text blocks ---------------------------------------------------------------------------------------
def table(rows: list, headers: list[str], fmt: str = "table", colalign=None, **kwargs) -> str:
    """A table in the plain or the markdown format; cells are shown as given (no number parsing)."""
    return tabulate(rows, headers, tablefmt=TABLE_FORMATS.get(fmt, "simple"), disable_numparse=True,
                    colalign=colalign, **kwargs)


def heading(text: str, fmt: str, level: int = 2) -> str:
    return f"{'#' * level} {text}" if fmt == "markdown" else text


def header(title: str, fmt: str, details: list[str]) -> list[str]:
    """A title line and its detail lines (hardware, fusion, precision ...); in markdown a heading and a list."""
    if fmt == "markdown":
        return [f"# {title}", "", *(f"- {d}" for d in details)]
    return [title, *details]


def precision_line(precision: dict[str, str]) -> str:
    return "precision: " + "; ".join(f"{role.replace('_', ' ')} {dt}" for role, dt in precision.items())


def lines(*parts) -> str:
    """Join lines (or lists of lines) into text ending in one newline."""
    out: list[str] = []
    for p in parts:
        out.extend(p if isinstance(p, list) else [p])
    return "\n".join(out) + "\n"


# -- machine formats ------------------------------------------------------------------------------------
def finite(x):
    """JSON has no infinity or NaN: such numbers become null (an op that touches no memory has no intensity); nor
    sets: a set becomes a sorted list (a fusion rule's op kinds, an engine plan's packed projections)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (set, frozenset)):
        return [finite(v) for v in sorted(x)]
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def to_json(data) -> str:
    return json.dumps(finite(data), indent=2, allow_nan=False) + "\n"


def flat(record: dict, prefix: str = "") -> dict:
    """A JSON record as one CSV row: a nested table's keys joined to its own by '_' (a list of tables keyed by each
    one's name where they all have one, else by position), a list of plain values joined by ';'.

    >>> flat({"a": 1, "b": {"mean": 2.0, "p90": 3.0}, "pools": [{"name": "x", "n": 1}], "lengths": [8, 16]})
    {'a': 1, 'b_mean': 2.0, 'b_p90': 3.0, 'pools_x_n': 1, 'lengths': '8;16'}
    """
    out = {}
    for key, value in record.items():
        key = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat(value, f"{key}_"))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            names = [v.get("name") for v in value]
            named = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
            for i, v in enumerate(value):
                out.update(flat({k: x for k, x in v.items() if not named or k != "name"},
                                f"{key}_{names[i] if named else i}_"))
        elif isinstance(value, list):
            out[key] = ";".join(str(v) for v in value)
        else:
            out[key] = value
    return out


def to_csv(header: list[str], rows) -> str:
    """CSV with floats written in full (repr) so scripts read back the exact values."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(header)
    for row in rows:
        # float() first: numpy's floats are floats whose repr names their type (np.float64(...))
        w.writerow(["" if isinstance(v, float) and not math.isfinite(v) else repr(float(v)) if isinstance(v, float)
                    else v for v in row])
    return out.getvalue()
