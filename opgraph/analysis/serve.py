"""Serving as an engine runs it: `opgraph serve`. Requests batched in flight, iteration by iteration, with chunked
prefill, at a fixed concurrency (a closed loop: a finished request is replaced at once, as serving benchmarks run) or
at a request rate (an open loop: Poisson arrivals, seeded), with fixed prompt and output lengths or lengths drawn
uniformly from a range.

Each iteration the scheduler (vLLM V1's, vllm/v1/core/sched/scheduler.py) first gives every running request its next
tokens: one for a request that is decoding, the next chunk of its prompt (up to the token budget left) for one that
is not done prefilling; then admits waiting requests, first come first served, while the budget (max_num_batched_tokens)
and the running limit (max_num_seqs) allow, each with a chunk of its prompt. The iteration is priced from that mix
(opgraph.analysis.iteration: every decode at its own context, every chunk over the keys it attends to), plus the
engine's own time per iteration if one is given; a request samples its first token in the iteration that ends its
prompt, and one token each iteration after. The run continues until the steady state has been measured: the first
`warmup` completed requests are not counted. A closed loop starts desynchronized, its requests spread over their
outputs, as a benchmark's loop drifts apart: requests of fixed lengths started together would stay in lockstep.

The KV cache holds what the GPU has left: its capacity times the engine's memory fraction, less the weights and the
activations of the largest iteration (as vLLM profiles one at start-up), in blocks of `block_tokens` tokens.
Preemption is not modelled: a request is admitted only when the cache can hold its whole length, and a concurrency
whose requests cannot all be held at once is refused with the largest one that can.
"""

from __future__ import annotations

import collections
import math
import random
from collections.abc import Callable

import attrs
import numpy as np

from opgraph.analysis import engine_run
from opgraph.analysis.iteration import KEPT_PRICERS, IterationPricer
from opgraph.analysis.memory import footprint_of
from opgraph.core import checks
from opgraph.core.fusion import FusionPlan
from opgraph.core.model import expert_groups
from opgraph.core.phase import Phase
from opgraph.core.tensor import STORAGE_DTYPES
from opgraph.errors import OpgraphError, counted
from opgraph.pricing.hardware import Hardware
from opgraph.pricing.kinds.attention import DECODE_ATTENTION, DECODE_FP8


SCHEDULING = ("async", "sync")  # how an engine's host work and its GPU's follow each other (Engine.scheduling)
HOST = "host"  # the share of iteration time the GPU waits on the host, beside the kernel classes
_TIMED: collections.OrderedDict = collections.OrderedDict()  # (id(hw), tables) -> (hw, hw as the engine prices it)


