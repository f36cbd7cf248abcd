"""The `opgraph` command line. User mistakes print one line and exit 2; never a traceback."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

import attrs
from tabulate import tabulate

from opgraph import hardware
from opgraph import models
from opgraph.core.model import BuildOptions
from opgraph.analysis import activations, generate, memory
from opgraph.files import planfile
from opgraph.render import plot
from opgraph.analysis.compare import compare as compare_plans
from opgraph.analysis.compare import render as render_comparison
from opgraph.analysis.compare import to_dict as compare_to_dict
from opgraph.core.cost import analyze
from opgraph.analysis.crossover import LIMIT, attention_overtakes_ffn, crossovers
from opgraph.render.draw import FORMATS as DRAW_FORMATS
from opgraph.render.draw import to_dot, to_mermaid
from opgraph.errors import OpgraphError
from opgraph.core.fusion import apply
from opgraph.core.phase import PHASES, Phase, positive
from opgraph.render.report import FORMATS, render, sig
from opgraph.analysis.sweep import parse_values, sweep
from opgraph.core.tensor import BF16, Precision, dtype

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
DEFAULT_BATCHES = "1,2,4,...,512"
QUANT_DTYPES = ("fp32", "bf16", "fp16", "fp8", "int8", "int4")
GROUPED = ("int4", "int8")
DEFAULT_GROUP = 128


def _add_run_options(p: argparse.ArgumentParser, *, fusion: bool = True, phase_choices: str = "both",
                     lists: bool = False, phases: bool = True, time_model: bool = True) -> None:
    """The options every analysis command shares: what to build, on what, at which sizes and precisions.
    With `lists`, the sizes and the hardware take lists (see opgraph.analysis.sweep.parse_values), parsed later.
    `phases=False` leaves out --phase, --seq-len and --context (for a command that picks its own phases);
    `time_model=False` leaves out the options that change only times."""
    kind, many = (str, ", a list: 1,8,64 or 1:64 or 1,2,4,...,512") if lists else (_int, "")
    p.add_argument("model", nargs="?", default=models.DEFAULT,
                   help=f"preset name or path to a config.json (default: {models.DEFAULT}); see 'opgraph models'")
    p.add_argument("--hardware", default=None if lists else hardware.DEFAULT, metavar="NAME",
                   help=f"GPU name or path to a .toml spec file{', comma-separated' if lists else ''} "
                        f"(default: {hardware.DEFAULT}); see 'opgraph hardware'")
    p.add_argument("--batch", type=kind, default=None if lists else 32,
                   help=f"sequences per step{many} (default: {DEFAULT_BATCHES if lists else 32})")
    if phases:
        p.add_argument("--phase", default=phase_choices, metavar="PHASE",
                       help=f"prefill, decode{' or both' if phase_choices == 'both' else ''} (default: {phase_choices})")
        p.add_argument("--seq-len", type=kind,
                       help=f"prefill: prompt tokens per sequence{many} (default: {DEFAULT_SEQ_LEN})")
        p.add_argument("--context", type=kind,
                       help=f"decode: tokens already in the KV cache; attention covers context+1 keys{many} "
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
    p.add_argument("--experts-touched", type=_int, metavar="N",
                   help="MoE models: routed experts whose weights one step reads (default: the expectation under "
                        "uniform routing, E*(1-(1-k/E)^T) rounded up, for T tokens in the step)")
    if not time_model:
        return
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


def _command(sub, name: str, *, help: str, description: str, formats=FORMATS, default: str = "table",
             **run_options) -> argparse.ArgumentParser:
    """An analysis command: the shared run options (see _add_run_options) and an output format."""
    p = sub.add_parser(name, help=help, description=description)
    _add_run_options(p, **run_options)
    _add_format(p, formats, default)
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="opgraph", description=(
        "Graph-based operator cost model for transformer inference: builds each layer as a DAG of ops, "
        "applies a fusion plan, and gives every op's FLOPs, bytes and roofline verdict (compute- or "
        "memory-bound) for prefill and decode."))
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    TEXT = ("table", "json", "markdown")
    _command(sub, "report", help="per-op roofline report for prefill and decode",
             description="Per-op FLOPs, bytes, arithmetic intensity, bound and time for each phase. With no "
                         "arguments: Llama-3-8B on an H100 SXM, batch 32, 1024 tokens, the 'fused' plan - the "
                         "reference analysis.")
    _command(sub, "activations", formats=TEXT, help="the fate of every tensor under a fusion plan",
             description="Every tensor the graph produces, with its shape and bytes and its fate: WRITE "
                         "(materialized; read back by N other kernels), FUSED (kept on chip inside the named "
                         "kernel) or AVOIDED (never formed whole).")
    cmp_ = _command(sub, "compare", formats=TEXT, fusion=False, help="compare fusion plans side by side",
                    description="Bytes, time and verdict under each plan; the ops whose verdict flips; the tensors "
                                "whose fate changes; and what each plan saves against the first.")
    cmp_.add_argument("--fusion", default="unfused,flash,fused", metavar="A,B[,C...]",
                      help="comma-separated strategies or plan files, the first being the baseline "
                           "(default: unfused,flash,fused)")
    gr = _command(sub, "graph", formats=("dot", "mermaid"), default="dot", phase_choices="prefill",
                  help="draw a block's graph with its kernels",
                  description="Writes one block's graph under a fusion plan as Graphviz DOT or Mermaid: kernels are "
                              "clusters, materialized edges solid and labelled with bytes, fused edges dashed. "
                              "Render DOT with: dot -Tpng -o graph.png graph.dot")
    gr.add_argument("--block", default=None, metavar="NAME", help="which block (default: the first, the layer)")
    _command(sub, "sweep", lists=True, help="time, intensity and verdict over many batch sizes and lengths",
             description="Evaluates every combination of the given batches, lengths and GPUs without rebuilding "
                         "the graph per point (exactly the numbers 'report' gives). Lists are comma-separated "
                         "values, ranges START:STOP[:STEP], or progressions like 1,2,4,...,512.")
    _command(sub, "crossover", formats=TEXT, help="where each op turns compute-bound",
             description="For each op and block: the smallest batch (decode, at --context) or seq_len (prefill, "
                         "at --batch) at which it is compute-bound on the GPU, 'never' if none up to 2^20. Solved "
                         "exactly where FLOPs and bytes are linear in it, searched otherwise, and checked either "
                         "way. Also the decode context at which attention's time overtakes the FFN's (at --batch).")
    gen = _command(sub, "generate", formats=("table", "json"), phases=False,
                   help="end-to-end time of a prompt and its generated tokens",
                   description="Time to first token (prefill of the prompt, lm_head on the last position only); "
                               "then the decode steps, each costed at its own context and summed: the first output "
                               "token comes from prefill, and each further one is a decode step at context P, P+1, "
                               "..., P+G-2 (tokens already cached). Also the mean, first and last step, total time, "
                               "tokens/s, and whether it fits in GPU memory.")
    gen.add_argument("--prompt", type=_int, required=True, metavar="P", help="prompt tokens per sequence")
    gen.add_argument("--output", type=_int, required=True, metavar="G",
                     help="output tokens per sequence, the first of them from prefill")
    _command(sub, "memory", formats=("table", "json"), time_model=False,
             help="weights, KV cache and peak activations against GPU memory",
             description="Per phase: weight bytes, KV-cache bytes (decode: after the step, context+1 tokens), the "
                         "peak of activations alive at once under the fusion plan, their total against the GPU's "
                         "capacity (fits or DOES NOT FIT), and the largest batch that fits at the given seq_len "
                         "(prefill) or context (decode).")
    plt = sub.add_parser("plot", help="pictures: roofline, time breakdown, sweep (PNG/SVG; needs matplotlib)",
                         description='Draws a picture to --out (PNG or SVG by its suffix). Needs matplotlib: '
                                     'pip install "opgraph[plot]".')
    kinds = plt.add_subparsers(dest="plot", metavar="PLOT", parser_class=_Parser)
    for name, (what, more) in PLOTS.items():
        pp = kinds.add_parser(name, help=what, description=f"{what}: {more}")
        _add_run_options(pp, lists=name == "sweep")
        pp.add_argument("--out", required=True, metavar="FILE", help="the picture to write: FILE.png or FILE.svg")

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


def _own_dtype(cfg) -> str:
    """The model's own dtype name: a config's, else bf16 (GraphBuilder's default) for a model written in Python."""
    return getattr(cfg, "dtype", BF16).name


def _precision(args, cfg) -> Precision | None:
    given = {role: getattr(args, f"{role}_dtype") for role in ("weight", "act", "kv")}
    if args.dtype is None and not any(given.values()):
        if args.group_size is not None:
            raise OpgraphError(f"--group-size applies to int4/int8 weights, but the weights are {_own_dtype(cfg)}; "
                               f"add --weight-dtype int4 or int8")
        return None
    base = _check_choice("dtype", args.dtype or _own_dtype(cfg), QUANT_DTYPES)
    names = {role: _check_choice(f"{role}-dtype", v or base, QUANT_DTYPES) for role, v in given.items()}
    weight = dtype(names["weight"])
    if names["weight"] in GROUPED:
        weight = weight.grouped(DEFAULT_GROUP if args.group_size is None else positive("--group-size", args.group_size))
    elif args.group_size is not None:
        raise OpgraphError(f"--group-size applies to int4/int8 weights, but --weight-dtype is {names['weight']}")
    return Precision(weight=weight, act=dtype(names["act"]), kv=dtype(names["kv"]))


def _hardware(args, name: str | None = None):
    """The GPU spec (`name`, else --hardware) with the command line's time-model knobs applied."""
    hw = hardware.load(name or args.hardware)
    knobs = {}
    if args.launch_us is not None:
        if args.launch_us < 0:
            raise OpgraphError(f"--launch-us must be >= 0, got {args.launch_us}")
        knobs["kernel_launch_s"] = args.launch_us * 1e-6
    if args.overlap is not None:
        knobs["overlap"] = args.overlap
    return attrs.evolve(hw, **knobs) if knobs else hw


def _phase_names(args) -> tuple[str, ...]:
    """The phases asked for; a length flag for a phase not being run is an error, not silently ignored."""
    names = PHASES if _check_choice("phase", args.phase, (*PHASES, "both")) == "both" else (args.phase,)
    for flag, value, needs in (("--seq-len", args.seq_len, "prefill"), ("--context", args.context, "decode")):
        if value is not None and needs not in names:
            raise OpgraphError(f"{flag} applies to {needs}, but --phase is {args.phase}; "
                               f"drop it or use --phase {needs} or both")
    return names


def _phases(args) -> list[Phase]:
    names = _phase_names(args)
    seq_len = DEFAULT_SEQ_LEN if args.seq_len is None else args.seq_len
    context = DEFAULT_CONTEXT if args.context is None else args.context
    made = {"prefill": lambda: Phase.prefill(args.batch, seq_len), "decode": lambda: Phase.decode(args.batch, context)}
    return [made[n]() for n in names]


def _builder(args):
    """phase -> the model for that phase, built as the options say."""
    cfg = models.get(args.model)
    experts = getattr(args, "experts_touched", None)
    options = BuildOptions(precision=_precision(args, cfg), causal_skip=getattr(args, "causal_skip", False),
                           experts_touched=experts)

    def build(phase):
        return cfg.build(phase, options)

    if experts is not None and not any(op.part == "moe" for b in build(Phase.decode(1, 1)).blocks
                                       for op in b.graph.ops.values()):
        raise OpgraphError(f"--experts-touched applies to mixture-of-experts models; {cfg.name} has no ops tagged "
                           f"'moe'")
    return build


def _models(args) -> list:
    """The model built for each requested phase, as the options say."""
    build = _builder(args)
    return [build(ph) for ph in _phases(args)]


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


def _sweep_lists(args) -> tuple[list, list[str], list[int], dict[str, list[int]]]:
    names = _phase_names(args)
    gpus = [n.strip() for n in (args.hardware or hardware.DEFAULT).split(",") if n.strip()]
    hws = [_hardware(args, name) for name in gpus]
    lengths = {"prefill": parse_values(args.seq_len or str(DEFAULT_SEQ_LEN), "--seq-len"),
               "decode": parse_values(args.context or str(DEFAULT_CONTEXT), "--context")}
    return hws, list(names), parse_values(args.batch or DEFAULT_BATCHES, "--batch"), lengths


def cmd_sweep(args) -> str:
    fmt = _check_choice("format", args.format, FORMATS)
    build = _builder(args)
    hws, phases, batches, lengths = _sweep_lists(args)
    points = [p for grid in sweep(build, planfile.load(args.fusion), hws, phases, batches, lengths)
              for p in grid.points()]
    if fmt == "json":
        return json.dumps({"model": models.get(args.model).name, "fusion": args.fusion, "points": [
            {"hardware": p.hardware, "phase": p.phase, "batch": p.batch, p.length_name: p.length,
             "model_time_s": p.model_time_s, "block_time_s": p.block_time_s, "flops": p.model_flops,
             "bytes": p.model_bytes, "intensity": p.intensity, "bound": p.bound, "dominant_op": p.dominant_op,
             "dominant_share": p.dominant_share} for p in points]}, indent=2) + "\n"
    main_block = max((b for b in build(Phase.decode(1, 1)).blocks), key=lambda b: b.count).name
    header = ["hardware", "phase", "batch", "seq_len/context", f"{main_block} µs", "model ms", "FLOP/B", "bound",
              "dominant op (% of model time)"]
    rows = [[p.hardware, p.phase, p.batch, p.length, sig(p.block_time_s[main_block] * 1e6),
             sig(p.model_time_s * 1e3), sig(p.intensity), p.bound,
             f"{p.dominant_op} ({p.dominant_share * 100:.0f}%)"] for p in points]
    if fmt == "csv":
        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["hardware", "phase", "batch", "seq_len_or_context", "model_time_s", "flops", "bytes",
                    "intensity", "bound", "dominant_op", "dominant_share"])
        w.writerows([p.hardware, p.phase, p.batch, p.length, repr(p.model_time_s), p.model_flops, p.model_bytes,
                     repr(p.intensity), p.bound, p.dominant_op, repr(p.dominant_share)] for p in points)
        return out.getvalue()
    return tabulate(rows, header, tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True) + "\n"


