"""The `opgraph` command line. User mistakes print one line and exit 2; never a traceback."""

from __future__ import annotations

import argparse
import json
import sys

import attrs
from tabulate import tabulate

import hardware
import models
from models import BuildOptions
from opgraph import activations, planfile
from opgraph.compare import compare as compare_plans
from opgraph.compare import render as render_comparison
from opgraph.compare import to_dict as compare_to_dict
from opgraph.cost import analyze
from opgraph.draw import FORMATS as DRAW_FORMATS
from opgraph.draw import to_dot, to_mermaid
from opgraph.errors import OpgraphError
from opgraph.fusion import apply
from opgraph.phase import PHASES, Phase, positive
from opgraph.report import FORMATS, render, sig
from opgraph.tensor import Precision, dtype

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (with the command they concern) and exit 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse's signature
        raise OpgraphError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _check_choice(what: str, value: str, valid) -> str:
    if value not in valid:
        raise OpgraphError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


DEFAULT_SEQ_LEN = DEFAULT_CONTEXT = 1024
QUANT_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")
GROUPED = ("int4", "int8")
DEFAULT_GROUP = 128


def _add_run_options(p: argparse.ArgumentParser, *, fusion: bool = True, phase_choices: str = "both") -> None:
    """The options every analysis command shares: what to build, on what, at which sizes and precisions."""
    p.add_argument("model", nargs="?", default=models.DEFAULT,
                   help=f"preset name (default: {models.DEFAULT}); see 'opgraph models'")
    p.add_argument("--hardware", default=hardware.DEFAULT, metavar="NAME",
                   help=f"GPU name or path to a .toml spec file (default: {hardware.DEFAULT}); see 'opgraph hardware'")
    p.add_argument("--phase", default=phase_choices, metavar="PHASE",
                   help=f"prefill, decode{' or both' if phase_choices == 'both' else ''} (default: {phase_choices})")
    p.add_argument("--batch", type=_int, default=32, help="sequences per step (default: 32)")
    p.add_argument("--seq-len", type=_int, help=f"prefill: prompt tokens per sequence (default: {DEFAULT_SEQ_LEN})")
    p.add_argument("--context", type=_int,
                   help=f"decode: tokens already in the KV cache; attention covers context+1 keys "
                        f"(default: {DEFAULT_CONTEXT})")
    if fusion:
        p.add_argument("--fusion", default=planfile.DEFAULT, metavar="NAME",
                       help=f"fusion strategy: {', '.join(planfile.names())}, or a path to a .toml/.json plan file "
                            f"(default: {planfile.DEFAULT}); see 'opgraph fusions'")
    g = p.add_argument_group("precision")
    g.add_argument("--dtype", metavar="DTYPE", help=f"one dtype for weights, activations and KV cache: "
                                                    f"{', '.join(QUANT_DTYPES)} (default: the model's own, from its config)")
    for role, what in (("weight", "matrix weights (norm scales and biases stay at the activation dtype)"),
                       ("act", "activations; also the precision matmuls compute at"),
                       ("kv", "the KV cache")):
        g.add_argument(f"--{role}-dtype", metavar="DTYPE", help=f"dtype of {what} (default: --dtype)")
    g.add_argument("--group-size", type=_int, metavar="N",
                   help=f"int4/int8 weights: elements per fp16 scale along each row (default: {DEFAULT_GROUP})")
    t = p.add_argument_group("time model")
    t.add_argument("--causal-skip", action="store_true",
                   help="count only the unmasked part of prefill attention products, as causal FlashAttention "
                        "computes them (default: the full score matrix)")
    t.add_argument("--launch-us", type=float, metavar="US",
                   help="launch overhead per kernel in microseconds (default: the hardware spec's, else 0)")
    t.add_argument("--overlap", type=float, metavar="F",
                   help="compute/memory overlap: 1.0 = max(compute, memory), 0.0 = their sum "
                        "(default: the hardware spec's, else 1.0)")


