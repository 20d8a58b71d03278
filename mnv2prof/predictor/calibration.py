"""Calibration: what kernels alone do not see, measured on whole networks (build phase 4).

A kernel timed alone starts from the caches it left itself; inside a network it starts from
those its neighbours left, and the network pays onnxruntime's dispatch between nodes. On this
machine the difference is not the same for every kind: a classifier's Gemm (5 MB of weights,
pushed out of the caches by the rest of the network) took 2.8-3.9x its time alone, the layout
reorders and the squeeze-and-excite's Mul about 1.5x, a conv 1.0-1.2x (docs/predictor.md).

So the build draws networks apart from its samples (seeds of their own), and for each:
- predicts its kernels alone, and profiles it (onnxruntime's profiler, `measure.layers`):
  each kind's time inside the model against its kernels' predictions alone (contexts.csv),
  each model's kinds first divided by the model's own total ratio (a share of the model, which
  the machine's drift between the profiled run and the prediction does not move). How much
  the neighbours cost depends on how much they hold: a lone block's weights stay in L2, a large
  network's push a Gemm's out of the last-level cache. So a kind's **context factor** is a
  line in log10(the model's weight bytes), fitted over the calibration models (networks and
  lone blocks, as the space draws them) and read inside their range;
- times it whole as `compare` does, beside the drift probes (networks.csv). The **scale** is
  measured (drift divided out, less the dispatch) over the prediction with the context
  factors, as a line in log10(weight bytes) too (fitting.fit_scale: a robust line, the median
  ratio where the models' sizes do not span a decade); the **interval**, the central 80% (`INTERVAL`) of measured as timed over the
  scaled prediction (drift and all: what a user will measure), widened to hold the prediction itself.

A kernel alone is timed less the harness floor, a one-node model, so its time leaves out
onnxruntime's dispatch of a node, which a network pays once per node: **dispatch** is measured
on its own (timing.dispatch_ms: a chain of 101 one-element nodes against a chain of 1) and
added once per kernel after the first. Kinds whose kernels take under `MIN_CONTEXT_MS` keep
factor 1: for them the profiler reads mostly its own cost.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mnv2prof import interrupts

PROFILED_RUNS = 30
INTERVAL = (0.1, 0.9)  # the calibration models' central 80%: with 16, the 5-95% range is
# the extremes, and one model no regressor saw the like of (an NCHW 7x7 depthwise conv at
# 144 px, 6x its prediction) made the first build's upper bound 2.3x
MIN_CONTEXT_MODELS = 3  # a kind seen in fewer calibration models keeps factor 1
# a kind whose kernels take less than this each (alone, on average) keeps factor 1: the
# profiler's own cost per node (a few us) is most of what it reads for them
MIN_CONTEXT_MS = 0.02


def calibrate(session, meta: dict, models: dict) -> dict[str, object]:
    """Phase 4 of `session` (build.Session) with the fitted `models`: the calibration record."""
    from mnv2prof.predictor import folder as files
    from mnv2prof.predictor.sampling import prior_samples, take

    from mnv2prof.predictor.timing import dispatch_ms

    plan = session.plan
    predictor = files.Predictor(plan.out, meta, models)
    contexts = files.Journal(plan.out / files.CONTEXTS_FILE, files.CONTEXT_COLUMNS)
    known = {r["sample"]: r for r in session.networks.rows()}
    kinds = [r for r in contexts.rows() if r["sample"] in known]
    rows = []
    for sample in take(prior_samples(plan.space, prefix="c"), set(), plan.space.networks):
        interrupts.check()
        if sample.id not in known:
            known[sample.id], found = _network(predictor, sample, plan.space.threads)
            contexts.append(found)
            session.networks.append([known[sample.id]])
            kinds += found
            session.progress("calibration")
        rows.append(known[sample.id])
    if not rows:
        return {"networks": 0}
    fits = context_fits(kinds, {r["sample"]: float(r["weight_bytes"]) for r in rows})
    dispatch = dispatch_ms(plan.space.threads)
    return summary(rows, kinds, fits, session.table.reference_ms(), dispatch)


def _network(predictor, sample, threads: int) -> tuple[dict, list[dict]]:
    """One calibration network: its networks.csv row and its contexts.csv rows."""
    from mnv2prof.measure.layers import time_layers
    from mnv2prof.predictor.detect import detect
    from mnv2prof.predictor.prediction import kernel_times, predict_kernels
    from mnv2prof.predictor.timing import NETWORK_BUDGET_S, probe_graphs, time_network_probed

    start, model = time.perf_counter(), sample.model()
    detected = detect(model, threads)
    kernels = detected.kernels
    predicted = predict_kernels(predictor, kernels)
    measured, probe = time_network_probed(model, threads, NETWORK_BUDGET_S, None, 0,
                                          probe_graphs(threads))
    with tempfile.TemporaryDirectory(prefix="mnv2prof-calibrate-") as tmp:
        path = Path(tmp) / "network.onnx"
        path.write_bytes(model)
        inside = {r.node: r.kernel_ms for r in time_layers(path, threads, PROFILED_RUNS, 5)}
    alone = kernel_times(predictor, kernels)
    by_kind: dict[str, list[float]] = {}
    for kernel, ms in zip(kernels, alone, strict=True):
        if kernel.kind and ms is not None and kernel.name in inside:
            entry = by_kind.setdefault(kernel.kind, [0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += inside[kernel.name]
            entry[2] += ms
    row = {"sample": sample.id, "recipe": sample.text, "kernels": len(kernels),
           "macs": predicted.macs, "weight_bytes": detected.weight_bytes,
           "predicted_ms": round(predicted.total_ms, 6),
           "flops_ms": round(predicted.flops_ms, 6), "measured_ms": round(measured, 6),
           "probe_ms": round(probe, 7), "seconds": round(time.perf_counter() - start, 3)}
    found = [{"sample": sample.id, "kind": kind, "kernels": n, "inside_ms": round(i, 6),
              "alone_ms": round(a, 6)} for kind, (n, i, a) in sorted(by_kind.items())]
    return row, found


def context_fits(kinds: Sequence[dict], weight_bytes: dict[str, float]) -> dict[str, dict]:
    """Each kind's context factor as a line in log10(weight bytes) (fitting.fit_context), from
    each calibration model's share-normalized ratio (see the module docstring)."""
    from mnv2prof.predictor.fitting import fit_context

    totals: dict[str, list[float]] = {}
    for row in kinds:
        entry = totals.setdefault(row["sample"], [0.0, 0.0])
        entry[0] += float(row["inside_ms"])
        entry[1] += float(row["alone_ms"])
    points: dict[str, list[tuple[float, float, float]]] = {}
    for row in kinds:
        inside_total, alone_total = totals[row["sample"]]
        alone = float(row["alone_ms"])
        if inside_total > 0 and alone > 0:
            ratio = float(row["inside_ms"]) * alone_total / inside_total / alone
            points.setdefault(row["kind"], []).append(
                (float(np.log10(weight_bytes[row["sample"]])), ratio, alone))
    counts: dict[str, list[float]] = {}
    for row in kinds:
        entry = counts.setdefault(row["kind"], [0.0, 0.0])
        entry[0] += float(row["kernels"])
        entry[1] += float(row["alone_ms"])
    return {kind: fit_context(*zip(*found, strict=True)) for kind, found in sorted(points.items())
            if len(found) >= MIN_CONTEXT_MODELS
            and counts[kind][1] / counts[kind][0] >= MIN_CONTEXT_MS}


