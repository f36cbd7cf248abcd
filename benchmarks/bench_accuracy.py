"""How well the time model matches measured H100 kernels, against the issue's targets (median |error| <= 10% and
p90 <= 30% per GEMM and attention class on held-out measurements; every GEMM class: gemm (bf16) and gemm_fp8).

1. Fits the time model to each GPU's vLLM kernels (benchmarks/data/<gpu>-vllm.csv.gz) with 20% held out, exactly as
   the shipped hardware/calibrations/<gpu>.toml were made, and prints the held-out error per class.
2. Checks the shipped calibration on the frameworks it was not fitted to (TensorRT-LLM, SGLang).

    python benchmarks/bench_accuracy.py            # the error, against the targets
    python benchmarks/bench_accuracy.py --write    # also rewrite hardware/calibrations/<gpu>.toml from these fits
    python benchmarks/bench_accuracy.py --gpus a100-sxm    # one GPU's fit (or a comma-separated list)

The fused-MoE rows (H100 SXM and H200: vLLM's fused_experts timed whole) fit the `moe`, `moe_fp8` and `moe_w4` classes.
The all-reduce rows fit the `collective` class and the expert-parallel dispatch and combine rows (H100 SXM, H200, B200)
the `all_to_all` class (no target is set for either; a class whose fit is worse than its spec's alpha-beta on the
held-out rows, as the L40S's collective is, is printed but not shipped: UNSHIPPED). Needs scipy (pip install ".[fit]").
The fp8 GEMM rows (vLLM's CUTLASS fp8 x fp8 kernel; not on the A100 SXM, which has no fp8 tensor cores) fit the
`gemm_fp8` class; a calibration without it prices fp8 GEMMs by its `gemm` class (opgraph.pricing.timing.FALLBACK), so
beside the roofline each such class's held-out rows are also priced by that fallback ("by gemm's fit").
Norms and elementwise kernels (H100 SXM only) come from Liger-Kernel's published benchmarks
(benchmarks/data/h100-sxm-liger.csv, benchmarks/extract_liger.py): 30 kernels, fitted apart with 40% held out (seed
0), so that each of the two classes keeps three held-out kernels; read their figures as indicative.
Not yet here: serving-style end-to-end decode steps (no measured steps ship).
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from opgraph import hardware
from opgraph.analysis.calibrate import calibrate, fit_summary, split
from opgraph.analysis.validate import validate
from opgraph.pricing.kinds import FALLBACK
from opgraph.pricing.kinds.attention import DECODE_ATTENTION, PREFILL_ATTENTION
from opgraph.pricing.kinds.elementwise import ELEMENTWISE
from opgraph.pricing.kinds.gemm import CLASSES as GEMMS
from opgraph.pricing.kinds.moe import CLASSES as MOES
from opgraph.pricing.kinds.moe import MOE
from opgraph.pricing.kinds.norm import NORM
from opgraph.pricing.timing import ROOFLINE

GEMM_CLASSES, GEMM_FP8 = frozenset(c.name for c in GEMMS), "gemm_fp8"
from opgraph.files.measurements import read
from opgraph.pricing.kinds import time_class
from opgraph.hardware.calibration import FOLDER, write

DATA = Path(__file__).parent / "data"
TARGET_MEDIAN, TARGET_P90 = 0.10, 0.30
TARGETED = GEMM_CLASSES | {c.name for c in MOES} | {PREFILL_ATTENTION, DECODE_ATTENTION, NORM, ELEMENTWISE}  # every
# class measured on the H100
LIGER_HOLDOUT = 0.4  # of Liger's 30 H100 kernels: three held out per class


EXP_RATES = {"h100-sxm": 3.9e12, "h200": 3.9e12}  # FlashAttention-3 paper; the H200 is the same GH100 chip
_ORIGIN = "aiconfigurator-core 0.12.0 (NVIDIA, Apache-2.0): vLLM {} bf16 GEMM and FlashAttention kernels measured on {}"
_MEASURED_ON = {"h100-sxm": ("0.24.0", "an H100 80GB HBM3")}
_EXP = {"h100-sxm": "exponentials at 3.9e12/s, the H100 SXM5 special-function rate the FlashAttention-3 paper (Shah et "
                    "al., 2024) gives",
        "h200": "exponentials at 3.9e12/s, the H100 SXM5 special-function rate the FlashAttention-3 paper (Shah et al., "
                "2024) gives, taken for the same GH100 chip"}
_ALL_REDUCE = "all-reduce: vLLM's custom all-reduce as captured in a CUDA graph, bf16, 2-8 GPUs, the same file"
_GEMM_FP8 = ("fp8 GEMMs: vLLM 0.24.0's CUTLASS fp8 x fp8 scaled_mm (fp8 weights with one scale per tensor, the bf16 "
             "activations quantized to fp8 per token in the layer, that quantization included), the same file")
_LIGER = ("norms and elementwise kernels: Liger-Kernel 0.8.5's published benchmarks (LinkedIn, BSD-2-Clause), its "
          "Triton RMSNorm, LayerNorm, fused residual add + RMSNorm, SwiGLU and squared-ReLU forward kernels, "
          "benchmarks/data/h100-sxm-liger.csv")
_ALL_TO_ALL = ("all-to-all: vLLM 0.24.0's DeepEP dispatch and combine, bf16, 8 GPUs of one node, low-latency up to "
               "256 tokens per GPU and high-throughput above, the same file")
_MOE = ("fused-MoE calls: vLLM 0.24.0's fused_experts (bf16 and block-fp8 Triton, Marlin int4, gpt-oss's MXFP4 "
        "Triton) timed whole, balanced routing, no expert parallelism, the same file")
# Classes not shipped per GPU: they fit worse on held-out rows than the spec's alpha-beta
UNSHIPPED = {"l40s": {"collective"}}


def source(gpu: str, classes: set[str]) -> str:
    """The calibration file's source line, naming the measured collectives it ships (of `classes`)."""
    version, device = _MEASURED_ON.get(gpu, ("", "this GPU"))
    parts = [f"{_ORIGIN.format(version, device).replace('  ', ' ')}, benchmarks/data/{gpu}-vllm.csv.gz",
             _EXP.get(gpu, "exponentials not counted apart (no sourced special-function rate)")]
    shipped = classes - UNSHIPPED.get(gpu, set())
    return "; ".join(parts + [text for kind, text in ((GEMM_FP8, _GEMM_FP8), ("collective", _ALL_REDUCE),
                                                      ("all_to_all", _ALL_TO_ALL), (MOE, _MOE), (NORM, _LIGER))
                             if kind in shipped])


