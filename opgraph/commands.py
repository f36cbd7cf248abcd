"""The `opgraph` commands in full: argparse and dispatch. Each command resolves its options (opgraph.choices), calls
one analysis and renders its record (opgraph.render). Mistakes print one line and exit 2; never a traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opgraph import choices, hardware, models
from opgraph import runs
from opgraph.analysis import (activations, bench, calibrate, catalog, compare, crossover, generate, memory, report,
                              sweep, validate)
from opgraph.analysis import plan as plan_search
from opgraph.analysis import serve as serving
from opgraph.cli import PLOT_HELP, PLOT_SHORT, SHORT, USAGE_ERROR, _Parser, top_parser
from opgraph.errors import OpgraphError
from opgraph.files import planfile
from opgraph.render import formats, render

MODEL, GPU, SIZES, LISTS, PHASE1, FUSION, FUSIONS, PRECISION, BUILD, TIME, CALIBRATED, SEARCH = (
    "model", "gpu", "sizes", "lists", "phase1", "fusion", "fusions", "precision", "build", "time", "calibrated",
    "search")  # SEARCH: the command searches the parallel layouts itself, so it takes no --tp, --dp, --ep


def _int(text: str) -> int:
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 30:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text[:40]!r}")
    return int(text)


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text[:40]!r}") from None


def _options(p: argparse.ArgumentParser, groups: set[str], record: type, serving: bool = False) -> None:
    """Add the option groups a command uses (and no others: an option a command would ignore is not offered);
    `serving`: its fusion plan defaults to the engine's (a picture of serving plans)."""
    if MODEL in groups:
        p.add_argument("model", nargs="?", default=models.DEFAULT, help=f"preset name, a Hugging Face config.json, or "
                       f"file.py:NAME for a model written in Python (default: {models.DEFAULT}); see 'opgraph models'")
    if MODEL in groups and SEARCH not in groups:
        p.add_argument("--tp", type=_int, default=1, metavar="N", help="tensor parallelism: build one GPU's share of "
                       "a group of N GPUs, with its all-reduces (default: 1)")
        p.add_argument("--dp", type=_int, default=1, metavar="N", help="data parallelism: N replicas, each serving "
                       "its own --batch; the group is tp x N GPUs (default: 1)")
        p.add_argument("--ep", type=_int, default=1, metavar="N", help="expert parallelism for MoE models: the "
                       "experts spread over N GPUs (N = tp x dp) or N groups of GPUs: with --dp N (attention data "
                       "parallel, as DeepSeek serves V3) tokens go to them and back by all-to-alls; with --tp N "
                       "(vLLM's expert parallelism) each GPU runs the rows routed to its experts before TP's "
                       "all-reduce; with --tp a multiple of N, N groups of tp / N GPUs, each splitting its group's "
                       "experts by width (TensorRT-LLM's moe_tp x moe_ep, SGLang's --ep-size below --tp-size) "
                       "(default: 1)")
        p.add_argument("--expert-imbalance", type=_float, metavar="X", help="with --ep: the busiest GPU's expert "
                       "rows over the mean, at least 1 (default: the expected busiest GPU under uniform routing)")
        p.add_argument("--sp", action="store_true", help="sequence parallelism (with --tp): hidden states between "
                       "layers split along the tokens, norms and residual adds on 1/N of them, each all-reduce a "
                       "reduce-scatter and an all-gather")
        p.add_argument("--pp", type=_int, default=1, metavar="N", help="pipeline parallelism: the layers split into N "
                       "stages, each on its own --tp GPUs, passing the hidden states on (default: 1)")
        p.add_argument("--micro-batches", type=_int, metavar="M", help="with --pp: the batch runs as M micro-batches "
                       "(default: --pp of them, which keeps every stage busy in decode)")
        p.add_argument("--pp-layers", metavar="LIST", help="with --pp: layers per stage, e.g. 63,63 (default: as even "
                       "as can be, the first stages one more)")
    if GPU in groups:
        many = ", several separated by commas" if LISTS in groups else ""
        if record.__name__ == "Validation":  # serving rows carry their own GPUs
            p.add_argument("--hardware", metavar="NAME", help=f"GPU name or path to a .toml spec (default: "
                           f"{hardware.DEFAULT} for kernel rows; serving rows: each row's own GPU, or only NAME's rows "
                           f"if given); see 'opgraph hardware'")
        else:
            p.add_argument("--hardware", default=hardware.DEFAULT, metavar="NAME",
                           help=f"GPU name or path to a .toml spec{many} (default: {hardware.DEFAULT}); see "
                                f"'opgraph hardware'")
        if MODEL in groups and SEARCH not in groups:
            p.add_argument("--across-nodes", action="store_true", help="allow a --tp group larger than one node: "
                           "its collectives then run at the network's bandwidth (refused without this flag)")
    if SIZES in groups or LISTS in groups or PHASE1 in groups:
        lists = LISTS in groups
        kind, many = (str, ", a list: 1,8,64 or 1:64 or 1,2,4,...,512") if lists else (_int, "")
        p.add_argument("--batch", type=kind, default=None if lists else choices.DEFAULT_BATCH, help=(
            f"sequences per step{many} (default: {choices.DEFAULT_BATCHES if lists else choices.DEFAULT_BATCH})"))
        both = PHASE1 not in groups
        p.add_argument("--phase", default="both" if both else "prefill", metavar="PHASE",
                       help=f"prefill, decode{' or both' if both else ''} (default: {'both' if both else 'prefill'})")
        if "no_seq_len" not in groups:
            p.add_argument("--seq-len", type=kind, help=f"prefill: prompt tokens per sequence{many} (default: 1024)")
        p.add_argument("--context", type=kind, help=f"decode: tokens already in the KV cache; attention covers "
                                                    f"context+1 keys{many} (default: 1024)")
    if FUSION in groups:
        serving = serving or record.__name__ in ("Serving", "PlanSearch")  # the engine's own kernels when serving
        default = None if serving else planfile.DEFAULT
        says = {"PlanSearch": f"{planfile.DEFAULT}; with --concurrency the engine’s own kernels"}
        p.add_argument("--fusion", default=default, metavar="NAME", help=(
            f"fusion strategy: {', '.join(planfile.names())}, or a .toml/.json plan file (default: "
            f"{says.get(record.__name__, default or 'the engine’s own kernels, the plan named after --engine')})"))
    if FUSIONS in groups:
        p.add_argument("--fusion", default="unfused,flash,fused", metavar="A,B[,C...]", help=(
            "comma-separated strategies or plan files, the first the baseline (default: unfused,flash,fused)"))
    if PRECISION in groups:
        g = p.add_argument_group("precision")
        g.add_argument("--dtype", metavar="DTYPE", help=f"one dtype for weights, activations and KV cache: "
                       f"{', '.join(choices.STORAGE_DTYPES)} (default: the model's own)")
        for role, what in (("weight", "matrix weights (norm scales and biases stay at the activation dtype; fp8 "
                                      "and nvfp4 GEMMs quantize their input to it where the GPU multiplies it, W8A8 "
                                      "as vLLM's --quantization fp8, else run weight-only like int4 and int8)"),
                           ("act", "activations; also the precision matmuls compute at"), ("kv", "the KV cache")):
            g.add_argument(f"--{role}-dtype", metavar="DTYPE", help=f"dtype of {what} (default: --dtype)")
        g.add_argument("--state-dtype", metavar="DTYPE", help="dtype of the recurrent state of state-space and "
                       "linear-attention layers (Mamba-2's SSM state, Gated DeltaNet's) (default: what the config "
                       "asks for, else the activation dtype, as vLLM keeps it with mamba_ssm_cache_dtype=auto; "
                       "transformers keeps it in fp32: give fp32 for that; a serving command keeps it as --engine "
                       "does: SGLang fp32 unless the config's mamba_ssm_dtype says otherwise, TensorRT-LLM the "
                       "model's dtype whatever the config says). Their short conv's window stays at the "
                       "activation dtype, as the engines keep it")
        g.add_argument("--table-dtype", metavar="DTYPE", help="dtype of the embedding tables and lm_head (default: "
                       "the activation dtype when the weights are narrower, as quantized checkpoints keep them)")
        g.add_argument("--group-size", type=_int, metavar="N", help=(
            f"int4/int8 weights: elements per fp16 scale along each row (default: {choices.DEFAULT_GROUP})"))
    if BUILD in groups:
        p.add_argument("--experts-touched", type=_int, metavar="N", help=(
            "MoE models: routed experts whose weights one step reads (default: the expectation under uniform "
            "routing, E*(1-(1-k/E)^T) rounded up, for T tokens in the step)"))
        p.add_argument("--causal-skip", action="store_true", help=(
            "count only the unmasked part of prefill attention products, as causal FlashAttention computes them"))
    if TIME in groups or CALIBRATED in groups:
        p.add_argument("--calibration", metavar="FILE", help="the GPU's time model, a calibration file (default: the "
                       "shipped one for the GPU; see 'opgraph calibrate')")
    if TIME in groups:
        t = p.add_argument_group("time model")
        t.add_argument("--launch-us", type=_float, metavar="US", help=(
            "the expected time's fixed cost per kernel, in microseconds, for every kernel class (overrides the "
            "calibration's fitted latencies, or the spec's kernel_launch_us); the roofline, the ideal, has none"))
        t.add_argument("--overlap", type=_float, metavar="F", help=(
            "the expected time's overlap of compute and memory inside a kernel, for every class: 1.0 = the longer "
            "of the two, 0.0 = their sum (overrides the calibration's and the spec's); the roofline takes the longer"))
        t.add_argument("--marlin-moe", action="store_true", help=(
            "price MoE experts stored in MXFP4 (gpt-oss) as Marlin's kernel runs them, by the calibration's "
            "moe_marlin table (fitted on measured int4 Marlin calls), as vLLM does with VLLM_MXFP4_USE_MARLIN=1 "
            "(InferenceX's Hopper recipe); default: OpenAI's Triton kernels, vLLM's default on Hopper (moe_w4)"))
        t.add_argument("--comm-overlap", type=_float, metavar="F", help=(
            "share of each block's collective time hidden under its other kernels, as a second micro-batch or "
            "a fused GEMM-collective hides it: 0.0 = one after another, 1.0 = fully (default: 0.0)"))
    fmts = formats(record)
    if not fmts:  # a picture: its file name picks the format
        return
    default = "table" if "table" in fmts else fmts[0]
    exact = " and ".join(f for f in ("json", "csv") if f in fmts)
    p.add_argument("--format", default=default, metavar="FMT", help=f"output format: {', '.join(fmts)} (default: "
                   f"{default})" + (f"; {exact} carr{'y' if ' ' in exact else 'ies'} exact integers in FLOP and "
                                    f"byte, times in seconds" if exact else ""))


