"""The tracer's contract: whatever a block can write either replays exactly or fails with a TraceError that
says what to write instead. Expected values come from calling the same function with plain ints."""

import collections
import math
import random

import numpy as np
import pytest

from opgraph import OpgraphError, size_function
from opgraph.core.sizes import maximum, minimum
from opgraph.trace import TraceError, Traced


def replay_equals_direct(fn, points):
    """Replay one point at a time and all at once; both must equal calling fn with plain ints."""
    traced = Traced(fn, ("a", "b"))
    direct = [fn(a, b) for a, b in points]
    assert [traced(a, b) for a, b in points] == direct
    fresh = Traced(fn, ("a", "b"))
    many = fresh.many(a=[p[0] for p in points], b=[p[1] for p in points])
    for i, want in enumerate(direct):
        for label, value in want.items():
            got = many[label][i]
            assert got == value and type(got.item() if hasattr(got, "item") else got) is type(value), (label, i)
    return traced, fresh


def test_branches_become_regimes_traced_once_each():
    calls = []

    def f(a, b):
        calls.append(a.v)
        return {"y": a * 2 + 1 if a > 3 else a - b}

    t = Traced(f, ("a", "b"))
    assert [t(v, 1)["y"] for v in (1, 2, 3, 4, 5, 100)] == [0, 1, 2, 9, 11, 201]
    assert calls == [1, 4] and len(t.regimes) == 2


def test_plain_first_evaluates_the_first_misses_directly_then_traces():
    calls = []

    def f(a, b):
        calls.append(type(a) is int)  # a plain int, or a traced size (a Sym stands in for an int but is not one)
        return {"y": a * 2 + 1 if a > 3 else a - b}

    t = Traced(f, ("a", "b"), plain_first=2)
    assert [t(v, 1)["y"] for v in (1, 4, 2, 3, 5, 100)] == [0, 9, 1, 2, 11, 201]
    # 1 and 4 directly; 2 traced (a > 3 false), 3 replayed; 5 traced (a > 3 true), 100 replayed
    assert calls == [True, True, False, False] and len(t.regimes) == 2


