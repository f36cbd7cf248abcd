"""The one home of number validation: every number from the command line, a config.json, a hardware spec or a
plan file passes through these, so each is finite, in range and integral where it must be, and each message
names what was wrong (the option, or the file and field), gives the valid range, and says why when a value
is physically absurd.
"""

from __future__ import annotations

import math
import numbers

from opgraph.errors import OpgraphError

# Sizes beyond these are not models or workloads: refusing them keeps every computation bounded.
MAX_SIZE = 10**9  # a batch, a length, a dimension, a count of layers or experts
MAX_TOKENS = 10**12  # batch x length of one step


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _shown(value) -> str:
    """The value as a message can show it: a huge integer by its number of digits, a long text cut short."""
    if _is_int(value) and abs(value) >= 10**20:
        return f"a number of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def integer(name: str, value, *, minimum: int = 1, maximum: int = MAX_SIZE, why: str = "") -> int:
    """`value` if it is an int from minimum to maximum, else an OpgraphError naming `name`.

    >>> integer("--batch", 8)
    8
    >>> integer("num_hidden_layers", 10**30)
    Traceback (most recent call last):
    opgraph.errors.OpgraphError: num_hidden_layers must be an integer from 1 to 1,000,000,000, got a number of 31 digits
    """
    if not _is_int(value) or not minimum <= value <= maximum:
        raise OpgraphError(f"{name} must be an integer from {minimum:,} to {maximum:,}, got {_shown(value)}"
                           + (f" ({why})" if why else ""))
    return value


def number(name: str, value, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None) -> float:
    """`value` as a float if it is a finite real number in range (>= minimum, > above, <= maximum).

    >>> number("--overlap", 0.5, minimum=0, maximum=1)
    0.5
    >>> number("--launch-us", float("nan"), minimum=0)
    Traceback (most recent call last):
    opgraph.errors.OpgraphError: --launch-us must be a finite number >= 0, got nan
    """
    parts = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else "",
             f"<= {maximum:g}" if maximum is not None else ""]
    rule = " and ".join(p for p in parts if p)
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        try:
            v = float(value)
        except OverflowError:
            ok = False
        else:
            ok = (math.isfinite(v) and (minimum is None or v >= minimum) and (above is None or v > above)
                  and (maximum is None or v <= maximum))
    if not ok:
        raise OpgraphError(f"{name} must be a finite number{' ' + rule if rule else ''}, got {_shown(value)}")
    return float(value)


def choice(name: str, value, valid) -> str:
    """`value` if it is one of `valid`, else an error listing them (an empty or odd string included)."""
    valid = list(valid)
    if not isinstance(value, str) or value not in valid:
        shown = repr(value) if not isinstance(value, str) or len(value) <= 40 else repr(value[:37] + "...")
        raise OpgraphError(f"unknown {name} {shown}; valid: {', '.join(valid)}")
    return value


def divides(where: str, part: str, n: int, whole: str, total: int) -> None:
    """An OpgraphError unless `part` (n) divides `whole` (total) evenly: heads into groups, KV into query heads.

    >>> divides("op 'scan'", "groups", 3, "heads", 8)
    Traceback (most recent call last):
    opgraph.errors.OpgraphError: op 'scan': groups (3) must divide heads (8)
    """
    if total % n:
        raise OpgraphError(f"{where}: {part} ({n}) must divide {whole} ({total})")
