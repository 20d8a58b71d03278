"""`profile`: one model (an ONNX file or a torch model) counted and timed, optionally per node."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnv2prof.run.pipeline import Progress, layer_rows, measure_rows, prepare
from mnv2prof.run.plan import Plan

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Profiled:
    """A model's rows, what counting it noted, and with layers its nodes."""

    plan: Plan
    frame: pd.DataFrame  # the CSV's columns, a row per precision and runtime
    records: tuple  # run.records.Record
    notes: tuple[str, ...]  # what counting the file said (dims chosen, ops not counted)
    opset: int | None  # an ONNX file's opset (a torch model is exported at artifacts.export's)
    layers: tuple = ()  # measure.layers.LayerRow, with layers
    layer_runs: int = 0

    @property
    def spec(self):
        return self.plan.subjects[0]


def profile(plan: Plan, layers: bool = False, progress: Progress | None = None) -> Profiled:
    """Check `plan` (one model), measure it on its targets, and with `layers` time each node
    onnxruntime runs, as many runs as the budget affords."""
    from mnv2prof.run import model_file as mf
    from mnv2prof.run.frame import records_frame

    plan.check()
    spec = plan.subjects[0]
    count = mf.count_file(spec) if spec.onnx_file else None
    measured = measure_rows(plan.rows(), plan.timing, plan.seed, progress, plan.calibration,
                            eager=False)
    rows, runs = (), 0
    if layers:
        runs = mf.layer_runs(measured.records[0].latency, plan.timing.budget_s)
        rows = tuple(layer_rows(prepare(spec, plan.seed), plan.timing.threads, runs,
                                warmup=mf.MODEL_WARMUP))
    return Profiled(plan, records_frame(measured.records), tuple(measured.records),
                    count.notes if count else (), count.opset if count else None, rows, runs)