COMMANDS = {  # name: (record type, option groups, help, description, run)
    "report": (report.Report, {MODEL, GPU, SIZES, FUSION, PRECISION, BUILD, TIME}, SHORT['report'], "Per-op FLOPs, bytes, arithmetic intensity, bound and time for each phase, and "
               "whether the step fits in GPU memory. With no arguments: Llama-3-8B on an H100 SXM, batch 32, 1024 "
               "tokens, the 'fused' plan: the reference analysis.",
               lambda a: report.report(runs.build(a), runs.phases(a), choices.plan(a.fusion), runs.gpu(a))),
    "activations": (activations.Activations, {MODEL, SIZES, FUSION, PRECISION}, SHORT['activations'], "Every tensor the graph produces, with its shape, bytes and fate: WRITE "
                    "(materialized; read back by N other kernels), FUSED (kept on chip inside the named kernel) or "
                    "AVOIDED (never formed whole). Needs no GPU.",
                    lambda a: activations.activations(runs.models(a), choices.plan(a.fusion))),
    "compare": (compare.Comparisons, {MODEL, GPU, SIZES, FUSIONS, PRECISION, BUILD, TIME}, SHORT['compare'], "Bytes, time and verdict under each plan; the ops whose verdict flips; the tensors whose "
                "fate changes; and what each plan saves against the first.",
                lambda a: compare.compare_phases(runs.models(a), choices.plans(a.fusion), runs.gpu(a))),
    "graph": (activations.BlockView, {MODEL, PHASE1, FUSION, PRECISION}, SHORT['graph'],
              "One block's graph under a fusion plan as Graphviz DOT or Mermaid: kernels are clusters, materialized "
              "edges solid and labelled with bytes, fused edges dashed. Render DOT with: dot -Tpng -o g.png g.dot",
              lambda a: activations.block_view(runs.one_phase(a), choices.plan(a.fusion), a.block)),
    "sweep": (sweep.SweepReport, {MODEL, GPU, LISTS, FUSION, PRECISION, BUILD, TIME}, SHORT['sweep'], "Every combination of the given batches, lengths and GPUs, "
              "without rebuilding the graph per point (exactly the numbers 'report' gives). Lists are comma-separated "
              "values, ranges START:STOP[:STEP], or progressions like 1,2,4,...,512.", runs.sweep_report),
    "crossover": (crossover.CrossoverReport, {MODEL, GPU, SIZES, "no_seq_len", FUSION, PRECISION, BUILD, TIME},
                  SHORT['crossover'], "For each op and block: the smallest batch (decode, at "
                  "--context) or seq_len (prefill, at --batch) at which it is compute-bound, 'never' if none up to "
                  "2^20; solved exactly where FLOPs and bytes are linear in it, searched otherwise, checked either way. "
                  "Also the decode context at which attention's time overtakes the FFN's (at --batch).", runs.crossover_report),
    "generate": (generate.Generation, {MODEL, GPU, FUSION, PRECISION, BUILD, TIME}, SHORT['generate'], "Time to first token (prefill of the prompt, lm_head on the last position "
                 "only); then every decode step at its own context P, P+1, ..., P+G-2, summed; the mean, first and "
                 "last step, total time, tokens/s, and whether it fits in GPU memory.", runs.generation),
    "serve": (serving.Serving, {MODEL, GPU, FUSION, PRECISION, BUILD, TIME}, SHORT['serve'], "Requests served as "
              "an engine batches them in flight: each iteration runs every running request's next decode token or "
              "prompt chunk, then admits new requests while the token budget and the running limit allow (the "
              "scheduler of --engine: vLLM's, SGLang's or TensorRT-LLM's), and is priced from that mix (each decode at its own context, each chunk over the keys it "
              "attends to). A closed loop at --concurrency (a finished request is replaced at once), measured after a "
              "warm-up: TTFT, TPOT, inter-token and end-to-end latency (mean, p50, p90, p99), output tokens/s in all, "
              "per GPU and per user, KV-cache use, and the time by kernel class. The kernels are the engine's own (its "
              "fusion plan, e.g. vllm; see 'opgraph fusions'); any plan that keeps attention apart may be given.",
              runs.serving_run),
    "plan": (plan_search.PlanSearch, {MODEL, GPU, FUSION, PRECISION, BUILD, TIME, SEARCH}, SHORT['plan'], "Tries every way to lay the model out over --gpus GPUs (tensor "
             "parallel x pipeline stages x data-parallel replicas, and for MoE models experts spread over each "
             "stage's replicas, over its tensor-parallel GPUs, or over groups of them: tp 8 x ep 2) at every "
             "batch per replica in --batch that fits in memory, for a --prompt of P tokens and --output of G; "
             "drops what does not fit or misses --max-tpot / --max-ttft, and ranks the rest by output tokens/s per "
             "GPU, each with its TTFT, TPOT, memory per GPU and the op that bounds it. Sequence parallelism and "
             "--comm-overlap are not searched (give --comm-overlap to apply it to every candidate).", runs.planning),
    "memory": (memory.MemoryReport, {MODEL, GPU, SIZES, FUSION, PRECISION}, SHORT['memory'], "Per phase: weight bytes, KV-cache bytes (decode: after the step, context+1 "
               "tokens), the peak of activations alive at once under the fusion plan, their total against the GPU's "
               "capacity, and the largest batch that fits at the given seq_len (prefill) or context (decode).",
               lambda a: memory.memory(runs.build(a), runs.phases(a), choices.plan(a.fusion), runs.gpu(a))),
    "validate": (validate.Validation, {GPU, CALIBRATED}, SHORT['validate'], "Reads measured kernel "
                 "timings (a CSV, or .csv.gz: one row a kernel; columns class, dtype, shape, time_us, source; see the "
                 "README; or a PyTorch profiler trace, .json or .json.gz, recorded with shapes), rebuilds each kernel as an opgraph graph, predicts its time, and prints the error "
                 "distribution by class and by regime (median and p90 of |predicted - measured| / measured, signed "
                 "bias) and the largest errors; --format json or csv gives every row.",
                 runs.validation),
    "calibrate": (calibrate.Calibration, {GPU}, SHORT['calibrate'], "Fits each kernel "
                  "class's latency, compute and memory efficiency, overlap (and decode attention's cost per sequence "
                  "x KV head; a GEMM row tile) to measured kernels, robustly in log space, holding out a share of the "
                  "rows; prints the held-out error before and after, and writes a calibration file to --out. Needs "
                  'scipy: pip install "opgraph[fit]".', runs.calibration),
    "bench": (bench.Bench, {MODEL, PRECISION, BUILD}, SHORT['bench'], "Times "
              "the kernels the model runs (GEMMs, attention, norms, SwiGLU, embeddings; its shapes, at each --batch "
              "and length) with torch on an NVIDIA GPU, warmed up, captured in a CUDA graph and replayed between CUDA "
              "events, and writes the measurement CSV that 'validate' and 'calibrate' read. Needs torch 2.5+ and a "
              'GPU: pip install "opgraph[gpu]". --dry-run lists the kernels without measuring.', runs.benchmark),
    "models": (catalog.ModelCatalog, set(), SHORT['models'], "The presets with their shapes and exact "
               "parameter counts.", lambda a: catalog.model_catalog([models.get(n) for n in models.names()])),
    "hardware": (catalog.HardwareCatalog, set(), SHORT['hardware'], "Peak bf16 (fp16 "
                 "without bf16) matrix rate, bandwidth, capacity and ridge intensity (the FLOP/byte above which a "
                 "matmul is compute-bound).", lambda a: catalog.HardwareCatalog(tuple(map(hardware.load, hardware.names())))),
    "fusions": (catalog.FusionCatalog, set(), SHORT['fusions'], "The shipped fusion strategies and the "
                "rules that make them.", lambda a: catalog.FusionCatalog(tuple(map(planfile.load, planfile.names())))),
}


