"""Measuring kernels on a GPU: `opgraph bench MODEL --out MEASURED.csv`.

Which kernels: those the model runs, read off its graphs (so a model written in Python works too): every GEMM
shape (its weight's n x k) at each token count; FlashAttention over a prompt (prefill) and one decode query over
the KV cache at each batch and length; each with the model's heads, KV heads and head dim; every RMSNorm and
LayerNorm (tokens x width), every SiLU whose result a multiply consumes (SwiGLU's silu(gate) x up), and every
embedding lookup. Rows come out in the measurement CSV that `opgraph validate` and `opgraph calibrate` read
(opgraph.files.measurements).

How: torch on an NVIDIA GPU (the optional `gpu` extra). Each kernel is warmed up, then `calls` calls of it are
captured in a CUDA graph and the graph is replayed between CUDA events, as a serving engine replays a decode step
(no host launch work in the time); the median of several replays, per call, is its time. Where a kernel cannot be
captured, its calls run between the events without a graph, and the row's source says so. GEMMs run as
torch.nn.functional.linear (cuBLAS), attention as scaled_dot_product_attention (FlashAttention where torch has
it), LayerNorm as torch's own kernel, RMSNorm, silu(gate) x up and embeddings through torch.compile, which fuses
each into one kernel as vLLM's compiled model runs them (the token count dynamic: opgraph.pricing.kinds.compiled).
Without torch or a GPU, the command says so in one line.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence

import attrs

from opgraph.core.model import Model
from opgraph.core.ops import Op
from opgraph.core.phase import Phase
from opgraph.core.tensor import Role
from opgraph.errors import OpgraphError
from opgraph.files.measurements import COLUMNS, SHAPES
from opgraph.pricing import kinds
from opgraph.pricing.kinds.moe import is_expert_gemm

__all__ = ["COLUMNS", "Bench", "KernelSpec", "kernels", "measure", "phases", "timed"]

INSTALL_HINT = ('opgraph bench measures on an NVIDIA GPU with torch, an optional extra: pip install "opgraph[gpu]"')
TORCH_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


@attrs.frozen
class KernelSpec:
    kind: str  # a measurement class (opgraph.files.measurements.SHAPES)
    dtype: str
    shape: tuple[tuple[str, int], ...]  # in SHAPES[kind] order

    def row(self, time_s: float, source: str) -> dict:
        return {"class": self.kind, "dtype": self.dtype, **dict(self.shape), "time_us": round(time_s * 1e6, 4),
                "source": source}


NORMS = {"rmsnorm": "rms_norm", "layernorm": "layer_norm"}  # a norm op's function -> its measured class


def kernels(models: Iterable[Model]) -> list[KernelSpec]:
    """The distinct GEMM, attention, norm, SwiGLU and embedding kernels of models (each built for one phase) that
    torch times in their type, in first-seen order (the others: `left_out`)."""
    found: dict[KernelSpec, None] = {}
    for _, spec in _op_specs(models):
        if spec is not None and spec.dtype in TORCH_DTYPES:
            found.setdefault(spec)
    return list(found)


def _op_specs(models: Iterable[Model]) -> Iterator[tuple[Op, KernelSpec | None]]:
    """Every op of the models' graphs with the kernel torch would time for it (None: none)."""
    for model in models:
        for block in model.blocks:
            graph = block.graph
            av = [op for op in graph.ops.values() if op.fn == "av"]
            for op in graph.ops.values():
                yield op, _spec(op, model.phase, av) or _vector_spec(op, graph)


# Ops of the models' graphs that bench cannot time as the engine runs them, and why (said in its output)
LEFT_OUT = {
    "routed experts' GEMMs": "an engine runs them as one fused-MoE call, which no torch kernel stands for; the "
                             "shipped H100 and H200 calibrations fit such calls on measured ones "
                             "(benchmarks/extract_aiconfigurator.py)",
    "attention of another value width (MLA)": "scaled_dot_product_attention is not the kernel engines run for it",
    "ops in an 8- or 4-bit type": "the torch kernels bench runs (linear, scaled_dot_product_attention, the compiled "
                                  "norms and SwiGLU) take bf16, fp16 or fp32 only, and an engine runs these through "
                                  "its own quantized kernels (a W8A8 GEMM quantizes its input to the weights' type); "
                                  "the shipped calibrations fit vLLM's fp8 GEMMs on measured ones "
                                  "(benchmarks/extract_aiconfigurator.py)",
}


def left_out(models: Iterable[Model]) -> dict[str, int]:
    """Ops of the models' graphs that `kernels` does not time, by LEFT_OUT reason (distinct by name and shapes, as
    `kernels` counts the kernels it times by shape)."""
    seen: dict[str, set] = {}
    for op, spec in _op_specs(models):
        if is_expert_gemm(op):
            why = "routed experts' GEMMs"
        elif spec is None:
            if op.fn != "qk":
                continue
            why = "attention of another value width (MLA)"
        elif spec.dtype not in TORCH_DTYPES:
            why = "ops in an 8- or 4-bit type"
        else:
            continue
        seen.setdefault(why, set()).add((op.name, tuple(t.shape for t in op.inputs)))
    return {why: len(ops) for why, ops in seen.items()}


