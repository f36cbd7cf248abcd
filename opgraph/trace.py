"""The accelerator: trace a computation on symbolic sizes once per regime, then replay it for many points.

A `Sym` stands in for an integer size (a batch, a length) while the ordinary build-fuse-cost pipeline
runs. It carries the value at the point being traced; arithmetic on it is recorded as a line of a
program, and a comparison (anything that decides a branch) returns the traced answer and records a
*guard*, as TorchDynamo does. The program reproduces the pipeline exactly for every point that satisfies
its guards: that set of points is a *regime*. A point that breaks a guard is traced again as a new regime.

A recorded program replays two ways:
- one point at a time, as generated Python code that checks each guard as soon as its operands exist
  (so a point outside the regime never computes anything expensive);
- many points at once, line by line over numpy arrays. Integer lines run in int64 while interval
  arithmetic on the inputs' actual ranges proves they cannot overflow, and as exact Python ints otherwise,
  so counts stay exact.

The contract, for code that a sweep traces (a block builder, a cost formula):
- arithmetic operators, comparisons, `if`, min/max through `opgraph.core.sizes`, `math.ceil`/`math.floor`,
  `isinstance(x, int)` all trace exactly;
- whatever would silently fix a size at its traced value raises `TraceError` saying what to write instead:
  hashing it (a dict or set lookup), converting it (`int()`, `float()`, `math.exp`, `range()`, indexing),
  `round()`, or a power with a size as the exponent. Such formulas go in a function decorated with
  `opgraph.size_function`, which a sweep evaluates exactly once per distinct value;
- formatting a size as text shows its value at the traced point (text never feeds the numbers).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable

import numpy as np

from opgraph.errors import OpgraphError

CHUNK = 1 << 15  # points replayed at once: small enough that a line's arrays stay in cache
MAX_REGIMES = 512  # more means a model that branches on nearly every value: it cannot be swept by replay
_INT64 = 2**63 - 1
_FLOAT_EXACT = 2**53


class TraceError(OpgraphError):
    """Traced code did something a replay could not reproduce; the message says what to write instead."""


# -- the recorded program ------------------------------------------------------------------------------
_BINARY = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "//": operator.floordiv, "%": operator.mod, "**": operator.pow}
_COMPARE = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq,
            "!=": operator.ne}
_UNARY = {"neg": operator.neg, "abs": abs, "ceil": math.ceil, "floor": math.floor, "trunc": math.trunc}
_PAIR = {"min": min, "max": max}


class Tape:
    """The lines and guards recorded while tracing one point. A line is (name, op, args); an arg is a line
    or variable name (str) or a constant. A guard is (op, args, expected) and records how many lines
    existed when it was made, so replay can check it as early as possible."""

    def __init__(self, variables: tuple[str, ...]):
        self.variables = variables
        self.lines: list[tuple[str, str, tuple]] = []
        self.guards: list[tuple[int, str, tuple, bool]] = []
        self.functions: list[Callable] = []
        self._lines_by_key: dict[tuple, Sym] = {}  # the same computation is recorded once
        self._guard_keys: set[tuple] = set()

    def var(self, name: str, value: int) -> "Sym":
        return Sym(value, name, self)

    def emit(self, op: str, args: tuple, value) -> "Sym":
        refs = tuple(_ref(a) for a in args)
        key = (op, tuple((type(a), a) for a in refs))
        sym = self._lines_by_key.get(key)
        if sym is None:
            sym = Sym(value, f"t{len(self.lines)}", self)
            self.lines.append((sym.name, op, refs))
            self._lines_by_key[key] = sym
        return sym

    def guard(self, op: str, args: tuple, result: bool) -> bool:
        refs = tuple(_ref(a) for a in args)
        key = (op, tuple((type(a), a) for a in refs), bool(result))
        if key not in self._guard_keys:
            self._guard_keys.add(key)
            self.guards.append((len(self.lines), op, refs, bool(result)))
        return result

    def call(self, fn: Callable, args: tuple):
        if fn not in self.functions:
            self.functions.append(fn)
        value = fn(*(_value(a) for a in args))
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise TraceError(f"size function {fn.__name__!r} returned {value!r}; it must return an int or a float")
        return self.emit("call", (self.functions.index(fn), *args), value)


class _Ref(str):
    """A reference to a line or variable, as opposed to a string constant (there are none)."""


def _ref(x):
    return _Ref(x.name) if isinstance(x, Sym) else x


def _value(x):
    return x.v if type(x) is Sym else x


# -- the traced number ---------------------------------------------------------------------------------
def _binary(op: str, swap: bool = False):
    fn = _BINARY[op]

    def method(self: "Sym", other):
        if not isinstance(other, (Sym, int, float)):
            return NotImplemented
        a, b = (other, self) if swap else (self, other)
        if op == "**" and type(b) is Sym:
            raise TraceError("a traced size is used as an exponent (x ** batch); a replay would have to compute "
                             "powers of unbounded size. Put the formula in a function decorated with "
                             "@opgraph.size_function, which a sweep evaluates once per distinct value")
        return self.tape.emit(op, (a, b), fn(_value(a), _value(b)))
    return method


def _compare(op: str):
    fn = _COMPARE[op]

    def method(self: "Sym", other):
        if not isinstance(other, (Sym, int, float)):
            return NotImplemented
        return self.tape.guard(op, (self, other), fn(self.v, _value(other)))
    return method


def _refuse(what: str, instead: str):
    def method(self: "Sym", *args):
        raise TraceError(f"a traced size (it depends on {' and '.join(self.tape.variables)}) is {what}; a sweep "
                         f"replays the traced code for other values, and this would silently keep the traced one. "
                         f"{instead}")
    return method


_WRAP = "put that computation in a function decorated with @opgraph.size_function (evaluated exactly for each value)"


def _scaled(x) -> tuple[int, "Sym"] | None:
    """(k, base) with x == k * base exactly, for a traced int."""
    if type(x) is not Sym or type(x.v) is not int:
        return None
    return (x.scale, x.base) if x.base is not None else (1, x)


def _times(k: int, base: "Sym"):
    """k * base, recorded lazily: integer scalings fold together (2 * (batch * 4096) is one line, batch * 8192)
    and are written out only when another line needs the value."""
    if k == 0:
        return 0
    if k == 1:
        return base
    return Sym(k * base.v, None, base.tape, k, base)


class Sym:
    """A traced number (see the module docstring). `isinstance(x, int)` is true of a traced int."""

    __slots__ = ("v", "_name", "tape", "scale", "base")

    def __init__(self, value, name: str | None, tape: Tape, scale: int = 1, base: "Sym | None" = None):
        self.v, self._name, self.tape = value, name, tape
        self.scale, self.base = scale, base  # when base is set: value == scale * base, not yet a line

    @property
    def name(self) -> str:
        if self._name is None:
            self._name = self.tape.emit("*", (self.base, self.scale), self.v).name
        return self._name

    @property
    def __class__(self):  # isinstance(x, int) / numbers.Integral hold, as for the value it stands for
        return type(self.v)

    def _linear(self, other, sign: int):
        """self + sign*other folded into one scaling when both are scalings of the same traced int."""
        a, b = _scaled(self), _scaled(other)
        if a and b and a[1] is b[1]:
            return _times(a[0] + sign * b[0], a[1])
        return None

    def __add__(self, other):
        if type(other) is type(self.v) and other == 0:
            return self
        folded = self._linear(other, 1)
        return _binary("+")(self, other) if folded is None else folded

    def __radd__(self, other):  # sum() starts from 0
        return self if type(other) is type(self.v) and other == 0 else _binary("+", True)(self, other)

    def __sub__(self, other):
        folded = self._linear(other, -1)
        return _binary("-")(self, other) if folded is None else folded

    def __mul__(self, other):
        a = _scaled(self)
        if a and type(other) is int:
            return _times(a[0] * other, a[1])
        return _binary("*")(self, other)

    __rmul__ = __mul__

    def __floordiv__(self, other):
        a = _scaled(self)
        if a and type(other) is int and other > 0 and a[0] % other == 0:
            return _times(a[0] // other, a[1])
        return _binary("//")(self, other)

    __rsub__ = _binary("-", True)
    __truediv__, __rtruediv__ = _binary("/"), _binary("/", True)
    __rfloordiv__ = _binary("//", True)
    __mod__, __rmod__ = _binary("%"), _binary("%", True)
    __pow__, __rpow__ = _binary("**"), _binary("**", True)
    __lt__, __le__, __gt__, __ge__ = _compare("<"), _compare("<="), _compare(">"), _compare(">=")
    __eq__, __ne__ = _compare("=="), _compare("!=")

    def __divmod__(self, other):
        return self // other, self % other

    def __rdivmod__(self, other):
        return other // self, other % self

    def __neg__(self):
        a = _scaled(self)
        return _times(-a[0], a[1]) if a else self.tape.emit("neg", (self,), -self.v)

    def __pos__(self):
        return self

    def __abs__(self):
        return self.tape.emit("abs", (self,), abs(self.v))

    def __ceil__(self):
        return self.tape.emit("ceil", (self,), math.ceil(self.v))

    def __floor__(self):
        return self.tape.emit("floor", (self,), math.floor(self.v))

    def __trunc__(self):
        return self.tape.emit("trunc", (self,), math.trunc(self.v))

    def __bool__(self) -> bool:
        return self.tape.guard("!=", (self, 0), self.v != 0)

    # Hooks of opgraph.core.sizes: min, max and size functions without a branch.
    @staticmethod
    def __opgraph_min__(a, b):
        tape = a.tape if type(a) is Sym else b.tape
        return tape.emit("min", (a, b), min(_value(a), _value(b)))

    @staticmethod
    def __opgraph_max__(a, b):
        tape = a.tape if type(a) is Sym else b.tape
        return tape.emit("max", (a, b), max(_value(a), _value(b)))

    @staticmethod
    def __opgraph_call__(fn, args):
        tape = next(a.tape for a in args if type(a) is Sym)
        return tape.call(getattr(fn, "__opgraph_size_function__", fn), args)

    __hash__ = _refuse("hashed (used as a dict key or set member, e.g. {1: a, 2: b}.get(batch))",
                       f"Compare it instead (if batch == 1: ...), or {_WRAP}.")
    __int__ = _refuse("converted with int()", f"Use // for integer division, or {_WRAP}.")
    __index__ = _refuse("used as an index or a count (range(batch), a[batch], [0] * batch)", f"Instead, {_WRAP}.")
    __float__ = _refuse("converted to float (float(), math.exp, math.log, math.sqrt, ...)",
                        f"Use arithmetic operators (x ** 0.5, x / y), or {_WRAP}.")
    __complex__ = __float__
    __round__ = _refuse("rounded with round()", f"Use //, math.floor or math.ceil, or {_WRAP}.")

    def __format__(self, spec: str) -> str:
        return format(self.v, spec)

    def __opgraph_value__(self):
        return self.v

    def __repr__(self) -> str:
        return repr(self.v)

    __str__ = __repr__


# -- one point at a time: generated Python ------------------------------------------------------------
def _code(x, consts: list) -> str:
    if isinstance(x, _Ref):
        return str(x)
    if type(x) is int:
        return repr(x)
    consts.append(x)  # floats by reference: inf and nan have no literal
    return f"_k{len(consts) - 1}"


def _expr(op: str, args: tuple, consts: list) -> str:
    a = [_code(x, consts) for x in args]
    if op in _BINARY or op in _COMPARE:
        return f"({a[0]} {op} {a[1]})"
    if op == "call":
        return f"_f{args[0]}({', '.join(a[1:])})"
    return f"_{op}({', '.join(a)})"


def _needed(tape: Tape, outputs: list) -> set[str]:
    """Names of the lines the outputs and guards depend on (dead-code elimination)."""
    needed = {str(o) for o in outputs if isinstance(o, _Ref)}
    for _, _, args, _ in tape.guards:
        needed.update(str(a) for a in args if isinstance(a, _Ref))
    for name, _, args in reversed(tape.lines):
        if name in needed:
            needed.update(str(a) for a in args if isinstance(a, _Ref))
    return needed


class Regime:
    """One traced program: its guards, its lines, and the output labels it produces."""

    def __init__(self, tape: Tape, labels: tuple[str, ...], outputs: list):
        self.variables, self.labels = tape.variables, labels
        self.outputs = [_ref(o) for o in outputs]
        needed = _needed(tape, self.outputs)
        self.lines = [line for line in tape.lines if line[0] in needed]
        self.functions = tape.functions
        # Guards sorted by where they can first be checked: after the last line they read.
        position = {name: i for i, (name, _, _) in enumerate(self.lines)}
        self.guards = []
        for _, op, args, expected in tape.guards:
            at = max((position[str(a)] + 1 for a in args if isinstance(a, _Ref) and str(a) in position), default=0)
            self.guards.append((at, op, args, expected))
        self.guards.sort(key=lambda g: g[0])
        self.point = self._compile_point()

    def _compile_point(self) -> Callable:
        consts: list = []
        body, g = [], 0
        for i in range(len(self.lines) + 1):
            while g < len(self.guards) and self.guards[g][0] == i:
                _, op, args, expected = self.guards[g]
                body.append(f"    if {_expr(op, args, consts)} is not {expected}: return None")
                g += 1
            if i < len(self.lines):
                name, op, args = self.lines[i]
                body.append(f"    {name} = {_expr(op, args, consts)}")
        outs = ", ".join(_code(o, consts) for o in self.outputs)
        # a one-tuple needs its comma; a function with no outputs (a layer with no attention) returns ()
        returned = f"({outs},)" if outs else "()"
        src = f"def _point({', '.join(self.variables)}):\n" + "\n".join(body) + f"\n    return {returned}\n"
        scope = {f"_{k}": f for k, f in {**_UNARY, **_PAIR}.items()}
        scope.update({f"_f{i}": f for i, f in enumerate(self.functions)})
        scope.update({f"_k{i}": c for i, c in enumerate(consts)})
        exec(compile(src, "<opgraph.trace>", "exec"), scope)  # noqa: S102 - our own generated code
        return scope["_point"]

    def many(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, list]:
        """(mask of the points in this regime, output arrays for those points). Points go through in chunks
        that stay in the CPU's cache."""
        n = len(next(iter(inputs.values())))
        if n <= CHUNK:
            return _Vector(self, inputs).run()
        mask, outs, filled = np.zeros(n, dtype=bool), [None] * len(self.outputs), 0
        for lo in range(0, n, CHUNK):
            part_mask, parts = _Vector(self, {k: v[lo:lo + CHUNK] for k, v in inputs.items()}).run()
            mask[lo:lo + CHUNK] = part_mask
            k = int(part_mask.sum())
            for i, part in enumerate(parts):
                if outs[i] is None or (outs[i].dtype != part.dtype and outs[i].dtype != object):
                    grown = np.empty(n, dtype=part.dtype if outs[i] is None else np.result_type(outs[i], part))
                    if outs[i] is not None:
                        grown[:filled] = outs[i][:filled]
                    outs[i] = grown
                outs[i][filled:filled + k] = part
            filled += k
        return mask, [o[:filled] for o in outs]


