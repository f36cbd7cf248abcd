"""Norms: RMSNorm and LayerNorm over the last dim, and the residual add fused before them.

A kernel with a norm and no matrix product or collective is a norm kernel; elementwise work fused into it (the
residual add before it) is priced with it, at its efficiencies. Measured rows normalize tokens x hidden values with a
hidden-wide scale (LayerNorm: and a shift); add_rms_norm also reads the residual and writes the sum (the next
residual) beside the norm.
"""

from __future__ import annotations

from opgraph.pricing.kinds import VECTOR_PARAMS, KernelClass, Row, compiled

NORM = "norm"


def _build(b, s: dict, kind: str) -> list:
    tokens, hidden = s["tokens"], s["hidden"]
    x, outputs = b.input("x", (tokens, hidden)), []
    if kind == "add_rms_norm":
        x = b.elementwise("add", "add", x, b.input("residual", (tokens, hidden)), out="sum")
        outputs.append(x)
    bias = b.weight("beta", (hidden,)) if kind == "layer_norm" else None
    b.norm("norm", x, b.weight("gamma", (hidden,)), bias=bias, fn="layernorm" if kind == "layer_norm" else "rmsnorm",
           out="y")
    return outputs


def _rms_norm(x, w):
    import torch  # where bench runs only: torch is an optional extra
    return torch.nn.functional.rms_norm(x, (x.shape[-1],), w, 1e-6)


def _add_rms_norm(x, residual, w):
    total = x + residual
    return total, _rms_norm(total, w)


def _bench(torch, dt, s: dict, dev: str, kind: str):
    F, h = torch.nn.functional, s["hidden"]
    x, w = torch.randn(s["tokens"], h, dtype=dt, device=dev), torch.randn(h, dtype=dt, device=dev)
    if kind == "layer_norm":
        bias = torch.randn(h, dtype=dt, device=dev)
        return lambda: F.layer_norm(x, (h,), w, bias)
    if kind == "add_rms_norm":
        residual = torch.randn(s["tokens"], h, dtype=dt, device=dev)
        return compiled(torch, _add_rms_norm, (x, residual), (w,))
    return compiled(torch, _rms_norm, (x,), (w,))


def _row(name: str, about: str) -> Row:
    return Row(name, ("tokens", "hidden"), about, lambda b, s: _build(b, s, name), lambda *a: _bench(*a, kind=name))


CLASSES = (KernelClass(NORM, lambda op: op.kind == "norm", 50, group="vector", kinds=frozenset({"norm"}), rows=(
    _row("rms_norm", "RMSNorm of tokens x hidden values of dtype, with a hidden-wide scale"),
    _row("layer_norm", "LayerNorm, with a scale and a shift"),
    _row("add_rms_norm", "the residual add and the RMSNorm after it in one kernel: reads x and the residual, writes "
         "their sum (the next residual) and its norm")), fitted=VECTOR_PARAMS, about="RMSNorm and LayerNorm kernels"),)
