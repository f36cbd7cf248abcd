"""Sizes: the numbers the core computes with, and the hooks that let an accelerator stand in for them.

The core computes with plain Python ints (counts are exact) and floats (times). An accelerator above the
core (`opgraph.trace`, which makes sweeps fast) may hand it numbers of its own type instead. Such a type
implements the arithmetic operators, and these hooks where plain Python would branch or leave arithmetic:

- `__opgraph_min__(a, b)`, `__opgraph_max__(a, b)`: min and max without a branch (which operand is the
  smaller must not split a sweep into regimes);
- `__opgraph_call__(fn, args)`: a call of a `size_function`;
- `__opgraph_value__(x)`: the plain number it stands for at the point traced (for text only: `shown`).

The core never imports the accelerator: it only looks these hooks up on the types it is given.
"""

from __future__ import annotations

import functools
import numbers


def _hook(name: str, args: tuple):
    for a in args:
        hook = getattr(type(a), name, None)
        if hook is not None:
            return hook
    return None


def is_int(x) -> bool:
    """An integer (bool excluded), or a stand-in that says it is one (a traced int)."""
    return type(x) is int or (isinstance(x, numbers.Integral) and not isinstance(x, bool))  # the common case first


def _arrays(args: tuple) -> bool:
    return any(hasattr(x, "__array_ufunc__") and hasattr(x, "shape") for x in args)


_PLAIN = (int, float)


def _pairwise(hook_name: str, ufunc: str, builtin, doc: str):
    def pick(a, b):
        if type(a) in _PLAIN and type(b) in _PLAIN:  # the common case, first: no hook, no array
            return builtin(a, b)
        hook = _hook(hook_name, (a, b))
        if hook:
            return hook(a, b)
        if _arrays((a, b)):
            import numpy  # only when handed arrays (the time model's fit)
            return getattr(numpy, ufunc)(a, b)
        return builtin(a, b)
    pick.__doc__ = doc
    return pick


minimum = _pairwise("__opgraph_min__", "minimum", min,
                    "min(a, b), without a branch on a traced number; elementwise on numpy arrays.")
maximum = _pairwise("__opgraph_max__", "maximum", max,
                    "max(a, b), without a branch on a traced number; elementwise on numpy arrays.")


def shown(x):
    """The plain number a size stands for, to decide the wording of a note (never a number that is computed
    with): text branching on it splits no sweep into regimes."""
    hook = _hook("__opgraph_value__", (x,))
    return hook(x) if hook else x


def size_function(fn):
    """Mark `fn` as a pure function of sizes: given the same ints it returns the same number.

    Use it for a formula that needs more than arithmetic operators (math.exp, a loop, a table lookup):
    plain calls run `fn` as it is, and a sweep evaluates it exactly, once per distinct argument value,
    instead of tracing through it.

    >>> @size_function
    ... def bucket(tokens):
    ...     return {1: 8, 2: 16}.get(tokens, 64)
    >>> bucket(2)
    16
    """
    @functools.wraps(fn)
    def call(*args):
        hook = _hook("__opgraph_call__", args)
        return hook(fn, args) if hook else fn(*args)
    call.__opgraph_size_function__ = fn
    return call