PLOTS = {"roofline": (PLOT_SHORT['roofline'], "log arithmetic intensity (FLOP/byte) "
                      "against attainable FLOP/s (the op's FLOPs over its time), the matrix and vector roofs, the ridge "
                      "point marked, each point labelled"),
         "breakdown": (PLOT_SHORT['breakdown'], "each op's time over all layers, "
                       "ops under 1% of every phase as 'other'"),
         "sweep": (PLOT_SHORT['sweep'], "one panel per phase, log-log: "
                   "the model's time and each block's over all its repeats; decode varies --batch (a list, default "
                   "1,2,4,...,512) at one --context (default 1024), prefill varies --seq-len (a list, default "
                   "128,256,...,8192) at one --batch (default 1)"),
         "pareto": (PLOT_SHORT['pareto'], "every candidate of 'opgraph plan --concurrency' (its options): output "
                    "tokens/s per GPU against tokens/s per user, one colour a layout, the Pareto front joined, "
                    "candidates within --max-ttft / --max-tpot filled, the best one starred"),
         "validate": (PLOT_SHORT['validate'], "log-log, one colour a kernel class, the roofline and "
                      "(where the GPU has a calibration) the expected time, against each measured kernel (see 'opgraph "
                      "validate')")}


def _written(text: str, out: str | None) -> str:
    """The output itself, or, with --out FILE, a line saying where it was written."""
    if out is None:
        return text
    path = Path(out)
    if path.is_dir() or not path.parent.is_dir():
        raise OpgraphError(f"--out {out}: " + ("is a folder; give a file name" if path.is_dir() else
                                               f"the folder {str(path.parent)!r} does not exist"))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise OpgraphError(f"--out {out}: cannot write it: {e.strerror or e}") from None
    return f"wrote {out} ({len(text.encode()):,} bytes)\n"


