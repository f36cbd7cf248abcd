"""Measured kernel timings: the CSV that `opgraph validate` (and `opgraph calibrate`) read.

One row a kernel. Columns (a header row names them; order is free, unknown columns are an error):

    class      a measured class: gemm, prefill_attention, decode_attention, mla_decode_attention, all_reduce,
               ep_dispatch, ep_combine, moe,
               rms_norm, layer_norm, add_rms_norm, silu_mul, relu2, rope, embedding (each kernel class's `rows` in
               opgraph.pricing.kinds: its shape columns, what it measures, the graph it rebuilds)
    dtype      the operands' storage type: bf16, fp16, fp8, ... (opgraph.core.tensor.STORAGE_DTYPES); a moe row's is its
               experts' weights' (int4 and mxfp4 under bf16 activations)
    time_us    the measured time of one call, microseconds, > 0
    source     free text: where the row comes from (optional)
    ...        the class's shape columns (SHAPES): gemm m, n, k; attention batch, seq_len or context, heads, kv_heads,
               head_dim; mla_decode_attention batch, context, heads, kv_lora_rank, rope_dim; all_reduce gpus,
               elements; ep_dispatch and ep_combine gpus, tokens, top_k, hidden; moe
               tokens, hidden, inter, top_k, experts; norms and activations tokens, hidden; rope tokens, heads,
               kv_heads, head_dim; embedding tokens, vocab, hidden

Each row is priced by the kernel class whose record lists it (opgraph.pricing.kinds.time_class: a gemm row by the
GEMM class of its dtype, gemm for bf16 and fp16, gemm_fp8 for fp8; a moe row by moe, moe_fp8, moe_marlin (int4) or
moe_w4 (mxfp4); a decode_attention row in fp8, an fp8 KV cache, by decode_attention_fp8).

A column a row's class does not use must be empty. A file ending in .gz is read through gzip. Every mistake is one
OpgraphError naming the file, the row (1 = the first data row) and the column.

A file ending in .json or .json.gz is instead a PyTorch profiler trace (`prof.export_chrome_trace`, recorded with
record_shapes=True), whose GEMM, attention, norm and embedding calls opgraph.files.profiles maps to these classes.
"""

from __future__ import annotations

import csv
from pathlib import Path

import attrs

from opgraph.core import checks
from opgraph.core.tensor import STORAGE_DTYPES
from opgraph.pricing import kinds
from opgraph.errors import OpgraphError
from opgraph.files import datafile

SHAPES = {name: row.columns for name, (_, row) in kinds.ROWS.items()}  # a measured class -> its shape columns
SHAPE_COLUMNS = tuple(dict.fromkeys(c for cols in SHAPES.values() for c in cols))
COLUMNS = ("class", "dtype", *SHAPE_COLUMNS, "time_us", "source")
MAX_ROWS = 10**6


@attrs.frozen
class Measurement:
    kind: str  # the class column
    dtype: str
    shape: dict[str, int]
    time_s: float
    source: str = ""
    row: int = 0  # 1-based data row in its file


# Columns with a narrower range than a size: a collective needs two GPUs, and no group exceeds --tp's 1,024.
RANGES = {"gpus": (2, 1024, "a collective runs over 2 to 1,024 GPUs")}


def _int(where: str, column: str, text: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit()):
        raise OpgraphError(f"{where}, column {column!r}: {text[:30]!r} is not a positive integer")
    low, high, why = RANGES.get(column, (1, checks.MAX_SIZE, ""))
    return checks.integer(f"{where}, column {column!r}", int(digits) if len(digits) <= 12 else 10**13,
                          minimum=low, maximum=high, why=why)


def parse_row(fields: dict[str, str], where: str) -> Measurement:
    kind = checks.choice(f"class (in {where})", fields.get("class", "").strip(), SHAPES)
    dtype = checks.choice(f"dtype (in {where})", fields.get("dtype", "").strip(), STORAGE_DTYPES)
    for column in SHAPE_COLUMNS:
        if column not in SHAPES[kind] and (fields.get(column) or "").strip():
            raise OpgraphError(f"{where}, column {column!r}: a {kind} row does not use it; leave it empty")
    shape = {}
    for column in SHAPES[kind]:
        text = (fields.get(column) or "").strip()
        if not text:
            raise OpgraphError(f"{where}, column {column!r}: a {kind} row needs it")
        shape[column] = _int(where, column, text)
    text = (fields.get("time_us") or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise OpgraphError(f"{where}, column 'time_us': {text[:30]!r} is not a number") from None
    time_us = checks.number(f"{where}, column 'time_us'", value, above=0, maximum=1e12)
    return Measurement(kind, dtype, shape, time_us * 1e-6, (fields.get("source") or "").strip())


def read(path: str | Path) -> list[Measurement]:
    """Every row of a measurement CSV (or .csv.gz), checked; a .json or .json.gz is a profiler trace."""
    from opgraph.files import profiles  # here: profiles imports this module

    if profiles.is_trace(path):
        return profiles.read(path)
    path = Path(path)
    reader = datafile.csv_rows(path, "measurement CSV")
    header = reader.fieldnames or []
    unknown = [c for c in header if c not in COLUMNS]
    missing = [c for c in ("class", "dtype", "time_us") if c not in header]
    if not header or missing or unknown:
        raise OpgraphError(f"{path}: the header must name the columns {', '.join(COLUMNS)} (the shape columns its "
                           f"classes use); " + (f"missing {', '.join(missing)}" if missing else
                                                f"unknown {', '.join(repr(c) for c in unknown)}"))
    out = []
    try:
        for i, fields in enumerate(reader, 1):
            if i > MAX_ROWS:
                raise OpgraphError(f"{path}: more than {MAX_ROWS:,} rows; split the file")
            if None in fields:
                raise OpgraphError(f"{path}: row {i} has more cells than the header has columns")
            out.append(attrs.evolve(parse_row(fields, f"{path}: row {i}"), row=i))
    except csv.Error as e:
        raise OpgraphError(f"{path}: not valid CSV: {e}") from None
    if not out:
        raise OpgraphError(f"{path}: no measurements (only a header)")
    return out
