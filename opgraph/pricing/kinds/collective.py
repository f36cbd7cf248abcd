"""Collectives: all-reduce, all-gather, reduce-scatter and send, over the links between GPUs.

A kernel that holds a collective is priced as one: its links decide. Its busy time is at least its time on the
links. Until calibrated that is the spec's alpha-beta on a ring (opgraph.core.ops counts a ring's bytes and steps).
Calibrated, it is the engines' own kernels': each stage a fixed cost (per_step) and the wire bytes at the achieved
share of the link (link_efficiency; above 1 a switch that reduces in the network, as NVLink SHARP does). vLLM's
custom all-reduce (csrc/custom_all_reduce.cuh; SGLang's is its copy, TensorRT-LLM's ONESHOT and TWOSHOT strategies
alike) runs an all-reduce in two stages, a reduce-scatter then an all-gather with every peer at once (a ring's
bytes), or below a size in one, each GPU reading every peer's whole buffer (n - 1 buffers: n / 2 times a ring's
bytes), whichever is faster; any other collective takes one stage. A measured row is an all-reduce of `elements`
values over `gpus` GPUs of one node.
"""

from __future__ import annotations

from opgraph.pricing.kinds import KernelClass, Param, Row

COLLECTIVE = "collective"
# a fixed cost, the achieved share of the link (above 1 where the switch reduces), a cost per algorithm step
LINK_PARAMS = (Param("latency_s", 5e-6, 0.0, 1e-3), Param("link_efficiency", 0.8, 0.05, 2.0),
               Param("per_step_s", 1e-7, 0.0, 1e-5))


def stages(op) -> tuple[int, int, float]:
    """How the engines' kernels run a collective op: (its stages the usual way, its stages the one-stage way, the
    one-stage way's wire bytes over a ring's). An all-reduce of n GPUs: two stages, or one moving n / 2 times a ring's
    bytes; any other collective: one stage either way."""
    return (2, 1, op.group / 2) if op.fn == "all_reduce" else (1, 1, 1.0)


def _build(b, s: dict) -> list:
    b.all_reduce("all_reduce", b.input("x", (s["elements"],)), group=s["gpus"], out="y")
    return []


CLASSES = (KernelClass(COLLECTIVE, lambda op: op.kind == "collective", order=20, kinds=frozenset({"collective"}),
                    rows=(Row("all_reduce", ("gpus", "elements"), "a sum over `gpus` GPUs (of one node) of `elements` "
                              "values of dtype each", _build),),
                    fitted=LINK_PARAMS, about="ring collectives on the links"),)