def _draft_options(p, plan: bool = False) -> None:
    """Speculative decoding's options: of `opgraph serve`, and of `opgraph plan --concurrency` (each layout served
    with and without the draft)."""
    p.add_argument("--draft", metavar="MODEL", help=("with --concurrency or --rate: each layout without pipeline "
                   "stages also served with " if plan else "") + "speculative decoding with this draft model (a "
                   "preset, config.json or FILE.py:NAME), built with the same options as the target; or a head made "
                   "of the target that joins the token's embedding with the target's hidden state first: mtp "
                   "(one more layer of its last kind, the multi-token-prediction module of DeepSeek-V3, GLM-4.5, "
                   "Qwen3-Next; a note says when the checkpoint has none) or eagle (one dense decoder layer, "
                   "EAGLE), sharing its embedding and head")
    p.add_argument("--draft-tokens", type=_int, default=3, metavar="K", help="tokens the draft proposes a step "
                   "(default: 3)")
    p.add_argument("--acceptance", metavar="A[,A...]", help="the chance each draft token is accepted once those "
                   "before it were: one figure, or one per draft token (an assumption: say what you measured)")


def _memory_option(p, scope: str = "") -> None:
    """--memory-fraction: the engine's own memory setting (serve, plan)."""
    p.add_argument("--memory-fraction", type=_float, metavar="F", help=scope + "the engine's memory setting: the "
                   "share of GPU memory vLLM (gpu_memory_utilization) and SGLang (mem_fraction_static) take for "
                   "weights, activations and KV cache; TensorRT-LLM's free_gpu_memory_fraction, the share of what "
                   "the weights and activations leave that its KV cache takes (default: vLLM 0.9, SGLang from its "
                   "reserve formula, TensorRT-LLM 0.9)")


