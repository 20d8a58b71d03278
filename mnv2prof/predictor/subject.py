"""What `predict` is asked about: a block (a built-in variant or the user's PATH.py:NAME at the
spec words) or a model (an ONNX file, PATH.py:NAME), from the plan every command builds
(run.plan: the user's code vetted in the worker), prepared by the one measurement path
(run.pipeline.prepare: an ONNX file vetted where it is, a torch module exported once and cached),
so `predict --check` times the very file `compare` would, on the same harness
(timing.time_network). The one core the command line and the Python API share.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mnv2prof.predictor.folder import Predictor
from mnv2prof.predictor.prediction import Prediction, predict_model, prediction_frame


@dataclass(frozen=True)
class SubjectPrediction:
    name: str  # the row's name: the variant, NAME, or the file's stem
    onnx_path: Path
    input_shapes: Mapping[str, tuple[int, ...]]
    prediction: Prediction
    measured_ms: float | None = None  # --check: the fastest call, as compare measures it

    @property
    def error_rel(self) -> float | None:
        if not self.measured_ms:
            return None
        return self.prediction.total_ms / self.measured_ms - 1

    def frame(self):
        return prediction_frame(self.prediction, self.measured_ms)


def predict_subject(subject, predictor: Predictor, check: bool = False, budget_s: float = 2.0
                    ) -> SubjectPrediction:
    """Prepare `subject` (a checked plan's: run.plan.block_plan's or model_plan's), predict it,
    and with `check` time it whole."""
    from mnv2prof.run.pipeline import prepare

    prepared = prepare(subject)
    shapes = dict(prepared.input_shapes or {})
    prediction = predict_model(predictor, prepared.onnx_path, shapes or None)
    measured = None
    if check:
        from mnv2prof.predictor.timing import time_network

        measured = time_network(str(prepared.onnx_path), predictor.threads, budget_s,
                                shapes or None)
    return SubjectPrediction(prepared.name, Path(prepared.onnx_path), shapes, prediction, measured)
