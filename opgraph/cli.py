"""The `opgraph` command line. This module is light on purpose: `opgraph --version` and `opgraph --help` answer
from it alone; every command loads the engine (opgraph.commands) only when it runs, so a script that calls the
command line many times does not pay for what it does not use."""

from __future__ import annotations

import argparse
import sys

from opgraph.errors import OpgraphError

USAGE_ERROR = 2
DESCRIPTION = ("Graph-based operator cost model for transformer inference: builds each layer as a DAG of ops, applies "
               "a fusion plan, and gives every op's FLOPs, bytes and roofline verdict (compute- or memory-bound) for "
               "prefill and decode.")

# What each command does, in a line: the top-level help, and each command's own (opgraph.commands).
SHORT = {
    'report': 'per-op roofline report for prefill and decode',
    'activations': 'the fate of every tensor under a fusion plan',
    'compare': 'compare fusion plans side by side',
    'graph': "draw a block's graph with its kernels",
    'sweep': 'time, intensity and verdict over many batch sizes and lengths',
    'crossover': 'where each op turns compute-bound',
    'generate': 'end-to-end time of a prompt and its generated tokens',
    'serve': 'latency and throughput of requests served in flight (continuous batching, chunked prefill)',
    'plan': 'rank the parallel layouts of a number of GPUs',
    'memory': 'weights, KV cache and peak activations against GPU memory',
    'validate': 'predicted against measured kernel times',
    'calibrate': 'fit the time model to measured kernel times',
    'bench': "measure a model's kernels on this machine's GPU",
    'models': 'list the model presets',
    'hardware': 'list the GPU specs with their ridge intensities',
    'fusions': 'list the fusion strategies',
}
PLOT_SHORT = {
    'roofline': 'the roofline with every op of each phase as a point',
    'breakdown': 'a stacked bar of model time per op for prefill and decode',
    'sweep': 'time against batch (decode) or seq_len (prefill), crossovers marked',
    'validate': 'predicted against measured kernel times',
    'pareto': 'serving plans: tokens/s per GPU against tokens/s per user, the Pareto front',
}
PLOT_HELP = "pictures: roofline, time breakdown, sweep, validate, pareto (PNG/SVG; needs matplotlib)"


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (naming the command they concern) and exit 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse's signature
        raise OpgraphError(f"{self.prog}: {message} (see '{self.prog} --help')")


def version() -> str | None:
    """The installed version, or None when running from a checkout that was never installed."""
    from importlib.metadata import PackageNotFoundError, version as installed
    try:
        return installed("opgraph")
    except PackageNotFoundError:  # pragma: no cover
        return None


def top_parser() -> _Parser:
    """The top level alone: the commands by name with their one-line help, and --version."""
    parser = _Parser(prog="opgraph", description=DESCRIPTION)
    if version() is not None:
        parser.add_argument("--version", action="version", version=f"opgraph {version()}")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "--version"):
        parser = top_parser()
        sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
        for name, short in SHORT.items():
            sub.add_parser(name, help=short)
        sub.add_parser("plot", help=PLOT_HELP)
        try:
            parser.parse_args(argv[:1])
        except OpgraphError as e:  # pragma: no cover - a lone option cannot be wrong here
            print(f"opgraph: error: {e}", file=sys.stderr)
            return USAGE_ERROR
        parser.print_help()  # no command given
        return USAGE_ERROR
    from opgraph import commands  # the engine: only for a command that runs
    return commands.main(argv)