def _chunking_option(p, scope: str = "") -> None:
    """--chunked-prefill / --no-chunked-prefill: whether the engine runs a long prompt in chunks (serve, plan)."""
    p.add_argument("--chunked-prefill", action=argparse.BooleanOptionalAction, help=scope + "run a prompt longer "
                   "than an iteration's room in chunks beside the decodes, or (--no-chunked-prefill) only whole, "
                   "waiting for room (default: the engine's: vLLM and SGLang chunk; TensorRT-LLM does not, its "
                   "enable_chunked_prefill False, and with it cuts chunks in units of its KV block, 32 tokens, first "
                   "come first served; SGLang always chunks)")


def _host_options(p, scope: str = "") -> None:
    """--overhead-us, --overhead-per-request-us, --host-launch-us and --scheduling: an engine's own time per iteration
    (and per request it runs), its time to launch a prompt's iteration, and how they meet the GPU's (serve, plan)."""
    own = ", ".join(f"{name} {a * 1e6:g}" + ("" if a or b else " (none fitted)")
                    for name, (a, b, _) in serving.HOST_TIME.items())
    each = ", ".join(f"{name} {b * 1e6:g}" for name, (_, b, _) in serving.HOST_TIME.items())
    launch = ", ".join(f"{name} {s * 1e6:g}" for name, (s, _) in serving.HOST_LAUNCH.items())
    p.add_argument("--overhead-us", type=_float, metavar="US", help=scope + "the engine's own (host) time per "
                   "iteration: scheduling, sampling, input preparation (default: the engine's, fitted on B200 and "
                   f"GB200 serving rows: {own}; see docs/serving.md); hidden behind each iteration's GPU time where "
                   "shorter, or added to it with --scheduling sync")
    p.add_argument("--overhead-per-request-us", type=_float, metavar="US", help=scope + "the engine's own (host) "
                   "time per iteration for each request the iteration runs (its bookkeeping, sampling, output), on "
                   f"top of --overhead-us and met with the GPU's the same way (default: the engine's, fitted with it: "
                   f"{each})")
    p.add_argument("--host-launch-us", type=_float, metavar="US", help=scope + "the host's time to launch one kernel "
                   "of an iteration that carries prompt tokens, which engines run kernel by kernel where decode-only "
                   "iterations replay a captured CUDA graph: such an iteration takes at least its kernels times this "
                   f"(default: the engine's, fitted on B200 and GB200 serving rows: {launch}; 0 turns it off; see "
                   "docs/serving.md)")
    p.add_argument("--scheduling", choices=("async", "sync"), help=scope + "async: the host prepares the next "
                   "iteration while the GPU runs this one, so --overhead-us costs only where it is longer than the "
                   "GPU's time (every engine's default now: vLLM's async scheduling from 0.14.0, SGLang's and "
                   "TensorRT-LLM's overlap schedulers), and vLLM and SGLang build the next iteration before a "
                   "request arriving now can join it (it joins the one after); sync: host, then GPU, the two added "
                   "(vLLM before 0.14, --no-async-scheduling; --disable-overlap-schedule; disable_overlap_scheduler)")


