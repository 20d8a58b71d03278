"""One regressor per kernel kind, picked by held-out error; the FLOPs baseline; the scores.

After nn-Meter (its kernel predictors are scikit-learn random forests, one per kernel kind, scored
on a held-out 20%): each kind's samples are split 80/20 (seeded), every candidate in
`CANDIDATES` is fitted on the 80% and scored on the 20%, the one with the lowest held-out RMSPE
(a near-tie going to the faster to predict, `pick`) is kept and refitted on all the samples.
Every candidate learns log(ms): latencies span four
orders of magnitude, and a ±10% error is the same distance in log space at 0.01 ms as at 10 ms.

The FLOPs baseline (`FlopsBaseline`) is what "FLOPs predict latency" would say, fitted on the
same kernels: one least-squares line, latency = a x MACs + b, over every kernel of every kind;
a network's is the sum over its kernels, a x its MACs + b x its kernels.

Scores, as nn-Meter reports them: the share of predictions within ±10% and ±5% of the measured
value, the RMSE (ms) and the RMSPE (root mean square of relative errors).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

HOLDOUT_SHARE = 0.2
MIN_SAMPLES_TO_SCORE = 10  # fewer samples of a kind: fitted on all, its error left unknown
TREES = 60


def _forest():
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=TREES, min_samples_leaf=1, max_features=0.7,
                                 random_state=0, n_jobs=1)


def _extra_trees():
    from sklearn.ensemble import ExtraTreesRegressor

    return ExtraTreesRegressor(n_estimators=TREES, min_samples_leaf=1, max_features=0.8,
                               random_state=0, n_jobs=1)


def _boosting():
    from sklearn.ensemble import HistGradientBoostingRegressor

    return HistGradientBoostingRegressor(max_iter=400, learning_rate=0.08, max_leaf_nodes=31,
                                         min_samples_leaf=3, l2_regularization=1e-3,
                                         early_stopping=True, n_iter_no_change=20,
                                         random_state=0)


# name -> a fresh regressor of log(ms), fastest to predict first (`pick` breaks near-ties so)
CANDIDATES: dict[str, Callable[[], object]] = {
    "extra_trees": _extra_trees,
    "forest": _forest,
    "boosting": _boosting,
}
TIE_REL = 0.03  # held-out RMSPEs this close (relative) are a tie: the held-out 20% cannot tell


def pick(errors: dict[str, float]) -> str:
    """The candidate with the lowest held-out RMSPE, a near-tie (`TIE_REL`) going to the one
    first in `CANDIDATES`: forest.Forests walks every kind's trees at once, and boosting's
    few hundred trees are more (tree, kernel) pairs to walk than a forest's 60."""
    best = min(errors.values())
    return next(name for name in CANDIDATES if name in errors
                and errors[name] <= best * (1 + TIE_REL))


def _on_log(make: Callable[[], object]):
    from sklearn.compose import TransformedTargetRegressor

    return TransformedTargetRegressor(regressor=make(), func=np.log, inverse_func=np.exp,
                                      check_inverse=False)


@dataclass(frozen=True)
class Scores:
    n: int
    within_10: float  # share of |predicted / measured - 1| <= 10%
    within_5: float
    rmse_ms: float
    rmspe: float  # root mean square of (predicted / measured - 1)

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}n": self.n, f"{prefix}within_10": round(self.within_10, 4),
                f"{prefix}within_5": round(self.within_5, 4),
                f"{prefix}rmse_ms": round(self.rmse_ms, 6), f"{prefix}rmspe": round(self.rmspe, 4)}


def scores(predicted: Sequence[float], measured: Sequence[float]) -> Scores:
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    if not len(m):
        return Scores(0, float("nan"), float("nan"), float("nan"), float("nan"))
    rel = np.abs(p / m - 1)
    return Scores(len(m), float(np.mean(rel <= 0.10)), float(np.mean(rel <= 0.05)),
                  float(np.sqrt(np.mean((p - m) ** 2))), float(np.sqrt(np.mean(rel ** 2))))