def _add_format(p: argparse.ArgumentParser, choices=FORMATS, default="table") -> None:
    p.add_argument("--format", default=default, metavar="FMT",
                   help=f"output format: {', '.join(choices)} (default: {default}); json and csv carry exact "
                        f"integers in FLOP, byte and second")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opgraph", description=(
        "Graph-based operator cost model for transformer inference: builds each layer as a DAG of ops, "
        "applies a fusion plan, and gives every op's FLOPs, bytes and roofline verdict (compute- or "
        "memory-bound) for prefill and decode."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    rep = sub.add_parser("report", help="per-op roofline report for prefill and decode",
                         description="Per-op FLOPs, bytes, arithmetic intensity, bound and time for each phase. "
                                     "With no arguments: Llama-3-8B on an H100 SXM, batch 32, 1024 tokens, "
                                     "the 'fused' plan - the reference analysis.")
    _add_run_options(rep)
    _add_format(rep)

    act = sub.add_parser("activations", help="the fate of every tensor under a fusion plan",
                         description="Every tensor the graph produces, with its shape and bytes and its fate: "
                                     "WRITE (materialized; read back by N other kernels), FUSED (kept on chip "
                                     "inside the named kernel) or AVOIDED (never formed whole).")
    _add_run_options(act)
    _add_format(act, ("table", "json", "markdown"))

    cmp_ = sub.add_parser("compare", help="compare fusion plans side by side",
                          description="Bytes, time and verdict under each plan; the ops whose verdict flips; the "
                                      "tensors whose fate changes; and what each plan saves against the first.")
    _add_run_options(cmp_, fusion=False)
    cmp_.add_argument("--fusion", default="unfused,flash,fused", metavar="A,B[,C...]",
                      help="comma-separated strategies or plan files, the first being the baseline "
                           "(default: unfused,flash,fused)")
    _add_format(cmp_, ("table", "json", "markdown"))

    gr = sub.add_parser("graph", help="draw a block's graph with its kernels",
                        description="Writes one block's graph under a fusion plan as Graphviz DOT or Mermaid: "
                                    "kernels are clusters, materialized edges solid and labelled with bytes, "
                                    "fused edges dashed. Render DOT with: dot -Tpng -o graph.png graph.dot")
    _add_run_options(gr, phase_choices="prefill")
    gr.add_argument("--block", default=None, metavar="NAME", help="which block (default: the first, the layer)")
    _add_format(gr, ("dot", "mermaid"), default="dot")

    mod = sub.add_parser("models", help="list the model presets",
                         description="The model presets with their shapes and exact parameter counts.")
    _add_format(mod, ("table", "json"))
    hw = sub.add_parser("hardware", help="list the GPU specs with their ridge intensities",
                        description="Peak bf16 (fp16 where there is no bf16) matrix rate, bandwidth, capacity and "
                                    "ridge intensity (the FLOP/byte above which a matmul is compute-bound).")
    _add_format(hw, ("table", "json"))
    fus = sub.add_parser("fusions", help="list the fusion strategies",
                         description="The shipped fusion strategies and the rules that make them.")
    _add_format(fus, ("table", "json"))
    return parser


def _precision(args, cfg) -> Precision | None:
    given = {role: getattr(args, f"{role}_dtype") for role in ("weight", "act", "kv")}
    if args.dtype is None and not any(given.values()):
        if args.group_size is not None:
            raise OpgraphError(f"--group-size applies to int4/int8 weights, but the weights are {cfg.dtype.name}; "
                               f"add --weight-dtype int4 or int8")
        return None
    base = _check_choice("dtype", args.dtype or cfg.dtype.name, QUANT_DTYPES)
    names = {role: _check_choice(f"{role}-dtype", v or base, QUANT_DTYPES) for role, v in given.items()}
    weight = dtype(names["weight"])
    if names["weight"] in GROUPED:
        weight = weight.grouped(DEFAULT_GROUP if args.group_size is None else positive("--group-size", args.group_size))
    elif args.group_size is not None:
        raise OpgraphError(f"--group-size applies to int4/int8 weights, but --weight-dtype is {names['weight']}")
    return Precision(weight=weight, act=dtype(names["act"]), kv=dtype(names["kv"]))


def _hardware(args):
    hw = hardware.load(args.hardware)
    knobs = {}
    if args.launch_us is not None:
        if args.launch_us < 0:
            raise OpgraphError(f"--launch-us must be >= 0, got {args.launch_us}")
        knobs["kernel_launch_s"] = args.launch_us * 1e-6
    if args.overlap is not None:
        knobs["overlap"] = args.overlap
    return attrs.evolve(hw, **knobs) if knobs else hw