def _plan_options(p) -> None:
    """The options of `opgraph plan`, also those of `opgraph plot pareto`."""
    p.add_argument("--gpus", type=_int, required=True, metavar="N", help="GPUs to lay the model out over")
    p.add_argument("--prompt", type=_int, default=plan_search.DEFAULT_PROMPT, metavar="P",
                   help=f"prompt tokens per sequence (default: {plan_search.DEFAULT_PROMPT})")
    p.add_argument("--output", type=_int, default=plan_search.DEFAULT_OUTPUT, metavar="G",
                   help=f"output tokens per sequence (default: {plan_search.DEFAULT_OUTPUT})")
    p.add_argument("--batch", metavar="LIST", help="sequences per replica to try, a list: 1,8,64 or 1:64 or "
                   "1,2,4,...,512 (default: 1,2,4,...,512)")
    p.add_argument("--max-tpot", type=_float, metavar="MS", help="drop candidates whose mean time per output "
                   "token exceeds this many milliseconds")
    p.add_argument("--max-ttft", type=_float, metavar="MS", help="drop candidates whose time to first token "
                   "exceeds this many milliseconds")
    p.add_argument("--max-tpot-p90", type=_float, metavar="MS", help="with --concurrency or --rate: the best "
                   "candidate's 90th percentile of TPOT (over requests) must not exceed this many milliseconds; with "
                   "--concurrency the closed form gives means, so candidates are run event by event (as 'opgraph "
                   "serve'), best first, until one is within (with --rate each is an event run already)")
    p.add_argument("--max-ttft-p90", type=_float, metavar="MS", help="with --concurrency or --rate: the same for the "
                   "90th percentile of TTFT")
    p.add_argument("--request-latency-ms", type=_float, metavar="MS", help="with --concurrency or --rate: each "
                   "request's time outside the engine (the server's HTTP handling, tokenization and streaming, and "
                   "the client's), added to every candidate's TTFT before --max-ttft and --max-ttft-p90 judge it "
                   "(default: 0)")
    _host_options(p, "with --concurrency or --rate: ")
    _memory_option(p, "with --concurrency or --rate: ")
    _chunking_option(p, "with --concurrency or --rate: ")
    p.add_argument("--top", type=_int, default=10, metavar="N", help="candidates to list in the table "
                   "(default: 10; json and csv list all)")
    p.add_argument("--concurrency", metavar="LIST", help="plan for serving: requests in flight per replica to "
                   "try, a list (1,2,4,...,512); each layout is served as --engine runs it (continuous "
                   "batching, chunked prefill), ranked by tokens/s per GPU with the Pareto front against "
                   "tokens/s per user; --max-ttft and --max-tpot limit the means (default: a static batch, "
                   "--batch)")
    p.add_argument("--rate", metavar="LIST", help="plan for serving open loops: requests arriving a second in all, "
                   "over the --gpus GPUs, to try, a list (0.5,1,2,4); each layout's data-parallel replicas share them "
                   "evenly, each served as 'opgraph serve --rate' serves it (Poisson arrivals, its event run: means "
                   "and p90s); a rate a layout cannot keep up with is no candidate; tokens/s per GPU are the rate x "
                   "--output over the GPUs")
    p.add_argument("--engine", default="vllm", metavar="NAME", help="with --concurrency or --rate: the serving engine "
                   "whose scheduler, defaults and kernels are modelled: vllm, sglang, trtllm (NVIDIA GPUs only) "
                   "(default: vllm)")
    p.add_argument("--max-batch-tokens", metavar="LIST", help="with --concurrency or --rate: the engine's token "
                   "budget an iteration (its chunked-prefill size) to try, a list (2048,8192); each layout is served "
                   "under each (default: the engine's own, said in the output; its running limit is not searched: in a "
                   "closed loop it only caps --concurrency)")
    _draft_options(p, plan=True)
    p.add_argument("--disaggregated", action="store_true", help="with --concurrency or --rate: also every split of "
                   "the GPUs into X prefill and Y decode workers (xPyD), each worker a layout within a node, at each "
                   "concurrency per decode replica (or rate), the KV cache moved between the pools (as 'serve "
                   "--disaggregate')")
    p.add_argument("--decode-hardware", metavar="NAME", help="with --disaggregated: the decode workers' GPU (the "
                   "prefill workers' and the aggregated layouts' is --hardware); the KV cache then crosses the network "
                   "(default: --hardware)")


