"""Predict a model's latency from its kernels: no timing, one onnxruntime session to read them.

A model's latency is predicted as nn-Meter predicts it (MobiSys'21, section 5): the sum of its
kernels' predicted times, each from its kind's regressor, plus the harness floor once (the cost
of the `run` call, which every kernel timed alone paid and subtracted); each kernel's time is
multiplied by its kind's context factor and the calibration scale, and onnxruntime's dispatch
of a node is added once per kernel after the first, all measured by the build (calibration.py). The interval is the
calibration networks' spread of measured over predicted; without calibration networks, the
kernels' held-out RMSPE weighted by their predicted times. A kernel with no kind, or of a kind
the predictor has no model for, is listed with no prediction and counted in `unpredicted`: the
total then leaves it out, and says so.

The FLOPs baseline beside it (fitting.FlopsBaseline): a x the model's MACs + b x its kernels,
plus the same floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnv2prof.predictor.detect import Detected, Kernel, detect
from mnv2prof.predictor.folder import Predictor, load_predictor
from mnv2prof.predictor.kinds import vector


@dataclass(frozen=True)
class KernelPrediction:
    kernel: Kernel
    ms: float | None  # None: not predicted (`why`)
    why: str | None = None  # "unknown kind" or "no model for KIND"


@dataclass(frozen=True)
class Prediction:
    kernels: tuple[KernelPrediction, ...]
    total_ms: float  # floor + scaled sum of the predicted kernels
    low_ms: float
    high_ms: float
    flops_ms: float  # the FLOPs baseline's total
    macs: int
    floor_ms: float
    scale: float

    @property
    def unpredicted(self) -> list[KernelPrediction]:
        return [k for k in self.kernels if k.ms is None]


def kernel_times(predictor: Predictor, kernels: Sequence[Kernel]) -> list[float | None]:
    """Each kernel's predicted time alone (ms, before the calibration scale): every kind's
    forest walked at once (forest.Forests)."""
    out: list[float | None] = [None] * len(kernels)
    by_kind: dict[str, list[int]] = {}
    for i, kernel in enumerate(kernels):
        if kernel.kind in predictor.models:
            by_kind.setdefault(kernel.kind, []).append(i)
    rows = {kind: np.array([vector(kind, kernels[i].features) for i in found], dtype=float)
            for kind, found in by_kind.items()}
    for kind, times in predictor.forests.predict(rows).items():
        for i, ms in zip(by_kind[kind], times, strict=True):
            out[i] = float(ms)
    return out


def _why(kernel: Kernel) -> str:
    return "unknown kind" if kernel.kind is None else f"no model for {kernel.kind}"


def predict_kernels(predictor: Predictor, kernels: Sequence[Kernel],
                    weight_bytes: float | None = None) -> Prediction:
    """`kernels` predicted, in a model of `weight_bytes` of weights (the context factors' size;
    None: the calibration models' middle)."""
    times = kernel_times(predictor, kernels)
    scale, floor = predictor.scale(weight_bytes), predictor.floor_ms
    factors = {kind: predictor.context(kind, weight_bytes) for kind in {k.kind for k in kernels}}
    rows = tuple(KernelPrediction(k, None if t is None else t * factors[k.kind] * scale,
                                  None if t is not None else _why(k))
                 for k, t in zip(kernels, times, strict=True))
    summed = sum(r.ms for r in rows if r.ms is not None)
    total = summed + floor + predictor.dispatch_ms * max(0, len(kernels) - 1)
    low, high = _bounds(predictor, rows, total)
    macs = sum(k.macs for k in kernels)
    flops = predictor.baseline.network_ms(macs, len(kernels), floor)
    return Prediction(rows, total, low, high, flops, macs, floor, scale)


def _bounds(predictor: Predictor, rows: Sequence[KernelPrediction], total: float
            ) -> tuple[float, float]:
    low, high = predictor.interval()
    if (low, high) != (1.0, 1.0):
        return total * low, total * high
    kinds = predictor.meta.get("kinds", {})
    spread = sum(r.ms * (kinds.get(r.kernel.kind, {}).get("held_out") or {}).get("rmspe", 0.0)
                 for r in rows if r.ms is not None)
    return total - spread, total + spread


def predict_detected(predictor: Predictor, detected: Detected) -> Prediction:
    return predict_kernels(predictor, detected.kernels, detected.weight_bytes)


def predict_model(predictor: Predictor, model: bytes | str | Path,
                  input_shapes: Mapping[str, tuple[int, ...]] | None = None) -> Prediction:
    """Detect `model`'s kernels (at the predictor's threads) and predict them."""
    source = model if isinstance(model, bytes) else Path(model)
    return predict_detected(predictor, detect(source, predictor.threads, input_shapes))


def predicted_latency(onnx_path: str | Path, predictor: Predictor | str | Path,
                      force: bool = False) -> float:
    """The predicted latency (ms) of the ONNX file at `onnx_path` (its own input dims): what a
    `compare` or `network` row's predicted column shows. `predictor`: a loaded `Predictor`,
    or its folder (loaded, and refused from another environment unless `force`)."""
    if not isinstance(predictor, Predictor):
        predictor = load_predictor(predictor, force)
    return predict_model(predictor, Path(onnx_path)).total_ms


def prediction_frame(prediction: Prediction, measured_ms: float | None = None):
    """One row per kernel (its node, op, kind, MACs, predicted ms, share of the predicted
    kernels), then a `(network)` row with the total, its interval, the FLOPs baseline and,
    when measured, the measured latency and the relative error."""
    import pandas as pd

    summed = sum(r.ms for r in prediction.kernels if r.ms is not None) or 1.0
    rows = [{"kernel": r.kernel.name, "op": r.kernel.op, "kind": r.kernel.kind or "",
             "macs": r.kernel.macs, "predicted_ms": None if r.ms is None else round(r.ms, 6),
             "share_frac": None if r.ms is None else round(r.ms / summed, 6),
             "not_predicted": r.why or ""}
            for r in prediction.kernels]
    error = None if not measured_ms else prediction.total_ms / measured_ms - 1
    rows.append({"kernel": "(network)", "op": "", "kind": "", "macs": prediction.macs,
                 "predicted_ms": round(prediction.total_ms, 6), "share_frac": 1.0,
                 "not_predicted": f"{len(prediction.unpredicted)} kernel(s)"
                 if prediction.unpredicted else "",
                 "predicted_low_ms": round(prediction.low_ms, 6),
                 "predicted_high_ms": round(prediction.high_ms, 6),
                 "flops_baseline_ms": round(prediction.flops_ms, 6),
                 "harness_floor_ms": round(prediction.floor_ms, 6),
                 "measured_ms": None if measured_ms is None else round(measured_ms, 6),
                 "error_rel": None if error is None else round(error, 6)})
    return pd.DataFrame(rows)
