"""Elementwise kernels: activations (SiLU x mul, squared ReLU, GELU), residual adds, gathers, routers' softmax.

The class of every kernel no other class claims, and of every op no other class takes. An op of a kind no class
names (a kind a user registered: opgraph.core.ops.register_kind) is priced here too, and the report names it.
Measured rows: SwiGLU's silu(gate) x up (reads gate and up, writes hidden per token) and squared ReLU.
"""

from __future__ import annotations

from opgraph.pricing.kinds import VECTOR_PARAMS, KernelClass, Row, compiled

ELEMENTWISE = "elementwise"


def _activation(b, s: dict, kind: str) -> list:
    x = b.input("x", (s["tokens"], s["hidden"]))
    if kind == "relu2":
        b.elementwise("relu2", "relu2", x, out="y")
    else:
        gate = b.elementwise("silu", "silu", x, out="act")
        b.elementwise("mul", "mul", gate, b.input("up", (s["tokens"], s["hidden"])), out="y")
    return []


def _swiglu(gate, up):
    import torch  # where bench runs only: torch is an optional extra
    return torch.nn.functional.silu(gate) * up


def _silu_mul(torch, dt, s: dict, dev: str):
    gate, up = (torch.randn(s["tokens"], s["hidden"], dtype=dt, device=dev) for _ in range(2))
    return compiled(torch, _swiglu, (gate, up))


CLASSES = (KernelClass(ELEMENTWISE, lambda op: True, 100, group="vector",
                       kinds=frozenset({"elementwise", "gather", "softmax"}), rows=(
    Row("silu_mul", ("tokens", "hidden"), "SwiGLU's silu(gate) x up: reads gate and up, writes hidden per token",
        lambda b, s: _activation(b, s, "silu_mul"), _silu_mul),
    Row("relu2", ("tokens", "hidden"), "squared ReLU, max(x, 0)^2", lambda b, s: _activation(b, s, "relu2"))),
    fitted=VECTOR_PARAMS, about="activations, residual adds, gathers"),)
