"""Kernel classes: which parameters price a kernel, one file a class.

A kernel (a fused group of ops: opgraph.core.fusion) is priced by the parameters of one class (the formula is
opgraph.pricing.timing's). Each class is one `KernelClass` record, in a file of its own in this package, that says
- which kernels it is (`claims`: classes are asked in REGISTRY order and the first that claims a kernel prices it)
  and which ops' own work it prices inside a kernel of another class (`takes`);
- the shape features its formula reads (`features`: a GEMM's m, k and n; attention's sequences x KV heads);
- the rows of a measurement file it is validated on and fitted to (`rows`: the CSV's class name, its shape columns,
  the graph a row rebuilds, and how `opgraph bench` times it);
- which of its parameters `opgraph calibrate` fits (`fitted`, and `tilings` for GEMMs), and which class prices it
  where a calibration has no table of its own (`fallback`).

Adding a class is adding one file here that defines CLASSES (its records): every module of this package is read, and
its classes take their place in REGISTRY by their `order` (the order kernels are claimed in).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence

import attrs


def compiled(torch, fn: Callable, per_token: Sequence, rest: Sequence = ()) -> Callable:
    """A zero-argument call of fn(*per_token, *rest) through torch.compile, which fuses a norm, rope or activation
    into one Triton kernel (a gather into one kernel) as vLLM's compiled model runs it. As vLLM compiles, the token
    count (dim 0 of the per_token tensors) is dynamic and every other size fixed, so shapes that differ only in
    tokens share one kernel. Two of dynamo's defaults would time something else in a sweep of several widths: after
    a second width it makes the width dynamic too (a generic kernel that divides indices by it, measured 3x slower
    on an H200), and after 8 it falls back to eager ops."""
    config = torch._dynamo.config
    config.automatic_dynamic_shapes = False
    for limit in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(config, limit):
            setattr(config, limit, max(getattr(config, limit), 4096))
    for t in per_token:
        torch._dynamo.maybe_mark_dynamic(t, 0)  # maybe_: a one-token shape stays specialized, as dynamo wants
    call, args = torch.compile(fn), (*per_token, *rest)
    return lambda: call(*args)


@attrs.frozen
class Param:
    """One fitted parameter: its ClassTiming field, where the fit starts, and its bounds."""

    field: str
    start: float
    low: float
    high: float


# The parameters most classes fit: a fixed cost, the achieved shares of the peaks, and how compute and memory overlap.
KERNEL_PARAMS = (Param("latency_s", 5e-6, 0.0, 1e-3), Param("compute_efficiency", 0.8, 0.02, 1.0),
                 Param("memory_efficiency", 0.8, 0.02, 1.0), Param("overlap", 0.5, 0.0, 1.0))
PER_ROW = Param("per_row_s", 1e-8, 0.0, 1e-5)  # attention: per sequence x KV head; GEMM: per activation row
PER_TILE = Param("per_tile_s", 1e-9, 0.0, 1e-6)  # fused-MoE calls: per program of the grouped GEMMs
SPECIAL = Param("special_overlap", 0.5, 0.0, 1.0)  # exponentials with matrix products, where they are counted
# Norms, rope, activations, embeddings: the kernel parameters, and the L2's pace for the first stretch of traffic
VECTOR_PARAMS = (*KERNEL_PARAMS, Param("cache_efficiency", 1.2, 1.0, 4.0), Param("cache_s", 4e-6, 0.0, 1e-4))


@attrs.frozen
class Row:
    """A measured kernel as a measurement file writes it (opgraph.files.measurements) and the graph it rebuilds."""

    name: str  # the file's class column
    columns: tuple[str, ...]  # its shape columns, in order
    about: str  # what the row measures, for the docs and errors
    build: Callable  # (GraphBuilder, shape: dict) -> tensors the kernel writes beyond the graph's sinks
    bench: Callable | None = None  # (torch, torch dtype, shape, device) -> a callable running it once; None: not timed
    precision: Callable | None = None  # (dtype name) -> the Precision of the graph; None: every tensor in that dtype


@attrs.frozen
class KernelClass:
    name: str
    takes: Callable  # (op) -> whether this class prices the op's own work
    order: int  # where it claims kernels among the classes: lower first
    claims: Callable | None = None  # (ops) -> whether a kernel of these ops is this class; None: it takes one of them
    named: Callable | None = None  # (ops) -> the class's name for these ops (GEMMs: by dtype); None: `name`
    group: str = ""  # classes of one group price each other's ops inside their kernels (attention, vector)
    kinds: frozenset = frozenset()  # the op kinds it prices (an op of any other kind is named in the report)
    features: Callable | None = None  # (ops) -> KernelWork's shape fields
    rows: tuple[Row, ...] = ()
    fitted: tuple[Param, ...] = KERNEL_PARAMS
    special: bool = False  # also fits special_overlap when exponentials are counted (an exp rate is given)
    tilings: Callable | None = None  # (sms) -> the (tile_m, tile_n, tiles_per_wave) a fit tries; None: no tiles
    fallback: str | None = None  # the class whose table prices this one where a calibration lacks its own
    by_dtype: Callable | None = None  # (dtype name) -> the class of a measured row in that dtype; None: `name`
    about: str = ""  # one line for the docs

    def is_kernel(self, ops: Sequence) -> bool:
        return self.claims(ops) if self.claims else any(self.takes(op) for op in ops)

    def name_of(self, ops: Sequence) -> str:
        return self.named(ops) if self.named else self.name

    def row_class(self, dtype: str) -> str:
        """The class that prices a measured row of this class in `dtype` (GEMMs differ by dtype)."""
        return self.by_dtype(dtype) if self.by_dtype else self.name


def _registry() -> tuple[KernelClass, ...]:
    """Every class of every module of this package, in claim order: a kernel that holds a collective is priced as one
    (its links decide), one that computes attention scores as attention, one that multiplies matrices as a GEMM, then
    norms and embeddings; elementwise, last, takes the rest."""
    found = []
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        found.extend(importlib.import_module(f"{__name__}.{module}").CLASSES)
    return tuple(sorted(found, key=lambda c: c.order))


REGISTRY = _registry()
BY_NAME = {c.name: c for c in REGISTRY}
NAMES = tuple(BY_NAME)
# a measured class -> (its time class, its row), GEMMs and attention first, as files and docs list them
_LISTED = ("gemm", "prefill_attention", "decode_attention", "collective", "all_to_all", "norm", "rope", "elementwise",
           "embedding")
ROWS = {row.name: (c, row) for c in sorted(REGISTRY, key=lambda c: _LISTED.index(c.name) if c.name in _LISTED else 99)
        for row in c.rows}
FALLBACK = {c.name: c.fallback for c in REGISTRY if c.fallback}


def classify(ops: Sequence) -> str:
    """The class of a kernel made of `ops`: the first class in REGISTRY that claims it."""
    return next(c.name_of(ops) for c in REGISTRY if c.is_kernel(ops))


def own_class(op) -> KernelClass:
    return next(c for c in REGISTRY if c.takes(op))


def op_class(op, kernel: str) -> str:
    """The class that prices one op's work inside a kernel of class `kernel`: its own, or the kernel's where both are
    of one group (a softmax in an attention kernel is that attention's; an add fused into a norm is the norm's)."""
    own = own_class(op)
    if own.group and own.group == BY_NAME[kernel].group:
        return kernel
    return own.name_of([op])


def features(cls: str, ops: Sequence) -> dict:
    """The shape fields of KernelWork that class `cls` reads of its ops (none for most classes)."""
    c = BY_NAME[cls]
    return c.features(ops) if c.features else {}


def unclassed(ops) -> dict[str, list[str]]:
    """Op kinds no class names (a kind a user registered), with their ops: elementwise prices them, and the report
    says so."""
    known = frozenset().union(*(c.kinds for c in REGISTRY))
    out: dict[str, list[str]] = {}
    for op in ops:
        if op.kind not in known:
            out.setdefault(op.kind, []).append(op.name)
    return out


def row(name: str) -> tuple[KernelClass, Row]:
    return ROWS[name]


def time_class(kind: str, dtype: str) -> str:
    """The class that prices a measured row of class `kind` in `dtype`: what validate predicts it by and calibrate
    fits it to.

    >>> time_class("gemm", "bf16"), time_class("gemm", "fp8"), time_class("all_reduce", "bf16"), time_class("rope", "bf16")
    ('gemm', 'gemm_fp8', 'collective', 'rope')
    """
    cls, _ = ROWS[kind]
    return cls.row_class(dtype)

