"""Choosing a parallel plan: `opgraph plan MODEL --gpus N`.

Every layout of N GPUs the model can be split into is a candidate: tensor parallelism over tp GPUs, times pp
pipeline stages, times dp data-parallel replicas (tp x pp x dp = N), and for mixture-of-experts models also the
experts spread over each stage's dp GPUs (--dp D --ep D), over its tp GPUs (--tp T --ep T) or over E groups of them
(--tp T --ep E, E dividing T). A pipeline runs
its batch as pp micro-batches. Each layout is tried at every batch per replica in the list (default 1, 2, 4, ...,
512) for a prompt of P tokens and G output tokens (opgraph.analysis.generate's convention: time to first token is the
prefill; each further token a decode step at its own context):
- it fits when one GPU's weights, KV cache and peak activations fit its memory both after the prefill and after
  the last decode step (opgraph.analysis.memory), checked at each batch in turn, smallest first, until one does
  not (memory grows with the batch);
- TTFT is the prefill's expected time; TPOT the mean of the G-1 decode steps' expected times, each costed at its
  own context by replaying the traced model over arrays (opgraph.analysis.sweep), so the thousands of steps of a
  layout's batches cost one trace;
- throughput per GPU is replicas x batch x G output tokens over TTFT + the decode steps, over N GPUs.
Candidates over --max-tpot or --max-ttft are dropped, and the rest ranked by throughput per GPU. A layout that
cannot be built (a split that does not divide, more stages than layers) is dropped with its reason.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import attrs
import numpy as np

from opgraph.analysis.memory import footprint_of
from opgraph.analysis.sweep import Sweeper
from opgraph.core import checks
from opgraph.core.fusion import FusionPlan
from opgraph.pricing.hardware import Hardware
from opgraph.core.model import Model, expert_groups
from opgraph.core.phase import Phase
from opgraph.errors import OpgraphError

DEFAULT_BATCHES = tuple(2**i for i in range(10))  # 1 .. 512 per replica
DEFAULT_PROMPT, DEFAULT_OUTPUT = 1024, 256


@attrs.frozen
class Layout:
    tp: int
    dp: int
    ep: int
    pp: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    def describe(self) -> str:
        groups = f" ({self.ep} groups of {self.tp // self.ep})" if expert_groups(self.tp, self.dp, self.ep) else ""
        parts = (f"tp {self.tp}" if self.tp > 1 else "", f"pp {self.pp}" if self.pp > 1 else "",
                 f"dp {self.dp}" if self.dp > 1 else "", f"ep {self.ep}{groups}" if self.ep > 1 else "")
        return " x ".join(part for part in parts if part) or "1 GPU"


@attrs.frozen
class Candidate:
    layout: Layout
    batch: int  # sequences per replica
    ttft_s: float
    tpot_s: float | None  # None when G = 1
    total_s: float
    tokens_per_s_per_gpu: float
    memory_bytes: int  # one GPU's, at the larger of after-prefill and after the last step
    capacity_bytes: int
    bound_by: str  # the op with the largest share of a mid-run decode step (or of the prefill when G = 1)
    bound_share: float
    crosses_nodes: bool

    @property
    def sequences(self) -> int:
        return self.layout.dp * self.batch


@attrs.frozen
class Dropped:
    layout: Layout
    reason: str


@attrs.frozen
class PlanSearch:
    """`opgraph plan`: the candidates that fit and meet the limits, best first, and what was dropped and why."""

    model: str
    hardware: Hardware
    gpus: int
    prompt: int
    output: int
    ranked: tuple[Candidate, ...]
    too_slow: int  # candidates that fit but miss --max-tpot / --max-ttft
    too_big: int  # layout x batch pairs that do not fit in memory
    dropped: tuple[Dropped, ...]  # layouts that cannot be built
    limits: dict[str, float]  # "max_tpot_s", "max_ttft_s" as given
    evaluated: int  # candidates costed
    seconds: float  # wall time of the search
    notes: tuple[str, ...] = ()
    top: int = 10  # candidates the table lists (json and csv give all)


def has_experts(model: Model) -> bool:
    """Whether a model has mixture-of-experts layers (ops its builder tagged 'moe'): expert parallelism applies."""
    return any(op.part == "moe" for op in model.ops())


def layouts(gpus: int, moe: bool) -> list[Layout]:
    """Every tp x pp x dp = gpus, and for a MoE model each pp with dp = ep = gpus / pp or tp = ep = gpus / pp
    (above 1) as well, and with tp = gpus / pp the experts over ep groups of it for each ep dividing tp strictly
    between 1 and tp (each group splitting its experts' width over tp / ep GPUs: models/parallel.py)."""
    divisors = [d for d in range(1, gpus + 1) if gpus % d == 0]
    out = [Layout(tp, gpus // (tp * pp), 1, pp) for tp in divisors for pp in divisors if (gpus // tp) % pp == 0]
    if moe:  # experts over each stage's data-parallel GPUs, or over its tensor-parallel group, or groups of it
        out += [Layout(1, gpus // pp, gpus // pp, pp) for pp in divisors if gpus // pp > 1]
        out += [Layout(gpus // pp, 1, gpus // pp, pp) for pp in divisors if gpus // pp > 1]
        out += [Layout(gpus // pp, 1, ep, pp) for pp in divisors for ep in divisors if expert_groups(gpus // pp, 1, ep)]
    return out


Arrange = Callable[[Layout], tuple[Callable[[Phase], Model], Hardware]]


def search(arrange: Arrange, plan: FusionPlan, hw: Hardware, *, gpus: int, moe: bool, name: str,
           prompt: int = DEFAULT_PROMPT, output: int = DEFAULT_OUTPUT, batches: Sequence[int] = DEFAULT_BATCHES,
           max_tpot_s: float | None = None, max_ttft_s: float | None = None) -> PlanSearch:
    """Rank the parallel layouts of `gpus` GPUs of kind `hw` for the model `name`, each at the batches that fit.
    `arrange(layout)` gives the layout's model builder (phase -> one GPU's Model) and the hardware its
    collectives run on, or raises OpgraphError when the model cannot be laid out so; `moe` adds the
    expert-parallel layout."""
    start = time.perf_counter()
    checks.integer("--gpus", gpus, maximum=1024)
    checks.integer("--prompt", prompt)
    checks.integer("--output", output, maximum=100_001)
    limits = {}
    for limit, value in (("max_tpot_s", max_tpot_s), ("max_ttft_s", max_ttft_s)):
        if value is not None:
            limits[limit] = checks.number(f"--{limit[:-2].replace('_', '-')}", value, above=0, maximum=1e6)
    ranked, dropped, too_slow, too_big, evaluated = [], [], 0, 0, 0
    for layout in layouts(gpus, moe):
        link = hw.interconnect
        crosses = link is not None and max(layout.tp, layout.ep) > link.gpus_per_node
        try:
            build, group_hw = arrange(layout)
            memory = functools.lru_cache(maxsize=None)(lambda ph, build=build, hw_=group_hw: footprint_of(
                build(ph), plan, hw_))  # one footprint per phase, shared by the fit and the candidates
            fitting = []
            for b in sorted(batches):  # memory grows with the batch: the first that does not fit ends the list
                if not (memory(Phase.prefill(b, prompt)).fits and memory(Phase.holding(b, prompt + output)).fits):
                    break
                fitting.append(b)
        except OpgraphError as e:
            dropped.append(Dropped(layout, str(e)))
            continue
        too_big += len(batches) - len(fitting)
        if not fitting:
            continue
        evaluated += len(fitting)
        for c in _costed(build, memory, plan, group_hw, layout, fitting, prompt, output, crosses):
            if any(limits.get(k, float("inf")) < v for k, v in (("max_tpot_s", c.tpot_s or 0.0),
                                                                 ("max_ttft_s", c.ttft_s))):
                too_slow += 1
            else:
                ranked.append(c)
    ranked.sort(key=lambda c: (-c.tokens_per_s_per_gpu, c.layout.tp, c.batch))
    notes = ("a pipeline runs its batch as pp micro-batches; groups that span nodes run their collectives over the "
             "network",)
    return PlanSearch(name, hw, gpus, prompt, output, tuple(ranked), too_slow, too_big, tuple(dropped), limits,
                      evaluated, time.perf_counter() - start, notes)


def _costed(build, memory, plan: FusionPlan, hw: Hardware, layout: Layout, batches: list[int], prompt: int,
            output: int, crosses: bool) -> list[Candidate]:
    """Every batch of one layout: the prefill at each batch, and every decode step of each in one replay."""
    pre = Sweeper(build, plan, hw, "prefill").grid(batches, [prompt] * len(batches))
    steps = output - 1
    if steps:
        contexts = np.arange(prompt, prompt + steps)
        dec = Sweeper(build, plan, hw, "decode").grid(np.repeat(batches, steps), np.tile(contexts, len(batches)))
        per_batch = dec.expected_s.reshape(len(batches), steps)
        decode_s = per_batch.sum(axis=1)
        mid = np.arange(len(batches)) * steps + steps // 2  # a mid-run step names the bounding op
        bound = [(dec.op_labels[dec.dominant[i]], float(dec.dominant_share[i])) for i in mid]
    else:
        decode_s = np.zeros(len(batches))
        bound = [(pre.op_labels[pre.dominant[i]], float(pre.dominant_share[i])) for i in range(len(batches))]
    out = []
    for i, b in enumerate(batches):
        # memory peaks after the last step (the longest cache) or after the prefill (the widest activations)
        used = max(memory(Phase.prefill(b, prompt)).total, memory(Phase.holding(b, prompt + output)).total)
        total = float(pre.expected_s[i]) + float(decode_s[i])
        out.append(Candidate(layout, b, float(pre.expected_s[i]), float(decode_s[i]) / steps if steps else None, total,
                             layout.dp * b * output / total / layout.gpus, used, int(hw.capacity), bound[i][0],
                             bound[i][1], crosses))
    return out

