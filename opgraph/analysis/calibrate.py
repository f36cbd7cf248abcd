"""Fitting the time model (opgraph.pricing.timing) to measured kernels: `opgraph calibrate`.

Per kernel class, the parameters its record names (opgraph.pricing.kinds: `fitted`; for GEMMs also the tiling, one of
its `tilings`, the one whose fit leaves the least training loss; for attention the overlap of exponentials with the
matrix products where they are counted, --exp-rate) minimize a robust loss (soft L1, scale 0.1) of
log(predicted / measured) on a training split. Each row is fitted to the class that prices it (its time class:
ep_dispatch and ep_combine rows both fit all_to_all, gemm rows fit the GEMM class of their dtype), with the formula
and the features the report prices kernels by (opgraph.analysis.validate.features). A held-out split (each row
drawn with probability `holdout`, fixed by the seed; a class the draw left without one gets one) is never seen by the
fit, and its error before (the roofline) and after (the fitted model) is reported. Needs scipy, the `fit` extra.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import attrs
import numpy as np

from opgraph.analysis.validate import Stats, features, work_of
from opgraph.errors import OpgraphError
from opgraph.files.measurements import Measurement
from opgraph.pricing import kinds
from opgraph.pricing.hardware import Hardware
from opgraph.pricing.kinds import time_class
from opgraph.pricing.timing import (ClassTiming, KernelWork, TimeModel, dispatch_rows, expected, in_rows,
                                    row_ranges)

INSTALL_HINT = 'calibrating needs scipy, an optional extra: pip install "opgraph[fit]"'
MIN_TRAIN, MIN_HELD = 8, 1  # rows a class needs to be fitted, and to be checked


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


def _hold_one_each(held: np.ndarray, classes: np.ndarray, seed: int) -> np.ndarray:
    """`held`, with one row of each class that the draw left without a held-out row (a seeded choice among its rows)."""
    held, rng = held.copy(), random.Random(seed + 1)
    for kind in sorted(set(classes.tolist())):
        rows = np.flatnonzero(classes == kind)
        if len(rows) > MIN_TRAIN and not held[rows].any():
            held[rng.choice(rows.tolist())] = True
    return held


def _fit_class(kind: str, work: KernelWork, measured: np.ndarray, exp_rate: float | None,
               sms: int | None = None) -> ClassTiming:
    try:
        from scipy.optimize import least_squares
    except ImportError:
        raise OpgraphError(INSTALL_HINT) from None
    cls = kinds.BY_NAME[kind]
    params = list(cls.fitted) + ([kinds.SPECIAL] if cls.special and exp_rate else [])
    names = [p.field for p in params]
    scale = np.array([max(abs(p.start), 1e-9) for p in params])  # the solver works on parameters near 1

    def timing(theta: np.ndarray, tiling: tuple[int, int, int]) -> ClassTiming:
        tile_m, tile_n, wave = tiling
        return ClassTiming(**dict(zip(names, (theta * scale).tolist())), tile_m=tile_m, tile_n=tile_n,
                           tiles_per_wave=wave)

    def residual(theta: np.ndarray, tiling: tuple[int, int, int]) -> np.ndarray:
        t, _ = expected(TimeModel(kind, {kind: timing(theta, tiling)}, exp_rate), work)
        return np.log(t) - np.log(measured)

    best = None
    for tiling in cls.tilings(sms) if cls.tilings else [(1, 1, 0)]:
        start = np.array([p.start for p in params]) / scale
        lo, hi = np.array([p.low for p in params]) / scale, np.array([p.high for p in params]) / scale
        r = least_squares(residual, start, bounds=(lo, hi), args=(tiling,), loss="soft_l1", f_scale=0.1,
                          x_scale="jac", max_nfev=200)
        if best is None or r.cost < best[0]:
            best = (r.cost, timing(r.x, tiling))
    return best[1]


def _fit_rows(kind: str, bounds: Sequence[int], f: dict, train: np.ndarray, measured: np.ndarray,
              exp_rate: float | None, sms: int | None) -> ClassTiming:
    """A class's table, fitted on its training rows; with `bounds`, one table per range of rows, each fitted on the
    rows in it (the last, above the largest bound, is the class's own)."""
    if not bounds:
        return _fit_class(kind, work_of(kind, f, train), measured[train], exp_rate, sms)
    tables = []
    m = dispatch_rows(work_of(kind, f))
    for lo, hi in row_ranges(bounds):
        rows = train & in_rows(m, lo, hi)
        where = f"m {lo + 1} to {hi}" if hi is not None else f"m above {lo}"
        if rows.sum() < MIN_TRAIN:
            raise OpgraphError(f"class {kind!r} has {int(rows.sum())} training rows with {where}; a table by rows needs "
                               f"at least {MIN_TRAIN}: measure more, or give fewer bounds")
        tables.append((hi, _fit_class(kind, work_of(kind, f, rows), measured[rows], exp_rate, sms)))
    *own, (_, rest) = tables
    return attrs.evolve(rest, by_rows=tuple(own))


def calibrate(measurements: Sequence[Measurement], hw: Hardware, *, holdout: float = 0.2, seed: int = 0,
              source: str = "", exp_rate: float | None = None, held: Sequence[bool] | None = None,
              by_rows: dict[str, Sequence[int]] | None = None) -> Calibration:
    """Fit a time model for `hw` to the measurements (each class that has rows), holding `holdout` of them out
    (a seeded draw per row), or, given `held`, exactly the rows it marks (one kernel's, to see how a fit on the
    others transfers to it). `by_rows` gives GEMM classes a table per range of rows (m), fitted apart: the bounds
    at which the library dispatches another kernel (ClassTiming.by_rows)."""
    by_rows = {kind: tuple(sorted(bounds)) for kind, bounds in (by_rows or {}).items()}
    measurements = tuple(measurements)
    bare = attrs.evolve(hw, timing=TimeModel("roofline"))
    f = features(measurements, bare)
    measured = np.array([m.time_s for m in measurements])
    kinds_of = np.array([time_class(m.kind, m.dtype) for m in measurements])  # the time class of each row
    if held is None:
        held = _hold_one_each(split(len(measurements), holdout, seed), kinds_of, seed)
    else:
        held = np.asarray(held, dtype=bool)
        if held.shape != (len(measurements),):
            raise OpgraphError(f"held marks {held.size} rows; there are {len(measurements)}")
        holdout = float(held.mean())  # what the summary reports: the share the mask holds out
    classes, fits = {}, []
    for kind in sorted(set(kinds_of.tolist())):
        train, test = (kinds_of == kind) & ~held, (kinds_of == kind) & held
        if train.sum() < MIN_TRAIN or test.sum() < MIN_HELD:
            rows = sorted({m.kind if kinds.ROWS[m.kind][0].by_dtype is None else f"{m.kind} {m.dtype}"
                           for m in measurements if time_class(m.kind, m.dtype) == kind})  # the dtype where it decides
            name = repr(rows[0]) if len(rows) == 1 and " " not in rows[0] else f"{kind!r} ({' and '.join(rows)} rows)"
            total = int(train.sum() + test.sum())
            fix = (f"measure at least {MIN_TRAIN + MIN_HELD} kernels of it" if total < MIN_TRAIN + MIN_HELD else
                   "give a smaller --holdout" if train.sum() < MIN_TRAIN else "give a larger --holdout")
            raise OpgraphError(f"class {name} has {int(train.sum())} training and {int(test.sum())} held-out rows; a fit "
                               f"needs at least {MIN_TRAIN} and {MIN_HELD}: {fix}")
        params = _fit_rows(kind, by_rows.get(kind, ()), f, train, measured, exp_rate, hw.sms)
        classes[kind] = params
        t, _ = expected(TimeModel(kind, {kind: params}, exp_rate), work_of(kind, f, test))
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
