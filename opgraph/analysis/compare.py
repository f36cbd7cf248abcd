"""Fusion plans side by side: what each costs, which ops change verdict, which tensors change fate,
and what each plan saves against the first."""

from __future__ import annotations

import attrs
from tabulate import tabulate

from opgraph.analysis import activations
from opgraph.core.cost import PhaseCost, analyze
from opgraph.core.fusion import FusionPlan, apply
from opgraph.core.hardware import Hardware
from opgraph.core.model import Model
from opgraph.render.report import seconds, sig


@attrs.frozen
class Comparison:
    phase: str
    params: dict  # the phase's own parameters (batch, seq_len or context)
    costs: tuple[PhaseCost, ...]  # one per plan, the first is the baseline
    flips: tuple[tuple[str, str, tuple[str, ...]], ...]  # (block, op, bound under each plan)
    fate_changes: tuple[tuple[str, str, tuple[str, ...]], ...]  # (block, tensor, fate label under each plan)


def compare(model: Model, plans: list[FusionPlan], hw: Hardware) -> Comparison:
    costs = tuple(analyze(model, p, hw) for p in plans)
    flips, changes = [], []
    for i, block in enumerate(model.blocks):
        per_plan_ops = [{o.name: o.cost.bound for o in c.blocks[i].ops} for c in costs]
        for op in block.graph.ops:
            bounds = tuple(b[op] for b in per_plan_ops)
            if len(set(bounds)) > 1:
                flips.append((block.name, op, bounds))
        per_plan_fates = [{f.tensor: f.label() for f in activations.fates(block.graph, apply(p, block.graph))}
                          for p in plans]
        for tensor in block.graph.producer:
            labels = tuple(f[tensor] for f in per_plan_fates)
            if len({lbl.split(" in ")[0] for lbl in labels}) > 1:
                changes.append((block.name, tensor, labels))
    return Comparison(model.phase.name, model.phase.describe(), costs, tuple(flips), tuple(changes))


def to_dict(c: Comparison) -> dict:
    base = c.costs[0].totals
    plans = []
    for cost in c.costs:
        t = cost.totals
        plans.append({"fusion": cost.plan.name, "kernels_per_block": {b.name: len(b.kernels) for b in cost.blocks},
                      "bytes": t.bytes, "time_s": t.time_s, "intensity": t.intensity, "bound": t.bound,
                      "bytes_saved": base.bytes - t.bytes, "time_saved_s": base.time_s - t.time_s})
    names = [cost.plan.name for cost in c.costs]
    return {**c.params, "plans": plans,
            "verdict_flips": [{"block": b, "op": op, "bound": dict(zip(names, v))} for b, op, v in c.flips],
            "fate_changes": [{"block": b, "tensor": t, "fate": dict(zip(names, v))} for b, t, v in c.fate_changes]}


def render(comparisons: list[Comparison], tablefmt: str = "simple") -> str:
    lines = []
    for c in comparisons:
        names = [cost.plan.name for cost in c.costs]
        base = c.costs[0].totals
        params = ", ".join(f"{k} {v}" for k, v in c.params.items())
        lines += [f"{c.phase.upper()}: {params} (model totals; savings against {names[0]})", ""]
        rows = []
        for cost in c.costs:
            t = cost.totals
            kernels = ", ".join(f"{len(b.kernels)} per {b.name}" for b in cost.blocks)
            rows.append([cost.plan.name, kernels, f"{t.bytes / 1e9:,.3f}", seconds(t.time_s), sig(t.intensity), t.bound,
                         f"{(base.bytes - t.bytes) / 1e9:,.3f}", seconds(base.time_s - t.time_s)])
        lines.append(tabulate(rows, ["fusion", "kernels", "GB moved", "time", "FLOP/B", "bound", "GB saved",
                                     "time saved"], tablefmt=tablefmt, disable_numparse=True))
        lines += ["", "ops whose verdict flips:"]
        lines.append(tabulate([[b, op, *v] for b, op, v in c.flips], ["block", "op", *names], tablefmt=tablefmt)
                     if c.flips else "  none")
        lines += ["", "tensors whose fate changes:"]
        lines.append(tabulate([[b, t, *v] for b, t, v in c.fate_changes], ["block", "tensor", *names],
                              tablefmt=tablefmt) if c.fate_changes else "  none")
        lines.append("")
    return "\n".join(lines)
