"""End-to-end generation: a prompt of P tokens and G output tokens per sequence, for a batch of B.

Convention (the README repeats it):
- The first output token comes from prefill: time to first token (TTFT) is the prefill model time at
  batch B, seq_len P, which already includes the final norm and lm_head on the last position only.
- Each further output token is one decode step. A step's *context* is the number of tokens already in
  the KV cache; it attends over context+1 keys (the cache plus the new token). The steps run at contexts
  P, P+1, ..., P+G-2: G-1 decode steps, each costed at its own context and summed, never an averaged
  context. Counting the new token, the tokens present grow from P+1 to P+G-1 (the issue's "P to P+G-1").
- The last output token is sampled but never fed back, so after the run the cache holds P+G-1 tokens.

Each step builds and costs its own model (about 1-3 ms a step), so G in the thousands takes seconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

from opgraph.pricing.cost import PhaseCost, analyze
from opgraph.analysis.sweep import Sweeper
from opgraph.errors import OpgraphError
from opgraph.core.fusion import FusionPlan
from opgraph.pricing.hardware import Hardware
from opgraph.analysis.memory import Footprint, footprint, footprint_of
from opgraph.core.model import Model
from opgraph.core import checks
from opgraph.core.phase import Phase


MAX_STEPS = 100_000


@attrs.frozen
class Step:
    """One decode step: `context` tokens already cached, and its model time in seconds."""

    context: int
    time_s: float  # expected (opgraph.pricing.timing)
    roofline_s: float = 0.0


@attrs.frozen
class Generation:
    prefill: PhaseCost
    steps: tuple[Step, ...]  # the G-1 decode steps, contexts P .. P+G-2
    prompt: int
    output: int
    memory: tuple[Footprint, ...]  # after prefill, and after the last decode step (if any)
    notes: tuple[str, ...] = ()

    @property
    def batch(self) -> int:
        return self.prefill.phase.batch

    @property
    def ttft_s(self) -> float:
        return self.prefill.totals.expected_s

    @property
    def roofline_ttft_s(self) -> float:
        return self.prefill.totals.time_s

    @property
    def roofline_total_s(self) -> float:
        return self.roofline_ttft_s + math.fsum(s.roofline_s for s in self.steps)

    @property
    def decode_s(self) -> float:
        return math.fsum(s.time_s for s in self.steps)

    @property
    def total_s(self) -> float:
        return self.ttft_s + self.decode_s

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first: the mean decode step (None when G = 1)."""
        return self.decode_s / len(self.steps) if self.steps else None

    @property
    def tokens_per_s(self) -> float:
        """Output tokens per second for the whole batch: B*G / total time."""
        return self.batch * self.output / self.total_s

    @property
    def group_tokens_per_s(self) -> float:
        """Output tokens per second of a parallel group: every data-parallel replica runs its own batch."""
        return self.prefill.replicas * self.tokens_per_s

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.group_tokens_per_s / self.prefill.gpus

    @property
    def tokens_per_s_per_sequence(self) -> float:
        return self.output / self.total_s

    @property
    def fits(self) -> bool:
        return all(f.fits for f in self.memory)


def estimate(build: Callable[[Phase], Model], plan: FusionPlan, hw: Hardware, *, batch: int, prompt: int,
             output: int) -> Generation:
    """Cost prefill and every decode step of generating `output` tokens after a `prompt`-token prompt.
    `build(phase)` gives the model for a phase (e.g. `cfg.build` of a models config)."""
    if checks.integer("output", output) - 1 > MAX_STEPS:
        raise OpgraphError(f"output {output:,} means {output - 1:,} decode steps, each costed on its own; "
                           f"the most is {MAX_STEPS:,} steps")
    pre_model = build(Phase.prefill(batch, prompt))
    prefill = analyze(pre_model, plan, hw)
    # Every step is costed at its own context, by replaying the traced pipeline (exactly the report's numbers).
    contexts = range(prompt, prompt + output - 1)
    grid = Sweeper(build, plan, hw, "decode").grid([batch] * len(contexts), contexts) if contexts else None
    steps = [Step(context, e, t) for context, e, t in
             zip(contexts, grid.expected_s.tolist(), grid.time_s.tolist())] if grid is not None else []
    last = build(Phase.decode(batch, contexts[-1])) if steps else None
    memory = [footprint(prefill)]
    notes = list(pre_model.notes)
    if last is not None:
        memory.append(footprint_of(last, plan, hw))
        notes += [n for n in last.notes if n not in notes]
    return Generation(prefill, tuple(steps), prompt, output, tuple(memory), tuple(notes))


CONVENTION = ("the first output token comes from prefill; each further one is a decode step whose context "
              "(tokens already in the KV cache) runs P, P+1, ..., P+G-2, attending over context+1 keys; "
              "step times are summed, not averaged over one context")