def cmd_crossover(args) -> str:
    fmt = _check_choice("format", args.format, ("table", "json", "markdown"))
    build, name = _builder(args), models.get(args.model).name
    plan, hw = planfile.load(args.fusion), _hardware(args)
    phases = [ph.name for ph in _phases(args)]
    if args.seq_len is not None:
        raise OpgraphError("--seq-len is what a prefill crossover varies; give --batch (and --context for decode)")
    context = DEFAULT_CONTEXT if args.context is None else args.context
    result = {}
    for ph in phases:
        xs = crossovers(build, plan, hw, ph, context if ph == "decode" else args.batch)
        result[ph] = {"variable": "batch" if ph == "decode" else "seq_len",
                      "fixed": {"context": context} if ph == "decode" else {"batch": args.batch},
                      "crossovers": [{"op": x.label, "at": x.at, "method": x.method} for x in xs]}
    if "decode" in phases:
        result["decode"]["attention_overtakes_ffn_at_context"] = attention_overtakes_ffn(build, plan, hw, args.batch)
    if fmt == "json":
        return json.dumps({"model": name, "hardware": hw.name, "fusion": plan.name, "limit": LIMIT,
                           "phases": result}, indent=2) + "\n"
    lines = [f"opgraph crossover: {name} on {hw.name}, fusion {plan.name}: the smallest value at which each "
             f"op is compute-bound"]
    for ph, r in result.items():
        fixed = ", ".join(f"{k} {v}" for k, v in r["fixed"].items())
        lines += ["", f"{ph.upper()}: varying {r['variable']} at {fixed}", ""]
        rows = [[c["op"], "never" if c["at"] is None else f"{c['at']:,}", c["method"]] for c in r["crossovers"]]
        lines.append(tabulate(rows, ["op", f"compute-bound from {r['variable']}", "how"],
                              tablefmt="github" if fmt == "markdown" else "simple", disable_numparse=True))
        if ph == "decode":
            at = r["attention_overtakes_ffn_at_context"]
            lines += ["", f"attention takes more decode time than the FFN from context "
                          f"{'never (up to 2^20)' if at is None else f'{at:,}'} (batch {args.batch})"]
    return "\n".join(lines) + f"\n\n'never' means not up to {LIMIT:,}.\n"


