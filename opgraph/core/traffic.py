"""What a fused block moves: each op's bytes under a fusion partition (the counting half of the cost model).

A kernel reads each tensor it needs from memory once (weights, inputs, cache, and results materialized by other
kernels) and writes each materialized result it produces once. The read is charged to the kernel's first op (in
topological order) that uses the tensor, so the op rows of a block add up to its kernels' traffic exactly. Time
(what these bytes and the ops' FLOPs cost on a GPU) is opgraph.pricing's.
"""

from __future__ import annotations

import math

import attrs

from opgraph.core.fusion import Partition
from opgraph.core.graph import Graph
from opgraph.core.sizes import maximum
from opgraph.core.tensor import Role, nbytes

# Which traffic bucket a tensor's bytes fall in.
# A recurrent state (Role.STATE) is the cache of a state-space or linear-attention layer: its traffic is cache traffic.
_BUCKET = {Role.WEIGHT: "weight", Role.KV_CACHE: "kv_cache", Role.STATE: "kv_cache", Role.ACTIVATION: "activation",
           Role.INPUT: "activation"}


@attrs.frozen
class Traffic:
    """Bytes moved, split by direction and by what the bytes are."""

    bytes_read: int = 0
    bytes_written: int = 0
    weight_bytes: int = 0
    activation_bytes: int = 0
    kv_cache_bytes: int = 0

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    # Field by field, not through attrs.astuple: every op's bytes are summed, and that made it a tenth of a report.
    def __add__(self, other: "Traffic") -> "Traffic":
        return Traffic(self.bytes_read + other.bytes_read, self.bytes_written + other.bytes_written,
                       self.weight_bytes + other.weight_bytes, self.activation_bytes + other.activation_bytes,
                       self.kv_cache_bytes + other.kv_cache_bytes)

    def __mul__(self, k: int) -> "Traffic":
        return Traffic(self.bytes_read * k, self.bytes_written * k, self.weight_bytes * k, self.activation_bytes * k,
                       self.kv_cache_bytes * k)


def _moved(role: Role, n: int, *, write: bool) -> Traffic:
    fields = {"bytes_written" if write else "bytes_read": n, f"{_BUCKET[role]}_bytes": n}
    return Traffic(**fields)


def intensity(flops: int, nbytes_: int) -> float:
    """FLOPs per byte; infinite when nothing touches memory (an op fused away entirely)."""
    return flops / nbytes_ if nbytes_ else math.inf


def op_traffic(graph: Graph, part: Partition) -> dict[str, Traffic]:
    """Per-op bytes under the partition (see the module docstring for the charging rule)."""
    per_op = dict.fromkeys(graph.ops, Traffic())
    charged: dict[tuple[str, str], str] = {}  # (kernel, tensor) -> op charged with the read
    read_elems: dict[tuple[str, str], int] = {}
    for name, op in graph.ops.items():
        kernel = part.kernel_of[name]
        for i, t in enumerate(op.inputs):
            producer = graph.producer.get(t.name)
            if producer is not None and part.kernel_of[producer] == kernel:
                continue  # produced in this kernel: stays on chip
            key = (kernel, t.name)
            charged.setdefault(key, name)
            read_elems[key] = maximum(read_elems.get(key, 0), op.read_elems(i))
        for t in op.outputs:
            if t.name in part.materialized:
                per_op[name] += _moved(t.role, t.nbytes, write=True)
    for (kernel, tname), op_name in charged.items():
        t = graph.tensors[tname]
        per_op[op_name] += _moved(t.role, nbytes(read_elems[(kernel, tname)], t.dtype, t.shape[-1], t.matrix_rows), write=False)
    return per_op