def build_parser() -> argparse.ArgumentParser:
    parser = top_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (record, groups, short, long, run) in COMMANDS.items():
        p = sub.add_parser(name, help=short, description=long)
        _options(p, groups, record)
        if name in ("validate", "calibrate"):
            p.add_argument("measurements", metavar="MEASURED.csv", help="measured kernel timings: a CSV (.csv, "
                           ".csv.gz) or a PyTorch profiler trace (.json, .json.gz)" + (
                               "; or measured serving results, a CSV whose header names ttft_ms and tpot_ms (see "
                               "docs/serving-checks.md)" if name == "validate" else ""))
        if name == "validate":
            p.add_argument("--protocol", metavar="NAME", help="serving rows: how each was benchmarked: steady (the "
                           "steady state of an endless closed loop at its lengths), wave (C requests sent at once, "
                           "every one counted), inferencemax (10 x C requests, the first C at once, every one "
                           "counted, lengths from 0.8 of the row's), sa-bench (the same with 5 x C requests: "
                           "srt-slurm's, which ran InferenceX's disaggregated runs) or aiperf (20 x C requests at the "
                           "row's lengths, the first C at once, every one counted: the benchmark aiconfigurator "
                           "generates), for every row (default: each row's own, its client column; steady where it "
                           "names none); a disaggregated row's (decode_workers and prefill_workers columns) C is "
                           "each decode replica's")
            p.add_argument("--limit", type=_int, metavar="N", help="serving rows: at most N rows per engine, GPU and "
                           "model (default: all; each row is a serving run of seconds)")
            p.add_argument("--request-latency-ms", type=_float, metavar="MS", help="serving rows: each request's time "
                           "outside the engine (the server's HTTP handling, tokenization and streaming), added to every "
                           "row's predicted TTFT, as 'opgraph serve --request-latency-ms' adds it (default: 0)")
        if name == "calibrate":
            p.add_argument("-o", "--out", required=True, metavar="FILE", help="the calibration file to write (.toml)")
            p.add_argument("--holdout", type=_float, default=0.2, help="share of rows held out (default: 0.2)")
            p.add_argument("--seed", type=_int, default=0, help="which rows are held out (default: 0)")
            p.add_argument("--source", help="where the measurements come from, written into the file (default: "
                           "the file's name)")
            p.add_argument("--exp-rate", type=_float, metavar="PER_S", help="exponentials per second on the "
                           "special-function units, counted apart from FLOPs (default: not counted)")
            p.add_argument("--by-rows", action="append", metavar="CLASS=N,N,...", help="a GEMM class fitted as one "
                           "table per range of rows (m), split at these bounds: where the library dispatches "
                           "another kernel (vLLM's CUTLASS fp8 GEMMs on Hopper: gemm_fp8=16,64,128); repeat for "
                           "more classes (default: one table a class)")
        if name == "bench":
            p.add_argument("--batch", help="batches, a list (default: 1,8,32,128)")
            p.add_argument("--lengths", help="prompt lengths (prefill) and contexts (decode), a list "
                           "(default: 128,1024,4096)")
            p.add_argument("-o", "--out", metavar="FILE", help="the measurement CSV to write")
            p.add_argument("--repeats", type=_int, default=5,
                           help="timed replays per kernel, the median kept (default: 5)")
            p.add_argument("--calls", type=_int, default=20,
                           help="calls captured in the CUDA graph each replay runs (default: 20)")
            p.add_argument("--dry-run", action="store_true", help="list the kernels; measure nothing")
        if name == "graph":
            p.add_argument("--block", metavar="NAME", help="which block (default: the first, the layer)")
        if name == "plan":
            _plan_options(p)
        if name == "serve":
            load = p.add_mutually_exclusive_group(required=True)
            load.add_argument("--concurrency", type=_int, metavar="C",
                              help="requests in flight per replica (a closed loop: a finished one is replaced at once)")
            load.add_argument("--rate", type=_float, metavar="R", help="requests arriving a second per replica (an "
                              "open loop: Poisson arrivals, seeded by --seed; with --disaggregate, in all)")
            p.add_argument("--prompt", required=True, metavar="P", help="prompt tokens per request: a number, or a "
                           "range LOW:HIGH each request draws from uniformly")
            p.add_argument("--output", required=True, metavar="G", help="output tokens per request: a number, or a "
                           "range LOW:HIGH")
            p.add_argument("--requests", type=_int, metavar="N", help="with --concurrency: run as a benchmark client "
                           "does (vLLM's bench serve --num-prompts N --max-concurrency C): N requests in all, the first "
                           "C sent at once, every one counted, first wave and drain included (default: the steady "
                           "state of an endless loop, after a warm-up)")
            p.add_argument("--queue", action="store_true", help="with --concurrency: requests beyond what the engine "
                           "runs at once (--max-seqs) or what its KV cache holds wait for room, first come first "
                           "served, as engines queue them, and their TTFT includes the wait (default: such a "
                           "concurrency is refused, saying how many fit)")
            p.add_argument("--seed", type=_int, default=0, help="of the arrivals and the lengths drawn (default: 0)")
            p.add_argument("--prefix", type=_int, default=0, metavar="N", help="tokens at the start of every prompt "
                           "shared and already cached (prefix caching: whole KV blocks, held once, not prefilled "
                           "again; with --disaggregate cached on every worker, and only the other tokens' KV cache "
                           "moves) (default: 0)")
            p.add_argument("--prefix-hit", type=_float, default=0.0, metavar="H", help="instead of --prefix: the "
                           "share of each prompt's tokens the engine finds cached (prefix caching's hit rate, 0 to 1), "
                           "the request's own (a conversation's earlier turns: held with it, not shared): whole KV "
                           "blocks of its first H x P tokens, not prefilled again, its last token always computed "
                           "(default: 0)")
            _draft_options(p)
            p.add_argument("--disaggregate", metavar="XpYd", help="X prefill and Y decode workers apart (e.g. "
                           "1p2d): prompts on the prefill workers, decoding on the decode workers, the KV cache moved "
                           "between them over NVLink or the network; a closed loop at --concurrency per decode "
                           "replica, in closed form (means)")
            p.add_argument("--prefill", metavar="LAYOUT", help="with --disaggregate: each prefill worker's layout, "
                           "tp=N,dp=N,ep=N,pp=N, and gpu=NAME for a GPU other than --hardware (default: --tp, --dp, "
                           "--ep, --pp)")
            p.add_argument("--decode", metavar="LAYOUT", help="with --disaggregate: each decode worker's layout, "
                           "e.g. dp=16,ep=16, tp=4,pp=2 or tp=8,gpu=h200 (default: --tp, --dp, --ep, --pp)")
            p.add_argument("--engine", default="vllm", metavar="NAME", help="the serving engine whose scheduler, "
                           "defaults and kernels (its fusion plan) are modelled: vllm (decodes first, prompt chunks mixed "
                           "in), sglang (prefill first, apart), trtllm (decodes first, prompts whole unless "
                           "--chunked-prefill; NVIDIA GPUs only) "
                           "(default: vllm)")
            p.add_argument("--max-batch-tokens", type=_int, metavar="N", help="tokens one iteration may process, the "
                           "chunked-prefill budget (default: the engine's for this GPU: vLLM 8,192 at 70 GiB or more, "
                           "else 2,048; SGLang 8,192 below 160 GiB, else 16,384; TensorRT-LLM 8,192)")
            p.add_argument("--chunk", type=_int, metavar="TOKENS", help="--engine vllm: one prompt's tokens an "
                           "iteration at most, within --max-batch-tokens (vLLM's --long-prefill-token-threshold), so "
                           "a long prompt runs in chunks of this size beside the decodes (default: none, the budget "
                           "alone; SGLang's chunk is its budget, --max-batch-tokens; TensorRT-LLM's chunks take the "
                           "budget left, with --chunked-prefill)")
            _chunking_option(p)
            p.add_argument("--max-seqs", type=_int, metavar="N", help="requests running at once (default: the "
                           "engine's: vLLM 1,024 at 70 GiB or more, else 256; SGLang and TensorRT-LLM 2,048)")
            _memory_option(p)
            p.add_argument("--batch-wait", metavar="RATIO,ITERS", help="TensorRT-LLM's batch waiting "
                           "(batch_wait_max_tokens_ratio, batch_wait_timeout_iters): while requests decode, new "
                           "prompts wait until the iteration's tokens would come to RATIO of the token budget or until "
                           "they have waited ITERS iterations, e.g. 0.9,20 (default: off, as TensorRT-LLM's; "
                           "--engine trtllm only)")
            _host_options(p)
            p.add_argument("--request-latency-ms", type=_float, metavar="MS", help="each request's time outside the "
                           "engine: the server's HTTP handling, tokenization and streaming, and the client's; added to "
                           "its TTFT and end-to-end latency, not to TPOT (default: 0, the engine's times alone; see "
                           "docs/serving-checks.md for figures measured campaigns show)")
        if name == "generate":
            p.add_argument("--batch", type=_int, default=choices.DEFAULT_BATCH, help="sequences (default: 32)")
            p.add_argument("--prompt", type=_int, required=True, metavar="P", help="prompt tokens per sequence")
            p.add_argument("--output", type=_int, required=True, metavar="G",
                           help="output tokens per sequence, the first of them from prefill")
        if ("html" in formats(record) or name == "plan") and name not in ("calibrate", "bench"):  # those have own --out
            p.add_argument("-o", "--out", metavar="FILE",
                           help="write the output to FILE instead of standard output (an HTML page is one "
                           "self-contained file)")
            p.set_defaults(run=lambda a, run=run: _written(render(run(a), a.format), a.out), parser=p)
        else:
            p.set_defaults(run=lambda a, run=run: render(run(a), a.format), parser=p)
    plots = sub.add_parser("plot", help=PLOT_HELP,
                           description='A picture to --out (PNG or SVG by its suffix). Needs matplotlib: pip install '
                                       '"opgraph[plot]".')
    kinds = plots.add_subparsers(dest="plot", metavar="PLOT", parser_class=_Parser, required=True)
    for name, (short, long) in PLOTS.items():
        p = kinds.add_parser(name, help=short, description=f"{short}: {long}")
        if name == "pareto":
            _options(p, {MODEL, GPU, FUSION, PRECISION, BUILD, TIME, SEARCH}, type(None), serving=True)
            _plan_options(p)
        elif name == "validate":
            _options(p, {GPU, CALIBRATED}, type(None))
            p.add_argument("measurements", metavar="MEASURED.csv", help="measured kernel timings: a CSV (.csv, .csv.gz) or a PyTorch profiler trace (.json, .json.gz)")
        else:
            _options(p, {MODEL, GPU, FUSION, PRECISION, BUILD, TIME, LISTS if name == "sweep" else SIZES}, type(None))
        p.add_argument("-o", "--out", required=True, metavar="FILE", help="the picture to write: FILE.png or FILE.svg")
        p.set_defaults(run=runs.picture, parser=p)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the command they were given to, not by the top level
            (getattr(args, "parser", None) or parser).error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command is None:
            parser.print_help()
            return USAGE_ERROR
        sys.stdout.write(args.run(args))
    except OpgraphError as e:
        print(f"opgraph: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except BrokenPipeError:  # `opgraph report | head` is fine
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
