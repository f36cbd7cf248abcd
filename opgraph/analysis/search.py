"""The smallest integer at which a monotone predicate holds: doubling, then bisection."""

from __future__ import annotations

from collections.abc import Callable


def first_true(holds: Callable[[int], bool], start: int, limit: int) -> int | None:
    """The smallest n in [start, limit] with holds(n), assuming holds stays true once it is (monotone);
    None if it does not hold at limit. Probes about 2*log2(n) values."""
    hi = start
    while not holds(hi):
        if hi >= limit:
            return None
        hi = min(hi * 2, limit)
    lo = max(start - 1, hi // 2)  # holds is false at lo (or lo is below start)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if holds(mid) else (mid, hi)
    return hi
