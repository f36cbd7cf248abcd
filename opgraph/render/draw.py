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
    """(source node, target node, label, materialized, tensor) for every tensor hand-off, inputs and outputs
    included."""
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
            yield src, c, f"{name} {_mb(t.nbytes)}" if first else name, crosses, name
        if producer is not None and graph.persistent(name):
            yield producer, f"out:{name}", f"{name} {_mb(t.nbytes)}", True, name


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
    for src, dst, label, solid, _ in _edges(graph, part):
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
    for src, dst, label, solid, _ in _edges(graph, part):
        arrow = f"-->|{label}|" if solid else f"-.->|{label}|"
        lines.append(f"  {nid(src)} {arrow} {nid(dst)}")
    return "\n".join(lines) + "\n"


NODE_W, NODE_H, GAP, ROW = 150, 34, 14, 62  # a node's box, the gap between two, a row's pitch (px)


def to_svg(graph: Graph, part: Partition, name: str) -> str:
    """The graph drawn as SVG (the DOT's content, laid out here, no library): graph inputs in the top row, then each
    kernel as a band of rows (its ops layered by their longest path inside it), kept results in the bottom row; an
    op's row order follows its producers' places. Edges materialized between kernels solid (their bytes written
    beside the first into a kernel), kept on chip dashed; each edge's tensor, bytes and fate on hover. `name` tells
    the picture's elements apart from another's on the same page."""
    from opgraph.analysis.activations import fates
    from opgraph.render.activations import label as fate_label
    from opgraph.render.html import BRIGHT, esc

    edges = list(_edges(graph, part))
    fate = {f.tensor: f for f in fates(graph, part)}
    preds: dict[str, list[str]] = {}
    for src, dst, *_ in edges:
        preds.setdefault(dst, []).append(src)
    position = {op: i for i, op in enumerate(graph.ops)}
    io = _io_nodes(graph)
    rows: list[tuple[int | None, list[str]]] = [(None, [n for n, _ in io if n.startswith("in:")])]
    for i, k in enumerate(part.kernels):
        level: dict[str, int] = {}
        for op in sorted(k.ops, key=position.__getitem__):
            level[op] = 1 + max((level[p] for p in preds.get(op, ()) if p in level), default=-1)
        rows += [(i, [op for op in level if level[op] == j]) for j in range(max(level.values()) + 1)]
    rows.append((None, [n for n, _ in io if n.startswith("out:")]))
    rows = [(k, ops) for k, ops in rows if ops]
    inner = max(len(ops) for _, ops in rows) * (NODE_W + GAP) + 2 * GAP
    width = inner + 100  # room on the right for edges bowing out and their labels
    x: dict[str, float] = {}
    y: dict[str, float] = {}
    top, bands = 8.0, {}
    for r, (k, ops) in enumerate(rows):
        if k is not None and (r == 0 or rows[r - 1][0] != k):
            top += 18  # the kernel's label above its band
        placed = [p for op in ops for p in preds.get(op, ()) if p in x]
        ops.sort(key=lambda op: sum(x[p] for p in preds.get(op, ()) if p in x) /
                 max(1, sum(p in x for p in preds.get(op, ()))) if placed else 0)
        left = (inner - len(ops) * (NODE_W + GAP) + GAP) / 2
        for j, op in enumerate(ops):
            x[op], y[op] = left + j * (NODE_W + GAP), top
        if k is not None:
            bands.setdefault(k, [top, top])[1] = top
        top += ROW
        if k is not None and (r + 1 == len(rows) or rows[r + 1][0] != k):
            top += 10
    height = top + 4
    out = [f"<svg class=\"graph\" data-graph=\"{esc(name)}\" role=\"img\" aria-label=\"{esc(name)}: the block's ops "
           f"in their kernels\" viewBox=\"0 0 {width:.0f} {height:.0f}\" width=\"{width:.0f}\" style=\"max-width:100%\">"
           f"<defs><marker id=\"arrow-{esc(name)}\" viewBox=\"0 0 8 8\" refX=\"8\" refY=\"4\" markerWidth=\"6\" "
           f"markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0 L8,4 L0,8 z\" fill=\"#555\"/></marker></defs>"]
    for i, k in enumerate(part.kernels):
        first, last = bands[i]
        out.append(f"<rect class=\"kernel\" data-kernel=\"{esc(k.name)}\" x=\"4\" y=\"{first - 18:.0f}\" "
                   f"width=\"{width - 8:.0f}\" height=\"{last - first + NODE_H + 24:.0f}\" rx=\"6\" fill=\"#eef3fb\" "
                   f"stroke=\"{BRIGHT[0]}\"/><text x=\"10\" y=\"{first - 5:.0f}\" fill=\"{BRIGHT[0]}\">kernel {i + 1}: "
                   f"{esc(k.label)}</text>")
    kernel_of = {op: k.name for k in part.kernels for op in k.ops}
    long_ = 0
    for src, dst, text, solid, tensor in edges:
        x1, y1, x2, y2 = x[src] + NODE_W / 2, y[src] + NODE_H, x[dst] + NODE_W / 2, y[dst]
        bend, side = max(20.0, (y2 - y1) / 2), 0.0
        if y2 - y1 > ROW:  # past rows between: bow out to the right of the nodes in between, not through them
            side, long_ = NODE_W / 2 + 24 + 10 * (long_ % 4), long_ + 1
        f = fate.get(tensor)
        said = f"{tensor}: {_mb(graph.tensors[tensor].nbytes)}, " + (fate_label(f) if f else "an input of the block")
        style = f"stroke=\"#333\"" if solid else "stroke=\"#999\" stroke-dasharray=\"4 3\""
        out.append(f"<path class=\"edge\" data-tensor=\"{esc(tensor)}\" data-from=\"{esc(src)}\" data-to=\"{esc(dst)}\" "
                   f"data-solid=\"{int(solid)}\" d=\"M{x1:.0f},{y1:.0f} C{x1 + side:.0f},{y1 + bend:.0f} "
                   f"{x2 + side:.0f},{y2 - bend:.0f} "
                   f"{x2:.0f},{y2:.0f}\" fill=\"none\" {style} marker-end=\"url(#arrow-{esc(name)})\">"
                   f"<title>{esc(said)}</title></path>")
        if solid and " " in text:  # the first edge into a kernel: what it moves
            out.append(f"<text x=\"{(x1 + x2) / 2 + 4 + side * 0.75:.0f}\" y=\"{(y1 + y2) / 2:.0f}\" fill=\"#333\">"
                       f"{esc(text)}</text>")
    labels = dict(io)
    for node in x:
        is_io = node in labels
        lines_ = [labels[node]] if is_io else _op_label(graph, node).split("\\n")
        attrs_ = (f"data-io=\"{esc(node)}\"" if is_io else
                  f"data-op=\"{esc(node)}\" data-kernel=\"{esc(kernel_of[node])}\"")
        texts = "".join(f"<text x=\"{x[node] + NODE_W / 2:.0f}\" y=\"{y[node] + (14 if len(lines_) > 1 else 21) + 13 * i:.0f}\" "
                        f"text-anchor=\"middle\">{esc(t[:26])}</text>" for i, t in enumerate(lines_))
        out.append(f"<g class=\"node\" {attrs_}><rect x=\"{x[node]:.0f}\" y=\"{y[node]:.0f}\" width=\"{NODE_W}\" "
                   f"height=\"{NODE_H}\" rx=\"{17 if is_io else 4}\" fill=\"#fff\" stroke=\"{'#777' if is_io else '#333'}\"/>"
                   f"{texts}<title>{esc(' '.join(lines_))}</title></g>")
    out.append("</svg>")
    return "".join(out)


def title(v: BlockView) -> str:
    return f"{v.model} {v.graph.name} ({v.phase.name}), fusion {v.plan.name}: {len(v.partition.kernels)} kernels"


@renderer(BlockView, "dot")
def as_dot(v: BlockView, fmt: str) -> str:
    return to_dot(v.graph, v.partition, title(v))


@renderer(BlockView, "mermaid")
def as_mermaid(v: BlockView, fmt: str) -> str:
    return to_mermaid(v.graph, v.partition, title(v))
