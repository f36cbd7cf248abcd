"""Fitting the time model (opgraph.core.timing) to measured kernels: `opgraph calibrate`.

Per kernel class, the parameters (latency, compute and memory efficiency, overlap, and for attention the cost
per sequence x KV head and, where exponentials are counted (--exp-rate), their overlap with the matrix products;
for GEMMs a cost per activation row and per input element, and the tiling, chosen from `tilings`: rows padded
to a tile of TILES, or output tiles of WAVE_TILES in waves of the GPU's SMs (the spec's `sms`); the tiling whose
fit leaves the least training loss wins; for collectives, measured as all_reduce
rows, and all-to-alls, measured as ep_dispatch and ep_combine rows, instead the latency, the achieved share of the
link bandwidth and the cost per step) minimize a robust loss (soft L1, scale 0.1) of log(predicted / measured) on a
training split; a held-out split (every row whose hash falls in the held-out share, fixed by the seed) is never seen
by the fit, and its error before (the roofline) and after (the fitted model) is reported. Each row is fitted to the
time class that prices it (opgraph.files.measurements.time_class): measured classes that one time class prices
(ep_dispatch and ep_combine are both all_to_all) are fitted together, and gemm rows apart by dtype (bf16 and fp16:
gemm; fp8: gemm_fp8, with its own tiling). Needs scipy, the optional `fit` extra.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs
import numpy as np

from opgraph.analysis.validate import FEATURES, Stats, features
from opgraph.core.hardware import Hardware
from opgraph.core.timing import (ALL_TO_ALL, COLLECTIVE, DECODE_ATTENTION, GEMM_CLASSES, PREFILL_ATTENTION,
                                  ClassTiming, KernelWork, TimeModel, expected)
from opgraph.errors import OpgraphError
from opgraph.files.measurements import TIME_CLASS, Measurement, time_class

TILES = (1, 16, 32, 64, 128)
# GEMM output tiles (m x n) of the wave model: CUTLASS's and cuBLAS's common Hopper tile shapes
WAVE_TILES = ((64, 64), (64, 128), (128, 64), (128, 128))
INSTALL_HINT = 'calibrating needs scipy, an optional extra: pip install "opgraph[fit]"'
# (field, start, lower, upper); per_row_s for attention and GEMMs, per_input_s for GEMMs, special_overlap for attention
_PARAMS = [("latency_s", 5e-6, 0.0, 1e-3), ("compute_efficiency", 0.8, 0.02, 1.0),
           ("memory_efficiency", 0.8, 0.02, 1.0), ("overlap", 0.5, 0.0, 1.0)]
_PER_ROW = ("per_row_s", 1e-8, 0.0, 1e-5)
_PER_INPUT = ("per_input_s", 1e-12, 0.0, 1e-9)  # GEMMs: per activation input element
_SPECIAL = ("special_overlap", 0.5, 0.0, 1.0)
# collectives (and all-to-alls): a fixed cost, the achieved share of the link (above 1 where the switch reduces), a
# cost per step
_COLLECTIVE = [("latency_s", 5e-6, 0.0, 1e-3), ("link_efficiency", 0.8, 0.05, 2.0), ("per_step_s", 1e-7, 0.0, 1e-5)]
_LINK_CLASSES = (COLLECTIVE, ALL_TO_ALL)


@attrs.frozen
class ClassFit:
    kind: str
    params: ClassTiming
    train: int
    before: Stats  # held-out error of the roofline
    after: Stats  # held-out error of the fitted model


@attrs.frozen
class Calibration:
    """`opgraph calibrate`: the fitted time model and its held-out error per class."""

    source: str
    hardware: Hardware
    model: TimeModel
    classes: tuple[ClassFit, ...]
    holdout: float
    seed: int


def split(n: int, holdout: float, seed: int) -> np.ndarray:
    """A fixed held-out mask: each row independently with probability `holdout`, from `seed`."""
    rng = random.Random(seed)
    return np.array([rng.random() < holdout for _ in range(n)])


def _work(kind: str, f: dict[str, np.ndarray], rows: np.ndarray) -> KernelWork:
    return KernelWork(kind, *(f[name][rows] for name in FEATURES[1:]))


def tilings(kind: str, sms: int | None) -> list[tuple[int, int, int]]:
    """The (tile_m, tile_n, tiles_per_wave) a class's fit tries: for GEMMs, rows padded to each of TILES, and
    where the GPU's SM count is known, WAVE_TILES output tiles in waves of one per SM.

    >>> tilings("gemm", 132)[-1], len(tilings("gemm", None)), tilings("decode_attention", 132)
    ((128, 128, 132), 5, [(1, 1, 0)])
    """
    if kind not in GEMM_CLASSES:
        return [(1, 1, 0)]
    return [(t, 1, 0) for t in TILES] + ([(m, n, sms) for m, n in WAVE_TILES] if sms else [])


def _fit_class(kind: str, work: KernelWork, measured: np.ndarray, exp_rate: float | None,
               sms: int | None = None) -> ClassTiming:
    try:
        from scipy.optimize import least_squares
    except ImportError:
        raise OpgraphError(INSTALL_HINT) from None
    params = _COLLECTIVE if kind in _LINK_CLASSES else _PARAMS
    if kind in (PREFILL_ATTENTION, DECODE_ATTENTION):
        params = params + [_PER_ROW] + ([_SPECIAL] if exp_rate else [])
    elif kind in GEMM_CLASSES:
        params = params + [_PER_ROW, _PER_INPUT]
    names = [p[0] for p in params]
    scale = np.array([max(abs(p[1]), 1e-9) for p in params])  # the solver works on parameters near 1

    def timing(theta: np.ndarray, tiling: tuple[int, int, int]) -> ClassTiming:
        tile_m, tile_n, wave = tiling
        return ClassTiming(**dict(zip(names, (theta * scale).tolist())), tile_m=tile_m, tile_n=tile_n,
                           tiles_per_wave=wave)

    def residual(theta: np.ndarray, tiling: tuple[int, int, int]) -> np.ndarray:
        t, _ = expected(TimeModel(kind, {kind: timing(theta, tiling)}, exp_rate), work)
        return np.log(t) - np.log(measured)

    best = None
    for tiling in tilings(kind, sms):
        start = np.array([p[1] for p in params]) / scale
        lo, hi = np.array([p[2] for p in params]) / scale, np.array([p[3] for p in params]) / scale
        r = least_squares(residual, start, bounds=(lo, hi), args=(tiling,), loss="soft_l1", f_scale=0.1,
                          x_scale="jac", max_nfev=200)
        if best is None or r.cost < best[0]:
            best = (r.cost, timing(r.x, tiling))
    return best[1]


def calibrate(measurements: Sequence[Measurement], hw: Hardware, *, holdout: float = 0.2, seed: int = 0,
              source: str = "", exp_rate: float | None = None, held: Sequence[bool] | None = None) -> Calibration:
    """Fit a time model for `hw` to the measurements (each class that has rows), holding `holdout` of them out
    (a seeded draw per row), or, given `held`, exactly the rows it marks (one kernel's, to see how a fit on the
    others transfers to it)."""
    measurements = tuple(measurements)
    bare = attrs.evolve(hw, timing=TimeModel("roofline"))
    f = features(measurements, bare)
    measured = np.array([m.time_s for m in measurements])
    kinds = np.array([time_class(m.kind, m.dtype) for m in measurements])  # the time class of each row
    if held is None:
        held = split(len(measurements), holdout, seed)
    else:
        held = np.asarray(held, dtype=bool)
        if held.shape != (len(measurements),):
            raise OpgraphError(f"held marks {held.size} rows; there are {len(measurements)}")
        holdout = float(held.mean())  # what the summary reports: the share the mask holds out
    classes, fits = {}, []
    for kind in sorted(set(kinds.tolist())):
        train, test = (kinds == kind) & ~held, (kinds == kind) & held
        if train.sum() < 8 or test.sum() < 2:
            rows = sorted({m.kind if kind == TIME_CLASS.get(m.kind, m.kind) else f"{m.kind} {m.dtype}"
                           for m in measurements if time_class(m.kind, m.dtype) == kind})  # the dtype where it decides
            name = repr(rows[0]) if len(rows) == 1 and " " not in rows[0] else f"{kind!r} ({' and '.join(rows)} rows)"
            raise OpgraphError(f"class {name} has {int(train.sum())} training and {int(test.sum())} "
                               f"held-out rows; a fit needs at least 8 and 2 (give more measurements or a larger --holdout)")
        params = _fit_class(kind, _work(kind, f, train), measured[train], exp_rate, hw.sms)
        classes[kind] = params
        t, _ = expected(TimeModel(kind, {kind: params}, exp_rate), _work(kind, f, test))
        before = (f["time_s"][test] - measured[test]) / measured[test]
        fits.append(ClassFit(kind, params, int(train.sum()), Stats.of(before),
                             Stats.of((t - measured[test]) / measured[test])))
    model = TimeModel(f"{hw.name} calibration", classes, exp_rate, source or "measurements",
                      fit_summary(fits, holdout, seed))
    return Calibration(source, hw, model, tuple(fits), holdout, seed)


def fit_summary(fits: Sequence[ClassFit], holdout: float, seed: int) -> str:
    """The held-out error of some classes' fits, as a calibration file's `fit` states it."""
    summary = "; ".join(f"{c.kind} {c.after.median:.1%} median, {c.after.p90:.1%} p90 (roofline {c.before.median:.1%})"
                        for c in fits)
    return f"held-out |error| ({holdout:.0%} of rows, seed {seed}): {summary}"