# -- many points at once: numpy, exact ----------------------------------------------------------------
def _interval(op: str, a, b=None):
    """The exact range of an integer op's result over operand ranges a (and b), or None when unbounded."""
    if a is None or (b is None and op in _BINARY):
        return None
    if op in ("neg",):
        return (-a[1], -a[0])
    if op == "abs":
        return (0 if a[0] <= 0 <= a[1] else min(abs(a[0]), abs(a[1])), max(abs(a[0]), abs(a[1])))
    if op in ("ceil", "floor", "trunc"):
        return a
    if op in _PAIR:
        return (_PAIR[op](a[0], b[0]), _PAIR[op](a[1], b[1]))
    if op in ("//", "%") and b[0] <= 0 <= b[1]:
        return None
    if op == "%":
        m = max(abs(b[0]), abs(b[1]))
        return (-m, m)
    if op == "**":
        if a[0] < 0 or b[0] < 0 or (b[1] > 64 and a[1] > 1):
            return None
    corners = [_BINARY[op](x, y) for x in a for y in b]
    return (min(corners), max(corners))


def _fits(r) -> bool:
    return r is not None and -_INT64 <= r[0] and r[1] <= _INT64


class _Vector:
    """Replays a regime over arrays. Values are numpy arrays (int64, float64, bool, or object holding exact
    Python ints) or scalars; `rng` holds the proven range of each integer value."""

    def __init__(self, regime: Regime, inputs: dict[str, np.ndarray]):
        self.regime = regime
        self.n = len(next(iter(inputs.values())))
        self.index = np.arange(self.n)  # the points still in the regime
        self.val: dict[str, object] = {}
        self.rng: dict[str, tuple | None] = {}
        for name, arr in inputs.items():
            self.val[name] = arr
            self.rng[name] = (int(arr.min()), int(arr.max())) if self.n else (0, 0)

    def arg(self, x):
        if isinstance(x, _Ref):
            return self.val[x], self.rng.get(x)
        return x, ((x, x) if type(x) is int else None)

    def narrow(self, keep: np.ndarray) -> None:
        self.index = self.index[keep]
        for k, v in self.val.items():
            if isinstance(v, np.ndarray):
                self.val[k] = v[keep]

    def compute(self, op: str, args: tuple):
        if op == "call":
            return self.call(self.regime.functions[args[0]], [self.arg(a)[0] for a in args[1:]])
        vals, rngs = zip(*(self.arg(a) for a in args))
        is_int = all(_is_int_value(v) for v in vals)
        if op == "/":  # int / int is exact in float64 only while both convert exactly (|x| <= 2**53)
            r = None
            if is_int and not all(x is not None and -_FLOAT_EXACT <= x[0] and x[1] <= _FLOAT_EXACT for x in rngs):
                vals = tuple(_exact(v) for v in vals)
        else:
            r = _interval(op, *rngs) if is_int else None
            if is_int and not _fits(r):
                vals = tuple(_exact(v) for v in vals)  # beyond int64: exact Python ints
        if op in _BINARY:
            out = _BINARY[op](*vals)
        elif op in _PAIR:
            out = (np.minimum if op == "min" else np.maximum)(*vals)
        elif op == "abs" or op == "neg":
            out = _UNARY[op](vals[0])
        else:  # ceil, floor, trunc
            out, r = _round_to_int(op, vals[0])
        return _tidy(out, r)

    def call(self, fn: Callable, args: list):
        """A size function, evaluated exactly once per distinct combination of its arguments."""
        if not any(isinstance(a, np.ndarray) for a in args):
            out = fn(*args)
            return out, ((out, out) if type(out) is int else None)
        n = len(self.index)
        if all(isinstance(a, np.ndarray) and a.dtype.kind == "i" or type(a) is int and abs(a) <= _INT64 for a in args):
            # the distinct combinations of the arguments that vary (arrays); the constants put back in each
            varying = [i for i, a in enumerate(args) if isinstance(a, np.ndarray)]
            cols = np.stack([np.broadcast_to(args[i], (n,)) for i in varying])
            if len(varying) == 1:
                uniq, inverse = np.unique(cols[0], return_inverse=True)
                uniq = uniq[:, None]
            else:
                uniq, inverse = np.unique(cols, axis=1, return_inverse=True)
                uniq = uniq.T
            combos = []
            for values in uniq.tolist():
                combo = list(args)
                for i, v in zip(varying, values):
                    combo[i] = v
                combos.append(tuple(combo))
        else:  # floats or huge ints: distinct combinations by Python equality
            cols = [a.tolist() if isinstance(a, np.ndarray) else [a] * n for a in args]
            seen: dict[tuple, int] = {}
            inverse = np.array([seen.setdefault(k, len(seen)) for k in zip(*cols)], dtype=np.int64)
            combos = list(seen)
        results = [fn(*combo) for combo in combos]
        if all(type(x) is int for x in results):
            r = (min(results), max(results)) if results else (0, 0)
            table = np.array(results, dtype=np.int64 if _fits(r) else object)
        else:
            r, table = None, np.array(results, dtype=np.float64)
        return table[np.asarray(inverse).reshape(-1)], r

    def run(self) -> tuple[np.ndarray, list]:
        reg = self.regime
        g = 0
        with np.errstate(all="ignore"):
            for i in range(len(reg.lines) + 1):
                while g < len(reg.guards) and reg.guards[g][0] == i:
                    _, op, args, expected = reg.guards[g]
                    held = _COMPARE[op](*(self.arg(a)[0] for a in args))
                    held = np.asarray(held, dtype=bool) if expected else ~np.asarray(held, dtype=bool)
                    if held.ndim == 0:
                        if not held:
                            self.narrow(np.zeros(len(self.index), dtype=bool))
                    elif not held.all():
                        self.narrow(held)
                    g += 1
                if i < len(reg.lines):
                    name, op, args = reg.lines[i]
                    self.val[name], self.rng[name] = self.compute(op, args)
        mask = np.zeros(self.n, dtype=bool)
        mask[self.index] = True
        outs = [_column(self.arg(o)[0], len(self.index)) for o in reg.outputs]
        return mask, outs