@attrs.frozen
class Engine:
    """A serving engine's scheduling rules and limits, each with where it comes from."""

    name: str
    max_batched_tokens: int  # tokens one iteration may process (the chunked-prefill budget)
    max_seqs: int  # requests running at once
    memory_fraction: float  # of the GPU's memory the engine takes (weights, activations, KV cache)
    block_tokens: int  # tokens per KV-cache block
    source: str
    plan: str = "vllm"  # the fusion plan of the kernels it launches (opgraph/files/plans/<plan>.toml)
    kv_share: float = 1.0  # of the memory left after weights and activations that the KV cache takes
    # the field the engine's own memory setting (--memory-fraction) sets: memory_fraction, the share of the GPU's
    # memory it takes (vLLM's gpu_memory_utilization, SGLang's mem_fraction_static), or kv_share (TensorRT-LLM's
    # free_gpu_memory_fraction, the share of what the weights and activations leave that its KV cache takes)
    memory_setting: str = "memory_fraction"
    chunked: bool = True  # prompts are split into chunks under the budget; else a prompt must fit an iteration whole
    # a prompt's chunks but its last are whole multiples of this many tokens: TensorRT-LLM rounds a chunk the budget
    # cuts down to its chunk unit, its KV block (ContextChunkingConfig(FIRST_COME_FIRST_SERVED, tokens_per_block) in
    # tensorrt_llm/_torch/pyexecutor/py_executor_creator.py; MicroBatchScheduler::setCtxRequestsChunkSize in
    # cpp/tensorrt_llm/batch_manager/microBatchScheduler.cpp); vLLM and SGLang cut at any token
    chunk_unit: int = 1
    # one prompt's tokens an iteration at most, within the budget (vLLM's long_prefill_token_threshold, 0 by default:
    # vllm/v1/core/sched/scheduler.py caps each request's new tokens by it); 0: the budget alone
    chunk: int = 0
    mixed: bool = True  # prompt chunks ride with the running requests' decodes; else prefill-first, apart (SGLang)
    # KV blocks taken as tokens come, the request admitted last preempted (recomputed later) when they run out; else a
    # request's whole length is reserved at admission and never evicted
    preempts: bool = False
    overhead_s: float = 0.0  # the host's time per iteration beyond the kernels (scheduling, sampling, inputs)
    overhead_source: str = "not modelled"
    # and its time per iteration for each request the iteration runs (its bookkeeping, sampling and output), on top
    overhead_per_request_s: float = 0.0
    overhead_per_request_source: str = "not modelled"
    # the host's time to launch one kernel of an iteration that carries prompt tokens: engines replay a captured CUDA
    # graph for decode-only iterations but launch a prompt's iteration kernel by kernel (or in pieces around
    # attention), so it takes at least its kernels times this, however little the GPU has to do
    host_launch_s: float = 0.0
    host_launch_source: str = "not modelled"
    # "async": the host prepares the next iteration while the GPU runs this one (vLLM's async scheduling, SGLang's and
    # TensorRT-LLM's overlap schedulers), so its time is hidden behind the GPU's where shorter; "sync": the two add up
    scheduling: str = "async"  # one of SCHEDULING
    scheduling_source: str = "as given"
    # under async scheduling, iteration k + 1 is built while k runs, so a request arriving during k is first scheduled
    # in k + 2 (vLLM's AsyncScheduler, SGLang's overlap event loop); TensorRT-LLM's overlap scheduler prepares the
    # admitted batch ahead but admits from fresh arrivals (aiconfigurator's queueing design, measured): no lookahead
    lookahead: bool = True
    # classes whose kernels run differently in this engine, priced by another class's table: (class, table, why)
    tables: tuple[tuple[str, str, str], ...] = ()
    # TensorRT-LLM's batch waiting (batch_wait_max_tokens_ratio, batch_wait_timeout_iters; both 0, off, by default):
    # while requests decode, new prompts wait until the iteration's tokens would come to that share of the budget, or
    # until they have waited that many iterations (PyExecutor._waiting_requests in tensorrt_llm/_torch/pyexecutor)
    batch_wait: tuple[float, int] = (0.0, 0)
    # experts spread over groups of a tensor-parallel group (--tp 8 --ep 2): TensorRT-LLM's moe_tp_size x moe_ep_size
    # and SGLang's --ep-size below --tp-size; vLLM spreads them over the whole tp x dp group or not at all
    # (--enable-expert-parallel; FusedMoEParallelConfig.make in vllm/model_executor/layers/fused_moe/config.py)
    expert_groups: bool = True

    def given(self, source: Callable[[str], str], **figures) -> "Engine":
        """This engine with host figures in place of its own (overhead_s, overhead_per_request_s, host_launch_s,
        scheduling; None keeps its own), each said to come from `source(name)`: a command-line flag, a fit."""
        changes = {}
        for name, value in figures.items():
            if value is not None:
                changes[name] = value
                changes[f"{name.removesuffix('_s')}_source"] = source(name)
        return attrs.evolve(self, **changes) if changes else self

    def check_layout(self, tp: int, ep: int) -> None:
        """A one-line error for a layout this engine cannot run."""
        if not self.expert_groups and expert_groups(tp, 1, ep):
            raise OpgraphError(f"--tp {tp} --ep {ep}: {self.name} spreads the experts over the whole group or not at "
                               f"all (--ep {tp}, or no --ep), not over groups of it; sglang and trtllm run it")

    def timed(self, hw: Hardware) -> Hardware:
        """`hw` with this engine's kernels priced by the tables that fit them (`tables`): the same object for the same
        `hw` and tables, so that the pricer IterationPricer.of keeps for it (by identity) serves the next call too."""
        if not self.tables:
            return hw
        key = (id(hw), self.tables)
        held = _TIMED.get(key)
        if held is not None and held[0] is hw:
            return held[1]
        timing = hw.timing
        for kind, other, why in self.tables:
            timing = timing.priced_as(kind, other, why)
        _TIMED[key] = hw, hw if timing is hw.timing else attrs.evolve(hw, timing=timing)
        while len(_TIMED) > KEPT_PRICERS:
            _TIMED.popitem(last=False)
        return _TIMED[key][1]

    def wall(self, gpu_s, launches=0, requests=0):
        """Seconds an iteration takes whose kernels take `gpu_s` (a number or an array of them), whose host launches
        `launches` of them one by one (0: a captured CUDA graph) and which runs `requests` requests (numbers or
        arrays): at least the launches' time (`host_launch_s` each: the host runs ahead of the GPU, so the longer of
        the two counts); then under async scheduling the longer of that and the engine's own time for the iteration
        (`overhead_s` and `overhead_per_request_s` a request), under sync scheduling their sum."""
        # one iteration: Python's max (the same IEEE result, without numpy's cost on a search's many calls)
        one = type(gpu_s) is not np.ndarray and type(launches) is not np.ndarray and type(requests) is not np.ndarray
        larger = max if one else np.maximum
        t = gpu_s
        if self.host_launch_s and (launches if one else np.any(launches)):
            t = larger(t, launches * self.host_launch_s)
        if self.hosted:
            host = self.overhead_s + requests * self.overhead_per_request_s
            t = t + host if self.scheduling == "sync" else larger(t, host)
        return float(t) if one else t

    @property
    def hosted(self) -> bool:
        """Whether the engine has a time of its own per iteration (fixed or for each request it runs)."""
        return bool(self.overhead_s or self.overhead_per_request_s)

    @property
    def admission_lag(self) -> int:
        """Iterations a request arriving during an iteration misses beyond the next one (1 where the next is built
        before it arrives: async scheduling with lookahead; else 0)."""
        return int(self.scheduling == "async" and self.lookahead)

    def admission_words(self, closed: bool) -> str:
        """When a new request can join an iteration, in words (serve's notes): a closed loop's replacement or an open
        loop's arrival."""
        if self.admission_lag:
            how = f"{self.name} builds the next iteration while one runs (async scheduling: {self.scheduling_source})"
        elif self.scheduling == "async":
            how = (f"{self.name}'s overlap scheduler prepares the admitted batch ahead but admits from fresh arrivals "
                   f"(aiconfigurator's queueing design, measured)")
        else:
            how = f"{self.name} builds each iteration after the last one ends (sync scheduling)"
        if closed:
            nth = ("second", "third")[self.admission_lag]
            return (f"admission: a replacement, sent as its predecessor's response comes back, joins the {nth} "
                    f"iteration after its predecessor's last, the one built next being too early for it; {how}")
        return (f"admission: an arrival joins the {('first', 'second')[self.admission_lag]} iteration built after it "
                f"comes; {how}")

    @property
    def host_words(self) -> str:
        """What the engine's own time per iteration does to each iteration, in words (serve's notes)."""
        if not self.hosted:
            return (f"the engine's own time per iteration (scheduling, sampling): {self.overhead_source}, 0 µs "
                    f"(--overhead-us and --overhead-per-request-us give figures)")
        how = ("hidden behind each iteration's GPU time where shorter (async scheduling: " + self.scheduling_source
               + "; --scheduling sync adds it)" if self.scheduling == "async" else
               "added to each iteration (sync scheduling: " + self.scheduling_source + ")")
        same = self.overhead_per_request_source == self.overhead_source
        each = (f"; and {self.overhead_per_request_s * 1e6:,.1f} µs for each request it runs"
                + ("" if same else f", {self.overhead_per_request_source}") if self.overhead_per_request_s else "")
        return (f"the engine's own time per iteration (scheduling, sampling): {self.overhead_s * 1e6:,.0f} µs, "
                f"{self.overhead_source}{each}, {how}")

    @property
    def launch_words(self) -> str:
        """What launching a prompt's iteration costs the host, in words (serve's notes)."""
        if not self.host_launch_s:
            return (f"the host's time to launch a prompt's iteration kernel by kernel: 0 µs a kernel, "
                    f"{self.host_launch_source}")
        return (f"an iteration that carries prompt tokens runs without a captured CUDA graph, its kernels launched "
                f"one by one: it takes at least its kernels x {self.host_launch_s * 1e6:,.0f} µs of the host's time "
                f"({self.host_launch_source}); decode-only iterations replay a graph")

    def check_prompt(self, prompt: int, new: int) -> None:
        """A one-line error where a prompt of `prompt` tokens, `new` of them still to prefill (the rest cached), can
        never run: longer than an iteration's budget in an engine that runs prompts whole, or in one whose chunks are
        whole units larger than the budget."""
        budget = self.max_batched_tokens
        if new <= budget:
            return
        if not self.chunked:
            raise OpgraphError(f"--prompt {prompt:,}: {self.name} without chunked prefill runs a prompt whole, and one "
                               f"iteration takes at most {budget:,} tokens; give --max-batch-tokens {new} or more, "
                               f"--chunked-prefill, or a shorter prompt")
        if budget < self.chunk_unit:
            raise OpgraphError(f"--max-batch-tokens {budget:,}: {self.name} cuts a prompt longer than the budget into "
                               f"chunks of whole {self.chunk_unit}-token units, and none fits; give at least "
                               f"{self.chunk_unit}")

    def stride(self, room: int) -> int:
        """A cut chunk's tokens where an iteration has `room` to spare: the room down to a whole chunk unit."""
        return room // self.chunk_unit * self.chunk_unit

    def chunks(self, prompt: int, room: int) -> int:
        """Iterations a prompt of `prompt` tokens takes at `room` tokens an iteration (chunked prefill: chunks of the
        room down to a whole chunk unit, the last whatever fits)."""
        if prompt <= room:
            return 1
        stride = self.stride(room)
        if not self.chunked or stride <= 0:
            raise OpgraphError(f"a prompt of {prompt:,} tokens: {self.name} " + (
                "without chunked prefill runs a prompt whole" if not self.chunked else
                f"cuts chunks in units of {self.chunk_unit} tokens") + f", and an iteration has room for {room:,}")
        return 1 + -(-(prompt - room) // stride)

    def room(self, concurrency: int, per_decode: int = 1) -> int:
        """Tokens an iteration leaves for a prompt beside the other concurrency - 1 requests' decodes, each
        `per_decode` tokens (a speculative step verifies its drafts and its own token)."""
        return self.max_batched_tokens - (concurrency - 1) * per_decode

    @property
    def rules(self) -> str:
        """The scheduling rules in words."""
        chunks = ("whole prompts (no chunked prefill)" if not self.chunked else "chunked prefill" if
                  self.chunk_unit == 1 else f"chunked prefill in units of {self.chunk_unit} tokens")
        order = "decodes first, prompts mixed in" if self.mixed else "prefill first, prompts and decodes apart"
        ratio, iters = self.batch_wait
        wait = f", new prompts held beside decodes until {ratio:g} of the budget or {iters} iterations" if iters else ""
        return f"{chunks}, {order}{wait}"


def with_limits(engine: Engine, **given) -> Engine:
    """The engine with the limits a user gave (max_batched_tokens, max_seqs, memory_fraction, batch_wait, chunk; None:
    its own), its source saying which were given. memory_fraction is the engine's own memory setting: it sets the
    field Engine.memory_setting names (TensorRT-LLM's is a share of what the weights and activations leave)."""
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return engine
    said = ", ".join(f"{k.replace('_', ' ')} {'/'.join(f'{x:g}' for x in v) if isinstance(v, tuple) else f'{v:g}'} "
                     f"given" for k, v in given.items())
    if "memory_fraction" in given:
        given[engine.memory_setting] = given.pop("memory_fraction")
    return attrs.evolve(engine, **given, source=engine.source + "; " + said)


def check_drafting(stages: int, pool: bool = False) -> None:
    """A one-line error for speculative decoding over `stages` > 1 pipeline stages, which no engine modelled runs
    (`pool`: a disaggregated pool's layout, pp=N, rather than --pp); before a draft is built into them."""
    if stages > 1:
        stages_said, instead = (("pipeline stages (pp=N)", "lay the pools out with tp, dp and ep") if pool else
                                ("pipeline parallelism (--pp)", "give --tp instead"))
        raise OpgraphError(f"speculative decoding with {stages_said}: the engines modelled do not run them together "
                           f"(vLLM's docs: not composable); {instead}")


def with_chunking(engine: Engine, on: bool) -> Engine:
    """The engine running a prompt longer than an iteration's room in chunks (on) or only whole (off), as given."""
    return attrs.evolve(engine, chunked=on, source=f"{engine.source}; chunked prefill {('off', 'on')[on]} given")


# The host's time per kernel of an iteration that carries prompt tokens (Engine.host_launch_s): what the host spends
# launching one kernel by kernel where decode-only iterations replay a CUDA graph (Python dispatch, per-kernel setup,
# the pieces of a piecewise graph). Fitted on the B200 and GB200 serving rows only, as issue 17 allows for an engine
# constant (benchmarks/fit_host_launch.py, December 2026: of a grid of figures, the one with the lowest median
# |TPOT error| over the engine's rows; refitted when fp8 rows became W8A8, bf16 outside their GEMMs, and when the
# B200's fp8 GEMMs became tables by rows: TensorRT-LLM 0 -> 25 µs, 13.8% -> 13.6%; TensorRT-LLM's again once the
# GB200 had a calibration of its own: 25 µs, 13.4%); the H100 and H200 rows stay held out. The grids are flat within
# half a point near their best (vLLM 7.7-7.9% over 0-75 µs, TensorRT-LLM 13.4-13.7% over 0-50 µs, SGLang 19.3% over
# 0-50 µs), so these figures are loosely determined. (figure, rows it was fitted on)
HOST_LAUNCH = {"vllm": (25e-6, 156), "sglang": (50e-6, 174), "trtllm": (25e-6, 216)}
# The engine's own time per iteration, a + b x the requests it runs (Engine.overhead_s, overhead_per_request_s:
# scheduling, sampling, input preparation and output), fitted the same way with the launches above in place
# (benchmarks/fit_engine_overhead.py, December 2026, a grid of 0-4 ms and 0-100 µs a request; refitted with the fp8
# rows W8A8 and the launches above, with the B200's fp8 GEMMs by rows, and TensorRT-LLM's with the GB200 calibrated:
# the same pairs). SGLang's best pair lay on the grid's edge and, widened, at 8 ms + 200 µs; its rows are all large
# MoE models, and Qwen3.5-397B's measure TP 8 slower than TP 4 at the same concurrency: a time of the GPU's the
# pricing misses, not the host's, so none is taken.
# (a, b, where it comes from)
HOST_TIME = {"vllm": (3e-3, 50e-6, "fitted on 156 B200 and GB200 serving rows"),
             "sglang": (0.0, 0.0, "none fitted (its B200 rows' best figure is a time of the GPU's)"),
             "trtllm": (2e-3, 50e-6, "fitted on 216 B200 and GB200 serving rows")}


def _fitted(engine: str) -> dict:
    """An engine's host times (Engine fields, each with its source): per kernel of a prompt's iteration, and its own
    per iteration and per request it runs."""
    launch, rows = HOST_LAUNCH[engine]
    a, b, where = HOST_TIME[engine]
    where += ", benchmarks/fit_engine_overhead.py"
    return dict(host_launch_s=launch, host_launch_source=f"fitted on {rows} B200 and GB200 serving rows, "
                f"benchmarks/fit_host_launch.py", overhead_s=a, overhead_source=where,
                overhead_per_request_s=b, overhead_per_request_source=where)


def vllm(hw: Hardware) -> Engine:
    """vLLM's defaults for its OpenAI-compatible server: EngineArgs.get_batch_defaults in vllm/engine/arg_utils.py
    (vLLM 0.10-0.11) gives 8,192 batched tokens and 1,024 sequences on GPUs of at least 70 GiB other than the A100,
    else 2,048 and 256; CacheConfig's gpu_memory_utilization 0.9 and block_size 16. Its V1 scheduler
    (vllm/v1/core/sched/scheduler.py) serves running requests first and mixes prompt chunks into the same batch; it
    allocates KV blocks as tokens come and, when a running request's next tokens find none free, preempts the request
    scheduled last (_preempt_request: its blocks freed, its tokens recomputed when it is scheduled again)."""
    large = hw.capacity >= 70 * 2**30 and "a100" not in hw.name
    return Engine("vllm", 8192 if large else 2048, 1024 if large else 256, 0.9, 16,
                  "vLLM's server defaults (vllm/engine/arg_utils.py EngineArgs.get_batch_defaults: "
                  + ("8,192 tokens and 1,024 sequences on a GPU of 70 GiB or more, not an A100" if large else
                     "2,048 tokens and 256 sequences below 70 GiB and on the A100")
                  + "; vllm/config/cache.py gpu_memory_utilization 0.9, block_size 16)", preempts=True,
                  expert_groups=False, scheduling_source="vLLM's default from 0.14.0, vllm-project/vllm#27614; "
                  "--no-async-scheduling turns it off", **_fitted("vllm"))


def sglang(hw: Hardware) -> Engine:
    """SGLang's defaults (0.5.x, sglang/srt/arg_groups): chunked_prefill_size 8,192 below 160 GB of GPU memory and
    16,384 from it (memory_hook.py); prefill first, prompts and decodes in batches of their own (enable_mixed_chunk
    False; managers/scheduler.py); KV pages of one token, taken as tokens come, a running request retracted (its tokens
    recomputed later) when they run out (modelled as vLLM's: the one admitted last); mem_fraction_static (weights and KV pool) from its formula,
    the GPU's memory less 512 MB + 1.5 MB per chunk token + 1.5 GB of graph reserve, at least 10 GB;
    max_running_requests 2,048 (its floor)."""
    gb = hw.capacity / 2**30
    chunk = 16384 if gb >= 160 else 8192 if gb >= 60 else 4096
    reserved = (512 + 1.5 * chunk + 1536) * 2**20
    if hw.capacity > 60 * 2**30:
        reserved = max(reserved, 10 * 2**30)
    fraction = round(1 - reserved / hw.capacity, 3)
    return Engine("sglang", chunk, 2048, fraction, 1,
                  f"SGLang's defaults (sglang/srt/arg_groups/memory_hook.py: chunked_prefill_size {chunk:,} at "
                  f"{gb:,.0f} GiB; mem_fraction_static {fraction:g} from its reserve formula; page size 1; "
                  f"max_running_requests 2,048; scheduler.py prefill-first, enable_mixed_chunk False)",
                  plan="sglang", mixed=False, preempts=True,
                  scheduling_source="SGLang's overlap scheduler, on unless --disable-overlap-schedule "
                  "(sglang/srt/server_args.py)", **_fitted("sglang"))


# TensorRT-LLM's decode kernels gain from an fp8 KV cache where vLLM's, which the decode_attention_fp8 table is
# fitted on, do not: over the same shapes aiconfigurator's TensorRT-LLM 1.3.0rc20 kernels on the H200 take 0.61-0.86
# of their bf16 time, vLLM 0.24.0's 0.87-1.10 (docs/measured-times.md), so TensorRT-LLM's are priced by the bf16 table
# on their halved bytes
TRTLLM_FP8_CACHE = (DECODE_FP8, DECODE_ATTENTION, "TensorRT-LLM's decode kernels read an fp8 cache at its width")


def trtllm(hw: Hardware) -> Engine:
    """TensorRT-LLM's PyTorch backend defaults: max_num_tokens 8,192 and max_batch_size 2,048 (BuildConfig in
    tensorrt_llm/builder.py; newer LLM-API versions leave them unset), chunked prefill off (TorchLlmArgs
    enable_chunked_prefill False; on, chunks are cut first come first served to the budget the decodes leave, down to
    whole KV blocks but a prompt's last), the capacity scheduler GUARANTEED_NO_EVICT (a request admitted only when its
    whole length fits: never evicted), and the KV cache 0.9 of the memory free after the weights (KvCacheConfig
    free_gpu_memory_fraction) in blocks of 32 tokens. It runs on NVIDIA GPUs only ("the full spectrum of NVIDIA GPU
    architectures", its docs' supported-hardware page; its support matrix lists no other), so a GPU whose spec names
    another maker is refused."""
    if hw.vendor not in ("", "nvidia"):
        raise OpgraphError(f"--engine trtllm: TensorRT-LLM runs on NVIDIA GPUs only, and {hw.name} is an "
                           f"{hw.vendor.upper()} GPU (its spec's vendor); use --engine vllm or sglang, which run on "
                           f"both")
    return Engine("trtllm", 8192, 2048, 1.0, 32,
                  "TensorRT-LLM's defaults (tensorrt_llm/builder.py BuildConfig max_num_tokens 8,192, max_batch_size "
                  "2,048; llm_args.py enable_chunked_prefill False, GUARANTEED_NO_EVICT; KvCacheConfig "
                  "free_gpu_memory_fraction 0.9, tokens_per_block 32)",
                  plan="trtllm", kv_share=0.9, memory_setting="kv_share", chunked=False, chunk_unit=32,
                  tables=(TRTLLM_FP8_CACHE,),
                  scheduling_source="TensorRT-LLM's overlap scheduler, on unless disable_overlap_scheduler "
                  "(tensorrt_llm/llmapi/llm_args.py)", lookahead=False, **_fitted("trtllm"))


ENGINES = {"vllm": vllm, "sglang": sglang, "trtllm": trtllm}

# The KV caches each engine takes from a checkpoint's quantization_config when its own KV-cache dtype is left "auto",
# its default, by (quantization method, dtype); any other declaration it leaves, serving the model's dtype:
# - vLLM: ModelOpt's kv_cache_quant_algo or kv_cache_scheme, fp8 or nvfp4 (resolve_kv_cache_dtype_string in
#   vllm/utils/torch_utils.py, vllm-project/vllm#34752), and a compressed-tensors kv_cache_scheme, fp8 (its Attention
#   layer sets cache_dtype "fp8": "llm-compressor mdls need to set cache_dtype to fp8", vllm-project/vllm#30141);
# - SGLang: ModelOpt's FP8 alone (configure_kv_cache_dtype in sglang/srt/model_executor/model_runner.py compares
#   quant_config.kv_cache_quant_algo with "FP8"; its compressed-tensors config carries no such field);
# - TensorRT-LLM: ModelOpt's FP8 and NVFP4 (ModelLoader._update_from_hf_quant_config in
#   tensorrt_llm/llmapi/llm_utils.py) and a compressed-tensors fp8 kv_cache_scheme (quant_config_utils.py,
#   NVIDIA/TensorRT-LLM#17334, August 2026).
# DeepSeek-V4's cache, declared by its family (fp8_ds_mla, the FlashMLA layout it is trained for): vLLM serves nothing
# else ("DeepseekV4 only supports fp8 kv-cache format", DeepseekV4MLAAttention in
# vllm/model_executor/layers/deepseek_v4_attention.py, which converts any fp8 to fp8_ds_mla), nor does SGLang
# (DeepSeekV4SingleKVPool in sglang/srt/mem_cache/deepseek_v4_memory_pool.py: 584 bytes a token); TensorRT-LLM's
# DeepseekV4CacheManager keeps its KV-cache dtype, bf16 or its own fp8 (tensorrt_llm/_torch/attention_backend/sparse/
# deepseek_v4/cache_manager.py), the model's bf16 by default.
DECLARED_KV = {"vllm": {("modelopt", "fp8"), ("modelopt", "nvfp4"), ("compressed-tensors", "fp8"),
                        ("fp8", "fp8_ds_mla")},
               "sglang": {("modelopt", "fp8"), ("fp8", "fp8_ds_mla")},
               "trtllm": {("modelopt", "fp8"), ("modelopt", "nvfp4"), ("compressed-tensors", "fp8")}}
DECLARED_KV_KEY = {"modelopt": "kv_cache_quant_algo", "compressed-tensors": "kv_cache_scheme"}


def reads_declared_kv(engine: str, source) -> bool:
    """Whether `engine` serves the KV cache `source`'s checkpoint declares (DECLARED_KV; True where none is)."""
    fmt = getattr(source, "weight_format", None)
    if fmt is None or fmt.kv_cache is None:
        return True
    return (fmt.method, str(fmt.kv_cache)) in DECLARED_KV[checks.choice("--engine", engine, ENGINES)]


def declared_kv_note(engine: str, source, kv: str | None, dtype_: str | None) -> tuple[str, ...]:
    """What a serving command says of the KV cache `source`'s checkpoint declares, when neither --kv-dtype (`kv`) nor
    --dtype chose one: served so, or in the model's dtype by an engine that does not read it."""
    fmt = getattr(source, "weight_format", None)
    if fmt is None or fmt.kv_cache is None or kv is not None or dtype_ is not None:
        return ()
    declared = f"{fmt.kv_cache} KV cache ({fmt.kv_from or f'{fmt.where}: quantization_config.{DECLARED_KV_KEY[fmt.method]}'})"
    if reads_declared_kv(engine, source):
        return (f"the checkpoint declares an {declared}, which {engine} serves by default (its KV-cache dtype "
                f"'auto'); give --kv-dtype to cost another",)
    hint = (f"give --kv-dtype {fmt.kv_cache} to cost the declared one (where the engine runs it)"
            if str(fmt.kv_cache) in STORAGE_DTYPES else "give --kv-dtype fp8 to cost a cache of one byte a value")
    return (f"the checkpoint declares an {declared}, which {engine} does not read: its KV-cache dtype 'auto' keeps "
            f"the model's {source.dtype.name}, as served here; {hint}",)


# What each engine stores a recurrent (SSM or delta-rule) state at unless told (--state-dtype): the config field it
# reads, and its dtype when the config gives none of them (None: the model's dtype). The conv window stays at the
# model's dtype in all three (models/recurrent.py).
# - vLLM: mamba_ssm_cache_dtype "auto" takes the model's dtype (MambaStateDtypeCalculator._mamba_state_dtype in
#   vllm/model_executor/layers/mamba/mamba_utils.py); its NemotronH and Qwen3.5 configs set it from the config's
#   mamba_ssm_cache_dtype and mamba_ssm_dtype (verify_and_update_config in vllm/model_executor/models/config.py);
# - SGLang: fp32 unless the config's mamba_ssm_dtype (or an environment variable) says otherwise (mamba2_state_dtype
#   in sglang/srt/configs/mamba_utils.py: "Default float32"); it reads no mamba_ssm_cache_dtype;
# - TensorRT-LLM: kv_cache_config.mamba_ssm_cache_dtype "auto" takes the model's torch_dtype whatever the config
#   says (validate_and_set_mamba_ssm_cache_dtype, tensorrt_llm/_torch/pyexecutor/model_loader.py); NVIDIA's
#   Nemotron-3 recipes pass mamba_ssm_cache_dtype float32 for that reason.
STATE_KEYS = {"vllm": ("mamba_ssm_cache_dtype", "mamba_ssm_dtype"), "sglang": ("mamba_ssm_dtype",), "trtllm": ()}
STATE_DEFAULT = {"vllm": None, "sglang": "fp32", "trtllm": None}


def served_state_dtype(engine: str, source, act: str) -> str | None:
    """The dtype `engine` stores `source`'s recurrent state at when --state-dtype is not given (STATE_KEYS,
    STATE_DEFAULT; `act`: the activation dtype served, the engines' "model dtype"), where that is not what the
    model's own config builds (None: as built, or no recurrent state)."""
    engine = checks.choice("--engine", engine, ENGINES)
    if not getattr(source, "recurrent", False) or getattr(source, "state_fixed", False):
        return None
    own = source.state_dtype.name if source.state_dtype is not None else act
    served = own if source.state_key in STATE_KEYS[engine] else (STATE_DEFAULT[engine] or act)
    return None if served == own else served


def served_state_note(engine: str, source, state: str | None, act: str) -> tuple[str, ...]:
    """What a serving command says when `engine` stores the recurrent state otherwise than the config asks
    (served_state_dtype), unless --state-dtype (`state`) chose it."""
    served = None if state is not None else served_state_dtype(engine, source, act)
    if served is None:
        return ()
    asked = (f"the config's {source.state_key} asks for {source.state_dtype.name}" if source.state_key else
             f"the config asks for none: the model's {act}")
    return (f"{engine} keeps the recurrent state in {served} ({asked}; {engine} reads "
            f"{' or '.join(STATE_KEYS[engine]) or 'no config field'} and defaults to "
            f"{STATE_DEFAULT[engine] or 'the model dtype'}): served so; give --state-dtype to cost another",)


def check_speculation(tokens: int, acceptance: tuple[float, ...]) -> None:
    """Draft tokens a step (1 to 64) and one acceptance figure from 0 to 1 for each, or a one-line error."""
    checks.integer("--draft-tokens", tokens, maximum=64)
    if len(acceptance) != tokens:
        raise OpgraphError(f"--acceptance: {counted(len(acceptance), 'figure')} for "
                           f"{counted(tokens, 'draft token')}; give one, or one per draft token")
    for a in acceptance:
        checks.number("--acceptance", a, minimum=0, maximum=1)


@attrs.frozen
class Speculation:
    """Speculative decoding with a draft model: each step the draft proposes `tokens` tokens one after another (a
    decode iteration each, over every decoding request), the target verifies them in one pass of tokens + 1 queries
    a request, and keeps the drafts up to the first rejected one, plus its own next token. `acceptance[i]`: the chance
    that draft token i + 1 is accepted once those before it were (one figure repeated, or one per position)."""

    build: object  # the draft model's build(phase)
    name: str
    tokens: int
    acceptance: tuple[float, ...]

    def __attrs_post_init__(self) -> None:
        check_speculation(self.tokens, self.acceptance)

    @property
    def expected_tokens(self) -> float:
        """Tokens a step yields on average: 1 + the expected run of accepted drafts."""
        run, total = 1.0, 1.0
        for a in self.acceptance:
            run *= a
            total += run
        return total


@attrs.frozen
class Stats:
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values) -> "Stats":
        a = np.asarray(values, dtype=np.float64)
        return cls(float(a.mean()), *(float(np.quantile(a, q)) for q in (0.5, 0.9, 0.99)))

    def shifted(self, seconds: float) -> "Stats":
        """Every value `seconds` later (a time outside what was run, added to each request's)."""
        return Stats(self.mean + seconds, self.p50 + seconds, self.p90 + seconds, self.p99 + seconds)

    @classmethod
    def weighted(cls, values, counts) -> "Stats":
        """Stats.of the values, each repeated its count of times (whole, at least 1), without repeating them: numpy's
        default (linear) quantile of the repeated values, found in their sorted distinct values."""
        v, c = np.asarray(values, dtype=np.float64), np.asarray(counts, dtype=np.int64)
        order = np.argsort(v, kind="stable")
        v, reach = v[order], np.cumsum(c[order])  # the repeated sorted array's j-th value: v[first reach > j]
        n = int(reach[-1])

        def quantile(q: float) -> float:
            h = q * (n - 1)
            low = math.floor(h)
            a, b = (float(v[np.searchsorted(reach, j, side="right")]) for j in (low, min(low + 1, n - 1)))
            t = h - low
            return b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t  # numpy's _lerp
        return cls(float(v @ c[order] / n), *(quantile(q) for q in (0.5, 0.9, 0.99)))