def cmd_generate(args) -> str:
    fmt = _check_choice("format", args.format, ("table", "json"))
    sizes = {flag: positive(f"--{flag}", getattr(args, flag)) for flag in ("batch", "prompt", "output")}
    g = generate.estimate(_builder(args), planfile.load(args.fusion), _hardware(args), **sizes)
    return json.dumps(generate.to_dict(g), indent=2) + "\n" if fmt == "json" else generate.render_text(g)


def cmd_memory(args) -> str:
    fmt = _check_choice("format", args.format, ("table", "json"))
    build, plan, hw = _builder(args), planfile.load(args.fusion), hardware.load(args.hardware)
    results = [(memory.footprint(build(ph), plan, hw),
                memory.max_batch(build, lambda b, ph=ph: attrs.evolve(ph, batch=b), plan, hw)) for ph in _phases(args)]
    return memory.render(results, hw, plan, fmt)


PLOTS = {"roofline": ("the roofline with every op of each phase as a point",
                      "log arithmetic intensity (FLOP/byte) against attainable FLOP/s (the op's FLOPs over its "
                      "time), the hardware's matrix and vector roofs, the ridge point marked, each point labelled"),
         "breakdown": ("a stacked bar of model time per op for prefill and decode",
                       "each op's time over all layers, ops under 1% of every phase as 'other'"),
         "sweep": ("time against batch (decode) or seq_len (prefill), with crossovers marked",
                   "one panel per phase: the model's time and each block's over all its repeats, log-log; decode "
                   "varies --batch (a list) at one --context, prefill varies --seq-len (a list) at one --batch; "
                   "each block's compute-bound crossover is marked where it falls in range")}


