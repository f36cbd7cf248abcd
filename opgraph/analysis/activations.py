"""The fate of every tensor a graph produces under a fusion plan, as the reference analysis lists them:
WRITE (materialized, and read back by so many other kernels), FUSED (handed to its consumers on chip,
inside one kernel) or AVOIDED (never formed whole at all)."""

from __future__ import annotations

import attrs
from tabulate import tabulate

from opgraph.core.fusion import Partition
from opgraph.core.graph import Graph

MATERIALIZED, FUSED, AVOIDED = "materialized", "fused", "avoided"
# A fused attention core computes the score matrix tile by tile with an online softmax (FlashAttention),
# so the scores and probabilities never exist whole, not even on chip.
NEVER_FORMED = frozenset({"qk", "softmax"})


@attrs.frozen
class Fate:
    tensor: str
    shape: tuple[int, ...]
    dtype: str
    role: str
    nbytes: int
    fate: str
    reads: int  # times it is read back from memory: once per other kernel that consumes it
    producer: str  # op
    kernel: str  # label of the producing kernel
    consumer_kernels: tuple[str, ...]  # labels of the other kernels that read it

    def label(self) -> str:
        if self.fate == MATERIALIZED:
            if self.reads:
                return f"WRITE, read {self.reads}x"
            return "WRITE (KV cache)" if self.role == "kv_cache" else "WRITE (block output)"
        return "AVOIDED" if self.fate == AVOIDED else f"FUSED in {self.kernel}"


def fates(graph: Graph, part: Partition) -> list[Fate]:
    """One record per produced tensor, in topological order."""
    labels = {k.name: k.label for k in part.kernels}
    out = []
    for name, producer in graph.producer.items():
        t = graph.tensors[name]
        own = part.kernel_of[producer]
        others = sorted({part.kernel_of[c] for c in graph.consumers.get(name, ())} - {own},
                        key=list(graph.ops).index)
        if name in part.materialized:
            fate = MATERIALIZED
        elif graph.ops[producer].fn in NEVER_FORMED:
            fate = AVOIDED
        else:
            fate = FUSED
        out.append(Fate(name, t.shape, str(t.dtype), t.role.value, t.nbytes, fate,
                        len(others) if fate == MATERIALIZED else 0, producer, labels[own],
                        tuple(labels[k] for k in others)))
    return out


def to_dict(f: Fate) -> dict:
    return {**attrs.asdict(f), "shape": list(f.shape), "consumer_kernels": list(f.consumer_kernels)}


def table(records: list[Fate], tablefmt: str = "simple") -> str:
    rows = [[f.tensor, "[" + ", ".join(map(str, f.shape)) + "]", f.dtype, f"{f.nbytes / 1e6:,.3f}", f.label(),
             f.producer, ", ".join(f.consumer_kernels) or "-"] for f in records]
    return tabulate(rows, ["tensor", "shape", "dtype", "MB", "fate", "produced by", "read by kernels"],
                    tablefmt=tablefmt, disable_numparse=True, colalign=("left", "left", "left", "right"))
