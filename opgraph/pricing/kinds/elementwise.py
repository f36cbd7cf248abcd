"""Elementwise kernels: activations (SiLU x mul, squared ReLU, GELU), rotary embeddings, residual adds, gathers,
routers' softmax.

The class of every kernel no other class claims, and of every op no other class takes. An op of a kind no class
names (a kind a user registered: opgraph.core.ops.register_kind) is priced here too, and the report names it.
Measured rows: SwiGLU's silu(gate) x up (reads gate and up, writes hidden per token), squared ReLU, and the rotary
embedding of a layer's queries and keys in one kernel.
"""

from __future__ import annotations

from opgraph.pricing.kinds import KernelClass, Row

ELEMENTWISE = "elementwise"


def _activation(b, s: dict, kind: str) -> list:
    x = b.input("x", (s["tokens"], s["hidden"]))
    if kind == "relu2":
        b.elementwise("relu2", "relu2", x, out="y")
    else:
        gate = b.elementwise("silu", "silu", x, out="act")
        b.elementwise("mul", "mul", gate, b.input("up", (s["tokens"], s["hidden"])), out="y")
    return []


def _rope(b, s: dict) -> list:
    """One rope op over the queries and keys side by side: vLLM's and SGLang's rotary kernels rotate both in one
    launch (two ops on separate tensors would be two kernels: a kernel is one connected piece of the graph)."""
    tokens, d = s["tokens"], s["head_dim"]
    b.rope("rope", b.input("qk", (tokens, (s["heads"] + s["kv_heads"]) * d)), head_dim=d, out="qk_rot")
    return []


def _silu_mul(torch, dt, s: dict, dev: str):
    F = torch.nn.functional
    gate, up = (torch.randn(s["tokens"], s["hidden"], dtype=dt, device=dev) for _ in range(2))
    swiglu = torch.compile(lambda gate, up: F.silu(gate) * up, dynamic=False)  # one kernel, as engines run it
    return lambda: swiglu(gate, up)


CLASSES = (KernelClass(ELEMENTWISE, lambda op: True, 100, group="vector",
                    kinds=frozenset({"elementwise", "rope", "gather", "softmax"}), rows=(
    Row("silu_mul", ("tokens", "hidden"), "SwiGLU's silu(gate) x up: reads gate and up, writes hidden per token",
        lambda b, s: _activation(b, s, "silu_mul"), _silu_mul),
    Row("relu2", ("tokens", "hidden"), "squared ReLU, max(x, 0)^2", lambda b, s: _activation(b, s, "relu2")),
    Row("rope", ("tokens", "heads", "kv_heads", "head_dim"), "rotary embedding of a layer's queries and keys, one "
        "kernel", _rope)), about="activations, rotary embeddings, residual adds, gathers"),)