def cmd_plot(args) -> str:
    if args.plot is None:
        raise OpgraphError(f"opgraph plot: say which picture: {', '.join(PLOTS)} (see 'opgraph plot --help')")
    path = plot.check_path(args.out)
    plot.require()
    if args.plot == "sweep":
        return _plot_sweep(args, path)
    built, hw, plan = _models(args), _hardware(args), planfile.load(args.fusion)
    results = [analyze(m, plan, hw) for m in built]
    if args.plot == "roofline":
        fig, data = plot.roofline(results, plot.matmul_dtype(built[0]))
        what = (f"{len(data.points)} op points, ridge at {data.ridge:,.0f} FLOP/B"
                + (f"; not drawn: {'; '.join(data.skipped)}" if data.skipped else ""))
    else:
        fig, data = plot.breakdown(results)
        what = f"{len(data.segments)} segments per phase" + (f" ('other': {', '.join(data.other)})" if data.other else "")
    return f"wrote {plot.save(fig, path)}: {what}\n"


def _plot_sweep(args, path) -> str:
    def one(flag: str, text: str | None, default: int) -> int:
        values = parse_values(text, flag) if text else [default]
        if len(values) != 1:
            raise OpgraphError(f"{flag} is held fixed in this plot: give one value, got {len(values)}")
        return values[0]
    hws, phases, batches, lengths = _sweep_lists(args)
    if len(hws) != 1:
        raise OpgraphError("plot sweep draws one GPU: give one --hardware")
    build, plan, hw = _builder(args), planfile.load(args.fusion), hws[0]
    curves = []
    for ph in phases:
        if ph == "decode":
            curves.append(plot.sweep_data(build, plan, hw, ph, batches, one("--context", args.context,
                                                                            DEFAULT_CONTEXT)))
        else:
            xs = lengths["prefill"] if args.seq_len else parse_values("128,256,...,8192", "--seq-len")
            curves.append(plot.sweep_data(build, plan, hw, ph, xs, one("--batch", args.batch, 1)))
    name = models.get(args.model).name
    fig, _ = plot.sweep(curves, f"{name} on {hw.display_name}, fusion {plan.name}")
    marks = "; ".join(f"{c.phase}: {b} from {c.variable} {at:,}" for c in curves for b, at in c.crossovers)
    return f"wrote {plot.save(fig, path)}: {sum(len(c.xs) for c in curves)} points" + \
        (f"; crossovers {marks}" if marks else "; no block crosses to compute-bound in range") + "\n"


COMMANDS = {"sweep": cmd_sweep, "crossover": cmd_crossover, "report": cmd_report, "activations": cmd_activations, "compare": cmd_compare, "graph": cmd_graph,
            "models": cmd_models, "hardware": cmd_hardware, "fusions": cmd_fusions,
            "generate": cmd_generate, "memory": cmd_memory, "plot": cmd_plot}


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
