"""The graph: builder, lint, and networkx underneath."""

import networkx as nx
import pytest

from opgraph import GraphBuilder, LintError
from opgraph.core import ops
from opgraph.core.graph import Graph
from opgraph.core.tensor import BF16, Role, Tensor


def small_graph():
    b = GraphBuilder(name="tiny")
    x = b.input("x", (2, 4, 8))
    h = b.norm("norm", x, b.weight("norm.weight", (8,)), out="h")
    y = b.linear("proj", h, b.weight("proj.weight", (16, 8)), out="y")
    z = b.elementwise("act", "silu", y, out="z")
    return b.build(outputs=[z])


def test_builder_makes_a_plain_digraph_keyed_by_op_name():
    g = small_graph()
    assert isinstance(g.dag, nx.DiGraph)
    assert list(g.ops) == ["norm", "proj", "act"]
    assert list(nx.topological_sort(g.dag)) == ["norm", "proj", "act"]
    assert g.dag.edges["norm", "proj"]["tensors"] == ["h"]
    assert g.outputs == {"z"}
    assert g.params() == 8 + 16 * 8


def test_lint_rejects_duplicate_op_names():
    b = GraphBuilder()
    x = b.input("x", (2, 8))
    b.linear("proj", x, b.weight("w1", (8, 8)), out="a")
    b.linear("proj", x, b.weight("w2", (8, 8)), out="b")
    with pytest.raises(LintError, match="duplicate op name 'proj'"):
        b.build()


def test_lint_rejects_a_cycle_and_names_its_ops():
    t1 = Tensor("t1", (2, 8), BF16)
    t2 = Tensor("t2", (2, 8), BF16)
    a = ops.elementwise("a", "silu", t2, out="t1")
    b = ops.elementwise("b", "silu", t1, out="t2")
    with pytest.raises(LintError, match="cycle through ops (a -> b|b -> a)"):
        Graph([a, b])


def test_lint_rejects_producer_consumer_shape_mismatch():
    x = Tensor("x", (2, 8), BF16, Role.INPUT)
    a = ops.elementwise("a", "silu", x, out="t")
    wrong = Tensor("t", (2, 9), BF16)  # the consumer thinks t is [2, 9]
    b = ops.elementwise("b", "silu", wrong, out="u")
    with pytest.raises(LintError, match="tensor 't'.*op 'a' produces t\\[2, 8\\].*op 'b' uses t\\[2, 9\\]"):
        Graph([a, b])


def test_lint_rejects_an_activation_with_no_producer():
    orphan = Tensor("orphan", (2, 8), BF16, Role.ACTIVATION)
    op = ops.elementwise("a", "silu", orphan, out="y")
    with pytest.raises(LintError, match="tensor 'orphan' \\(read by op 'a'\\) has no producer"):
        Graph([op])


def test_declared_inputs_weights_and_cache_need_no_producer():
    for role in (Role.INPUT, Role.WEIGHT, Role.KV_CACHE):
        g = Graph([ops.elementwise("a", "silu", Tensor("t", (2, 8), BF16, role), out="y")])
        assert g.outputs == {"y"}


def test_lint_rejects_two_producers_of_one_tensor():
    x = Tensor("x", (2, 8), BF16, Role.INPUT)
    with pytest.raises(LintError, match="'y' is produced by both 'a' and 'b'"):
        Graph([ops.elementwise("a", "silu", x, out="y"), ops.elementwise("b", "gelu", x, out="y")])


def test_tied_weights_are_one_tensor():
    b = GraphBuilder()
    w1 = b.weight("table", (10, 4))
    assert b.weight("table", (10, 4)) is w1
    with pytest.raises(LintError, match="'table' declared twice"):
        b.weight("table", (4, 10))


def test_unconsumed_results_are_outputs_not_dropped():
    b = GraphBuilder()
    x = b.input("x", (2, 8))
    b.elementwise("dead_end", "silu", x, out="side")
    y = b.elementwise("main", "gelu", x, out="y")
    assert b.build(outputs=[y]).outputs == {"side", "y"}


def test_declared_output_must_exist():
    b = GraphBuilder()
    x = b.input("x", (2, 8))
    b.elementwise("a", "silu", x, out="y")
    with pytest.raises(LintError, match="declared output 'nope'"):
        b.build(outputs=["nope"])


def test_public_lint_checks_a_list_of_ops():
    from opgraph import lint
    x = Tensor("x", (2, 8), BF16, Role.INPUT)
    good = lint([ops.elementwise("a", "silu", x, out="y")], outputs=["y"], name="tiny")
    assert isinstance(good, Graph) and good.name == "tiny" and good.outputs == {"y"}
    with pytest.raises(LintError, match="duplicate op name 'a'"):
        lint([ops.elementwise("a", "silu", x, out="y"), ops.elementwise("a", "gelu", x, out="z")])
