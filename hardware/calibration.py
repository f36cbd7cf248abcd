"""Calibration files: a GPU's time model (opgraph.pricing.timing) as data, one TOML file per GPU in
`calibrations/` (found by the spec's name), or a user's own file (`--calibration FILE`).

    name = "h100-sxm from vLLM 0.24.0 kernels"
    source = "where the measurements come from, and their licence"
    fit = "held-out error of the fit"
    exp_rate_per_s = 3.9e12              # optional: exponentials per second on the special-function units

    [gemm]                               # one table per kernel class; "default" serves classes not listed
    latency_us = 4.2                     # fixed cost per kernel
    compute_efficiency = 0.8             # fraction of the datasheet peak reached
    memory_efficiency = 0.8              # fraction of the datasheet bandwidth reached
    overlap = 0.5                        # of compute and memory: 1 = max, 0 = sum
    tile_m = 64                          # GEMM output tiles: rows padded to a multiple of this,
    tile_n = 64                          # columns to a multiple of this,
    tiles_per_wave = 132                 # and tiles to whole waves of this many (the SMs; 0: no waves)
    per_row_us = 0.0                     # attention: per (sequence x KV head); GEMM: per activation row
    per_input_ps = 0.0                   # GEMM: per activation input element (fp8: its quantization)
    per_depth_ps = 1740.0                # GEMM: per unit of k of one output tile's serial k-loop,
    split_depth = 2174.0                 # up to this k, beyond which k is split across SMs (0: never)
    special_overlap = 0.35               # attention: of exponentials with matrix products (1 = max, 0 = sum)

    [norm]                               # norms, rope, SiLU x mul, embeddings: the L2 serves the first stretch
    cache_us = 4.1                       # of traffic, this long at the datasheet bandwidth (its bytes / bandwidth),
    cache_efficiency = 1.6               # at this share of the datasheet bandwidth (above 1: faster than DRAM)

    [moe]                                # fused-MoE calls: a cost per program of the grouped GEMMs
    per_tile_ns = 2.8

    [collective]                         # all-reduce, all-gather, send: the ring collectives
    latency_us = 4.5
    link_efficiency = 1.04               # achieved / the spec's link bandwidth (above 1: in-switch reduction)
    per_step_us = 0.05                   # per algorithm step; absent: the spec's step_latency_us

    [all_to_all]                         # expert-parallel dispatch and combine (absent: priced as [collective])

    [gemm_fp8.rows_16]                   # a GEMM class's own table for GEMMs of at most 16 rows (m): the kernel a
    latency_us = 5.0                     # library dispatches for them (vLLM's CUTLASS fp8 on Hopper: m <= 16, <= 64,
                                         # <= 128); [gemm_fp8] prices GEMMs of more rows than its largest

`write` makes such a file from a fitted TimeModel (what `opgraph calibrate --out` writes).
"""

from __future__ import annotations

import json
from pathlib import Path

from opgraph.pricing.kinds import NAMES
from opgraph.pricing.timing import ClassTiming, TimeModel
from opgraph.errors import OpgraphError
from opgraph.files import datafile

FOLDER = Path(__file__).parent / "calibrations"
_TOP = {"name", "source", "fit", "exp_rate_per_s"}
TABLES = (*NAMES, "default")  # one table per kernel class (opgraph.pricing.kinds); "default" serves the rest
# file key -> (ClassTiming field, scale from the file's unit to the field's)
_FIELDS = {"latency_us": ("latency_s", 1e-6), "compute_efficiency": ("compute_efficiency", 1),
           "memory_efficiency": ("memory_efficiency", 1), "overlap": ("overlap", 1), "tile_m": ("tile_m", 1),
           "tile_n": ("tile_n", 1), "tiles_per_wave": ("tiles_per_wave", 1), "per_row_us": ("per_row_s", 1e-6),
           "per_input_ps": ("per_input_s", 1e-12), "per_depth_ps": ("per_depth_s", 1e-12),
           "split_depth": ("split_depth", 1), "special_overlap": ("special_overlap", 1),
           "link_efficiency": ("link_efficiency", 1), "per_step_us": ("per_step_s", 1e-6),
           "cache_us": ("cache_s", 1e-6), "cache_efficiency": ("cache_efficiency", 1),
           "per_tile_ns": ("per_tile_s", 1e-9)}

# written only where a class has them (the vector classes' L2 stretch, the fused-MoE calls' cost per tile)
_UNLESS_SET = ("cache_s", "cache_efficiency", "per_tile_s")
_UNSET = {name: getattr(ClassTiming(), name) for name in _UNLESS_SET}
_ROWS = "rows_"  # [class.rows_16]: the class's table for GEMMs of at most 16 rows (ClassTiming.by_rows)


