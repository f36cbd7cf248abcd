"""Measured serving results: the CSV `opgraph validate` reads when its header names ttft_ms and tpot_ms.

One row a served configuration. Columns (a header row names them; order is free; columns not listed are kept
unread, as extracts carry provenance):

    model           an opgraph preset (opgraph models)
    gpu             a shipped GPU (opgraph hardware)
    engine          vllm, sglang or trtllm (opgraph.analysis.serve.ENGINES)
    tp              tensor-parallel GPUs of one replica
    concurrency     requests in flight (the benchmark's max concurrency); empty: not known, the row skipped
    prompt_tokens   prompt tokens per request (the benchmark's input length)
    output_tokens   output tokens per request
    ttft_ms         measured mean time to first token, ms
    tpot_ms         measured mean time per output token, ms (a request's (end-to-end - TTFT) / (output - 1))
  optional:
    pp, dp, ep      pipeline, attention-data and expert parallelism (default 1). Expert parallelism is modelled
                    over the whole group (ep = tp x dp: tensor-parallel attention with the experts spread, or
                    data-parallel attention with all-to-alls) or, without dp, over ep groups of the tensor-parallel
                    group (ep dividing tp); data parallelism with it or as replicas of a dense model; the
                    concurrency is the whole group's, dp x each replica's
    moe_tp          the MoE layers' tensor parallelism (default: tp x dp / ep); experts both split (moe_tp) and
                    spread (ep) are modelled with moe_tp x ep = tp and no dp; split across data-parallel replicas
                    they are not modelled yet: skipped
    gemm_quant_mode the GEMMs' storage as the benchmark labels it: empty (the preset's own), fp8 or fp8_block
                    (fp8 weights and activations), or another label the validating resolver maps or refuses
                    (opgraph.choices.serving_row)
    flags           ';'-separated doubts about the row (benchmarks/extract_serving.py); a flagged row is skipped,
                    except for no_engine_version alone (the campaign did not record the engine's version)
    max_batch_tokens  the engine's token budget an iteration as the benchmark set it (vLLM's max-num-batched-tokens,
                    SGLang's chunked-prefill-size, TensorRT-LLM's max_num_tokens); empty: the engine's default
    kv_dtype        the KV cache's storage as the benchmark set it: empty (the engine's default, 16-bit) or fp8
                    (with fp8 GEMMs; beside other storage the row is skipped)
    moe_kernel      the kernel the engine ran MXFP4 experts with: empty (its default) or marlin (vLLM's
                    VLLM_MXFP4_USE_MARLIN=1; priced as --marlin-moe prices it)
    batch_wait_ratio, batch_wait_iters  TensorRT-LLM's batch waiting as the benchmark set it
                    (batch_wait_max_tokens_ratio, above 0 and at most 1, and batch_wait_timeout_iters, a whole number
                    above 0; both or neither, as TensorRT-LLM waits only with both; engine trtllm only); empty: off,
                    the engine's default (served as `opgraph serve --batch-wait RATIO,ITERS` serves it)
    memory_fraction the engine's memory setting as the benchmark set it, above 0 and at most 1 (served as `opgraph
                    serve --memory-fraction` serves it: vLLM's gpu_memory_utilization, SGLang's mem_fraction_static,
                    TensorRT-LLM's free_gpu_memory_fraction); empty: the engine's default
    scheduling      how the engine met its host's work and its GPU's: empty (its default, async), async or sync
                    (served as `opgraph serve --scheduling` serves it)
    chunked_prefill whether the engine ran long prompts in chunks: empty (its default: vLLM and SGLang on,
                    TensorRT-LLM off), on or off (served as `opgraph serve --chunked-prefill` and
                    `--no-chunked-prefill` serve it; SGLang always chunks, so off is refused for it)
    decode_workers, prefill_workers  a disaggregated deployment's decode and prefill workers (both or neither;
                    neither: one engine does both); tp, pp, dp, ep and moe_tp are then each decode worker's layout
                    and the concurrency the client's over every decode replica (decode_workers x dp of them)
    prefill_tp, prefill_dp, prefill_ep  each prefill worker's layout (default 1), with prefill_workers
    client          the benchmark client that measured the row: steady, wave, inferencemax, sa-bench or aiperf
                    (opgraph.analysis.serving_validate says what each runs); `opgraph validate` serves each row so
                    unless --protocol names one for all; empty: not known (steady)
    source_id       free text, shown with the row's errors

A file ending in .gz is read through gzip. Every mistake is one OpgraphError naming the file, the row
(1 = the first data row) and the column.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from opgraph.core.model import expert_layout
from opgraph.errors import OpgraphError
from opgraph.files import datafile

REQUIRED = ("model", "gpu", "engine", "tp", "concurrency", "prompt_tokens", "output_tokens", "ttft_ms", "tpot_ms")
HARMLESS_FLAGS = frozenset({"no_engine_version"})
MOE_KERNELS = ("", "marlin")
KV_DTYPES = ("", "fp8")
SCHEDULINGS = ("", "async", "sync")
CHUNKED_PREFILL = ("", "on", "off")
# the benchmark clients a row may name (the client column), each run as opgraph.analysis.serving_validate.load says
CLIENTS = ("steady", "inferencemax", "wave", "aiperf", "sa-bench")
POOL_COLUMNS = ("decode_workers", "prefill_workers", "prefill_tp", "prefill_dp", "prefill_ep")


@attrs.frozen
class ServingMeasurement:
    row: int
    model: str
    gpu: str
    engine: str
    tp: int
    concurrency: int
    prompt: int
    output: int
    ttft_s: float
    tpot_s: float
    pp: int = 1
    dp: int = 1
    ep: int = 1
    gemm: str = ""
    flags: tuple[str, ...] = ()
    source: str = ""
    moe_tp: int = 0  # 0: not given, tp x dp / ep
    max_batch_tokens: int = 0  # the engine's token budget as the benchmark set it; 0: the engine's default
    kv_dtype: str = ""  # KV_DTYPES: "" the engine's default (16-bit), fp8
    moe_kernel: str = ""  # MOE_KERNELS: "" the engine's default, marlin (MXFP4 experts through Marlin)
    batch_wait: tuple[float, int] = (0.0, 0)  # TensorRT-LLM's (ratio, iterations); (0, 0): off
    scheduling: str = ""  # SCHEDULINGS: "" the engine's default, async or sync
    client: str = ""  # CLIENTS: the benchmark client that measured the row; "": not known
    memory_fraction: float = 0.0  # the engine's memory setting as the benchmark set it; 0: the engine's default
    chunked_prefill: str = ""  # CHUNKED_PREFILL: "" the engine's default, on or off
    decode_workers: int = 0  # a disaggregated deployment's decode workers (each of tp, pp, dp, ep); 0: aggregated
    prefill: tuple[int, int, int, int] = (0, 1, 1, 1)  # its prefill workers and each one's tp, dp and ep

    @property
    def disaggregated(self) -> bool:
        return self.decode_workers > 0

    @property
    def replicas(self) -> int:
        """The replicas the client's requests spread over: data-parallel ones, of every decode worker."""
        return self.dp * max(self.decode_workers, 1)

    @property
    def replica_concurrency(self) -> int:
        """Requests in flight on each (decode) replica: the client's concurrency spread evenly."""
        return self.concurrency // self.replicas

    @property
    def skip(self) -> str:
        """Why the row is not predicted ('' if it is): what opgraph does not model yet, or a doubt about the row."""
        doubts = [f for f in self.flags if f not in HARMLESS_FLAGS]
        if doubts:
            return f"flagged {';'.join(doubts)}"
        if not self.concurrency:
            return "no concurrency given"
        if not expert_layout(self.tp, self.dp, self.ep):
            return f"ep {self.ep} over part of the tp x dp = {self.tp * self.dp} GPUs (not modelled in serving yet)"
        if self.moe_tp > 1 and self.dp > 1:
            return "MoE tensor parallelism beside data parallelism (not modelled in serving yet)"
        if self.moe_tp > 1 and self.ep > 1 and self.moe_tp * self.ep != self.tp:
            return f"moe_tp {self.moe_tp} x ep {self.ep} is not the tp of {self.tp} (not modelled in serving yet)"
        if self.concurrency % self.replicas:
            return (f"concurrency {self.concurrency} not a multiple of dp {self.dp}" if not self.disaggregated else
                    f"concurrency {self.concurrency} not a multiple of the {self.replicas} decode replicas")
        if self.disaggregated and not expert_layout(*self.prefill[1:3], self.prefill[3]):
            return (f"prefill_ep {self.prefill[3]} over part of the prefill_tp x prefill_dp = "
                    f"{self.prefill[1] * self.prefill[2]} GPUs (not modelled in serving yet)")
        return ""


