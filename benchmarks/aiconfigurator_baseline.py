"""aiconfigurator's own predictions of the held-out serving rows, for a baseline beside opgraph's (issue 17 §7).

Usage (in a virtual environment of its own: aiconfigurator is not a dependency of opgraph, nor an extra; it is
run here once and its predictions kept as data):

    python -m venv /tmp/aic && /tmp/aic/bin/pip install aiconfigurator==0.12.0 aiconfigurator-core==0.12.0
    /tmp/aic/bin/python benchmarks/aiconfigurator_baseline.py          # 16 minutes on this 2-core machine
    /tmp/aic/bin/python benchmarks/aiconfigurator_baseline.py --new    # only the rows without a prediction yet

writes benchmarks/data/aiconfigurator-predictions.csv.gz, one row per H100/H200 row of
benchmarks/data/serving-measured.csv.gz (`source_id`, the silicon row's `id`): the TTFT and TPOT aiconfigurator
predicts, in ms, the engine version whose kernel tables it used, a note where it could not be given the row as it
ran, and its error where it predicts nothing.
`python benchmarks/check_serving.py --baseline` prints them beside opgraph's, on the same rows.

How each row is predicted: as aiconfigurator's own accuracy check does it
(github.com/ai-dynamo/aiconfigurator, tools/accuracy_regression_testing/predict_silicon_sample.py: the silicon
row's model_path, system, mode, backend, backend_version, isl, osl, gemm_quant_mode, moe_quant_mode, batch_size and
parallel sizes passed to `aiconfigurator.cli.api.cli_estimate`; where its tables lack the row's engine version,
again with its default version), and given what opgraph is given of the same row (as_run): the parallel layout
the run had, the checkpoint's storage where the file names one aiconfigurator has no GEMMs for, its fp8 scheme
where the file writes "fp8" (blocks for DeepSeek's and Qwen's FP8 releases, per tensor with static input scales for
ModelOpt's, the FP8 TensorRT-LLM loads; fp8_scheme), the KV-cache dtype
(where aiconfigurator has attention tables for it; the note column says where not) and memory setting the
deployment had. Run on the file's fields alone, 0.12.0 predicted 1,094 of the 1,449 rows the file held before
MiniMax-M2.5's and GLM-5's were added (December 2026);
it refuses gpt-oss-120b's and Kimi-K2.5's rows (no nvfp4_wo or int4_wo GEMMs) and the rows whose layout the file
writes wrongly. Its modelling is its own: its token budget per iteration and its scheduler. Its tables are of one
or a few engine versions a GPU (TensorRT-LLM 1.3.0rc20, vLLM 0.24.0, SGLang 0.5.14 on the H100 and H200), none the
rows' own; opgraph's kernels are fitted on vLLM 0.24.0's.

That check runs on this very file (silicon_sample.csv) to gate aiconfigurator's changes, so these rows are not
held out from aiconfigurator as they are from opgraph: the comparison favours it. Four of the rows' model ids
have no config in the package (MODEL_ALIASES): offline, each is read from a local folder holding the shipped config
of the same model (GLM-5's zhipuai/GLM-5: zai-org/GLM-5-FP8, the checkpoint InferenceX served).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import sys
import tempfile
import time
import zipfile
from contextlib import redirect_stdout
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
MEASURED = DATA / "serving-measured.csv.gz"
OUT = DATA / "aiconfigurator-predictions.csv.gz"
HELD_OUT = ("h100-sxm", "h200")
PARALLEL = ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")
# a disaggregated row's fields, each pool's layout, batch and workers (predict_silicon_sample.py's DISAGG_FIELDS)
DISAGGREGATED = tuple(f"{pool}_{field}" for pool in ("prefill", "decode")
                      for field in (*PARALLEL, "batch_size", "num_workers"))
VERSION_REFUSED = ("Failed to load perf database", "raw version query")
# The rows' model ids aiconfigurator 0.12.0 ships no config for, and the shipped config each is given: the same
# model's config under its former name on the Hub (Meta-Llama-3.1-* was renamed Llama-3.1-*; an Instruct model and
# NVIDIA's FP8 copy share the base model's architecture; the rows pass the FP8 GEMMs as gemm_quant_mode).
MODEL_ALIASES = {
    "meta-llama/Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
    "meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Meta-Llama-3.1-8B",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "meta-llama/Meta-Llama-3.1-8B",
    "zhipuai/GLM-5": "zai-org/GLM-5-FP8",  # zai-org's former name; the runs served its FP8 release
}
# The file labels gpt-oss-120b's and Kimi-K2.5's GEMMs by their expert storage (nvfp4_wo, int4_wo), which
# aiconfigurator 0.12.0 has no GEMM tables for and refuses; their checkpoints keep attention and dense layers in
# bf16 and the experts in MXFP4 (gpt-oss: 4-bit weights, 16-bit activations) and int4 (Kimi-K2.5, weight-only).
UNPRICED_GEMMS = ("nvfp4_wo", "nvfp4", "int4_wo")
CHECKPOINT_STORAGE = {"gpt-oss-120b": ("bfloat16", "w4a16_mxfp4"), "kimi-k2": ("bfloat16", "int4_wo")}
# The file writes every fp8 checkpoint's GEMMs "fp8", which aiconfigurator prices as per-tensor fp8 with the
# activations' scale computed at run time (its TensorRT-LLM collector loads no input_scale, so the GEMM runs the
# dynamic path, and it derives fp8_static by taking that step's own table off). The checkpoints store it otherwise:
# DeepSeek's and Qwen's FP8 releases in 128 x 128 blocks (config.json quantization_config weight_block_size), and
# NVIDIA's ModelOpt FP8 checkpoints, the FP8 that TensorRT-LLM's PyTorch backend loads, per tensor with calibrated,
# static input scales (their input_scale tensors).
BLOCK_FP8_CHECKPOINTS = ("deepseek-ai/DeepSeek-R1", "deepseek-ai/DeepSeek-V3", "Qwen/Qwen3-235B-A22B-FP8",
                         "MiniMaxAI/MiniMax-M2.5", "zhipuai/GLM-5")  # GLM-5's rows served zai-org/GLM-5-FP8
FIELDS = ("source_id", "aiconfigurator", "backend_version", "ttft_ms", "tpot_ms", "note", "error")


def silicon_rows(source: Path | None) -> dict[str, dict[str, str]]:
    """The silicon sample's rows by id: from `source` (the CSV, or the aiconfigurator-core wheel), else from the
    installed aiconfigurator_core package."""
    if source is None:
        import aiconfigurator_core

        source = Path(aiconfigurator_core.__file__).parent / "systems" / "silicon_sample.csv"
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            text = wheel.read("aiconfigurator_core/systems/silicon_sample.csv").decode()
    else:
        text = source.read_text()
    return {row["id"]: row for row in csv.DictReader(io.StringIO(text))}


def estimate_args(silicon: dict[str, str], run: dict[str, str] | None = None) -> dict:
    """cli_estimate's arguments for one silicon row, as predict_silicon_sample.py's _estimate_args builds them (an
    aggregated row's batch and layout, a disaggregated row's each pool's); with `run`, the row as
    serving-measured.csv.gz says it ran (as_run)."""
    args = dict(
        model_path=silicon["model_path"], system_name=silicon["system"], mode=silicon["mode"],
        backend_name=silicon["backend"], backend_version=silicon["backend_version"] or None, isl=int(silicon["isl"]),
        osl=int(silicon["osl"]), gemm_quant_mode=silicon["gemm_quant_mode"] or None,
        moe_quant_mode=silicon["moe_quant_mode"] or None,
        **{field: int(silicon[field]) for field in (DISAGGREGATED if silicon["mode"] == "disagg" else
                                                   ("batch_size", *PARALLEL)) if silicon.get(field)},
    )
    return as_run(args, run) if run else args


def as_run(args: dict, run: dict[str, str]) -> dict:
    """The arguments with what opgraph is given of the same row (extract_serving.py): the parallel layout as the run
    had it (InferenceX's ids are converted wrongly in some of the file's rows), the checkpoint's own storage where
    the file names one aiconfigurator has no GEMMs for (CHECKPOINT_STORAGE) and its fp8 scheme where the file writes
    "fp8" (fp8_scheme), and the KV-cache dtype and memory setting the deployment had."""
    ints = {k: int(run[k]) for k in ("tp", "pp", "dp", "moe_tp", "ep") if run.get(k)}
    layout = dict(tp_size=ints.get("tp", 1), pp_size=ints.get("pp", 1), attention_dp_size=ints.get("dp", 1),
                  moe_tp_size=ints.get("moe_tp"), moe_ep_size=ints.get("ep"))
    # a disaggregated row's pools are as the file gives them (no correction is made to them)
    out = {**args, **({} if run.get("decode_workers") else {k: v for k, v in layout.items() if v is not None})}
    if args.get("gemm_quant_mode") in UNPRICED_GEMMS and run["model"] in CHECKPOINT_STORAGE:
        out["gemm_quant_mode"], out["moe_quant_mode"] = CHECKPOINT_STORAGE[run["model"]]
    scheme = fp8_scheme(run)
    if args.get("gemm_quant_mode") == "fp8":
        out["gemm_quant_mode"] = scheme
    if args.get("moe_quant_mode") == "fp8" and scheme == "fp8_block":  # the experts are stored as the rest
        out["moe_quant_mode"] = scheme
    if run.get("kv_dtype"):
        out["kvcache_quant_mode"] = run["kv_dtype"]
    if run.get("memory_fraction"):
        out["free_gpu_memory_fraction"] = float(run["memory_fraction"])
    return out


def fp8_scheme(run: dict[str, str]) -> str:
    """How the row's checkpoint stores the GEMMs the file writes "fp8", in aiconfigurator's words: fp8_block for a
    block-scaled checkpoint (BLOCK_FP8_CHECKPOINTS), fp8_static for NVIDIA's ModelOpt checkpoints (nvidia/*-FP8, and
    every per-tensor fp8 run of TensorRT-LLM, whose PyTorch backend takes FP8 from ModelOpt checkpoints alone), else
    fp8 (a 16-bit checkpoint another engine may quantize as it loads it, with run-time activation scales)."""
    source = run.get("model_source", "")
    if source in BLOCK_FP8_CHECKPOINTS:
        return "fp8_block"
    if run.get("engine") == "trtllm" or (source.startswith("nvidia/") and source.endswith("-FP8")):
        return "fp8_static"
    return "fp8"


def predict(args: dict) -> tuple[float, float, str, str]:
    """(TTFT ms, TPOT ms, the engine version used, a note): with the row's version, else aiconfigurator's default
    where its tables lack it (as predict_silicon_sample.py retries); with the deployment's KV-cache dtype, else
    aiconfigurator's own choice where it has no attention tables for it (SGLang's fp8 cache on the H200)."""
    from aiconfigurator.cli.api import cli_estimate

    def run(args):
        with redirect_stdout(sys.stderr):
            result = cli_estimate(**args)
        return result.ttft, result.tpot, result.backend_version

    def any_version(args):
        try:
            return run(args)
        except ValueError as e:
            # 0.12.0 refuses a version outside its "queryable slots" with its own message
            if args["backend_version"] is None or not any(s in str(e) for s in VERSION_REFUSED):
                raise
            return run({**args, "backend_version": None})

    try:
        return (*any_version(args), "")
    except Exception as e:
        if "kvcache_quant_mode" not in args or "kv_quant" not in str(e):
            raise
        kv = args["kvcache_quant_mode"]
        args = {k: v for k, v in args.items() if k != "kvcache_quant_mode"}
        return (*any_version(args), f"no attention tables for a {kv} KV cache: its own choice of KV cache")


def model_configs(into: Path) -> None:
    """Each of MODEL_ALIASES as a local model folder under `into` (into/<org>/<name>/config.json, the shipped config of
    its alias), so that with `into` the working directory aiconfigurator reads the row's own model_path from disk
    where it would download it from the Hugging Face Hub (it reads a path that names a folder as a local model)."""
    import shutil

    import aiconfigurator_core

    shipped = Path(aiconfigurator_core.__file__).parent / "model_configs"
    for hf_id, shipped_id in MODEL_ALIASES.items():
        (into / hf_id).mkdir(parents=True, exist_ok=True)
        shutil.copy(shipped / f"{shipped_id.replace('/', '--')}_config.json", into / hf_id / "config.json")


def main(argv: list[str]) -> int:
    import logging

    try:
        from aiconfigurator import __version__
    except ImportError:
        print("aiconfigurator_baseline.py: aiconfigurator is not installed in this Python; in a virtual environment of "
              "its own: pip install aiconfigurator==0.12.0 aiconfigurator-core==0.12.0", file=sys.stderr)
        return 2

    import aiconfigurator_core

    logging.disable(logging.WARNING)  # aiconfigurator logs every table it loads
    site = str(Path(aiconfigurator_core.__file__).parent.parent) + os.sep  # its errors name its files: kept relative
    new = "--new" in argv  # predict only the rows the file has no prediction for yet, keeping the others
    argv = [a for a in argv if a != "--new"]
    silicon = silicon_rows(Path(argv[0]).resolve() if argv else None)
    with gzip.open(MEASURED, "rt", newline="") as f:
        runs = [r for r in csv.DictReader(f) if r["gpu"] in HELD_OUT]
    kept = {}
    if new:
        with gzip.open(OUT, "rt", newline="") as f:
            kept = {r["source_id"]: r for r in csv.DictReader(f)}
    os.chdir(tempfile.mkdtemp())
    model_configs(Path.cwd())
    found, start = [], time.time()
    for n, run in enumerate(runs, 1):
        if run["source_id"] in kept:
            found.append(kept[run["source_id"]])
            continue
        out = dict.fromkeys(FIELDS, "")
        out.update(source_id=run["source_id"], aiconfigurator=__version__)
        try:
            ttft, tpot, version, note = predict(estimate_args(silicon[run["source_id"]], run))
            out.update(ttft_ms=f"{ttft:.4f}", tpot_ms=f"{tpot:.4f}", backend_version=version, note=note)
        except Exception as e:  # noqa: BLE001 -- each failure is data: aiconfigurator predicts nothing for the row
            out["error"] = " ".join(f"{type(e).__name__}: {e}".replace(site, "").split())[:300]
        found.append(out)
        if n % 50 == 0:
            print(f"{n}/{len(runs)} rows, {time.time() - start:.0f} s", file=sys.stderr)
    with open(OUT, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        f = io.TextIOWrapper(gz, newline="")
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(found)
        f.flush()
        f.detach()
    failed = sum(1 for r in found if r["error"])
    print(f"{OUT}: {len(found)} rows, {len(found) - failed} predicted, {failed} not ({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
