"""What `predict` is asked about: an ONNX file, a torch model or block (PATH.py:NAME), or a
built-in variant at the spec flags; the one core the command line and the Python API share.

The subject is resolved as the other commands resolve it (models.user_models.model_spec,
models.variants.resolve_variant) and prepared by the one measurement path (run.pipeline.prepare:
an ONNX file vetted where it is, a torch module exported once and cached), so `predict --check`
times the very file `compare` would, on the same harness (timing.time_network).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mnv2prof.predict.folder import Predictor, load_predictor
from mnv2prof.predict.prediction import Prediction, predict_model, prediction_frame


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


def subject_of(model: str, shape: str | None = None, **block: int):
    """`model` as a subject: a `ModelSpec` (an ONNX file, its shapes resolved; or a torch model
    PATH.py:NAME), or a `BlockSpec` (a built-in variant, or a user's block PATH.py:NAME, built at
    `block`'s values: in_chs, resolution, exp_ratio, kernel_size, stride, batch)."""
    from mnv2prof.models import plugins
    from mnv2prof.models.user_models import model_spec
    from mnv2prof.models.variants import resolve_variant

    text = model.strip()
    if text.lower().endswith(".onnx"):
        from mnv2prof.run.model_file import resolved

        return resolved(model_spec(text, shape))[0]
    if plugins.is_reference(text) and _is_model(text):
        return model_spec(text, shape)
    if shape is not None:
        from mnv2prof.errors import UsageError

        raise UsageError("--shape applies to a model (MODEL.onnx or PATH.py:NAME); a block "
                         "takes the spec flags (--channels, --resolution, ...)")
    return resolve_variant(text).spec(**block)


def _is_model(reference: str) -> bool:
    """Whether PATH.py:NAME makes a whole model (NAME needs no argument) rather than a block
    (NAME needs the spec's values: in_chs, ...)."""
    import inspect

    from mnv2prof.models import plugins

    factory = plugins.load(plugins.resolve(reference, None, what="model"), "model")
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature to read: called with nothing, as a model
        return True
    return not any(p.default is inspect.Parameter.empty
                   and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                   for p in parameters)


def predict_subject(model: str, predictor: Predictor, shape: str | None = None,
                    check: bool = False, budget_s: float = 2.0, **block: int
                    ) -> SubjectPrediction:
    """Resolve and prepare `model`, predict it, and with `check` time it whole."""
    from mnv2prof.run.pipeline import prepare

    subject = subject_of(model, shape, **block)
    prepared = prepare(subject)
    shapes = dict(prepared.input_shapes or {})
    prediction = predict_model(predictor, prepared.onnx_path, shapes or None)
    measured = None
    if check:
        from mnv2prof.predict.timing import time_network

        measured = time_network(str(prepared.onnx_path), predictor.threads, budget_s,
                                shapes or None)
    return SubjectPrediction(prepared.name, Path(prepared.onnx_path), shapes, prediction, measured)


def predict_frame(model: str, predictor: str | Path | Predictor, shape: str | None = None,
                  check: bool = False, force: bool = False, budget_s: float = 2.0, **block: int):
    """`predict`'s table as a DataFrame (prediction.prediction_frame): one row per kernel, then
    the network's row. `predictor`: a folder (refused from another environment unless `force`)
    or a loaded `Predictor`."""
    if not isinstance(predictor, Predictor):
        predictor = load_predictor(predictor, force)
    return predict_subject(model, predictor, shape, check, budget_s, **block).frame()