def is_serving(path: str | Path) -> bool:
    """Whether a CSV's header names the serving columns ttft_ms and tpot_ms (else it is a kernel measurement file)."""
    path = Path(path)
    if path.suffix not in (".csv", ".gz") or path.name.endswith(".json.gz") or not path.is_file():
        return False
    header = datafile.csv_rows(path, "measurement CSV").fieldnames or []
    return "ttft_ms" in header and "tpot_ms" in header


def _number(where: str, column: str, text: str, kind):
    try:
        value = kind(text)
    except ValueError:
        raise OpgraphError(f"{where}: column {column}: {text!r} is not {'an integer' if kind is int else 'a number'}")\
            from None
    if not value > 0:
        raise OpgraphError(f"{where}: column {column}: {text!r} must be above 0")
    return value


def _choice(where: str, f: dict, column: str, valid: tuple[str, ...]) -> str:
    """An optional column's value, one of `valid` ("" when absent)."""
    value = (f.get(column) or "").strip()
    if value not in valid:
        raise OpgraphError(f"{where}: column {column}: {value!r} is not one of: empty, "
                           f"{', '.join(v for v in valid if v)}")
    return value


def _batch_wait(where: str, f: dict) -> tuple[float, int]:
    """The optional batch_wait_ratio and batch_wait_iters columns: both or neither, TensorRT-LLM's only."""
    ratio, iters = ((f.get(c) or "").strip() for c in ("batch_wait_ratio", "batch_wait_iters"))
    if not ratio and not iters:
        return 0.0, 0
    if not (ratio and iters):
        raise OpgraphError(f"{where}: columns batch_wait_ratio and batch_wait_iters: give both or neither "
                           f"(TensorRT-LLM waits only with both above 0)")
    if f["engine"] != "trtllm":
        raise OpgraphError(f"{where}: column batch_wait_ratio: batch waiting is TensorRT-LLM's (engine trtllm), not "
                           f"{f['engine']}'s")
    value = _number(where, "batch_wait_ratio", ratio, float)
    if value > 1:
        raise OpgraphError(f"{where}: column batch_wait_ratio: {ratio!r} is a share of the token budget, at most 1")
    return value, _number(where, "batch_wait_iters", iters, int)


