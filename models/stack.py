"""A model's layers as a list that is counted, not enumerated: runs of a repeating pattern.

A stack of n layers is described by `layer_at(i)` (layer i's composition), the indices where the pattern
changes (`breaks`: DeepSeek's first dense layers end at first_k_dense_replace) and the period after which it
repeats between breaks (Gemma-3's 5 local : 1 global repeats every 6, MoE every k-th layer every k; a
`layer_types` list is its own period). Only one period of each stretch is built, so a billion-layer config
costs one period, and every count (the model's blocks, a pipeline stage's share) is arithmetic on the runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable

import attrs

from opgraph.errors import OpgraphError

# A pattern longer than this is not a model's: refusing it keeps loading bounded (a config.json that lists
# layer_types one by one lists at most a few hundred).
MAX_PATTERN = 100_000


@attrs.frozen
class Run:
    """`pattern` (a tuple of layers) repeated `repeats` times."""

    pattern: tuple
    repeats: int

    @property
    def length(self) -> int:
        return len(self.pattern) * self.repeats


@attrs.frozen
class Stack:
    """Layers 0..n-1 as runs of repeated patterns, in order."""

    runs: tuple[Run, ...]

    @classmethod
    def build(cls, n: int, layer_at: Callable[[int], Hashable], *, period: int = 1,
              breaks: Iterable[int] = (), what: str = "the layer pattern") -> "Stack":
        """The stack whose layer i is layer_at(i), knowing that layer_at(i) == layer_at(i + period) whenever no
        break lies in (i, i + period]. `what` names the config fields behind the period in an error."""
        edges = sorted({0, n, *(b for b in breaks if 0 < b < n)})
        runs = []
        for lo, hi in zip(edges, edges[1:]):
            length = hi - lo
            p = min(period, length)
            if p > MAX_PATTERN:
                raise OpgraphError(f"{what} repeats every {period:,} layers; opgraph builds patterns of at most "
                                   f"{MAX_PATTERN:,} layers")
            pattern = tuple(layer_at(lo + j) for j in range(p))
            if len(set(pattern)) == 1:
                runs.append(Run(pattern[:1], length))
                continue
            if length // p:
                runs.append(Run(pattern, length // p))
            if length % p:
                runs.append(Run(pattern[:length % p], 1))
        return cls(tuple(_merged(runs)))

    @classmethod
    def uniform(cls, layer: Hashable, n: int) -> "Stack":
        return cls((Run((layer,), n),))

    @classmethod
    def listed(cls, layers: list) -> "Stack":
        """A stack given layer by layer (a config's own list)."""
        return cls.build(len(layers), layers.__getitem__, period=len(layers))

    def __len__(self) -> int:
        return sum(r.length for r in self.runs)

    def at(self, i: int):
        """Layer i (0-based)."""
        for r in self.runs:
            if i < r.length:
                return r.pattern[i % len(r.pattern)]
            i -= r.length
        raise IndexError(i)

    def counts(self, start: int = 0, stop: int | None = None) -> dict:
        """Each distinct layer's count among layers start..stop-1, in order of first appearance."""
        stop = len(self) if stop is None else stop
        found: dict = {}
        first = 0
        for r in self.runs:
            lo, hi = max(start, first), min(stop, first + r.length)
            if lo < hi:
                p = len(r.pattern)
                whole, a = divmod(hi - lo, p)
                offset = (lo - first) % p
                for j, layer in enumerate(r.pattern):
                    # Positions of pattern slot j in [lo, hi): `whole` full turns plus one if it falls in the rest.
                    extra = 1 if (j - offset) % p < a else 0
                    if whole + extra:
                        found[layer] = found.get(layer, 0) + whole + extra
            first += r.length
        return found

    def distinct(self) -> list:
        """The distinct layers, in order of first appearance."""
        return list(dict.fromkeys(layer for r in self.runs for layer in r.pattern))


def _merged(runs: list[Run]) -> list[Run]:
    """Neighbouring runs of one identical layer joined, so a uniform stretch is one run."""
    out: list[Run] = []
    for r in runs:
        if out and len(r.pattern) == 1 and len(out[-1].pattern) == 1 and out[-1].pattern == r.pattern:
            out[-1] = Run(r.pattern, out[-1].repeats + r.repeats)
        else:
            out.append(r)
    return out


def period_of(*periods: int) -> int:
    """The period of several patterns laid over each other: their least common multiple."""
    return math.lcm(*(p for p in periods if p)) if any(periods) else 1
