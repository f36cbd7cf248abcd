"""How to build a model, beyond its architecture: the knobs a user turns for one analysis."""

from __future__ import annotations

import attrs

from opgraph.core.tensor import Precision


@attrs.frozen
class BuildOptions:
    """`precision`: storage dtype per tensor role (None: the config's own dtype everywhere).
    `causal_skip`: count only the unmasked part of prefill attention products, as a causal
    FlashAttention kernel computes them (default off: the full score matrix, as the reference counts).
    `experts_touched`: routed experts whose weights one step reads in each MoE layer (None: the expected
    number of distinct experts for the step's tokens routed uniformly, E*(1-(1-k/E)^T) rounded up)."""

    precision: Precision | None = None
    causal_skip: bool = False
    experts_touched: int | None = None