def shipped(gpu: str) -> Path | None:
    """The shipped calibration file of a spec, if there is one."""
    path = FOLDER / f"{gpu}.toml"
    return path if path.is_file() else None


def parse(path: Path) -> TimeModel:
    """Read and validate one calibration file; errors name the file, the table and the field."""
    where = str(path)
    data = datafile.read(path, "calibration file")
    classes = {}
    for key, value in data.items():
        if key in _TOP:
            continue
        if not isinstance(value, dict):
            raise OpgraphError(f"{where}: unknown field {key!r}; valid: {', '.join(sorted(_TOP))}, and one table "
                               f"per kernel class")
        if key not in TABLES:  # a misspelt class would load and never be used
            raise OpgraphError(f"{where}: [{key}] is not a kernel class; valid tables: {', '.join(TABLES)}")
        subtables = {k: v for k, v in value.items() if isinstance(v, dict)}
        by_rows = []
        for sub, fields in subtables.items():
            bound = sub.removeprefix(_ROWS)
            if not sub.startswith(_ROWS) or not bound.isdigit() or int(bound) < 1:
                raise OpgraphError(f"{where}: [{key}.{sub}] is not a table by rows; write [{key}.{_ROWS}N], N the "
                                   f"most rows (m) of the GEMMs it prices")
            by_rows.append((int(bound), _timing(where, f"{key}.{sub}", fields)))
        fields = {k: v for k, v in value.items() if k not in subtables}
        classes[key] = _timing(where, key, fields, tuple(sorted(by_rows, key=lambda b: b[0])))
    for key in ("name", "source", "fit"):
        if not isinstance(data.get(key, ""), str):
            raise OpgraphError(f"{where}: {key!r} must be a string")
    rate = data.get("exp_rate_per_s")
    if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate < 1e18):
        raise OpgraphError(f"{where}: exp_rate_per_s must be a positive number, got {rate!r}")
    if not classes:
        raise OpgraphError(f"{where}: no kernel class tables; give at least [default] or [gemm]")
    return TimeModel(data.get("name", path.stem), classes, rate, data.get("source", ""), data.get("fit", ""))


def _timing(where: str, key: str, value: dict, by_rows: tuple = ()) -> ClassTiming:
    """One table's fields as a ClassTiming; errors name the file, the table and the field."""
    unknown = set(value) - set(_FIELDS)
    if unknown:
        raise OpgraphError(f"{where}: [{key}]: unknown field(s) {', '.join(sorted(unknown))}; valid: "
                           f"{', '.join(_FIELDS)}")
    kwargs = {}
    for field, raw in value.items():
        name, scale = _FIELDS[field]
        if isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise OpgraphError(f"{where}: [{key}] {field} must be a number, got {raw!r}")
        kwargs[name] = raw * scale if scale != 1 else raw
    try:
        return ClassTiming(**kwargs, by_rows=by_rows)
    except OpgraphError as e:
        raise OpgraphError(f"{where}: [{key}] {e}") from None


def _value(v) -> str:
    return json.dumps(v) if isinstance(v, str) else repr(v)


def write(tm: TimeModel, path: Path) -> Path:
    """Write a time model as a calibration file that `parse` reads back."""
    lines = [f"name = {_value(tm.name)}", f"source = {_value(tm.source)}", f"fit = {_value(tm.fit)}"]
    if tm.exp_rate:
        lines.append(f"exp_rate_per_s = {tm.exp_rate!r}")
    for kind, p in tm.classes.items():
        for table, q in ((kind, p), *((f"{kind}.{_ROWS}{bound}", t) for bound, t in p.by_rows)):
            lines += ["", f"[{table}]"]
            for field, (name, scale) in _FIELDS.items():
                value = getattr(q, name)
                if value is None or (name in _UNLESS_SET and value == _UNSET[name]):  # the spec's step latency; no L2
                    continue
                # six decimals are far inside any fit's error, and a fitted 0.9999999999 becomes the 1 that the time
                # model skips as an identity (sweeps replay every term)
                lines.append(f"{field} = {value!r}" if isinstance(value, int) else
                             f"{field} = {round(value / scale, 6)!r}")
    try:
        Path(path).write_text("\n".join(lines) + "\n")
    except OSError as e:
        raise OpgraphError(f"--out {str(path)!r}: cannot write: {e.strerror or e}") from None
    return Path(path)