def summary(rows: Sequence[dict], kinds: Sequence[dict], fits: dict[str, dict],
            reference_ms: float, dispatch_ms: float = 0.0) -> dict[str, object]:
    """The calibration record: context fits, scale, interval, and the models' scores."""
    from mnv2prof.predictor.fitting import context_factor, fit_scale, scale_factor, scores
    from mnv2prof.predictor.timing import undrift

    def factor(kind: str, sample: str) -> float:
        size = next(float(r["weight_bytes"]) for r in rows if r["sample"] == sample)
        return context_factor(fits[kind], size) if kind in fits else 1.0

    floor = {r["sample"]: float(r["predicted_ms"]) - sum(
        float(k["alone_ms"]) for k in kinds if k["sample"] == r["sample"]) for r in rows}
    raw = np.array([float(r["predicted_ms"]) for r in rows])
    contextual = np.array([floor[r["sample"]] + sum(
        factor(k["kind"], r["sample"]) * float(k["alone_ms"]) for k in kinds
        if k["sample"] == r["sample"]) for r in rows])
    dispatch = np.array([dispatch_ms * max(0, int(r["kernels"]) - 1) for r in rows])
    measured = np.array([float(r["measured_ms"]) for r in rows])
    steady = np.array([undrift(r["measured_ms"], r["probe_ms"], reference_ms) for r in rows])
    sizes = np.array([float(r["weight_bytes"]) for r in rows])
    scale_fit = fit_scale(np.log10(sizes), (steady - dispatch) / contextual)
    scale = np.array([scale_factor(scale_fit, size) for size in sizes])
    left = measured / (scale * contextual + dispatch)
    return {"networks": len(rows), "context": fits, "scale": round(scale_factor(scale_fit), 5),
            "scale_fit": scale_fit, "dispatch_ms": round(dispatch_ms, 7),
            "interval": [round(min(1.0, float(np.quantile(left, INTERVAL[0]))), 5),
                         round(max(1.0, float(np.quantile(left, INTERVAL[1]))), 5)],
            "uncalibrated": scores(raw, measured).as_dict(),
            "calibrated": scores(scale * contextual + dispatch, measured).as_dict(),
            "flops": scores([float(r["flops_ms"]) for r in rows], measured).as_dict()}
