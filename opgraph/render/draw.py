"""Pictures of a fused graph: Graphviz DOT and Mermaid. Kernels are clusters; edges whose tensor is
materialized between kernels are solid and labelled with bytes; edges kept on chip are dashed.
Graph inputs (activations and KV cache) and kept results appear as their own nodes; weights are
folded into each op's label."""

from __future__ import annotations

from opgraph.analysis.activations import BlockView
from opgraph.core.fusion import Partition
from opgraph.core.graph import Graph
from opgraph.core.tensor import Role
from opgraph.render import renderer


def _mb(n: int) -> str:
    return f"{n / 1e6:,.3g} MB"


def _edges(graph: Graph, part: Partition):
    """(source node, target node, label, materialized) for every tensor hand-off, inputs and outputs included."""
    for name, t in graph.tensors.items():
        if t.role is Role.WEIGHT:
            continue
        producer = graph.producer.get(name)
        src = producer or f"in:{name}"
        loaded = set()  # a kernel reads a tensor once: its bytes label only the first edge into that kernel
        for c in graph.consumers.get(name, ()):
            kernel = part.kernel_of[c]
            crosses = producer is None or part.kernel_of[producer] != kernel
            first = crosses and kernel not in loaded
            loaded.add(kernel)
            yield src, c, f"{name} {_mb(t.nbytes)}" if first else name, crosses
        if producer is not None and graph.persistent(name):
            yield producer, f"out:{name}", f"{name} {_mb(t.nbytes)}", True


def _op_label(graph: Graph, op_name: str) -> str:
    op = graph.ops[op_name]
    w = sum(t.nbytes for t in op.inputs if t.role is Role.WEIGHT)
    detail = ([op.fn] if op.fn != op_name else []) + ([f"W {_mb(w)}"] if w else [])
    return op_name + ("\\n" + ", ".join(detail) if detail else "")


def _io_nodes(graph: Graph) -> list[tuple[str, str]]:
    nodes = [(f"in:{n}", n) for n, t in graph.tensors.items() if t.role is not Role.WEIGHT and n not in graph.producer]
    nodes += [(f"out:{n}", n) for n in graph.producer if graph.persistent(n)]
    return nodes


def to_dot(graph: Graph, part: Partition, title: str) -> str:
    q = lambda s: '"' + s.replace('"', "'") + '"'  # noqa: E731
    lines = [f"digraph {q(graph.name)} {{", f"  label={q(title)}; labelloc=t; rankdir=TB;",
             "  node [shape=box, style=rounded, fontname=Helvetica, fontsize=10];",
             "  edge [fontname=Helvetica, fontsize=9];"]
    for i, k in enumerate(part.kernels):
        lines.append(f"  subgraph cluster_{i} {{ label={q(f'kernel {i + 1}: {k.label}')}; style=filled; "
                     f"fillcolor=\"#eef3fb\"; color=\"#5b7db1\";")
        lines += [f"    {q(op)} [label={q(_op_label(graph, op))}];" for op in k.ops]
        lines.append("  }")
    lines += [f"  {q(n)} [label={q(label)}, shape=ellipse, style=solid];" for n, label in _io_nodes(graph)]
    for src, dst, label, solid in _edges(graph, part):
        style = "solid" if solid else "dashed"
        lines.append(f"  {q(src)} -> {q(dst)} [label={q(label)}, style={style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(graph: Graph, part: Partition, title: str) -> str:
    ids: dict[str, str] = {}
    nid = lambda n: ids.setdefault(n, f"n{len(ids)}")  # noqa: E731
    lines = ["---", f"title: {title}", "---", "flowchart TB"]
    for i, k in enumerate(part.kernels):
        lines.append(f'  subgraph k{i}["kernel {i + 1}: {k.label}"]')
        lines += [f'    {nid(op)}["{_op_label(graph, op).replace(chr(92) + "n", "<br/>")}"]' for op in k.ops]
        lines.append("  end")
    lines += [f'  {nid(n)}(["{label}"])' for n, label in _io_nodes(graph)]
    for src, dst, label, solid in _edges(graph, part):
        arrow = f"-->|{label}|" if solid else f"-.->|{label}|"
        lines.append(f"  {nid(src)} {arrow} {nid(dst)}")
    return "\n".join(lines) + "\n"


def title(v: BlockView) -> str:
    return f"{v.model} {v.graph.name} ({v.phase.name}), fusion {v.plan.name}: {len(v.partition.kernels)} kernels"


@renderer(BlockView, "dot")
def as_dot(v: BlockView, fmt: str) -> str:
    return to_dot(v.graph, v.partition, title(v))


@renderer(BlockView, "mermaid")
def as_mermaid(v: BlockView, fmt: str) -> str:
    return to_mermaid(v.graph, v.partition, title(v))
