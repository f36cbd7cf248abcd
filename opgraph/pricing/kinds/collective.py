"""Collectives: all-reduce, all-gather, reduce-scatter and send, over the links between GPUs.

A kernel that holds a collective is priced as one: its links decide. Its busy time is at least its time on the
links, steps x per_step + wire bytes / (link bandwidth x link_efficiency) (the spec's alpha-beta until calibrated; a
link_efficiency above 1 is a switch that reduces in the network, as NVLink SHARP does). A measured row is a ring
all-reduce of `elements` values over `gpus` GPUs of one node.
"""

from __future__ import annotations

from opgraph.pricing.kinds import KernelClass, Param, Row

COLLECTIVE = "collective"
# a fixed cost, the achieved share of the link (above 1 where the switch reduces), a cost per algorithm step
LINK_PARAMS = (Param("latency_s", 5e-6, 0.0, 1e-3), Param("link_efficiency", 0.8, 0.05, 2.0),
               Param("per_step_s", 1e-7, 0.0, 1e-5))


def _build(b, s: dict) -> list:
    b.all_reduce("all_reduce", b.input("x", (s["elements"],)), group=s["gpus"], out="y")
    return []


CLASSES = (KernelClass(COLLECTIVE, lambda op: op.kind == "collective", order=20, kinds=frozenset({"collective"}),
                    rows=(Row("all_reduce", ("gpus", "elements"), "a sum over `gpus` GPUs (of one node) of `elements` "
                              "values of dtype each", _build),),
                    fitted=LINK_PARAMS, about="ring collectives on the links"),)