def _vector_spec(op, graph) -> KernelSpec | None:
    """A norm, a SiLU that a multiply consumes (silu_mul), or an embedding lookup, as the kernel bench times."""
    x = op.inputs[0]
    rows = (("tokens", math.prod(x.shape[:-1])), ("hidden", x.shape[-1]))
    if op.fn in NORMS:
        return KernelSpec(NORMS[op.fn], x.dtype.name, rows)
    if op.fn == "silu" and any(graph.ops[c].fn == "mul" for c in graph.consumers.get(op.outputs[0].name, ())):
        return KernelSpec("silu_mul", x.dtype.name, rows)
    if op.fn == "embedding":
        table = op.inputs[1]
        return KernelSpec("embedding", table.dtype.name,
                          (("tokens", x.numel), ("vocab", table.shape[0]), ("hidden", table.shape[1])))
    return None


def _spec(op, phase: Phase, av: list) -> KernelSpec | None:
    weights = [t for t in op.inputs[1:] if t.role is Role.WEIGHT and len(t.shape) == 2]
    if op.fn == "linear" and weights:
        m = math.prod(op.inputs[0].shape[:-1])
        n = sum(w.shape[0] for w in weights)  # a matrix whose row blocks feed several ops is one GEMM
        return KernelSpec("gemm", op.compute_dtype.name, (("m", m), ("n", n), ("k", weights[0].shape[1])))
    if op.fn == "qk":
        q, keys, scores = op.inputs[0], op.inputs[1], op.outputs[0]
        batch, heads = scores.shape[0], scores.shape[1]
        head_dim = q.shape[-1] // heads
        kv_heads = keys.shape[-1] // head_dim
        value_dims = {o.outputs[0].shape[-1] for o in av}
        if (q.shape[-1] != heads * head_dim or keys.shape[-1] != kv_heads * head_dim or heads % kv_heads
                or value_dims != {heads * head_dim}):
            return None  # not plain (GQA) attention: MLA's value width differs from its key width
        common = (("batch", batch), ("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim))
        if phase.past == 0 and scores.shape[2] > 1:
            return KernelSpec("prefill_attention", op.compute_dtype.name,
                              _ordered("prefill_attention", (*common, ("seq_len", scores.shape[2]))))
        if scores.shape[2] == 1:
            return KernelSpec("decode_attention", op.compute_dtype.name,
                              _ordered("decode_attention", (*common, ("context", phase.past))))
    return None


def _ordered(kind: str, pairs) -> tuple[tuple[str, int], ...]:
    d = dict(pairs)
    return tuple((k, d[k]) for k in SHAPES[kind])


def phases(batches: Sequence[int], lengths: Sequence[int]) -> list[Phase]:
    """Prefill at every (batch, seq_len) and decode at every (batch, context): the sizes to measure at."""
    return [Phase.of(name, b, n) for name in ("prefill", "decode") for b in batches for n in lengths]


def measure(specs: Sequence[KernelSpec], *, repeats: int = 5, calls: int = 20, warmup: int = 5,
            progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Time each kernel on the GPU: the median over `repeats` replays of a CUDA graph of `calls` calls (or, where
    the kernel cannot be captured, of `calls` calls) between CUDA events, per call."""
    torch = _torch()
    rows = []
    source = f"opgraph bench, torch {torch.__version__}, {torch.cuda.get_device_name()}"
    for i, spec in enumerate(specs):
        run = _kernel(torch, spec)
        for _ in range(warmup):
            run()
        seconds, how = timed(torch, run, calls=calls, repeats=repeats)
        rows.append(spec.row(seconds, f"{source}, {how}"))
        if progress:
            progress(i + 1, len(specs))
    return rows


def timed(torch, run, *, calls: int, repeats: int) -> tuple[float, str]:
    """(seconds per call of a warmed-up `run` on the GPU, how): the median over `repeats` replays, between CUDA
    events, of a CUDA graph of `calls` calls (or, where capture fails, of the calls themselves)."""
    step, how = _captured(torch, run, calls)
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) * 1e-3 / calls)  # elapsed_time is in milliseconds
    return statistics.median(times), how


def _captured(torch, run, calls: int):
    """(a callable that runs `calls` calls of `run`, how): a CUDA graph's replay, or where capture fails (a kernel
    that synchronizes with the host), the calls themselves."""
    def uncaptured():
        for _ in range(calls):
            run()
    try:
        side = torch.cuda.Stream()  # capture wants its warm-up on a side stream (torch.cuda.graph's docs)
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            run()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            uncaptured()
    except RuntimeError:
        return uncaptured, "not capturable: calls launched one by one"
    return graph.replay, f"a CUDA graph of {calls} calls"


def _torch():
    try:
        import torch
    except ImportError:
        raise OpgraphError(INSTALL_HINT) from None
    if not torch.cuda.is_available():
        raise OpgraphError("opgraph bench measures on an NVIDIA GPU, and torch sees none here "
                           "(torch.cuda.is_available() is False)")
    return torch


def _kernel(torch, spec: KernelSpec, dev: str = "cuda"):
    """A zero-argument callable that runs the kernel once on fresh tensors of its shape (its class's row's `bench`:
    opgraph.pricing.kinds)."""
    if spec.dtype not in TORCH_DTYPES:
        raise OpgraphError(f"opgraph bench times bf16, fp16 and fp32 kernels; {spec.dtype} is not one of them")
    _, row = kinds.row(spec.kind)
    if row.bench is None:
        raise OpgraphError(f"opgraph bench does not time {spec.kind} kernels")
    return row.bench(torch, getattr(torch, TORCH_DTYPES[spec.dtype]), dict(spec.shape), dev)


@attrs.frozen
class Bench:
    """`opgraph bench`: the kernels of a model, and their measured rows (none in a dry run)."""

    model: str
    specs: tuple[KernelSpec, ...]
    rows: tuple[dict, ...] = ()
    out: str | None = None
    left_out: tuple[tuple[str, int], ...] = ()  # (LEFT_OUT reason, ops) not timed