def _memory_fraction(where: str, f: dict) -> float:
    """The optional memory_fraction column: a share, above 0 and at most 1 (0.0 when absent)."""
    text = (f.get("memory_fraction") or "").strip()
    if not text:
        return 0.0
    value = _number(where, "memory_fraction", text, float)
    if value > 1:
        raise OpgraphError(f"{where}: column memory_fraction: {text!r} is a share (of the GPU's memory, or "
                           f"TensorRT-LLM's of what the weights leave), at most 1")
    return value


def read(path: str | Path) -> list[ServingMeasurement]:
    """Every row of a serving measurement CSV (or .csv.gz), checked."""
    reader = datafile.csv_rows(path, "measurement CSV")
    missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
    if missing:
        raise OpgraphError(f"{path}: a serving measurement file needs the columns {', '.join(REQUIRED)}; missing "
                           f"{', '.join(missing)}")
    out = []
    for i, f in enumerate(reader, 1):
        where = f"{path}: row {i}"
        ints = {c: _number(where, c, f[c], int) for c in ("tp", "prompt_tokens", "output_tokens")}
        ints["concurrency"] = _number(where, "concurrency", f["concurrency"], int) if f["concurrency"].strip() else 0
        ints.update({c: _number(where, c, f[c], int) for c in ("pp", "dp", "ep", "moe_tp", "max_batch_tokens",
                                                                   *POOL_COLUMNS) if (f.get(c) or "").strip()})
        if ("decode_workers" in ints) != ("prefill_workers" in ints) or (
                "decode_workers" not in ints and any(c in ints for c in POOL_COLUMNS)):
            raise OpgraphError(f"{where}: columns decode_workers and prefill_workers: a disaggregated row gives both "
                               f"(its prefill_tp, prefill_dp and prefill_ep beside them), an aggregated row none of "
                               f"{', '.join(POOL_COLUMNS)}")
        kernel, kv, scheduled, client, chunking = (_choice(where, f, c, valid) for c, valid in (
            ("moe_kernel", MOE_KERNELS), ("kv_dtype", KV_DTYPES), ("scheduling", SCHEDULINGS),
            ("client", ("", *CLIENTS)), ("chunked_prefill", CHUNKED_PREFILL)))
        if chunking == "off" and f["engine"] == "sglang":
            raise OpgraphError(f"{where}: column chunked_prefill: 'off' is not modelled for sglang (without chunked "
                               f"prefill it runs prompts up to its max_prefill_tokens an iteration); give empty or on")
        out.append(ServingMeasurement(
            i, f["model"], f["gpu"], f["engine"], ints["tp"], ints["concurrency"], ints["prompt_tokens"],
            ints["output_tokens"], _number(where, "ttft_ms", f["ttft_ms"], float) / 1e3,
            _number(where, "tpot_ms", f["tpot_ms"], float) / 1e3, ints.get("pp", 1), ints.get("dp", 1),
            ints.get("ep", 1), f.get("gemm_quant_mode") or "", tuple(x for x in (f.get("flags") or "").split(";") if x),
            f.get("source_id") or "", ints.get("moe_tp", 0), ints.get("max_batch_tokens", 0), kv, kernel,
            _batch_wait(where, f), scheduled, client, _memory_fraction(where, f), chunking,
            ints.get("decode_workers", 0),
            (ints.get("prefill_workers", 0), *(ints.get(f"prefill_{k}", 1) for k in ("tp", "dp", "ep")))))
    if not out:
        raise OpgraphError(f"{path}: no measurements (only a header)")
    return out