@attrs.frozen
class Serving:
    """`opgraph serve`: the steady state of a closed loop, per request and per GPU."""

    model: str
    hardware: Hardware  # as the engine prices it (Engine.timed): its time model names the tables it used
    plan: FusionPlan
    engine: Engine
    concurrency: int | None  # requests in flight, per replica (a closed loop); None: an open loop at `rate`
    prompt: tuple[int, int]  # each request's prompt length: drawn uniformly from this range (equal ends: fixed)
    output: tuple[int, int]
    gpus: int  # GPUs of the deployment (every replica's)
    replicas: int
    ttft: Stats  # seconds
    tpot: Stats  # per request: (end-to-end - TTFT) / (output - 1)
    itl: Stats  # every gap between two tokens of a request
    e2e: Stats
    tokens_per_s: float  # output tokens a second, the whole deployment (every replica), over the measured time
    iteration: Stats  # seconds an iteration takes
    tokens_per_iteration: Stats  # new tokens an iteration processes (decodes plus chunk tokens)
    by_class: dict[str, float]  # share of the measured iterations' time by kernel class, and the host's (HOST)
    kv_blocks: int  # the KV cache's blocks, one GPU
    kv_used: float  # the largest share of them in use at once
    measured: int  # requests measured (after the warm-up)
    iterations: int
    overhead_s: float  # the engine's own time per iteration (given, else the engine's: 0), hidden or added (scheduling)
    notes: tuple[str, ...] = ()
    rate: float | None = None  # requests a second arriving, per replica (an open loop, Poisson)
    seed: int = 0  # of the arrivals and lengths drawn
    prefix: int = 0  # tokens at the start of every prompt shared and cached (prefix caching)
    speculation: Speculation | None = None
    requests: int | None = None  # a benchmark of this many requests, every one counted (None: the steady state)
    preemptions: int = 0  # requests preempted in the whole run (the KV cache ran out; their tokens recomputed)
    # each request's time outside the engine (the server's HTTP handling, tokenization and streaming; the client's),
    # in its TTFT and end-to-end latency
    request_latency_s: float = 0.0
    prefix_hit: float = 0.0  # the share of each prompt's tokens found cached, its own (prefix caching's hit rate)

    @property
    def tokens_per_s_per_gpu(self) -> float:
        return self.tokens_per_s / self.gpus

    @property
    def tokens_per_s_per_user(self) -> float:
        """One request's output rate while it decodes: 1 / its TPOT, averaged over requests."""
        return 1 / self.tpot.mean if self.tpot.mean else float("inf")