def _phases(args) -> list[Phase]:
    valid = (*PHASES, "both")
    names = PHASES if _check_choice("phase", args.phase, valid) == "both" else (args.phase,)
    for flag, value, needs in (("--seq-len", args.seq_len, "prefill"), ("--context", args.context, "decode")):
        if value is not None and needs not in names:
            raise OpgraphError(f"{flag} applies to {needs}, but --phase is {args.phase}; "
                               f"drop it or use --phase {needs} or both")
    seq_len = DEFAULT_SEQ_LEN if args.seq_len is None else args.seq_len
    context = DEFAULT_CONTEXT if args.context is None else args.context
    made = {"prefill": lambda: Phase.prefill(args.batch, seq_len), "decode": lambda: Phase.decode(args.batch, context)}
    return [made[n]() for n in names]


def _models(args) -> list:
    """The model built for each requested phase, as the options say."""
    cfg = models.get(args.model)
    options = BuildOptions(precision=_precision(args, cfg), causal_skip=args.causal_skip)
    return [cfg.build(ph, options) for ph in _phases(args)]


def cmd_report(args) -> str:
    _check_choice("format", args.format, FORMATS)
    built, hw, plan = _models(args), _hardware(args), planfile.load(args.fusion)
    return render([analyze(m, plan, hw) for m in built], args.format)


def cmd_activations(args) -> str:
    fmt = _check_choice("format", args.format, ("table", "json", "markdown"))
    built, plan = _models(args), planfile.load(args.fusion)
    per_phase = {m.phase.name: [(b, activations.fates(b.graph, apply(plan, b.graph))) for b in m.blocks]
                 for m in built}
    if fmt == "json":
        return json.dumps({"model": built[0].name, "fusion": plan.name, "phases": {
            ph: {**next(m.phase.describe() for m in built if m.phase.name == ph),
                 "blocks": [{"name": b.name, "count": b.count, "tensors": [activations.to_dict(f) for f in fs]}
                            for b, fs in blocks]}
            for ph, blocks in per_phase.items()}}, indent=2) + "\n"
    tablefmt = "github" if fmt == "markdown" else "simple"
    lines = [f"opgraph activations: {built[0].name}, fusion {plan.name}"]
    for m in built:
        lines += ["", _phase_heading(m.phase)]
        for b, fs in per_phase[m.phase.name]:
            lines += ["", f"{b.name} x{b.count}", "", activations.table(fs, tablefmt)]
    return "\n".join(lines) + "\n"


def _phase_heading(ph: Phase) -> str:
    return ph.name.upper() + ": " + ", ".join(f"{k} {v}" for k, v in ph.describe().items())


def cmd_compare(args) -> str:
    fmt = _check_choice("format", args.format, ("table", "json", "markdown"))
    names = [n.strip() for n in args.fusion.split(",") if n.strip()]
    if len(names) < 2:
        raise OpgraphError(f"--fusion needs at least two plans to compare, separated by commas; got {args.fusion!r}")
    plans, hw = [planfile.load(n) for n in names], _hardware(args)
    comparisons = [compare_plans(m, plans, hw) for m in _models(args)]
    if fmt == "json":
        return json.dumps({"model": comparisons[0].costs[0].model, "hardware": hw.name, "fusions": names,
                           "phases": {c.phase: compare_to_dict(c) for c in comparisons}}, indent=2) + "\n"
    head = f"opgraph compare: {comparisons[0].costs[0].model} on {hw.name}\n\n"
    return head + render_comparison(comparisons, "github" if fmt == "markdown" else "simple")


def cmd_graph(args) -> str:
    fmt = _check_choice("format", args.format, DRAW_FORMATS)
    if args.phase == "both":
        raise OpgraphError("opgraph graph draws one phase: --phase prefill or --phase decode")
    [model] = _models(args)
    blocks = {b.name: b for b in model.blocks}
    block = blocks[_check_choice("block", args.block or model.blocks[0].name, list(blocks))]
    plan = planfile.load(args.fusion)
    part = apply(plan, block.graph)
    title = f"{model.name} {block.name} ({model.phase.name}), fusion {plan.name}: {len(part.kernels)} kernels"
    draw = to_dot if fmt == "dot" else to_mermaid
    return draw(block.graph, part, title)


def _main_rate(h) -> tuple[str, float]:
    """The bf16 rate, or fp16 on chips without bf16 (V100): the reference table's column."""
    for dt in ("bf16", "fp16"):
        if dt in h.matrix_flops:
            return dt, h.matrix_flops[dt]
    dt = next(iter(h.matrix_flops))
    return dt, h.matrix_flops[dt]