def by_fallback(fit, spec, rows, held, kind: str) -> str:
    """The held-out error of `kind`'s rows priced as a calibration without its table prices them (FALLBACK)."""
    parent = FALLBACK.get(kind)
    if parent not in fit.model.classes:
        return ""
    test = [m for m, h in zip(rows, held) if h and time_class(m.kind, m.dtype) == kind]
    without = attrs.evolve(fit.model, classes={k: p for k, p in fit.model.classes.items() if k != kind})
    s = validate(test, attrs.evolve(spec, timing=without)).stats["expected"]["all"]["all"]
    return f"; by {parent}'s fit {s.median:.1%}, {s.p90:.1%}"


def kernel_transfer(gpu: str, time_class_: str):
    """(measured class, its rows, their error) for each measured class of a GPU's Liger rows of one time class:
    fitted on the other measured classes' rows, predicting this one's (a kernel the fit never saw)."""
    rows = [m for m in read(DATA / f"{gpu}-liger.csv") if time_class(m.kind, m.dtype) == time_class_]
    bare = attrs.evolve(hardware.load(gpu), timing=ROOFLINE)
    for kind in dict.fromkeys(m.kind for m in rows):
        fit = calibrate(rows, bare, held=[m.kind == kind for m in rows], exp_rate=EXP_RATES.get(gpu))
        yield kind, fit.classes[0].after.count, fit.classes[0].after