def _is_int_value(v) -> bool:
    if isinstance(v, np.ndarray):
        return v.dtype.kind == "i" or (v.dtype == object and v.size > 0 and type(v.flat[0]) is int)
    return type(v) is int


def _exact(v):
    return v.astype(object) if isinstance(v, np.ndarray) and v.dtype.kind == "i" else v


def _round_to_int(op: str, v):
    fn = {"ceil": np.ceil, "floor": np.floor, "trunc": np.trunc}[op]
    if _is_int_value(v):
        return v, None
    if not isinstance(v, np.ndarray):
        out = _UNARY[op](v)
        return out, (out, out)
    f = np.asarray(v, dtype=np.float64)
    if not f.size:
        return f.astype(np.int64), (0, 0)
    lo, hi = float(np.min(f)), float(np.max(f))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise TraceError(f"{op} of an infinite or undefined value")
    r = (_UNARY[op](lo), _UNARY[op](hi))
    if _fits(r):
        return fn(f).astype(np.int64), r
    return np.array([_UNARY[op](x) for x in f.tolist()], dtype=object), r


def _tidy(out, r):
    """Keep arrays in the fastest exact form: int64 when the range fits, float64 for floats."""
    if isinstance(out, np.ndarray) and out.dtype == object and out.size:
        if type(out.flat[0]) is float:
            return out.astype(np.float64), None
        if _fits(r):
            return out.astype(np.int64), r
    return out, r


