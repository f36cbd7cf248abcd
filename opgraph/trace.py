"""Trace a computation on symbolic integers once, then re-run it as compiled straight-line code.

A `Sym` is a number that remembers how it was computed: it carries its value at the point being traced
and the name of a variable in generated code. Arithmetic on Syms appends a line to the `Tape`;
comparisons (and anything else that decides a branch) return the traced value's answer and record a
guard, as TorchDynamo does. The compiled function reproduces the traced computation exactly for any
inputs that satisfy every guard, and reports None otherwise, so the caller traces again at that point:
the structure of the computation (which branch, which op is the larger) defines a regime, and each
regime is traced once.

This is what lets a sweep cost thousands of batch sizes or lengths without rebuilding the graph per
point: the graph is built, fused and costed once per regime by the ordinary code, symbolically.
"""

from __future__ import annotations

import math
import operator
import re

_NAME = re.compile(r"\b(t\d+)\b")


class Tape:
    """The lines and guards recorded while tracing; variables are the inputs' names."""

    def __init__(self, variables: tuple[str, ...]):
        self.variables = variables
        self.lines: list[tuple[str, str]] = []  # (name, python expression)
        self.guards: list[str] = []

    def var(self, name: str, value: int) -> "Sym":
        return Sym(value, name, self)

    def emit(self, expr: str, value) -> "Sym":
        name = f"t{len(self.lines)}"
        self.lines.append((name, expr))
        return Sym(value, name, self)

    def compile(self, outputs: list):
        """A function of the variables returning the outputs' values, or None where a guard fails."""
        needed: set[str] = set()
        roots = [_code(o) for o in outputs] + self.guards
        for text in roots:
            needed.update(_NAME.findall(text))
        body = []
        for name, expr in reversed(self.lines):
            if name in needed:
                needed.update(_NAME.findall(expr))
                body.append(f"    {name} = {expr}")
        body.reverse()
        guard = " and ".join(self.guards) or "True"
        src = (f"def _traced({', '.join(self.variables)}):\n" + "\n".join(body) +
               f"\n    if not ({guard}):\n        return None\n    return ({', '.join(_code(o) for o in outputs)},)\n")
        scope = {"_ceil": math.ceil, "_floor": math.floor, "_exp": math.exp, "_log1p": math.log1p}
        exec(compile(src, "<opgraph.trace>", "exec"), scope)  # noqa: S102 - our own generated code
        return scope["_traced"]


def _code(x) -> str:
    return x.name if isinstance(x, Sym) else repr(x)


def _value(x):
    return x.v if isinstance(x, Sym) else x


def _binary(symbol: str, fn, swap: bool = False):
    def method(self: "Sym", other):
        if not isinstance(other, (Sym, int, float)):
            return NotImplemented
        a, b = (other, self) if swap else (self, other)
        return self.tape.emit(f"({_code(a)} {symbol} {_code(b)})", fn(_value(a), _value(b)))
    return method


def _compare(symbol: str, fn):
    def method(self: "Sym", other):
        if not isinstance(other, (Sym, int, float)):
            return NotImplemented
        result = fn(self.v, _value(other))
        self.tape.guards.append(f"(({_code(self)} {symbol} {_code(other)}) is {result})")
        return result
    return method