GPUS = ("h100-sxm", "h200", "a100-sxm", "b200", "l40s")


def main(argv: list[str]) -> int:
    met = True
    gpus = GPUS
    if "--gpus" in argv:  # a subset, e.g. --gpus a100-sxm (the targets are judged on the H100 only)
        gpus = tuple(argv[argv.index("--gpus") + 1].split(","))
        unknown = set(gpus) - set(GPUS)
        if unknown:
            print(f"--gpus: {', '.join(sorted(unknown))} not measured; choose from {', '.join(GPUS)}")
            return 2
        if "--write" in argv and set(gpus) != set(GPUS):
            print("--write rewrites every shipped calibration: give it without --gpus")
            return 2
    for gpu in gpus:
        spec = hardware.load(gpu)
        rows = read(DATA / f"{gpu}-vllm.csv.gz")
        liger = read(DATA / f"{gpu}-liger.csv") if (DATA / f"{gpu}-liger.csv").is_file() else []
        classes = {time_class(m.kind, m.dtype) for m in rows + liger}
        bare = attrs.evolve(spec, timing=ROOFLINE)
        fit = calibrate(rows, bare, holdout=0.2, seed=0, exp_rate=EXP_RATES.get(gpu), source=source(gpu, classes))
        extra = calibrate(liger, bare, holdout=LIGER_HOLDOUT, seed=0, exp_rate=EXP_RATES.get(gpu)) if liger else None
        if "--write" in argv:
            kept = [c for c in fit.classes if c.kind not in UNSHIPPED.get(gpu, set())]
            summary = fit_summary(kept, fit.holdout, fit.seed)
            if extra:
                kept += extra.classes
                summary += "; Liger's kernels, " + fit_summary(extra.classes, extra.holdout, extra.seed)
            write(attrs.evolve(fit.model, classes={c.kind: c.params for c in kept}, fit=summary),
                  FOLDER / f"{gpu}.toml")
        print(f"{gpu}: held-out vLLM kernels (never seen by the fit)" + (", then Liger's" if extra else "") + ":")
        held = split(len(rows), fit.holdout, fit.seed)
        for c in fit.classes + (extra.classes if extra else ()):
            ok = c.after.median <= TARGET_MEDIAN and c.after.p90 <= TARGET_P90
            met &= ok or gpu != "h100-sxm" or c.kind not in TARGETED  # the targets are the H100's
            verdict = ("meets the target" if ok else "MISSES the target") if c.kind in TARGETED else "(no target set)"
            shipped = "" if c.kind not in UNSHIPPED.get(gpu, set()) else "; not shipped"
            print(f"  {c.kind:18s} {c.after.count:6,} kernels: median {c.after.median:6.1%}, p90 {c.after.p90:6.1%} "
                  f"(roofline {c.before.median:.1%}, {c.before.p90:.1%}{by_fallback(fit, spec, rows, held, c.kind)}) "
                  f"{verdict}{shipped}")
    h100 = hardware.load("h100-sxm")
    print("transfer across Liger's norm kernels (its two elementwise kernels are too few to leave one out): each "
          "kernel's rows predicted by the norm class fitted on the other two's: " + "; ".join(
              f"{kind} ({n}) {e.median:.1%} / {e.p90:.1%}" for kind, n, e in kernel_transfer("h100-sxm", NORM)))
    for framework in ("trtllm", "sglang"):
        v = validate(read(DATA / f"h100-sxm-{framework}.csv.gz"), h100)
        print(f"transfer to {framework} (shipped calibration): " + "; ".join(
            f"{k} {s.median:.1%} / {s.p90:.1%}" for k, s in v.stats["expected"]["class"].items()))
    if "h100-sxm" not in gpus:
        print("H100 targets: not judged (the H100 was not fitted here)")
        return 0
    print(f"H100 targets (median {TARGET_MEDIAN:.0%}, p90 {TARGET_P90:.0%} per GEMM, fused-MoE, attention, norm and "
          f"elementwise class): {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