def _column(v, n: int) -> np.ndarray:
    if isinstance(v, np.ndarray):
        return v
    return np.full(n, v, dtype=object if type(v) is int and not -_INT64 <= v <= _INT64 else None)


# -- the traced function ------------------------------------------------------------------------------
class Traced:
    """A function of integer sizes, traced once per regime and replayed.

    `fn(*sizes)` returns a dict of numbers by label, computed from the sizes it is given (which are Syms
    while tracing). Calling the Traced gives, for one point, the same dict as calling fn with plain ints;
    `many(**arrays)` gives it for every point at once, as arrays, with 0 for a label that a point's regime
    does not produce (an op that does not exist at that size).

    `plain_first`: points evaluated by calling fn directly before the first trace. A trace costs about ten plain
    evaluations, so a caller that may meet only a few points (a search's first sizes, one shape of work met once)
    pays for a trace only once a third point misses."""

    def __init__(self, fn: Callable[..., dict], variables: tuple[str, ...], plain_first: int = 0):
        self.fn, self.variables = fn, variables
        self.regimes: list[Regime] = []
        self._plain_left = plain_first

    def trace(self, values: tuple) -> Regime:
        if len(self.regimes) >= MAX_REGIMES:
            raise TraceError(f"the traced computation split into more than {MAX_REGIMES} regimes (branches that "
                             f"depend on {', '.join(self.variables)}); evaluate fewer points, or put the branching "
                             f"formula in a function decorated with @opgraph.size_function")
        tape = Tape(self.variables)
        result = self.fn(*(tape.var(n, v) for n, v in zip(self.variables, values)))
        regime = Regime(tape, tuple(result), list(result.values()))
        if regime.point(*values) is None:  # pragma: no cover - a tracer bug, not a user error
            raise AssertionError("a traced function must satisfy its own guards at the traced point")
        self.regimes.append(regime)
        return regime

    def __call__(self, *values: int) -> dict:
        for i, regime in enumerate(self.regimes):
            out = regime.point(*values)
            if out is not None:
                if i:  # keep the regime just used first: searches and sweeps walk through regimes in order
                    self.regimes.insert(0, self.regimes.pop(i))
                return dict(zip(regime.labels, out))
        if self._plain_left > 0:
            self._plain_left -= 1
            return self.fn(*values)
        regime = self.trace(values)
        self.regimes.insert(0, self.regimes.pop())
        return dict(zip(regime.labels, regime.point(*values)))

    def many(self, **arrays) -> dict[str, np.ndarray]:
        """Every point at once: arrays of equal length per variable, in any order of points."""
        n, found = self.by_regime(**arrays)
        if len(found) == 1 and len(found[0][1]) == n:  # one regime took every point, in order
            return dict(zip(found[0][0].labels, found[0][2]))
        labels = list(dict.fromkeys(label for regime, _, _ in found for label in regime.labels))
        result = {}
        for label in labels:
            parts = [(where, outs[regime.labels.index(label)]) for regime, where, outs in found
                     if label in regime.labels]
            dtype = np.result_type(*(p.dtype for _, p in parts))
            column = np.zeros(n, dtype=dtype)
            for where, part in parts:
                column[where] = part
            result[label] = column
        return result

    def by_regime(self, traces: bool = True, **arrays) -> tuple[int, list[tuple[Regime, np.ndarray, list]]]:
        """Every point at once, as each regime gives them: (the number of points, [(regime, the indices of its
        points, its output arrays for them, in its labels' order)]). Without `traces`, the points no regime traced
        so far takes are left out."""
        inputs = {v: np.asarray(arrays[v], dtype=np.int64) for v in self.variables}
        n = len(inputs[self.variables[0]])
        remaining = np.arange(n)
        found: list[tuple[Regime, np.ndarray, list]] = []
        pending = list(self.regimes)
        while remaining.size and (pending or traces):
            regime = pending.pop(0) if pending else self.trace(tuple(int(inputs[v][remaining[0]])
                                                                   for v in self.variables))
            mask, outs = regime.many({v: a[remaining] for v, a in inputs.items()})
            if mask.any():
                found.append((regime, remaining[mask], outs))
                remaining = remaining[~mask]
        return n, found


