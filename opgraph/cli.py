"""The `opgraph` command line. User mistakes print one line and exit 2; never a traceback."""

from __future__ import annotations

import argparse
import json
import sys

import attrs
from tabulate import tabulate

import hardware
import models
from opgraph.cost import analyze
from opgraph.errors import OpgraphError
from opgraph.fusion import STRATEGIES, strategy
from opgraph.phase import PHASES, Phase
from opgraph.report import FORMATS, render, sig
from opgraph.tensor import dtype

USAGE_ERROR = 2
MODEL_DTYPES = ("bf16", "fp16", "fp32")


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (with the command they concern) and exit 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse's signature
        raise OpgraphError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _add_format(p: argparse.ArgumentParser, choices=FORMATS, default="table") -> None:
    p.add_argument("--format", default=default, metavar="FMT",
                   help=f"output format: {', '.join(choices)} (default: {default}); json and csv carry exact "
                        f"integers in FLOP, byte and second")


def _check_choice(what: str, value: str, valid) -> str:
    if value not in valid:
        raise OpgraphError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return value


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
    rep.add_argument("model", nargs="?", default=models.DEFAULT,
                     help=f"preset name (default: {models.DEFAULT}); see 'opgraph models'")
    rep.add_argument("--hardware", default=hardware.DEFAULT, metavar="NAME",
                     help=f"GPU name or path to a .toml spec file (default: {hardware.DEFAULT}); "
                          f"see 'opgraph hardware'")
    rep.add_argument("--phase", default="both", metavar="PHASE",
                     help="prefill, decode or both (default: both)")
    rep.add_argument("--batch", type=_int, default=32, help="sequences per step (default: 32)")
    rep.add_argument("--seq-len", type=_int, default=1024,
                     help="prefill: prompt tokens per sequence (default: 1024)")
    rep.add_argument("--context", type=_int, default=1024,
                     help="decode: tokens already in the KV cache; attention covers context+1 keys (default: 1024)")
    rep.add_argument("--fusion", default="fused", metavar="NAME",
                     help=f"fusion strategy: {', '.join(STRATEGIES)} (default: fused); see 'opgraph fusions'")
    rep.add_argument("--dtype", default=None, metavar="DTYPE",
                     help=f"model precision for weights, activations and KV cache: {', '.join(MODEL_DTYPES)} "
                          f"(default: the preset's, bf16)")
    _add_format(rep)

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


def cmd_report(args) -> str:
    _check_choice("format", args.format, FORMATS)
    phases = PHASES if args.phase == "both" else (_check_choice("phase", args.phase, (*PHASES, "both")),)
    cfg = models.get(args.model)
    if args.dtype is not None:
        cfg = attrs.evolve(cfg, dtype=dtype(_check_choice("dtype", args.dtype, MODEL_DTYPES)))
    hw = hardware.load(args.hardware)
    plan = strategy(args.fusion)
    built = {"prefill": lambda: Phase.prefill(args.batch, args.seq_len),
             "decode": lambda: Phase.decode(args.batch, args.context)}
    results = [analyze(cfg.build(built[ph]()), plan, hw) for ph in phases]
    return render(results, args.format)


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
    rows = [[r["name"], *(r.get(k, "-") for k in shown), f"{r['params']:,}", sig(r["weight_bytes"] / 1e9)]
            for r in recs]
    return tabulate(rows, ["model", *(k.replace("_", " ") for k in shown), "params", "weights GB"],
                    disable_numparse=True) + "\n"


def cmd_fusions(args) -> str:
    _check_choice("format", args.format, ("table", "json"))
    if args.format == "json":
        return json.dumps([{"name": p.name, "description": p.description,
                            "rules": [{"name": r.name, "producer": sorted(r.producer or []) or None,
                                       "consumer": sorted(r.consumer or []) or None,
                                       "single_consumer": r.single_consumer} for r in p.rules]}
                           for p in STRATEGIES.values()], indent=2) + "\n"
    rows = [[p.name, p.description, "\n".join(f"- {r.name}" for r in p.rules) or "-"] for p in STRATEGIES.values()]
    return tabulate(rows, ["strategy", "what it does", "rules"], maxcolwidths=[None, 50, 60]) + "\n"


COMMANDS = {"report": cmd_report, "models": cmd_models, "hardware": cmd_hardware, "fusions": cmd_fusions}


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