@dataclass
class KindFit:
    """A kind's regressor and its held-out record."""

    kind: str
    model: object  # a fitted scikit-learn regressor of ms
    regressor: str  # its CANDIDATES name
    held_out: Scores | None  # None: too few samples to hold any out
    candidates: dict[str, float]  # each candidate's held-out RMSPE
    misses: np.ndarray  # held-out rows predicted worse than `miss_rel`, worst first (indices)


def split(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row indices (seeded): `HOLDOUT_SHARE` held out."""
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * HOLDOUT_SHARE)))
    return np.sort(order[cut:]), np.sort(order[:cut])


def fit_kind(kind: str, x: np.ndarray, y: np.ndarray, seed: int = 0, miss_rel: float = 0.1,
             candidates: Sequence[str] | None = None, refit: bool = True) -> KindFit:
    """Pick `kind`'s regressor by held-out RMSPE, refit it on every sample (`refit=False`:
    keep the one fitted on the 80%, enough to find the misses)."""
    import sklearn.ensemble  # noqa: F401 - loaded first: threadpoolctl limits loaded libraries
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # OpenMP's spinning threads made one fit 25x slower on 2 cores
        return _fit_kind(kind, x, y, seed, miss_rel, list(candidates or CANDIDATES), refit)


def _fit_kind(kind: str, x: np.ndarray, y: np.ndarray, seed: int, miss_rel: float,
              names: list[str], refit: bool) -> KindFit:
    if len(y) < MIN_SAMPLES_TO_SCORE:
        model = _on_log(CANDIDATES["forest"]).fit(x, y)
        return KindFit(kind, model, "forest", None, {}, np.array([], int))
    train, test = split(len(y), seed)
    errors, predictions = {}, {}
    for name in names:
        model = _on_log(CANDIDATES[name]).fit(x[train], y[train])
        predictions[name] = model.predict(x[test])
        errors[name] = scores(predictions[name], y[test]).rmspe
    best = pick(errors)
    held_out = scores(predictions[best], y[test])
    rel = np.abs(predictions[best] / y[test] - 1)
    order = np.argsort(-rel)
    misses = test[order][rel[order] > miss_rel]  # worst first
    model = _on_log(CANDIDATES[best]).fit(x, y) if refit else None
    return KindFit(kind, model, best, held_out, errors, misses)


@dataclass(frozen=True)
class FlopsBaseline:
    """latency = a x MACs + b per kernel, least squares over every sampled kernel."""

    ms_per_mac: float
    ms_per_kernel: float

    def kernel_ms(self, macs: np.ndarray | float) -> np.ndarray | float:
        return self.ms_per_mac * macs + self.ms_per_kernel

    def network_ms(self, macs: float, kernels: int, floor_ms: float = 0.0) -> float:
        return self.ms_per_mac * macs + self.ms_per_kernel * kernels + floor_ms


def fit_flops(macs: np.ndarray, ms: np.ndarray) -> FlopsBaseline:
    design = np.column_stack([np.asarray(macs, float), np.ones(len(macs))])
    (a, b), *_ = np.linalg.lstsq(design, np.asarray(ms, float), rcond=None)
    return FlopsBaseline(float(a), float(b))


def predict_ms(model, x: np.ndarray) -> np.ndarray:
    """`model.predict(x)` on one thread (boosting's OpenMP threads spin against the
    neighbours); a network's forests are walked together by forest.Forests."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return model.predict(x)


CONTEXT_RANGE = (1 / 3, 3.0)  # a factor outside is a measurement gone wrong, not a context
LINE_MODELS, LINE_DECADES = 5, 1.0