Lengths = "int | tuple[int, int]"  # a fixed length, or (low, high): drawn uniformly, both included


def cached_tokens(prefix: int, prompt: int, block_tokens: int) -> int:
    """The tokens of a prompt's shared prefix an engine finds cached: whole blocks, never the prompt's last token (the
    engine computes it to sample from; vLLM's KVCacheManager.get_computed_blocks leaves it out)."""
    return min(prefix, prompt - 1) // block_tokens * block_tokens


def hit_tokens(hit: float, prompt: int, block_tokens: int) -> int:
    """The tokens of a prompt an engine finds cached at a prefix-cache hit rate `hit` (the share of its tokens): whole
    blocks of its first hit x prompt tokens, never its last (as cached_tokens)."""
    return min(int(hit * prompt), prompt - 1) // block_tokens * block_tokens


def checked_prefix(prefix: int, shortest: int) -> int:
    """--prefix: tokens every prompt shares, at most the shortest prompt, or a one-line error."""
    prefix = checks.integer("--prefix", prefix, minimum=0)
    if prefix > shortest:
        raise OpgraphError(f"--prefix {prefix:,}: longer than the shortest prompt ({shortest:,} tokens); the prefix "
                           f"every prompt shares is at most that long")
    return prefix


def with_prefix(blocks: int, per_request: int, prefix: int, shortest: int, block_tokens: int) -> tuple[int, int, int]:
    """A GPU's KV-cache blocks and one request's (kv_blocks's figures) with a shared prefix held once for every
    request: (blocks left for requests, a request's own blocks, the prefix's blocks). A request's own blocks are those
    of the longest request less the shortest prompt's cached ones (cached_tokens), so that every request fits."""
    shared = -(-prefix // block_tokens) if prefix else 0
    return blocks - shared, per_request - cached_tokens(prefix, shortest, block_tokens) // block_tokens, shared


def length_range(name: str, value, minimum: int = 1) -> tuple[int, int]:
    """A length, or a range (low, high) to draw from uniformly, both ends included, as (low, high)."""
    low, high = (value, value) if isinstance(value, int) else value
    low, high = checks.integer(name, low, minimum=minimum), checks.integer(name, high, minimum=minimum)
    if high < low:
        raise OpgraphError(f"{name}: the range {low}:{high} ends before it starts")
    return low, high


def serve(build, plan: FusionPlan, hw: Hardware, *, prompt, output, concurrency: int | None = None,
          rate: float | None = None, engine: Engine | None = None, overhead_s: float | None = None,
          warmup: int | None = None, measure: int | None = None, seed: int = 0, prefix: int = 0,
          speculation: Speculation | None = None, requests: int | None = None, queue: bool = False,
          request_latency_s: float = 0.0, request_latency_source: str = "given (--request-latency-ms)",
          prefix_hit: float = 0.0) -> Serving:
    """The steady state of requests of `prompt` tokens generating `output` tokens each (a length, or a range
    (low, high) each request draws from uniformly): a closed loop of `concurrency` requests in flight, or an open
    loop of requests arriving at `rate` a second (Poisson, seeded by `seed`). `warmup` completions are not counted
    (default: twice the concurrency; 50 in an open loop), then `measure` are (default: twice the concurrency, at least
    64; 200 in an open loop). `prefix`: tokens at the start of every prompt shared and already in the KV cache (a
    common system prompt under automatic prefix caching): cached in whole blocks, at most all but the prompt's last
    token (which the engine computes to sample from), held once, and not prefilled again. `prefix_hit`: instead, the
    share of each prompt's tokens found cached, the request's own (earlier turns of a conversation: held with the
    request, not shared; hit_tokens), not prefilled again. `speculation`: a draft
    model proposes tokens for the decoding requests, verified by the target each step (assumed acceptance, seeded
    draws); its weights and KV cache share the GPU. `requests`: a closed loop run as a benchmark client runs it (vLLM's
    `bench serve --num-prompts N --max-concurrency C`): N requests in all, the first C sent at once, a new one as each
    finishes while any are left, every one counted (no warm-up; the first wave and the drain included). `queue`: a
    closed loop may hold more requests than the engine runs at once or its KV cache holds; the others wait for room,
    first come first served (else such a concurrency is refused). `request_latency_s`: each request's time outside
    the engine, from the client's sending it to the engine's having it and from the engine's first token to the
    client's having it (the server's HTTP handling, tokenization and streaming), added to its TTFT and end-to-end
    latency (`request_latency_source` says where the figure comes from). Its later tokens take the same way out, so
    TPOT and the inter-token gaps are the engine's. An open loop's arrivals all reach the engine that much later,
    which changes nothing else; a closed loop's engine is refilled at once, as if the next request reached it as the
    last token left (a client sends it only once that token has come back: the note says what share of a request's
    time the slot would stand empty)."""
    if (concurrency is None) == (rate is None):
        raise OpgraphError("give one of --concurrency (requests in flight) and --rate (requests a second)")
    prompts, outputs = length_range("--prompt", prompt), length_range("--output", output)
    engine = engine or vllm(hw)
    engine = engine.given(lambda _: "given (--overhead-us)", overhead_s=overhead_s)
    checks.number("overhead_s", engine.overhead_s, minimum=0, maximum=1)
    checks.choice("scheduling", engine.scheduling, SCHEDULING)
    latency = checks.number("request_latency_s", request_latency_s, minimum=0, maximum=60)
    rng = random.Random(seed)
    prefix = checked_prefix(prefix, prompts[0])
    hit = checks.number("--prefix-hit", prefix_hit, minimum=0, maximum=1)
    if hit and prefix:
        raise OpgraphError("--prefix names a prefix every prompt shares, --prefix-hit the share of each prompt found "
                           "cached: give one")
    bt = engine.block_tokens

    def cached(p: int) -> int:
        return hit_tokens(hit, p, bt) if hit else cached_tokens(prefix, p, bt)

    priced_hw = engine.timed(hw)
    pricer = IterationPricer.of(build, plan, priced_hw)
    # pipeline parallelism: as many batches in flight as stages, one a stage (vLLM's batch queue); each lane is run
    # as an engine of its own over its share of the requests, its steps priced through every stage
    lanes = pricer.lanes
    if speculation is not None:
        check_drafting(lanes)
    spec = speculation
    draft = IterationPricer.of(spec.build, plan, priced_hw) if spec else None
    k = spec.tokens if spec else 0
    longest = prompts[1] + outputs[1]
    engine.check_prompt(prompts[1], prompts[1] - cached(prompts[1]))
    held = kv_blocks(build, plan, hw, engine, longest, spec.build if spec else None)
    blocks, per_request, shared = with_prefix(*held, prefix, prompts[0], bt)
    total = concurrency

    def one_fits() -> None:
        if per_request > blocks:
            raise OpgraphError(f"the KV cache holds {blocks_of(blocks, engine.block_tokens)} on each GPU, "
                               f"fewer than one request of {longest:,} tokens needs ({per_request:,}): use more GPUs "
                               f"(--tp), a larger --memory-fraction or a shorter request")
    if concurrency is not None:
        concurrency = checks.integer("--concurrency", concurrency)
        one_fits()
        fits = min(engine.max_seqs, blocks // per_request)  # requests that run at once, each held whole
        if concurrency > engine.max_seqs and not queue:
            raise OpgraphError(f"--concurrency {concurrency}: the engine runs at most {engine.max_seqs:,} requests "
                               f"at once (--max-seqs); give --max-seqs {concurrency} or a lower concurrency, or "
                               f"--queue to let the others wait")
        if concurrency * per_request > blocks and not queue:
            raise OpgraphError(f"--concurrency {concurrency}: the KV cache holds "
                               f"{blocks_of(blocks, engine.block_tokens)} on each GPU, {per_request:,} for each "
                               f"request of {longest:,} tokens, so at most {counted(fits, 'request')} "
                               f"at once; give --queue to let the others wait for room")
        if concurrency % lanes:
            raise OpgraphError(f"--concurrency {concurrency}: with --pp {lanes} the engine keeps {lanes} batches in "
                               f"flight, one a stage, each with its share of the requests; give a multiple of {lanes}")
        if requests is not None and checks.integer("--requests", requests) % lanes:
            raise OpgraphError(f"--requests {requests}: with --pp {lanes}, give a multiple of {lanes} (each of the "
                               f"{lanes} batches in flight serves its share)")
        concurrency, requests = concurrency // lanes, None if requests is None else requests // lanes
        if requests is not None:  # a benchmark: the first C at once, N in all, every one counted
            requests = checks.integer("--requests", requests)
            if warmup or measure:
                raise OpgraphError("requests: a benchmark counts every request; give no warmup or measure with it")
            warmup, measure = 0, requests
        else:
            warmup = 2 * concurrency if warmup is None else warmup
            measure = max(2 * concurrency, 64) if measure is None else measure
        arrivals = None
    else:
        if requests is not None:
            raise OpgraphError("--requests runs a closed loop as a benchmark client does: give --concurrency with it")
        if queue:
            raise OpgraphError("--queue lets a closed loop hold more than runs at once: an open loop's arrivals (--rate) "
                               "wait for room already; give --concurrency with it, or no --queue")
        rate = checks.number("--rate", rate, above=0, maximum=1e6) / lanes  # each lane takes its share of arrivals
        one_fits()

        def poisson():
            t = 0.0
            while True:
                t += rng.expovariate(rate)
                yield t
        arrivals = poisson()
        warmup = 50 if warmup is None else warmup
        measure = 200 if measure is None else measure
    blocks //= lanes  # a lane's share of the KV cache (each stage's GPUs hold every lane's requests)
    if per_request > blocks:
        raise OpgraphError(f"the KV cache's share of each of the {lanes} batches in flight ("
                           f"{blocks_of(blocks, bt)}) is less than one request of {longest:,} tokens needs "
                           f"({per_request:,}): use more GPUs (--tp) or a shorter request")
    if concurrency is not None:
        decoding = min(concurrency, engine.max_seqs, blocks // per_request)  # the most that decode at once, a lane
        if decoding * (1 + k) > engine.max_batched_tokens:
            raise OpgraphError(f"--concurrency {total}: {decoding:,} requests decoding take {decoding * (1 + k):,} "
                               f"tokens an iteration, more than the engine's budget of "
                               f"{engine.max_batched_tokens:,} (--max-batch-tokens); give a larger budget or a lower "
                               f"concurrency")

    def steps_of(tokens: int) -> list[int] | None:  # tokens each speculative step makes until `tokens` are made
        if spec is None:
            return None
        made = []
        while tokens > 0:
            made.append(min(accepted(rng, spec.acceptance), tokens))
            tokens -= made[-1]
        return made

    def price_one(run: engine_run.Run, i: int, decoding) -> float:  # an open loop's iteration, priced as scheduled
        took, classes = engine_run.price_one(run, i, decoding, pricer, draft, k)
        launched, running = engine_run.host_counts(run, i, i + 1, pricer, draft)
        tooks.append(engine.wall(took, launched[0], running[0]))
        costs.append(classes)
        return tooks[-1]

    def price_many(run: engine_run.Run, low: int, high: int, decoding):  # an open loop's stretch of decodes alone
        took, classes = engine_run.price(run, low, high, decoding, pricer, draft, k)
        walls = engine.wall(took, *engine_run.host_counts(run, low, high, pricer, draft))

        def commit(m: int) -> None:  # the first m ran: their seconds and seconds by class, one iteration each
            tooks.extend(walls[:m].tolist())
            costs.extend({name: float(v[j]) for name, v in classes.items()} for j in range(m))
        return walls, commit
    tooks: list[float] = []
    costs: list[dict] = []
    def draw() -> tuple[int, int]:  # a new request's lengths (fixed ones draw nothing)
        return (prompts[0] if prompts[0] == prompts[1] else rng.randint(*prompts),
                outputs[0] if outputs[0] == outputs[1] else rng.randint(*outputs))
    run = engine_run.schedule(engine, k, blocks, shared, cached, draw, steps_of, concurrency=concurrency,
                              requests=requests, warmup=warmup, measure=measure, arrivals=arrivals,
                              price_one=None if rate is None else price_one, rate=rate,
                              price_many=None if rate is None else price_many)
    decodes_at = np.flatnonzero(np.asarray(run.decoding))  # the iterations that decode, by clock
    # every request's decode steps: to price a closed loop, and to count the tokens drawn steps made
    steps = run.decode_steps(range(len(run.prompt)), 0, len(decodes_at)) if rate is None or spec else None
    if rate is None:
        took, by_iteration = engine_run.price(run, 0, len(run.tokens), None, pricer, draft, k, steps)
        took = engine.wall(took, *engine_run.host_counts(run, 0, len(run.tokens), pricer, draft))
        ended = np.concatenate([np.cumsum(took), [0.0]])  # index -1: the start
        arrived = ended[np.asarray(run.arrival, dtype=np.int64)]
    else:
        took = np.array(tooks)
        by_iteration = {name: np.array([c.get(name, 0.0) for c in costs]) for name in {n for c in costs for n in c}}
        ended = np.concatenate([run.end_time, [0.0]])
        arrived = np.asarray(run.arrival, dtype=float)
    measuring = np.arange(len(run.tokens)) > run.began  # the measured iterations
    measured = np.asarray(run.finished[warmup:], dtype=np.int64)
    if not measuring.any() or not len(measured):
        raise OpgraphError("the run ended before the steady state was measured; measure more requests")
    end, start = ended[len(took) - 1], ended[run.began]
    if rate is not None and run.waiting_left > (run.queued if warmup else 0) + max(10, measure // 4):
        served = len(measured) / (end - start) if end > start else 0.0
        raise OpgraphError(f"--rate {rate:g}: requests arrive faster than the engine finishes them (about "
                           f"{served:,.2f} a second at this load; {run.waiting_left:,} waiting at the end): there is "
                           f"no steady state; give a lower rate")
    first, last = ended[np.asarray(run.first)[measured]], ended[np.asarray(run.done)[measured]]
    output = np.asarray(run.output)[measured]
    # every decode step of a measured request: the time since its last token, shared by the tokens it made
    # tokens made, iteration by iteration: a token a decode (drawn steps: what each made), one a prompt ended
    out = np.asarray(run.ends) + (np.asarray(run.decoding) if spec is None else
                                  np.bincount(decodes_at[steps[0]], weights=steps[2], minlength=len(took)))
    itl_values, itl_counts = _gaps(run, measured, ended, decodes_at, None if spec is None else steps, k)
    gpus, replicas = pricer.gpus, pricer.replicas
    total_time = float(took[measuring].sum())
    by_class = {kind: float(v[measuring].sum()) for kind, v in by_iteration.items()}
    # the GPU waiting on the host: launches, its own time (Engine.wall); fsum: the same figure whatever the classes'
    # order (which follows string hashing)
    idle = total_time - math.fsum(by_class.values())
    if idle > 1e-9 * total_time:
        by_class[HOST] = idle
    notes = (engine.host_words, engine.launch_words, engine.admission_words(concurrency is not None),
             f"KV cache: {engine.name} takes blocks as tokens come and preempts the request admitted last when they "
             f"run out (its tokens recomputed when it runs again)" if engine.preempts else
             f"KV cache: {engine.name} reserves each request's whole length at admission and never preempts")
    if not engine.chunked and concurrency is not None and prompts[1] > engine.room(concurrency):
        notes += (f"{engine.name} runs a prompt whole: {prompts[1]:,} tokens do not fit beside {concurrency - 1} decodes "
                  f"in {engine.max_batched_tokens:,}, so a prompt waits until enough requests finish; give "
                  f"--max-batch-tokens {prompts[1] + concurrency - 1} or more to take it at once, or --chunked-prefill "
                  f"to run it in chunks beside them",)
    queued = concurrency is not None and total > fits  # more in the loop than run at once, each held whole
    if queued and fits == engine.max_seqs:
        notes += (f"queued: at most {fits:,} of the {total:,} requests run at once (the running limit, --max-seqs); "
                  f"the others wait for room, first come first served, and their TTFT includes the wait",)
    elif queued:
        notes += ((f"queued: the KV cache holds {fits:,} of the {total:,} requests whole; {engine.name} takes blocks "
                   f"as tokens come, so more may run, and preempts the request admitted last when they run out "
                   f"({run.preemptions:,} times in the run; its tokens recomputed when it runs again); the others "
                   f"wait for room, first come first served, and their TTFT includes the wait") if engine.preempts else
                  (f"queued: at most {fits:,} of the {total:,} requests run at once (the KV cache, each request held "
                   f"whole); the others wait for room, first come first served, and their TTFT includes the wait"),)
    if run.preemptions and not (queued and fits < engine.max_seqs):  # else the queued note counts them
        notes += (f"preempted {run.preemptions:,} times: the KV cache ran out and the request admitted last gave "
                  f"back its blocks, its tokens recomputed when it ran again",)
    e2e = Stats.of(last - arrived[measured]).shifted(latency)
    if latency:
        notes += (latency_note(latency, request_latency_source, None if rate is not None else latency / e2e.mean),)
    if lanes > 1:
        notes += (f"pipeline parallel over {lanes} stages: {lanes} batches in flight, one a stage, each of "
                  + (f"{concurrency} requests" if concurrency is not None else f"1/{lanes} of the arrivals")
                  + "; a batch's step takes its pass through every stage, or "
                  f"{lanes} x its slowest stage if longer; one lane is run and stands for each (the batches in flight taken "
                  "to be alike)",)
    return Serving(pricer.model, priced_hw, plan, engine, total, prompts, outputs, gpus, replicas,
                   Stats.of(first - arrived[measured]).shifted(latency),
                   Stats.of((last - first)[output > 1] / (output[output > 1] - 1) if (output > 1).any() else [0.0]),
                   Stats.weighted(itl_values, itl_counts) if len(itl_values) else Stats.of([0.0]),
                   e2e,
                   lanes * replicas * float(out[measuring].sum()) / (end - start),  # idle time included
                   Stats.of(took[measuring]), Stats.of(np.asarray(run.tokens)[measuring]),
                   {k: v / total_time for k, v in sorted(by_class.items(), key=lambda kv: -kv[1])},
                   lanes * blocks + shared, run.peak_blocks / (blocks + shared), len(measured), int(measuring.sum()),
                   engine.overhead_s, notes, None if rate is None else rate * lanes, seed, prefix, spec,
                   None if requests is None else requests * lanes, run.preemptions, latency, hit)


def latency_note(latency: float, source: str, idle_share: float | None = None) -> str:
    """What a request latency adds, in words: `source` says where the figure comes from; `idle_share`, for a closed
    loop refilled at once, the share of a request's time a client would leave its slot empty."""
    return (f"each request's time outside the engine (HTTP handling, tokenization, streaming): {latency * 1e3:,.1f} ms "
            f"added to its TTFT and end-to-end latency, not to TPOT; {source}" + (
                "" if idle_share is None else f"; the engine is refilled at once, where a client would leave a "
                f"finished request's slot empty for that long ({idle_share:.1%} of a request's time)"))


def _gaps(run: engine_run.Run, measured: np.ndarray, ended: np.ndarray, decodes_at: np.ndarray, steps, k: int):
    """The gaps between the tokens of the `measured` requests, as (values, how many times each), from the iterations'
    ends (`ended`, -1: the start) and the iterations that decode (`decodes_at`, by clock). A step after a request's
    first follows its step of the clock before, so its gap is the clock's, the same for every request, shared by the
    tokens it made: those are counted by clock (and tokens made, given drawn `steps`), not listed."""
    # the measured requests' segments (a preempted request's continuations too), by id, as `steps` lists requests
    measured = np.flatnonzero(np.isin(np.asarray(run.origin), measured))
    resumed = [(run.first[r], run.resumed[r]) for r in measured.tolist() if r in run.resumed]
    resume_gap = np.array([ended[a] - ended[b] for a, b in resumed])  # a continuation's first token: since the last
    start, first = np.asarray(run.start)[measured], np.asarray(run.first)[measured]
    decoded = np.asarray(run.steps)[measured] > 0
    start, first = start[decoded], first[decoded]
    gap_of = np.diff(np.concatenate([[0.0], ended[decodes_at]]))  # a clock's gap: since the clock before
    first_gap = ended[decodes_at[start]] - ended[first]  # a request's first step: since its first token
    if steps is None:  # one token a step: each request's later steps are a range of clocks
        stop = start + np.asarray(run.steps)[measured][decoded]
        edges = np.bincount(start + 1, minlength=len(decodes_at) + 1) - np.bincount(stop, minlength=len(decodes_at) + 1)
        counts = np.cumsum(edges)[:len(decodes_at)]
        keys = np.flatnonzero(counts)
        return (np.concatenate([gap_of[keys], first_gap, resume_gap]),
                np.concatenate([counts[keys], np.ones(len(start) + len(resume_gap), int)]))
    clock, _, made, request = steps
    is_measured = np.zeros(len(run.prompt), dtype=bool)
    is_measured[measured] = True
    mine = is_measured[request]
    clock, made, request = clock[mine], made[mine], request[mine]
    later = clock > np.asarray(run.start)[request]
    kinds = k + 2
    counts = np.bincount(clock[later] * kinds + made[later], weights=made[later])
    keys = np.flatnonzero(counts)
    first_made = made[~later]  # one first step a request, by id, as `first_gap` is
    return (np.concatenate([gap_of[keys // kinds] / (keys % kinds), first_gap / first_made, resume_gap]),
            np.concatenate([counts[keys], first_made, np.ones(len(resume_gap), int)]).astype(np.int64))


def blocks_of(blocks: int, tokens: int) -> str:
    """'7,560 blocks of 16 tokens' (SGLang's blocks hold one token)."""
    return f"{blocks:,} blocks of {tokens} token{'s' if tokens != 1 else ''}"


def kv_blocks(build, plan: FusionPlan, hw: Hardware, engine: Engine, length: int,
               draft=None) -> tuple[int, int]:
    """(KV-cache blocks on one GPU, blocks one request of `length` tokens holds at its end); with a draft model, its
    weights and its cache share the GPU (a block then holds both models' tokens)."""
    budget, weights, activations, kv = hw.capacity * engine.memory_fraction, 0, 0, 0
    for make in (build, draft) if draft is not None else (build,):
        one = footprint_of(make(Phase.holding(1, length)), plan, hw)
        largest = footprint_of(make(Phase.prefill(1, engine.max_batched_tokens)), plan, hw)
        weights, activations = weights + one.weight_bytes, activations + largest.activation_bytes
        kv += one.kv_cache_bytes
    free = (budget - weights - activations) * engine.kv_share
    # bytes a block of tokens takes, all layers (a model with only recurrent state holds a fixed state per request)
    per_block = max(kv / length * engine.block_tokens, 1.0)
    if free <= 0:
        raise OpgraphError(f"the weights ({weights / 1e9:,.1f} GB a GPU) and the largest iteration's activations "
                           f"({activations / 1e9:,.1f} GB, {engine.max_batched_tokens:,} tokens) leave nothing of "
                           f"{engine.memory_fraction:g} x {hw.capacity / 2**30:,.0f} GiB ({budget / 1e9:,.1f} GB) "
                           f"for the KV cache: spread the model over more GPUs (--tp, --pp, --ep)")
    return int(free // per_block), math.ceil(length / engine.block_tokens)


def replica_holds(blocks: int, per_request: int, engine: Engine, lanes: int = 1) -> int:
    """Requests a replica holds at once (kv_blocks's figures): each of its `lanes` batches in flight (one a pipeline
    stage) its share of the KV cache's blocks, up to the engine's running limit a batch."""
    return lanes * min(blocks // lanes // per_request, engine.max_seqs)


def accepted(rng: random.Random, acceptance: tuple[float, ...]) -> int:
    """Tokens one speculative step yields: the drafts accepted in a row, plus the target's own next token."""
    n = 1
    for a in acceptance:
        if rng.random() >= a:
            break
        n += 1
    return n
