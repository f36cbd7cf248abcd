"""Embedding lookups: `tokens` rows gathered from a vocab x hidden table."""

from __future__ import annotations

from opgraph.core.tensor import INT32
from opgraph.pricing.kinds import VECTOR_PARAMS, KernelClass, Row

EMBEDDING = "embedding"


def _build(b, s: dict) -> list:
    ids = b.input("ids", (s["tokens"],), INT32)
    b.embedding("embedding", ids, b.weight("table", (s["vocab"], s["hidden"])), out="y")
    return []


def _bench(torch, dt, s: dict, dev: str):
    ids = torch.randint(0, s["vocab"], (s["tokens"],), device=dev)
    table = torch.randn(s["vocab"], s["hidden"], dtype=dt, device=dev)
    return lambda: torch.nn.functional.embedding(ids, table)


CLASSES = (KernelClass(EMBEDDING, lambda op: op.kind == "embedding", 60, group="vector", kinds=frozenset({"embedding"}),
                    rows=(Row("embedding", ("tokens", "vocab", "hidden"), "a lookup of `tokens` ids into a vocab x "
                              "hidden table of dtype", _build, _bench),), fitted=VECTOR_PARAMS,
                    about="embedding lookups"),)