def fit_context(log_weights: Sequence[float], ratios: Sequence[float],
                weights: Sequence[float]) -> dict[str, float]:
    """A kind's context factor as a line in log10(a model's weight bytes), weighted least
    squares over the calibration models (weights: the kind's predicted time in each); a
    constant (the weighted mean) unless `LINE_MODELS` models span `LINE_DECADES` decades: a
    line through a few models a few percent apart in size is noise (the first full build fitted
    a slope of 5 per decade to three). The line is read only inside the range of the models it
    was fitted on (`context_factor`)."""
    x, r, w = (np.asarray(v, float) for v in (log_weights, ratios, weights))
    mean = float(np.average(r, weights=w))
    fit = {"a": mean, "b": 0.0, "low": float(x.min()), "high": float(x.max()),
           "mid": float(np.average(x, weights=w))}
    if _spans_sizes(x):
        design = np.column_stack([np.ones_like(x), x]) * np.sqrt(w)[:, None]
        (a, b), *_ = np.linalg.lstsq(design, r * np.sqrt(w), rcond=None)
        fit.update(a=float(a), b=float(b))
    return {k: round(v, 5) for k, v in fit.items()}


def _spans_sizes(x: np.ndarray) -> bool:
    """Whether models at log10 sizes `x` carry a line: `LINE_MODELS` distinct sizes spanning
    `LINE_DECADES` decades (else a constant: the rule of both lines)."""
    return len(set(np.round(x, 3))) >= LINE_MODELS and x.max() - x.min() >= LINE_DECADES


def _line_at(fit: dict[str, float], weight_bytes: float | None) -> float:
    """`fit`'s line (a + b x log10 size) for a model of `weight_bytes`, read inside the fitted
    range (None: at its middle)."""
    x = fit["mid"] if not weight_bytes else np.log10(weight_bytes)
    return fit["a"] + fit["b"] * min(max(x, fit["low"]), fit["high"])


def context_factor(fit: dict[str, float], weight_bytes: float | None = None) -> float:
    """The factor of `fit` (fit_context) for a model of `weight_bytes` (None: the calibration
    models' weighted middle), clamped to `CONTEXT_RANGE`."""
    return float(np.clip(_line_at(fit, weight_bytes), *CONTEXT_RANGE))


def fit_scale(log_weights: Sequence[float], ratios: Sequence[float]) -> dict[str, float]:
    """The calibration scale as a line in log10(a model's weight bytes): Theil-Sen (the median
    of the pairwise slopes, then the median intercept) on log(ratio), so one model no kernel
    resembled (6.6x its prediction in the first builds) cannot tilt it; the median ratio,
    constant, unless `LINE_MODELS` models span `LINE_DECADES` decades, as for the context
    factors. Lone blocks (weights in L2) read about 1.05 and whole networks 1.12-1.15 on the
    development machine: one constant overpredicted the first and underpredicted the second.
    Chosen over the constant by leave-one-out on 64 calibration models (85.9% within 10%
    against 78.1%; docs/predictor.md says where the idea came from)."""
    x, y = np.asarray(log_weights, float), np.log(np.asarray(ratios, float))
    fit = {"a": float(np.log(np.median(ratios))), "b": 0.0, "low": float(x.min()),
           "high": float(x.max()), "mid": float(np.median(x))}
    if _spans_sizes(x):
        i, j = np.triu_indices(len(x), 1)
        apart = np.abs(x[j] - x[i]) > 1e-9
        slope = float(np.median((y[j] - y[i])[apart] / (x[j] - x[i])[apart]))
        fit.update(a=float(np.median(y - slope * x)), b=slope)
    return {k: round(v, 6) for k, v in fit.items()}


def scale_factor(fit: dict[str, float], weight_bytes: float | None = None) -> float:
    """The scale of `fit` (fit_scale) for a model of `weight_bytes` (None: the calibration
    models' median size), read inside the fitted range and clamped to `CONTEXT_RANGE`."""
    return float(np.clip(np.exp(_line_at(fit, weight_bytes)), *CONTEXT_RANGE))
