"""`opgraph report`: every op's FLOPs, bytes, verdict and time in each phase, and whether the step fits."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs

from opgraph.analysis.memory import Footprint, footprint
from opgraph.pricing.cost import PhaseCost, analyze
from opgraph.core.fusion import FusionPlan
from opgraph.pricing.hardware import Hardware
from opgraph.core.model import Model
from opgraph.core.phase import Phase


@attrs.frozen
class Report:
    """One cost record per phase, each with the memory its step needs."""

    costs: tuple[PhaseCost, ...]
    memory: tuple[Footprint, ...]


def report(build: Callable[[Phase], Model], phases: Sequence[Phase], plan: FusionPlan, hw: Hardware) -> Report:
    """Cost the model that `build(phase)` gives for each phase.

    >>> from opgraph import Phase, hardware, models, strategy
    >>> r = report(models.get("llama-3-8b").build, [Phase.prefill(32, 1024), Phase.decode(32, 1024)],
    ...            strategy("fused"), hardware.load("h100-sxm"))
    >>> [c.totals.bound for c in r.costs]  # the reference analysis's verdicts
    ['compute', 'memory']
    >>> r.costs[1].blocks[0].totals.traffic.kv_cache_bytes  # K and V of 1024 cached tokens read, 1 written
    134348800
    """
    costs = tuple(analyze(build(ph), plan, hw) for ph in phases)
    return Report(costs, tuple(footprint(c) for c in costs))
