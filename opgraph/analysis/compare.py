"""Fusion plans side by side: what each costs, which ops change verdict, which tensors change fate,
and what each plan saves against the first."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from opgraph.analysis.activations import fates
from opgraph.analysis.memory import Footprint, footprint
from opgraph.pricing.cost import FUSED, PhaseCost, analyze
from opgraph.core.fusion import FusionPlan
from opgraph.pricing.hardware import Hardware
from opgraph.core.model import Model


@attrs.frozen
class Comparison:
    """One phase under several plans; the first plan is the baseline."""

    costs: tuple[PhaseCost, ...]  # one per plan
    flips: tuple[tuple[str, str, tuple[str, ...]], ...]  # (block, op, bound under each plan)
    fate_changes: tuple[tuple[str, str, tuple], ...]  # (block, tensor, Fate under each plan)
    memory: tuple[Footprint, ...] = ()  # one GPU's memory for the step under each plan: does it fit?

    @property
    def phase(self):
        return self.costs[0].phase


@attrs.frozen
class Comparisons:
    """`opgraph compare`: one Comparison per phase."""

    model: str
    hardware: Hardware
    plans: tuple[FusionPlan, ...]
    phases: tuple[Comparison, ...]


def compare(model: Model, plans: Sequence[FusionPlan], hw: Hardware) -> Comparison:
    """Cost `model` (one phase) under each plan; each plan's partitions are reused for the tensors' fates.

    >>> from opgraph import Phase, hardware, models, strategy
    >>> c = compare(models.get("llama-3-8b").build(Phase.decode(32, 1024)), [strategy("unfused"), strategy("fused")],
    ...             hardware.load("h100-sxm"))
    >>> [len(cost.blocks[0].kernels) for cost in c.costs]  # kernels per layer
    [18, 2]
    """
    costs = tuple(analyze(model, p, hw) for p in plans)
    flips, changes = [], []
    for i, block in enumerate(model.blocks):
        per_plan = [c.blocks[i] for c in costs]
        bounds = [{o.name: FUSED if o.fused else o.cost.bound for o in b.ops} for b in per_plan]
        for op in block.graph.ops:
            seen = tuple(b[op] for b in bounds)
            if len(set(seen) - {FUSED}) > 1:  # fused away under a plan: no verdict of its own there, not a flip
                flips.append((block.name, op, seen))
        per_plan_fates = [{f.tensor: f for f in fates(b.graph, b.partition)} for b in per_plan]
        for tensor in block.graph.producer:
            seen = tuple(f[tensor] for f in per_plan_fates)
            if len({(f.fate, f.reads) for f in seen}) > 1:
                changes.append((block.name, tensor, seen))
    return Comparison(costs, tuple(flips), tuple(changes), tuple(footprint(c) for c in costs))


def compare_phases(models: Sequence[Model], plans: Sequence[FusionPlan], hw: Hardware) -> Comparisons:
    """`compare` for each phase's model."""
    return Comparisons(models[0].name, hw, tuple(plans), tuple(compare(m, plans, hw) for m in models))