def cmd_hardware(args) -> str:
    _check_choice("format", args.format, ("table", "json"))
    specs = [hardware.load(n) for n in hardware.names()]
    if args.format == "json":
        return json.dumps([{"name": h.name, "display_name": h.display_name, "matrix_flops_per_s": h.matrix_flops,
                            "vector_flops_per_s": h.vector_flops, "bandwidth_bytes_per_s": h.bandwidth,
                            "capacity_bytes": h.capacity, "ridge_flops_per_byte": _main_rate(h)[1] / h.bandwidth,
                            "source": h.source} for h in specs], indent=2) + "\n"
    rows = []
    for h in specs:
        dt, rate = _main_rate(h)
        fp8 = h.matrix_flops.get("fp8")
        rows.append([h.name, h.display_name, f"{sig(rate / 1e12)} ({dt})", "-" if fp8 is None else sig(fp8 / 1e12),
                     sig(h.vector_flops / 1e12), f"{h.bandwidth / 1e9:,.0f}", f"{h.capacity / 1e9:,.0f}",
                     f"{rate / h.bandwidth:.0f}"])
    return tabulate(rows, ["name", "GPU", "matrix TFLOP/s", "fp8 TFLOP/s", "vector TFLOP/s", "memory GB/s",
                           "memory GB", "ridge FLOP/B"], disable_numparse=True,
                    colalign=("left", "left", "right", "right", "right", "right", "right", "right")) + "\n"


def cmd_models(args) -> str:
    _check_choice("format", args.format, ("table", "json"))
    recs = []
    for name in models.names():
        c = models.get(name)
        m = c.build(Phase.decode(1, 1))
        recs.append({"name": name, **c.summary(), "params": m.params(), "weight_bytes": m.weight_bytes(),
                     "source": c.source})
    if args.format == "json":
        return json.dumps(recs, indent=2) + "\n"
    shown = ("layers", "d_model", "heads", "kv_heads", "head_dim", "d_ffn", "vocab")
    rows = [[r["name"], *(r.get(k, "-") for k in shown), _architecture(r), f"{r['params']:,}",
             sig(r["weight_bytes"] / 1e9)] for r in recs]
    return tabulate(rows, ["model", *(k.replace("_", " ") for k in shown), "architecture", "params", "weights GB"],
                    disable_numparse=True) + "\n"


def _architecture(summary: dict) -> str:
    """What sets a model apart, in a few words, from its summary fields."""
    words = ["MLA" if summary.get("attention") == "mla" else
             "MHA" if summary.get("kv_heads") == summary["heads"] else "GQA"]
    if "window" in summary:
        words.append(f"window {summary['window']}")
    if "experts" in summary:
        shared = f" +{summary['shared_experts']} shared" if summary.get("shared_experts") else ""
        words.append(f"MoE {summary['experts']} top-{summary['top_k']}{shared}")
    if summary.get("tied_embeddings"):
        words.append("tied")
    if summary.get("weight_dtype"):
        words.append(f"{summary['weight_dtype']} weights")
    return ", ".join(words)


def cmd_fusions(args) -> str:
    _check_choice("format", args.format, ("table", "json"))
    plans = [planfile.load(n) for n in planfile.names()]
    if args.format == "json":
        return json.dumps([{"name": p.name, "description": p.description,
                            "rules": [{k: sorted(v) if isinstance(v, frozenset) else v
                                       for k, v in attrs.asdict(r).items() if v not in (None, False)} for r in p.rules],
                            "groups": [list(g) for g in p.groups]} for p in plans], indent=2) + "\n"
    rows = [[p.name, p.description, "\n".join(f"- {'never: ' if r.never else ''}{r.name}" for r in p.rules) or "-"]
            for p in plans]
    return tabulate(rows, ["strategy", "what it does", "rules"], maxcolwidths=[None, 50, 60]) + "\n"


COMMANDS = {"report": cmd_report, "activations": cmd_activations, "compare": cmd_compare, "graph": cmd_graph,
            "models": cmd_models, "hardware": cmd_hardware, "fusions": cmd_fusions}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return USAGE_ERROR
        sys.stdout.write(COMMANDS[args.command](args))
    except OpgraphError as e:
        print(f"opgraph: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:  # `opgraph report | head` is fine
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
