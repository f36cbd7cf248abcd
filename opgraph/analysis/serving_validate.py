"""Predicted against measured serving: `opgraph validate SERVING.csv` (issue 17 §7).

Each measured row (opgraph.files.serving_measurements) is served by `opgraph serve` as it was measured: its preset
at its parallel layout on its GPU (tensor parallelism; expert parallelism over the tp x dp GPUs; data-parallel
replicas each with its share of the concurrency), its GEMMs' storage (fp8 and fp8_block as fp8 weights and
activations, the KV cache in bf16 unless its kv_dtype column says fp8; other labels as the resolver maps them), its
engine's scheduler, defaults and kernels (its fusion plan; MXFP4 experts as Marlin runs them where its moe_kernel
column says so; its token budget where its max_batch_tokens column gives one; TensorRT-LLM's batch waiting where its
batch_wait columns give it; its memory setting where its memory_fraction column gives one; its scheduling, async or
sync, where its scheduling column says; its chunked prefill, on or off, where its chunked_prefill column says), at
its concurrency,
prompt and output lengths, under a benchmark protocol: the row's own (its client column, steady where it names none)
unless one is given for every row:

- `steady`: the steady state of an endless closed loop at the row's fixed lengths (after a warm-up);
- `wave`: one wave of C requests sent at once, every one counted (a benchmark client whose request count equals its
  concurrency, e.g. `--num-prompts C --max-concurrency C`);
- `inferencemax`: InferenceMAX's client, as its README runs vLLM's benchmark_serving.py: 10 x C requests, the first C
  sent at once, every one counted, lengths drawn uniformly from 0.8 of the row's to the row's own
  (--random-range-ratio 0.8 --num-prompts CONC*10 --max-concurrency CONC --request-rate inf --ignore-eos);
- `aiperf`: the benchmark aiconfigurator generates for the deployments it configures (NVIDIA's aiperf, as
  src/aiconfigurator/generator/sflow.py and backend_templates/benchmark/bench_run.sh.j2 write it: `aiperf profile
  --concurrency C --request-count 20*C --warmup-request-count C`, lengths fixed, `ignore_eos`): 20 x C requests at
  the row's own lengths, the first C sent at once (aiperf waits for every warm-up response before it profiles, its
  docs/tutorials/warmup.md says, so the measured phase starts empty), every one counted.

An engine without chunked prefill (TensorRT-LLM) gets a token budget of at least the prompt plus the other
concurrency - 1 requests' decodes, so that a prompt fits beside them, as a benchmark of such prompts must be
configured. Nothing is fitted here. A row's error is (predicted - measured) / measured: negative means predicted too
fast. Rows opgraph does not model yet (experts split across data-parallel replicas, GEMM storage it cannot build,
flagged rows) and rows a preset or GPU does not name are skipped and counted by reason, never silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import attrs
import numpy as np

from opgraph.analysis.serve import ENGINES, Engine, length_range, serve, with_chunking, with_limits
from opgraph.analysis.validate import Stats
from opgraph.core.tensor import BF16, FP8, FP8_BLOCK128, FP8_TENSOR, Precision
from opgraph.errors import OpgraphError
from opgraph.files import planfile
from opgraph.files.serving_measurements import CLIENTS, ServingMeasurement
from opgraph.pricing.hardware import Hardware
from opgraph.pricing.kinds.moe import marlin

# A row's model builder (phase -> one GPU's model) and GPU, or an OpgraphError saying why it has none
# (opgraph.choices.serving_row: the zoo of presets and GPUs lives above this layer)
Resolve = Callable[[ServingMeasurement], tuple[Callable, Hardware]]

PROTOCOLS = CLIENTS  # the benchmark clients a row may name, each served as load() says
OWN = "each row's own client"  # validate_serving's protocol without one given: own_client(row) for each row
AIPERF_ROUNDS = 20  # aiconfigurator's MULTI_ROUND default: requests = 20 x the concurrency
# srt-slurm's sa-bench: num_prompts = concurrency x 5 (src/srtctl/benchmarks/scripts/sa-bench/bench.sh,
# github.com/ishandhanani/srt-slurm)
SA_BENCH_ROUNDS = 5
ROUNDS = {"inferencemax": 10, "sa-bench": SA_BENCH_ROUNDS, "aiperf": AIPERF_ROUNDS, "wave": 1}
DRAWN = ("inferencemax", "sa-bench")  # the clients that draw lengths from 0.8 of the row's to the row's own


@attrs.frozen
class Client:
    """How a row's benchmark was run, where a fit says more than its protocol: each request's time outside the
    engine too (serve's request_latency_s)."""

    protocol: str
    request_latency_s: float = 0.0

    @classmethod
    def of(cls, given: "str | Client") -> "Client":
        """A Client from a protocol's name, or the Client given."""
        return given if isinstance(given, Client) else cls(given)


def serving(row: ServingMeasurement) -> str:
    """How the row was served: aggregated (one engine does prefill and decode) or disaggregated."""
    return "disaggregated" if row.disaggregated else "aggregated"


def own_client(row: ServingMeasurement) -> str:
    """The benchmark client a row names (its client column), steady where it names none."""
    return row.client or "steady"


@attrs.frozen
class ServingPrediction:
    row: ServingMeasurement
    ttft_s: float
    tpot_s: float
    protocol: str = "steady"  # the benchmark client it was served under

    @property
    def ttft_error(self) -> float:
        return (self.ttft_s - self.row.ttft_s) / self.row.ttft_s

    @property
    def tpot_error(self) -> float:
        return (self.tpot_s - self.row.tpot_s) / self.row.tpot_s


@attrs.frozen
class ServingValidation:
    """`opgraph validate` of serving rows: each predicted row, the skipped ones by reason, errors by group."""

    source: str
    protocol: str
    predictions: tuple[ServingPrediction, ...]
    skipped: tuple[tuple[str, int], ...]  # (reason, rows), most first
    rows: int  # rows in the file
    considered: int  # of them, those of the GPU asked for (all, without one)
    gpu: str | None = None
    request_latency_s: float = 0.0  # each request's time outside the engine, given for every row

    def clients(self) -> dict[str, int]:
        """Rows predicted under each benchmark client, most first."""
        return dict(Counter(p.protocol for p in self.predictions).most_common())

    def groups(self) -> dict[tuple[str, str, str, str], list[ServingPrediction]]:
        """Predictions by (engine, GPU, model, serving: aggregated or disaggregated), sorted."""
        out: dict[tuple[str, str, str, str], list[ServingPrediction]] = {}
        for p in self.predictions:
            out.setdefault((p.row.engine, p.row.gpu, p.row.model, serving(p.row)), []).append(p)
        return dict(sorted(out.items()))

    @staticmethod
    def stats(predictions, metric: str) -> Stats:
        return Stats.of(np.array([getattr(p, f"{metric}_error") for p in predictions]))


FP8_GEMMS = ("fp8", "fp8_block")  # the GEMM labels built as fp8 weights (precision)


def precision(row: ServingMeasurement) -> Precision | None:
    """The storage the row's GEMM label says, as opgraph builds it (None: the preset's own); an OpgraphError for a
    label this does not map (a resolver may know the checkpoint behind it: opgraph.choices.serving_row)."""
    if row.gemm in FP8_GEMMS:  # W8A8: each GEMM quantizes its bf16 input, as engines run fp8 checkpoints
        weight = FP8_TENSOR if row.gemm == "fp8" else FP8_BLOCK128
        return Precision(weight=weight.with_input_quantized(), act=BF16, kv=FP8 if row.kv_dtype == "fp8" else BF16)
    if row.gemm:
        raise OpgraphError(f"GEMMs in {row.gemm} (not built as measured)")
    if row.kv_dtype:
        raise OpgraphError(f"a KV cache in {row.kv_dtype} beside the preset's own storage (not built as measured)")
    return None


def load(row: ServingMeasurement, protocol: str) -> dict:
    """serve's load arguments for one replica of a row under a benchmark protocol (ROUNDS x its concurrency
    requests, lengths DRAWN or fixed; `steady`: an endless loop)."""
    c, p, g = row.replica_concurrency, row.prompt, row.output
    if protocol in DRAWN:
        p, g = (int(0.8 * p), p), (max(int(0.8 * g), 2), g)
    return dict(concurrency=c, prompt=p, output=g, **({"requests": ROUNDS[protocol] * c} if protocol in ROUNDS else {}))


def predict(row: ServingMeasurement, resolve: Resolve, protocol: str, overhead_s: float | None = None,
            request_latency_s: float = 0.0, scheduling: str | None = None,
            host_launch_s: float | None = None, overhead_per_request_s: float | None = None) -> ServingPrediction:
    """One row served as measured (an OpgraphError says why it cannot be); `request_latency_s`: each request's time
    outside the engine (serve's): given, or fitted on other rows; `overhead_s` and `scheduling` (async or sync): the
    engine's own time per iteration and how it meets the GPU's; `overhead_per_request_s`: its own time per iteration
    for each request it runs; `host_launch_s`: its host's time per kernel of a prompt's iteration (None: the
    engine's)."""
    if row.engine not in ENGINES:
        raise OpgraphError(f"engine {row.engine} is not modelled")
    figures = dict(overhead_s=overhead_s, overhead_per_request_s=overhead_per_request_s, host_launch_s=host_launch_s,
                   scheduling=scheduling)
    if row.disaggregated:
        return predict_disaggregated(row, resolve, protocol, request_latency_s, figures)
    build, gpu, engine = _served(row, resolve, figures)
    # a concurrency beyond what runs at once queues, as the measured engine queued it
    s = serve(build, planfile.load(engine.plan), gpu, engine=engine, queue=True,
              request_latency_s=request_latency_s, request_latency_source="given for the row", **load(row, protocol))
    return ServingPrediction(row, s.ttft.mean, s.tpot.mean, protocol)


def _served(row: ServingMeasurement, resolve: Resolve, figures: dict) -> tuple[Callable, Hardware, Engine]:
    """A row's (or one pool's) model builder, GPU and engine as its benchmark ran it, with `figures` (predict's) in
    place of the engine's own where given."""
    build, gpu = resolve(row)
    engine = configured(ENGINES[row.engine](gpu), row).given(lambda _: "as fitted", **figures)
    engine.check_layout(row.tp, row.ep)
    return build, gpu, engine


def predict_disaggregated(row: ServingMeasurement, resolve: Resolve, protocol: str, request_latency_s: float,
                          figures: dict) -> ServingPrediction:
    """A disaggregated row served as `serve --disaggregate` serves it: its prefill workers and decode workers, each
    pool at its own layout with the row's engine settings, a decode replica holding what its KV cache holds and the
    rest of the client's requests queued for a slot; `steady` in closed form (opgraph.analysis.disaggregated), a
    benchmark client's requests (load: its rounds of every decode replica's concurrency, all counted) as events."""
    from opgraph.analysis.disaggregated import decode_holds, one_node, served, side
    from opgraph.analysis.plan import Layout

    given = load(row, protocol)
    prompts, outputs = (length_range("prompt", given[k]) for k in ("prompt", "output"))
    prompt = (prompts[0] + prompts[1]) // 2  # the mean, each pool's KV cache a token is taken at (side)
    sides, gpu = [], None
    for workers, (tp, dp, ep), pp in ((row.prefill[0], row.prefill[1:], 1), (row.decode_workers,
                                                                             (row.tp, row.dp, row.ep), row.pp)):
        pool = attrs.evolve(row, tp=tp, dp=dp, ep=ep, pp=pp)
        build, gpu, engine = _served(pool, resolve, figures)
        fusion = planfile.load(engine.plan)
        sides.append(side(build, fusion, gpu, engine, Layout(tp, dp, ep, pp), workers, prompt, gpu))
    holds = decode_holds(sides[1], build, fusion, gpu, prompts[1] + outputs[1], prompts[0])  # the decode pool's
    counted = "requests" in given  # a benchmark client's requests, as events; else the steady closed form
    d = served(row.model, gpu, *sides, prompts=prompts, outputs=outputs, holds=holds,
               same_node=one_node(gpu, sum(s.workers * s.gpus for s in sides)), concurrency=row.replica_concurrency,
               queue=True, requests=given["requests"] * row.replicas if counted else None, events=counted)
    if not counted:
        return ServingPrediction(row, d.ttft_s + request_latency_s, d.tpot_s, protocol)
    return ServingPrediction(row, d.events.ttft.mean + request_latency_s, d.events.tpot.mean, protocol)


def configured(engine: Engine, row: ServingMeasurement) -> Engine:
    """The engine as the row's benchmark must have run it: with the token budget, batch waiting, memory setting, MoE
    kernel, scheduling and chunked prefill the row gives; and an engine of whole prompts gets a token budget in which
    a prompt fits beside the other concurrency - 1 requests' decodes (Engine.room), an assumption (else each prompt
    waits for every decode to finish, which no measured campaign would run)."""
    engine = with_limits(engine, max_batched_tokens=row.max_batch_tokens or None,
                         batch_wait=row.batch_wait if any(row.batch_wait) else None,
                         memory_fraction=row.memory_fraction or None)
    if row.moe_kernel == "marlin":
        engine = attrs.evolve(engine, tables=(*engine.tables, marlin("the row's moe_kernel")))
    engine = engine.given(lambda _: "the row's scheduling column", scheduling=row.scheduling or None)
    if row.chunked_prefill:
        engine = with_chunking(engine, row.chunked_prefill == "on")
    c = row.replica_concurrency
    if engine.chunked or engine.room(c) >= row.prompt:
        return engine
    return attrs.evolve(engine, max_batched_tokens=row.prompt + c - 1)


def validate_serving(rows: list[ServingMeasurement], resolve: Resolve, source: str = "", *, protocol: str | None = None,
                     gpu: str | None = None, limit: int | None = None,
                     per_row: Callable[[ServingMeasurement], "str | Client"] | None = None,
                     where: Callable[[ServingMeasurement], bool] | None = None,
                     request_latency_s: float = 0.0, figures: dict | None = None) -> ServingValidation:
    """Predict every row that opgraph models (of `gpu` only, if given, and only those `where` keeps; at most `limit`
    per engine, GPU and model), each under `protocol`, or under the protocol (or Client) `per_row` gives it (then
    `protocol` names the choice, e.g. "by campaign"); with neither, each under the client it names (own_client).
    `request_latency_s`: each request's time outside the engine, for every row but those a per_row Client serves
    (it carries its own). `figures`: engine figures for every row in
    place of the engines' own (predict's keywords: overhead_s, overhead_per_request_s, host_launch_s, scheduling),
    as a fit of one tries them (benchmarks/engine_grid.py)."""
    by_own_client = per_row is None and protocol is None
    # the latency every row gets (a per_row Client's: its own)
    given = request_latency_s if by_own_client or per_row is None else 0.0
    if by_own_client:
        protocol, per_row = OWN, lambda row: Client(own_client(row), request_latency_s)
    if per_row is None and protocol not in PROTOCOLS:
        raise OpgraphError(f"unknown --protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    predictions, skipped, taken, considered = [], Counter(), Counter(), 0
    for row in rows:
        if (gpu is not None and row.gpu != gpu) or (where is not None and not where(row)):
            continue
        considered += 1
        why = row.skip
        key = (row.engine, row.gpu, row.model)
        if not why and limit is not None and taken[key] >= limit:
            why = f"beyond --limit {limit}"
        if not why:
            try:
                own = Client.of(per_row(row)) if per_row else Client(protocol, request_latency_s)
                if own.protocol not in PROTOCOLS:
                    raise ValueError(f"row {row.row}: protocol {own.protocol!r} is not one of {', '.join(PROTOCOLS)}")
                predictions.append(predict(row, resolve, own.protocol, request_latency_s=own.request_latency_s,
                                               **(figures or {})))
                taken[key] += 1
                continue
            except OpgraphError as e:
                why = f"not predicted: {str(e).split(':')[0]}"
        skipped[why] += 1
    if gpu is not None and not predictions and not skipped:
        raise OpgraphError(f"{source}: no rows of GPU {gpu} (--hardware); its GPUs: "
                           f"{', '.join(sorted({r.gpu for r in rows}))}")
    return ServingValidation(source, protocol, tuple(predictions), tuple(skipped.most_common()), len(rows), considered,
                             gpu, given)
