"""Embedding lookups: `tokens` rows gathered from a vocab x hidden table."""

from __future__ import annotations

from opgraph.core.tensor import INT32
from opgraph.pricing.kinds import VECTOR_PARAMS, KernelClass, Row, compiled

EMBEDDING = "embedding"


def _build(b, s: dict) -> list:
    ids = b.input("ids", (s["tokens"],), INT32)
    b.embedding("embedding", ids, b.weight("table", (s["vocab"], s["hidden"])), out="y")
    return []


def _gather(ids, table):
    import torch  # where bench runs only: torch is an optional extra
    return torch.nn.functional.embedding(ids, table)


def _bench(torch, dt, s: dict, dev: str):
    """Compiled, as vLLM's model gathers (an Inductor kernel; torch's eager gather took 3-8 us at 4-16 tokens on an
    H200, where the compiled gather takes 1.5-1.8 us)."""
    ids = torch.randint(0, s["vocab"], (s["tokens"],), device=dev)
    table = torch.randn(s["vocab"], s["hidden"], dtype=dt, device=dev)
    return compiled(torch, _gather, (ids,), (table,))


CLASSES = (KernelClass(EMBEDDING, lambda op: op.kind == "embedding", 60, group="vector", kinds=frozenset({"embedding"}),
                    rows=(Row("embedding", ("tokens", "vocab", "hidden"), "a lookup of `tokens` ids into a vocab x "
                              "hidden table of dtype", _build, _bench),), fitted=VECTOR_PARAMS,
                    about="embedding lookups"),)