def test_random_branchy_arithmetic_replays_exactly():
    def f(a, b):
        x = a * 4096 * 3 // 2 + b * b
        y = x / (b + 7) * 0.75
        if a * b > 500:
            y = y + maximum(a, 17) ** 2
        z = -(-x // 128) * minimum(b, 300) - a % 7
        return {"x": x, "y": y, "z": z, "ceil": math.ceil(y), "const": 5, "share": y / (y + 1.0)}

    rng = random.Random(7)
    points = [(rng.randint(1, 2000), rng.randint(1, 5000)) for _ in range(500)]
    traced, fresh = replay_equals_direct(f, points)
    assert len(fresh.regimes) == 2


def test_counts_beyond_int64_stay_exact():
    def f(a, b):
        return {"big": a ** 3 * b * 10**12, "small": a + b}

    points = [(10**6, 10**5), (3, 4), (2**40, 2**20)]
    _, fresh = replay_equals_direct(f, points)
    assert fresh.many(a=[10**6], b=[10**5])["big"][0] == 10**18 * 10**5 * 10**12


def test_division_of_big_ints_rounds_as_python_does():
    def f(a, b):
        return {"q": (a * 10**15 + 1) / (b * 3 + 1)}  # numerator beyond 2**53: float64 would round twice

    replay_equals_direct(f, [(9_007, 5), (123_456, 789), (1, 1)])


def test_a_dict_lookup_on_a_size_fails_loudly():
    def f(a, b):
        return {"y": {1: 10, 2: 20}.get(a, 30) * b}

    with pytest.raises(TraceError, match="hashed.*size_function"):
        Traced(f, ("a", "b"))(1, 1)


def test_a_dict_lookup_inside_a_size_function_is_exact():
    @size_function
    def per_batch(a):
        return {1: 10, 2: 20}.get(a, 30)

    def f(a, b):
        return {"y": per_batch(a) * b}

    traced, fresh = replay_equals_direct(f, [(1, 3), (2, 3), (5, 3), (1, 7)])
    assert len(traced.regimes) == 1 and len(fresh.regimes) == 1


@pytest.mark.parametrize("leave", [math.exp, float, int, round, lambda x: range(x), lambda x: [0] * x,
                                   lambda x: 2 ** x, math.sqrt, math.log],
                         ids=["exp", "float", "int", "round", "range", "repeat", "pow", "sqrt", "log"])
def test_leaving_arithmetic_fails_loudly_with_what_to_write(leave):
    with pytest.raises(TraceError, match="size_function"):
        Traced(lambda a, b: {"y": leave(a)}, ("a", "b"))(3, 1)


def test_trace_errors_are_opgraph_errors():
    assert issubclass(TraceError, OpgraphError)  # the CLI prints them in one line, exit 2


def test_math_exp_in_a_size_function_is_exact_and_one_regime():
    @size_function
    def decay(a):
        return math.exp(-a / 100)

    traced, fresh = replay_equals_direct(lambda a, b: {"y": decay(a) * b}, [(1, 2), (50, 3), (400, 4)])
    assert len(fresh.regimes) == 1


def test_isinstance_int_holds_for_a_traced_int():
    def f(a, b):
        if not isinstance(a, int):
            raise TypeError("batch must be an int")
        return {"y": a * b if isinstance(b, int) else 0}

    replay_equals_direct(f, [(1, 1), (4, 9), (70, 3)])


def test_formatting_shows_the_traced_value():
    seen = []
    Traced(lambda a, b: seen.append(f"{a} {b:,}") or {"y": a}, ("a", "b"))(3, 4000)
    assert seen == ["3 4,000"]


def test_too_many_regimes_is_an_error_not_a_hang():
    with pytest.raises(TraceError, match="regimes"):
        Traced(lambda a, b: {"y": next(i for i in range(5000) if a == i)}, ("a", "b")).many(
            a=np.arange(1, 2000), b=np.arange(1, 2000))


def test_a_size_function_of_constants_and_sizes_is_called_once_per_distinct_combination():
    seen = []

    @size_function
    def mixed(e, a, k, b):
        seen.append((e, a, k, b))
        return e * 1000 + a * 10 + k - b

    points = [(a, b) for a in (1, 2, 2, 3) for b in (5, 5, 6)]
    replay_equals_direct(lambda a, b: {"one": mixed(64, a, 8, 7), "two": mixed(64, a, 8, b)}, points)
    seen.clear()
    Traced(lambda a, b: {"one": mixed(64, a, 8, 7), "two": mixed(64, a, 8, b)}, ("a", "b")).many(
        a=[p[0] for p in points], b=[p[1] for p in points])
    calls = collections.Counter(seen)
    distinct = {(64, a, 8, 7) for a, _ in points} | {(64, a, 8, b) for a, b in points}
    assert set(calls) == distinct
    # the replay calls each distinct combination once; the first point's are also called while it is traced
    assert {c: n for c, n in calls.items() if n > 1} == {(64, 1, 8, 7): 3, (64, 1, 8, 5): 3}


def test_a_table_reads_as_the_calls_do_and_replays_only_blocks_met_often():
    from opgraph.trace import Tabled

    traces = []

    def f(n):
        traces.append(type(n) is not int)
        return {"y": n * 3 + 1 if n > 300 else n // 2, **({"z": n * 0.5} if n > 300 else {})}

    table = Tabled(Traced(f, ("n",)), block=64, misses=4)
    sizes = list(range(250, 420)) + [1000, 5000]
    random.Random(1).shuffle(sizes)
    got = {n: table(n) for n in sizes}
    assert got == {n: f(n) for n in sizes}  # the labels each size's regime gives, and their values, exactly
    assert all(list(got[n]) == list(f(n)) for n in sizes)  # in the call's order
    assert sorted(table._rows) == [3, 4, 5, 6]  # the blocks of 256..447 met often; 1000 and 5000 called alone
    assert sum(traces) == 2  # the two regimes met; a block's sizes beyond them (none here) are not traced
    assert table(1000) is got[1000] and table(260) is table(260)  # kept: called once, or in its block's row


def test_a_table_whose_block_a_size_function_refuses_keeps_its_sizes_one_by_one():
    from opgraph.trace import Tabled

    @size_function
    def capped(n):
        if n > 1010:
            raise OpgraphError(f"n {n} is beyond 1,010")
        return n * 2

    table = Tabled(Traced(lambda n: {"y": capped(n) + 1}, ("n",)), block=64, misses=4)
    assert [table(n)["y"] for n in range(1000, 1008)] == [2 * n + 1 for n in range(1000, 1008)]
    assert not table._rows  # the block 960..1023 holds sizes the function refuses: not replayed, nothing lost
    with pytest.raises(OpgraphError, match="beyond 1,010"):
        table(1011)
