"""Measured kernel times read from a PyTorch profiler trace: `opgraph validate trace.json`.

The trace is what `prof.export_chrome_trace("trace.json")` writes (also read gzipped, as .json.gz) for a run
profiled with `torch.profiler.profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA],
record_shapes=True)`. Its format, as this module relies on it (Kineto's ChromeTraceLogger::handleActivity in
pytorch/kineto libkineto/src/output_json.cpp; AddGenericMetadata and parseArgData in pytorch
torch/csrc/autograd/profiler_kineto.cpp; the cpu_op fields checked against a CPU trace written by torch 2.13):

- an object whose "traceEvents" list holds the events; a timed one has "ph": "X", "ts" and "dur" in microseconds;
- a "cpu_op" event is one ATen operator call, on its process and thread ("pid", "tid"); its "args" hold its own
  "External id" and, with record_shapes, "Input Dims" (one list a schema argument: a tensor's sizes, [] for
  anything else), "Input type" ("c10::BFloat16", "c10::Half", "float", "c10::Float8_e4m3fn", ...; "Scalar" or ""
  for the rest) and, in recent torch, "Concrete Inputs" (a scalar argument's value as text: "True", "0.");
- a "kernel" (also "gpu_memcpy", "gpu_memset") event is GPU work; its "External id" is that of the cpu_op that
  launched it. Torch pushes a correlation id on entering every operator, so that op is the innermost one
  running: aten::linear's GEMM kernel carries the External id of the aten::addmm or aten::mm inside it.

An operator calls others (aten::linear calls aten::addmm or aten::matmul, which calls aten::mm). This module maps
the OUTERMOST operator it recognizes and takes as its time the sum of the durations of all GPU work launched by
it or by any operator nested inside its time span on the same thread: for a linear, its GEMM plus whatever
copies it needed. Its callees are then not mapped again, so no kernel is counted twice. The operators:

    aten::linear      input [..., k], weight [n, k]        gemm m = product of the leading dims, n, k
    aten::mm, aten::_scaled_mm   [m, k] @ [k, n]           gemm (aten::_scaled_mm is the fp8 GEMM)
    aten::addmm       bias, [m, k] @ [k, n]                gemm
    aten::matmul      [..., k] @ [k, n] (a 2-D weight)     gemm; any other matmul is skipped
    aten::bmm         [1, m, k] @ [1, k, n]                gemm; a batch above 1 is skipped
    aten::scaled_dot_product_attention, aten::_scaled_dot_product_{flash,efficient,cudnn}_attention:
                      q [b, h, s_q, d], k [b, h_kv, s_k, d]
                      s_q == s_k, is_causal, no mask    -> prefill_attention (batch b, seq_len s_q, heads h,
                                                           kv_heads h_kv, head_dim d)
                      s_q == 1 < s_k, not is_causal     -> decode_attention with context s_k - 1
    aten::rms_norm    input [..., d], normalized_shape, weight [d]     rms_norm (tokens = the leading dims, hidden d)
    aten::layer_norm  input [..., d], normalized_shape, weight [d], bias [d]   layer_norm
    aten::embedding   weight [vocab, hidden], indices [...]            embedding (tokens = the indices)

opgraph prices prefill attention as causal (FlashAttention skips the masked blocks), so only a call with is_causal
true and no mask tensor is a prefill; a decode step attends to every cached key, which torch's is_causal (its mask
is aligned top-left) would not. is_causal is read from "Concrete Inputs"; a trace without them (an older torch)
has its attention calls skipped, not guessed. The dtype is the operands' "Input type" (bf16, fp16, fp32, fp8);
operands of two types are skipped.

Every call is one measurement (validate takes the statistics over rows; it does not need them merged): its
source is "torch trace: NAME", its row the event's position in "traceEvents" (1 = the first). Whatever is not a
measurement is counted, never dropped in silence: `scan` returns the skipped calls by name (with the reason where
a recognized operator did not fit), `summary` counts both, and `read` refuses a trace where nothing maps with the
list of what it found. Every mistake in the file is one OpgraphError naming the file.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections import Counter
from pathlib import Path

import attrs

from opgraph.errors import OpgraphError
from opgraph.files import datafile
from opgraph.files.measurements import MAX_ROWS, Measurement, parse_row

SUFFIXES = (".json", ".json.gz")
MAX_BYTES = 2**30  # of JSON text, gunzipped: a few profiler steps are tens to hundreds of MB; json takes ~10x
MAX_EVENTS = 2 * 10**7
CPU = "cpu_op"
GPU = ("kernel", "gpu_memcpy", "gpu_memset")
DTYPES = {"c10::BFloat16": "bf16", "c10::Half": "fp16", "float": "fp32", "c10::Float8_e4m3fn": "fp8",
          "c10::Float8_e5m2": "fp8", "c10::Float8_e4m3fnuz": "fp8", "c10::Float8_e5m2fnuz": "fp8"}
# GEMMs: the argument positions of the two matrix operands
GEMMS = {"aten::linear": (0, 1), "aten::mm": (0, 1), "aten::_scaled_mm": (0, 1), "aten::addmm": (1, 2),
         "aten::matmul": (0, 1), "aten::bmm": (0, 1)}
# attention: the positions of (the mask or bias tensor, is_causal) in the operator's schema; q, k, v come first
ATTENTION = {"aten::scaled_dot_product_attention": (3, 5), "aten::_scaled_dot_product_flash_attention": (None, 4),
             "aten::_scaled_dot_product_efficient_attention": (3, 6),
             "aten::_scaled_dot_product_cudnn_attention": (3, 6)}
# norms over the last dim: the positions of their (input, weight[, bias]); a norm over more dims is skipped
NORMS = {"aten::rms_norm": ("rms_norm", (0, 2)), "aten::layer_norm": ("layer_norm", (0, 2, 3))}
OUTSIDE = "(GPU work launched outside any cpu_op)"


def is_trace(path: str | Path) -> bool:
    """Whether `path` names a trace (read here) rather than a measurement CSV.

    >>> is_trace("trace.json.gz"), is_trace("TRACE.JSON"), is_trace("measured.csv.gz")
    (True, True, False)
    """
    return str(path).lower().endswith(SUFFIXES)


@attrs.frozen
class _Op:
    index: int  # in traceEvents
    name: str
    args: dict
    start: int  # ns
    end: int
    ext: int | None  # its External id


def scan(path: str | Path) -> tuple[list[Measurement], Counter]:
    """The measurements a trace holds, and the skipped calls: label (the operator's name, and why where it was
    recognized) -> how many calls."""
    measured, _, skipped = _scan(Path(path))
    return measured, skipped


def summary(path: str | Path) -> dict[str, dict[str, int]]:
    """Calls mapped (by operator) and skipped (by label) in a trace, most frequent first."""
    measured, _, skipped = _scan(Path(path))
    mapped = Counter(m.source.removeprefix("torch trace: ") for m in measured)
    return {"mapped": dict(mapped.most_common()), "skipped": dict(skipped.most_common())}


def read(path: str | Path) -> list[Measurement]:
    """The measurements of a trace; an OpgraphError if there are none, listing what the trace has instead."""
    return read_noting(path)[0]


def read_noting(path: str | Path) -> tuple[list[Measurement], Counter]:
    """As `read`, with the skipped calls by label (so a command can say what it left out)."""
    path = Path(path)
    measured, gpu_events, skipped = _scan(path)
    if not measured:
        if not gpu_events:
            raise OpgraphError(f"{path}: no GPU kernels in the trace; profile with activities=[ProfilerActivity.CPU, "
                               f"ProfilerActivity.CUDA] and record_shapes=True")
        found = ", ".join(f"{label} x{n:,}" for label, n in skipped.most_common(8))
        more = f" and {len(skipped) - 8:,} more" if len(skipped) > 8 else ""
        raise OpgraphError(f"{path}: no kernel maps to a measured class; found {found}{more}")
    return measured, skipped


def _load(path: Path) -> list:
    if datafile.is_folder(path):
        raise OpgraphError(f"{path} is a folder; give the profiler trace file itself")
    datafile.regular(path, "profiler trace")
    try:
        if path.stat().st_size > MAX_BYTES:
            raise OpgraphError(f"{path}: more than {MAX_BYTES:,} bytes of trace; profile fewer steps")
        with open(path, "rb") as f:
            # decompressed in pieces, so a small .gz of zeros cannot fill memory past the cap
            stream = gzip.GzipFile(fileobj=f) if path.name.lower().endswith(".gz") else f
            raw = stream.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise OpgraphError(f"{path}: more than {MAX_BYTES:,} bytes of trace; profile fewer steps")
        data = json.loads(raw.decode("utf-8-sig"))
    except OpgraphError:
        raise
    except FileNotFoundError:
        raise OpgraphError(f"measurement file {str(path)!r} does not exist") from None
    except json.JSONDecodeError as e:
        raise OpgraphError(f"{path}: not JSON: {e}") from None
    except RecursionError:
        raise OpgraphError(f"{path}: not a profiler trace: nested too deeply") from None
    except (OSError, EOFError, UnicodeDecodeError, zlib.error, ValueError) as e:
        raise OpgraphError(f"{path}: cannot read the trace: {e}") from None
    events = data.get("traceEvents") if isinstance(data, dict) else None
    if not isinstance(events, list):
        raise OpgraphError(f"{path}: not a PyTorch profiler trace: no \"traceEvents\" list (write one with "
                           f"prof.export_chrome_trace)")
    if len(events) > MAX_EVENTS:
        raise OpgraphError(f"{path}: more than {MAX_EVENTS:,} events; profile fewer steps")
    return events


def _time(path: Path, i: int, event: dict) -> tuple[int, int]:
    """(start, end) of a complete event in integer ns: Kineto writes microseconds with three decimals."""
    where = f"{path}: event {i + 1} ({str(event.get('name'))[:60]!r})"
    ts, dur = event.get("ts"), event.get("dur")
    for key, value in (("ts", ts), ("dur", dur)):
        if value is None:
            raise OpgraphError(f"{where} has no {key!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OpgraphError(f"{where}: {key!r} is {str(value)[:30]!r}, not a number")
    if dur < 0:
        raise OpgraphError(f"{where}: 'dur' is negative ({dur})")
    return round(ts * 1000), round(ts * 1000) + round(dur * 1000)


def _scan(path: Path) -> tuple[list[Measurement], int, Counter]:
    """(measurements, the number of GPU events, skipped calls by label)."""
    events = _load(path)
    threads: dict[tuple, list[_Op]] = {}
    by_id: dict[int, _Op] = {}
    work: Counter = Counter()  # External id -> microseconds of GPU work it launched
    launched: list[tuple[object, float]] = []  # (External id, dur) of each GPU event
    cpu_events = 0
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise OpgraphError(f"{path}: event {i + 1} is not an object")
        if e.get("ph") != "X":
            continue
        start, end = _time(path, i, e)
        args = e.get("args") if isinstance(e.get("args"), dict) else {}
        ext = args.get("External id")
        if e.get("cat") == CPU:
            cpu_events += 1
            name = " ".join(str(e.get("name")).split())[:200]  # one line: it may end up in an error message
            op = _Op(i, name, args, start, end, ext if type(ext) is int else None)
            threads.setdefault((str(e.get("pid")), str(e.get("tid"))), []).append(op)
            if op.ext is not None:
                by_id.setdefault(op.ext, op)
        elif e.get("cat") in GPU:
            launched.append((ext, e["dur"]))
    if not cpu_events:
        raise OpgraphError(f"{path}: not a PyTorch profiler trace: no \"cpu_op\" events")
    outside = 0
    for ext, us in launched:  # after the loop: a kernel may come before the op that launched it
        if type(ext) is int and ext in by_id:
            work[ext] += us
        else:
            outside += 1

    parent: dict[int, _Op | None] = {}  # op index -> the op it runs inside, on its thread
    children: dict[int, list[_Op]] = {}
    for ops in threads.values():
        stack: list[_Op] = []
        for op in sorted(ops, key=lambda o: (o.start, -o.end, o.index)):
            while stack and op.start >= stack[-1].end:
                stack.pop()
            parent[op.index] = stack[-1] if stack else None
            children.setdefault(stack[-1].index if stack else -1, []).append(op)
            stack.append(op)

    def subtree(op: _Op) -> list[_Op]:
        out, todo = [], [op]
        while todo:
            out.append(todo.pop())
            todo.extend(children.get(out[-1].index, ()))
        return out

    measured, claimed, reasons = [], set(), {}  # reasons: op index -> (op, why it was not mapped)
    todo = list(children.get(-1, ()))
    while todo:
        op = todo.pop()
        got = _map(op)
        if isinstance(got, tuple):
            kind, dtype, shape = got
            ops = subtree(op)
            us = sum(work[o.ext] for o in ops)  # a Counter: 0 for an op that launched nothing
            fields = {"class": kind, "dtype": dtype, "time_us": repr(us), **{k: str(v) for k, v in shape.items()}}
            try:
                m = parse_row(fields, f"{path}: event {op.index + 1}") if us > 0 else None
            except OpgraphError:
                got = "a size outside opgraph's limits"
            else:
                if m is None:
                    reasons[op.index] = (op, "no GPU kernel")
                    continue
                measured.append(attrs.evolve(m, source=f"torch trace: {op.name}", row=op.index + 1))
                claimed.update(o.index for o in ops)
                if len(measured) > MAX_ROWS:
                    raise OpgraphError(f"{path}: more than {MAX_ROWS:,} measured calls; profile fewer steps")
                continue
        if isinstance(got, str):
            reasons[op.index] = (op, got)
        todo.extend(children.get(op.index, ()))  # not mapped: the operators inside it may be
    measured.sort(key=lambda m: m.row)

    # Unclaimed GPU work is named by the outermost call it ran under that a reason was given for, else by the
    # outermost call: the one a user wrote, not an internal kernel wrapper.
    skipped = Counter({OUTSIDE: outside}) if outside else Counter()
    named: dict[int, str] = {}
    for ext in work:
        op = by_id.get(ext)
        if op is None or op.index in claimed:
            continue
        chain = [op]
        while parent[chain[-1].index] is not None:
            chain.append(parent[chain[-1].index])
        top = next((o for o in reversed(chain) if o.index in reasons), chain[-1])
        named[top.index] = f"{top.name} ({reasons[top.index][1]})" if top.index in reasons else top.name
    for index, (op, why) in reasons.items():  # recognized calls that ran no GPU work at all
        if why == "no GPU kernel":
            named[index] = f"{op.name} ({why})"
    skipped.update(named.values())
    return measured, len(launched), skipped


def _dims(args: dict, i: int | None) -> tuple[int, ...] | None:
    dims = args.get("Input Dims")
    if i is None or not isinstance(dims, list) or i >= len(dims) or not isinstance(dims[i], list):
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims[i]):
        return None
    return tuple(dims[i])


def _dtype(args: dict, *positions: int) -> str | None:
    types = args.get("Input type")
    if not isinstance(types, list) or max(positions) >= len(types):
        return None
    found = {DTYPES.get(str(types[i])) for i in positions}
    return found.pop() if len(found) == 1 else None


def _map(op: _Op):
    """(class, dtype, shape) for a call this module maps; a reason (text) for one it recognizes but cannot map;
    None for any other operator."""
    if op.name not in GEMMS and op.name not in ATTENTION and op.name not in NORMS and op.name != "aten::embedding":
        return None
    if not isinstance(op.args.get("Input Dims"), list):
        return "no Input Dims: profile with record_shapes=True"
    if op.name in GEMMS:
        a, b = (_dims(op.args, i) for i in GEMMS[op.name])
        shape = _gemm(op.name, a, b)
        dtype = _dtype(op.args, *GEMMS[op.name])
    elif op.name in NORMS:
        kind, positions = NORMS[op.name]
        shape, dtype = _norm(kind, [_dims(op.args, i) for i in positions]), _dtype(op.args, *positions)
    elif op.name == "aten::embedding":
        table, ids = _dims(op.args, 0), _dims(op.args, 1)
        shape = ("not a [vocab, hidden] table" if table is None or ids is None or len(table) != 2 else
                 {"class": "embedding", "tokens": math.prod(ids), "vocab": table[0], "hidden": table[1]})
        dtype = _dtype(op.args, 0)
    else:
        shape = _attention(op.name, op.args)
        dtype = _dtype(op.args, 0, 1, 2)
    if isinstance(shape, str):
        return shape
    if dtype is None:
        return "operand types " + "/".join(map(str, op.args.get("Input type", [])[:3]))
    return (shape.pop("class"), dtype, shape)


def _gemm(name: str, a, b) -> dict | str:
    if a is None or b is None:
        return "not two tensors"
    if name == "aten::linear":  # weight [n, k], as torch.nn.Linear stores it
        if len(a) < 1 or len(b) != 2 or a[-1] != b[1]:
            return "not [..., k] by [n, k]"
        return {"class": "gemm", "m": math.prod(a[:-1]), "n": b[0], "k": b[1]}
    if name == "aten::bmm":
        if len(a) != 3 or len(b) != 3 or a[0] != 1 or b[0] != 1:
            return "a batched product"
        a, b = a[1:], b[1:]
    elif name == "aten::matmul":
        if len(a) < 1 or len(b) != 2:
            return "not a 2-D weight product"
        a = (math.prod(a[:-1]), a[-1])
    if len(a) != 2 or len(b) != 2 or a[1] != b[0]:
        return "not [m, k] by [k, n]"
    return {"class": "gemm", "m": a[0], "n": b[1], "k": a[1]}


def _norm(kind: str, tensors: list) -> dict | str:
    """A norm over the last dim of x [..., d], with a scale (and for LayerNorm a shift) of [d]."""
    x, params = tensors[0], tensors[1:]
    if x is None or len(x) < 1 or any(p != (x[-1],) for p in params):
        return "not x [..., d] with a scale" + (" and a shift" if kind == "layer_norm" else "") + " of [d]"
    return {"class": kind, "tokens": math.prod(x[:-1]), "hidden": x[-1]}


def _attention(name: str, args: dict) -> dict | str:
    q, k, v = (_dims(args, i) for i in range(3))
    if q is None or k is None or v is None or len(q) != 4 or len(k) != 4 or k != v:
        return "not q [b, h, s, d] with k, v [b, h_kv, s, d]"
    (b, h, s_q, d), (b_k, h_kv, s_k, d_k) = q, k
    if b != b_k or d != d_k or h_kv == 0 or h % h_kv:
        return "q and k do not match"
    mask_at, causal_at = ATTENTION[name]
    if _dims(args, mask_at):  # a mask tensor: attention over every key, or a pattern opgraph does not know
        return "a mask tensor"
    concrete = args.get("Concrete Inputs")
    flag = str(concrete[causal_at]).lower() if isinstance(concrete, list) and causal_at < len(concrete) else ""
    if flag not in ("true", "false"):
        return "is_causal not recorded (a newer torch records it)"
    if s_q == s_k and flag == "true":
        return {"class": "prefill_attention", "batch": b, "seq_len": s_q, "heads": h, "kv_heads": h_kv, "head_dim": d}
    if s_q == 1 < s_k and flag == "false":
        return {"class": "decode_attention", "batch": b, "context": s_k - 1, "heads": h, "kv_heads": h_kv,
                "head_dim": d}
    return "not causal" if s_q == s_k else f"{s_q} queries over {s_k} keys, is_causal {flag}"