class Sym:
    """A traced number (see the module docstring)."""

    __slots__ = ("v", "name", "tape")

    def __init__(self, value, name: str, tape: Tape):
        self.v, self.name, self.tape = value, name, tape

    def __add__(self, other):
        if isinstance(other, (int, float)) and other == 0:
            return self
        return _binary("+", operator.add)(self, other)

    def __radd__(self, other):
        if isinstance(other, (int, float)) and other == 0:  # sum() starts from 0
            return self
        return _binary("+", operator.add, swap=True)(self, other)

    def __mul__(self, other):
        if isinstance(other, int) and other == 1:
            return self
        return _binary("*", operator.mul)(self, other)

    def __rmul__(self, other):
        if isinstance(other, int) and other == 1:
            return self
        return _binary("*", operator.mul, swap=True)(self, other)

    __sub__ = _binary("-", operator.sub)
    __rsub__ = _binary("-", operator.sub, swap=True)
    __truediv__ = _binary("/", operator.truediv)
    __rtruediv__ = _binary("/", operator.truediv, swap=True)
    __floordiv__ = _binary("//", operator.floordiv)
    __rfloordiv__ = _binary("//", operator.floordiv, swap=True)
    __mod__ = _binary("%", operator.mod)
    __pow__ = _binary("**", operator.pow)
    __rpow__ = _binary("**", operator.pow, swap=True)
    __lt__ = _compare("<", operator.lt)
    __le__ = _compare("<=", operator.le)
    __gt__ = _compare(">", operator.gt)
    __ge__ = _compare(">=", operator.ge)
    __eq__ = _compare("==", operator.eq)
    __ne__ = _compare("!=", operator.ne)

    def __neg__(self):
        return self.tape.emit(f"(-{self.name})", -self.v)

    def __abs__(self):
        return self.tape.emit(f"abs({self.name})", abs(self.v))

    def __ceil__(self):
        return self.tape.emit(f"_ceil({self.name})", math.ceil(self.v))

    def __floor__(self):
        return self.tape.emit(f"_floor({self.name})", math.floor(self.v))

    def __bool__(self) -> bool:
        result = bool(self.v)
        self.tape.guards.append(f"(bool({self.name}) is {result})")
        return result

    def _freeze(self):
        """Leaving symbolic arithmetic (math.exp, int(), indexing) pins the value: correct, one regime per value."""
        self.tape.guards.append(f"({self.name} == {self.v!r})")
        return self.v

    def __float__(self) -> float:
        return float(self._freeze())

    def __int__(self) -> int:
        return int(self._freeze())

    def __index__(self) -> int:
        return operator.index(self._freeze())

    def __hash__(self) -> int:
        return hash(self.v)

    def __format__(self, spec: str) -> str:
        return format(self.v, spec)

    def __repr__(self) -> str:
        return repr(self.v)


def minimum(a, b):
    """min(a, b) that stays symbolic: no guard, so which operand is smaller does not split regimes."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        tape = a.tape if isinstance(a, Sym) else b.tape
        return tape.emit(f"min({_code(a)}, {_code(b)})", min(_value(a), _value(b)))
    return min(a, b)


def maximum(a, b):
    """max(a, b) that stays symbolic (see minimum)."""
    if isinstance(a, Sym) or isinstance(b, Sym):
        tape = a.tape if isinstance(a, Sym) else b.tape
        return tape.emit(f"max({_code(a)}, {_code(b)})", max(_value(a), _value(b)))
    return max(a, b)


def is_int(x) -> bool:
    """An integer, or a traced one (for validations that must also accept symbolic sizes)."""
    return (isinstance(x, int) and not isinstance(x, bool)) or (isinstance(x, Sym) and isinstance(x.v, int))


class Traced:
    """A function of integer inputs, re-traced per regime: `fn(*values)` must return a list of numbers
    computed from the Syms it is given. Calling the Traced gives the same numbers as calling fn with
    plain ints, without re-running fn except at the first point of each regime."""

    def __init__(self, fn, variables: tuple[str, ...]):
        self.fn, self.variables = fn, variables
        self.regimes: list = []

    def __call__(self, *values: int) -> tuple:
        for i, compiled in enumerate(self.regimes):
            out = compiled(*values)
            if out is not None:
                if i:  # keep the regime just used first: sweeps walk through regimes in order
                    self.regimes.insert(0, self.regimes.pop(i))
                return out
        tape = Tape(self.variables)
        outputs = list(self.fn(*(tape.var(n, v) for n, v in zip(self.variables, values))))
        compiled = tape.compile(outputs)
        self.regimes.insert(0, compiled)
        out = compiled(*values)
        assert out is not None, "a traced function must satisfy its own guards at the traced point"
        return out