class Tabled:
    """A traced function of one size, asked for point by point, kept as a table. A search meets thousands of
    sizes close together (a serving plan's token counts: the decodes, beside whole prompt chunks, at each
    concurrency), each of which a call replays alone (some 40 µs for a model's token work); `many` replays a
    block of them for a fraction of that a size. So the sizes of a block are called one by one, and kept, until
    `misses` of them were; then the block is replayed at once, in the regimes traced so far (a size in none is
    called when asked for: a block traces nothing its caller does not meet). A caller that meets a few scattered
    sizes pays for no block.

    A point reads as the call gives it: its regime's labels, in their order. It is kept and shared by every later
    call of that size: read it, do not change it.
    """

    def __init__(self, traced: Traced, block: int = 256, misses: int = 8):
        self.traced, self.block, self.misses = traced, block, misses
        self._points: dict[int, dict] = {}  # sizes called one by one, in blocks not yet replayed
        self._asked: dict[int, int] = {}  # block -> its sizes called so far
        self._rows: dict[int, list[dict | None]] = {}  # block -> each of its sizes' point (None: in no regime yet)

    def __call__(self, size: int) -> dict:
        b, i = divmod(size, self.block)
        rows = self._rows.get(b)
        if rows is not None and rows[i] is not None:
            return rows[i]
        point = self._points.get(size)
        if point is None:
            point = self._points[size] = self.traced(size)
            self._asked[b] = self._asked.get(b, 0) + 1
            if self._asked[b] == self.misses:
                self._fill(b)
        return point

    def _fill(self, b: int) -> None:
        start = max(b * self.block, 1)  # sizes are positive
        sizes = np.arange(start, (b + 1) * self.block)
        try:
            found = self.traced.by_regime(False, **{self.traced.variables[0]: sizes})[1]
        except OpgraphError:  # a size of the block a replay cannot take (a size function refuses it): point by point
            return
        rows: list[dict | None] = [None] * len(sizes)
        for regime, where, outs in found:
            for i, values in zip(where.tolist(), zip(*(o.tolist() for o in outs))):
                rows[i] = dict(zip(regime.labels, values))
        self._rows[b] = [None] * (start - b * self.block) + rows
        for size in range(start, (b + 1) * self.block):
            if rows[size - start] is not None:
                self._points.pop(size, None)
