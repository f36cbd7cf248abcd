"""Inference phases. One builder serves both: the phase only changes shapes and which cache is read."""

from __future__ import annotations

import attrs

from opgraph.errors import OpgraphError
from opgraph.core import checks

PHASES = ("prefill", "decode")
# What each phase calls its length: prompt tokens per sequence, or tokens already in the KV cache.
LENGTH_NAMES = {"prefill": "seq_len", "decode": "context"}
# What a one-dimensional study of a phase (crossovers, sweep plots) varies, and what it holds: decode grows the
# batch at a fixed context, prefill the prompt at a fixed batch.
VARIED = {"decode": ("batch", "context"), "prefill": ("seq_len", "batch")}


@attrs.frozen
class Phase:
    """`batch` sequences, each adding `new_tokens` tokens on top of `past` tokens already in the KV cache."""

    name: str
    batch: int
    new_tokens: int
    past: int

    @classmethod
    def prefill(cls, batch: int, seq_len: int) -> "Phase":
        """The whole prompt at once: seq_len new tokens, empty cache."""
        return cls("prefill", checks.integer("batch", batch), checks.integer("seq_len", seq_len), 0)

    @classmethod
    def decode(cls, batch: int, context: int) -> "Phase":
        """One new token per sequence after `context` cached ones: attention runs over context+1 keys."""
        return cls("decode", checks.integer("batch", batch), 1, checks.integer("context", context))

    @classmethod
    def holding(cls, batch: int, tokens: int) -> "Phase":
        """The step after which each of `batch` sequences holds `tokens` tokens in the KV cache: the decode of its last
        token over the tokens - 1 before it (over none for a one-token prompt, which decode() refuses as a context).

        >>> Phase.holding(2, 10) == Phase.decode(2, 9), Phase.holding(1, 1).past
        (True, 0)
        """
        return cls("decode", checks.integer("batch", batch), 1, checks.integer("tokens", tokens) - 1)

    @classmethod
    def of(cls, name: str, batch: int, length: int) -> "Phase":
        """prefill(batch, seq_len=length) or decode(batch, context=length), by name."""
        if name not in PHASES:
            raise OpgraphError(f"unknown phase {name!r}; valid: {', '.join(PHASES)}")
        return cls.prefill(batch, length) if name == "prefill" else cls.decode(batch, length)

    @classmethod
    def along(cls, name: str, varied: int, held: int) -> "Phase":
        """The phase at `varied` of what a study of it varies (VARIED) and `held` of what it holds.

        >>> Phase.along("decode", 64, 1024).describe(), Phase.along("prefill", 512, 8).describe()
        ({'batch': 64, 'context': 1024}, {'batch': 8, 'seq_len': 512})
        """
        return cls.of(name, varied, held) if name == "decode" else cls.of(name, held, varied)

    @property
    def length(self) -> int:
        """The phase's own length: seq_len in prefill, context in decode."""
        return self.new_tokens if self.name == "prefill" else self.past

    @property
    def length_name(self) -> str:
        return LENGTH_NAMES[self.name]

    @property
    def keys(self) -> int:
        """Key positions each new token attends to (before any window limit)."""
        return self.past + self.new_tokens

    @property
    def tokens(self) -> int:
        """New tokens in the whole batch: the M of every projection."""
        return self.batch * self.new_tokens

    def describe(self) -> dict[str, int]:
        """The user's own parameters for this phase, as they named them."""
        return {"batch": self.batch, self.length_name: self.length}
