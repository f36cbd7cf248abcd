"""Choosing how to serve: `opgraph plan MODEL --gpus N --concurrency LIST` (issue 17 §6).

Every layout of N GPUs (tensor parallelism x pipeline stages x data-parallel replicas, and for MoE models the experts
spread over them, as opgraph.analysis.plan enumerates; a pipeline's concurrency shared by its lanes, one batch in
flight a stage, as `serve` runs them) is tried at every concurrency per replica in the list, each a closed loop of requests of P prompt
and G output tokens under the engine's scheduler (opgraph.analysis.serve.ENGINES), priced in closed form
(opgraph.analysis.capacity: the steady state, within about 1% of `serve`'s event run):
- it fits when the KV cache (the engine's share of each GPU's memory, less the weights and the largest
  iteration's activations) holds C requests of P + G tokens, and C is within the engine's running limit;
- TTFT and TPOT are the steady state's means; tokens/s per GPU are the replicas' output over all N GPUs, and
  tokens/s per user 1 / TPOT.
The candidates' Pareto front (no other is better in both tokens/s per GPU and tokens/s per user) is marked, and the
best candidate is the one with the most tokens/s per GPU among those within the limits (--max-ttft, --max-tpot: the
means).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import attrs

from opgraph.analysis.capacity import Steady, steady
from opgraph.analysis.iteration import IterationPricer
from opgraph.analysis.plan import Arrange, Dropped, Layout, layouts
from opgraph.analysis.serve import ENGINES, kv_blocks
from opgraph.core import checks
from opgraph.core.fusion import FusionPlan
from opgraph.errors import OpgraphError
from opgraph.files import planfile
from opgraph.pricing.hardware import Hardware

DEFAULT_CONCURRENCY = tuple(2**i for i in range(10))  # 1 .. 512 per replica


@attrs.frozen
class ServingCandidate:
    layout: Layout
    concurrency: int  # requests in flight per replica
    steady: Steady
    tokens_per_s_per_gpu: float
    meets_limits: bool
    on_front: bool = False

    @property
    def tokens_per_s_per_user(self) -> float:
        return 1 / self.steady.tpot_s


@attrs.frozen
class ServingPlan:
    """`opgraph plan --concurrency`: every candidate that fits, the Pareto front, and the best under the limits."""

    model: str
    hardware: Hardware
    engine: str
    plan: str  # the fusion plan the kernels come from
    gpus: int
    prompt: int
    output: int
    candidates: tuple[ServingCandidate, ...]  # by tokens/s per GPU, highest first
    best: ServingCandidate | None
    too_big: int  # (layout, concurrency) pairs the KV cache, the running limit or a pipeline's lanes cannot hold
    dropped: tuple[Dropped, ...]
    limits: dict[str, float]
    seconds: float
    top: int = 10

    @property
    def front(self) -> tuple[ServingCandidate, ...]:
        return tuple(c for c in self.candidates if c.on_front)


def pareto(points: Sequence[tuple[float, float]]) -> list[bool]:
    """Which points no other point beats in both coordinates (higher is better), ties kept.

    >>> pareto([(1, 5), (2, 4), (1, 4), (3, 1), (2, 4), (0.5, 5)])
    [True, True, False, True, True, False]
    """
    by_x: dict[float, list[int]] = {}
    for i, (x, _) in enumerate(points):
        by_x.setdefault(x, []).append(i)
    out, above = [False] * len(points), float("-inf")  # the best y among points of larger x
    for x in sorted(by_x, reverse=True):
        top = max(points[i][1] for i in by_x[x])
        if top > above:
            for i in by_x[x]:
                out[i] = points[i][1] == top
            above = top
    return out


def search_serving(arrange: Arrange, hw: Hardware, *, gpus: int, moe: bool, name: str, prompt: int, output: int,
                   engine: str = "vllm", plan: FusionPlan | None = None,
                   concurrencies: Sequence[int] = DEFAULT_CONCURRENCY, max_ttft_s: float | None = None,
                   max_tpot_s: float | None = None, among: Sequence[Layout] | None = None) -> ServingPlan:
    """Every serving layout of `gpus` GPUs (or those of them in `among`) at every concurrency per replica that fits,
    for `engine`'s scheduler and kernels (or `plan`'s)."""
    start = time.perf_counter()
    checks.integer("--gpus", gpus, maximum=1024)
    checks.integer("--prompt", prompt)
    checks.integer("--output", output, minimum=2, maximum=100_001)
    checks.choice("--engine", engine, ENGINES)
    limits = {}
    for limit, value in (("max_tpot_s", max_tpot_s), ("max_ttft_s", max_ttft_s)):
        if value is not None:
            limits[limit] = checks.number(f"--{limit[:-2].replace('_', '-')}", value, above=0, maximum=1e6)
    found, dropped, too_big = [], [], 0
    for layout in layouts(gpus, moe):
        if among is not None and layout not in among:
            continue
        try:
            build, group_hw = arrange(layout)
            eng = ENGINES[engine](group_hw)
            fusion = plan or planfile.load(eng.plan)
            pricer = IterationPricer(build, fusion, group_hw)
            blocks, per_request = kv_blocks(build, fusion, group_hw, eng, prompt + output)
        except OpgraphError as e:
            dropped.append(Dropped(layout, str(e)))
            continue
        most = min(blocks // per_request, eng.max_seqs)
        for c in sorted(set(concurrencies)):
            if c > most or c % pricer.lanes:  # or a pipeline's lanes cannot share it evenly
                too_big += 1
                continue
            try:
                s = steady(pricer, eng, c, prompt, output)
            except OpgraphError:  # the decodes alone fill the budget, or a whole prompt cannot fit
                too_big += 1
                continue
            meets = s.tpot_s <= limits.get("max_tpot_s", float("inf")) and s.ttft_s <= limits.get("max_ttft_s",
                                                                                                   float("inf"))
            found.append(ServingCandidate(layout, c, s, layout.dp * s.tokens_per_s / layout.gpus, meets))
    front = pareto([(c.tokens_per_s_per_gpu, c.tokens_per_s_per_user) for c in found])
    found = [attrs.evolve(c, on_front=f) for c, f in zip(found, front)]
    found.sort(key=lambda c: (-c.tokens_per_s_per_gpu, -c.tokens_per_s_per_user, c.layout.tp, c.concurrency))
    best = next((c for c in found if c.meets_limits), None)
    fusion_name = plan.name if plan is not None else ENGINES[engine](hw).plan
    return ServingPlan(name, hw, engine, fusion_name, gpus, prompt, output, tuple(found), best, too_big,
                       tuple(dropped), limits, time.perf_counter() - start)
