"""The user's own models: a factory called with no arguments (`PATH.py:NAME`,
`package.module:NAME`), or an ONNX file, measured beside the blocks (`--model`, a profile's
`models`).

A `ModelSpec` is to a model what `variants.BlockSpec` is to a block: small, frozen, hashable,
and everything a row needs to be named and hashed. Its `variant` is NAME (or the ONNX file's
stem), its `source` the reference it is loaded from (a file's path made absolute), its
`source_hash` the hash of that file's bytes, and its `input_shapes` the dims every input is fed
(default `DEFAULT_SHAPE`; an ONNX file's own fixed dims are read by `run.model_file`).

A model from torch is built as a block is (`blocks.seeded`: torch's RNG seeded, so its weights
depend only on its code and the seed) but its BatchNorm statistics are left as its factory made
them: a factory may load trained weights, and a model is measured as its user ships it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Union

from mnv2prof.errors import UsageError

if TYPE_CHECKING:
    from mnv2prof.models.variants import BlockSpec

DEFAULT_SHAPE = (1, 3, 224, 224)
TORCH_INPUT = "input"  # the name of a torch model's one input (artifacts.export.INPUT_NAME)

Shapes = tuple[tuple[str, tuple[int, ...]], ...]
Subject = Union["BlockSpec", "ModelSpec"]  # what a row measures: a block or a whole model


def format_shape(shape) -> str:
    return "x".join(map(str, shape))


def parse_dims(text: str, flag: str = "--shape") -> tuple[int, ...]:
    """`1x3x224x224` -> (1, 3, 224, 224); a `UsageError` names a bad dim."""
    dims = []
    for token in text.lower().split("x"):
        token = token.strip()
        if not (token.isascii() and token.isdigit()) or int(token) <= 0:
            raise UsageError(f"{flag} {text!r}: {token!r} is not a positive integer dim "
                             "(expected e.g. 1x3x224x224)")
        dims.append(int(token))
    return tuple(dims)


def parse_shape(text: str) -> tuple[str | None, tuple[int, ...]]:
    """`1x3x224x224` (the one input) or `INPUT=1x3x224x224` (an ONNX file's named input; the
    name is everything before the last `=`)."""
    name, sep, dims = text.strip().rpartition("=")
    if sep and not name:
        raise UsageError(f"--shape {text!r}: expected INPUT=D0xD1x... or D0xD1x...")
    return (name if sep else None), parse_dims(dims)


@dataclass(frozen=True)
class ModelSpec:
    """One whole model to measure."""

    variant: str  # the row's name: NAME, or the ONNX file's stem
    source: str  # PATH.py:NAME (absolute), module:NAME, or the .onnx file's absolute path
    source_hash: str  # sha256 of the file's bytes (16 hex digits)
    input_shapes: Shapes = ()  # (input, dims); () for an ONNX file: its own dims (run.model_file)

    @property
    def onnx_file(self) -> bool:
        return self.source.lower().endswith(".onnx")

    @property
    def builtin(self) -> bool:
        return False

    @property
    def label(self) -> str:
        return self.variant

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The first input's dims (a torch model has one input)."""
        return self.input_shapes[0][1] if self.input_shapes else ()

    @property
    def shape_text(self) -> str:
        """`1x3x224x224`, or `a=1x3x8x8 b=1x4` for an ONNX file with several inputs."""
        if len(self.input_shapes) == 1:
            return format_shape(self.input_shape)
        return " ".join(f"{n}={format_shape(d)}" for n, d in self.input_shapes)

    @property
    def name(self) -> str:
        """The `spec` column and the export's file stem: NAME and the input dims."""
        return f"{self.variant}_{self.shape_text.replace(' ', '_').replace('=', '-')}"

    def identity(self) -> dict[str, object]:
        return {"model": self.variant, "factory": self.source.rpartition(":")[2],
                "source_hash": self.source_hash,
                "input_shapes": [[n, list(d)] for n, d in self.input_shapes]}

    def digest(self, *extra: object) -> str:
        payload = json.dumps([self.identity(), *extra], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def with_shapes(self, shapes: Shapes) -> ModelSpec:
        return replace(self, input_shapes=tuple((n, tuple(d)) for n, d in shapes))


def model_spec(text: str, shape: str | None = None, base_dir: Path | None = None) -> ModelSpec:
    """`--model TEXT [--shape SHAPE]`: a factory reference or an ONNX file (relative to
    `base_dir`, else the current folder). An ONNX file's shapes are resolved against the file
    later (`onnx.inputs.resolved`); a torch model gets `shape` or `DEFAULT_SHAPE`."""
    from mnv2prof.models import plugins

    text = text.strip()
    if text.lower().endswith(".onnx"):
        path = Path(text).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not path.is_file():
            state = "is not a file" if path.exists() else "not found"
            raise UsageError(f"--model {text}: {state}")
        try:
            digest = plugins.file_digest(path)
        except OSError as exc:
            raise UsageError(f"--model {text}: cannot read it: {exc.strerror}") from None
        given: Shapes = ()
        if shape is not None:
            name, dims = parse_shape(shape)
            given = ((name or "", dims),)  # "" : the file's one input, named when resolved
        return ModelSpec(path.stem, str(path.resolve()), digest, given)
    if not plugins.is_reference(text):
        raise UsageError(f"--model {text!r}: expected PATH.py:NAME, package.module:NAME or "
                         "FILE.onnx")
    origin = plugins.resolve(text, base_dir, what="model")
    dims = DEFAULT_SHAPE
    if shape is not None:
        name, dims = parse_shape(shape)
        if name is not None:
            raise UsageError(f"--shape {shape!r}: a torch model has one input; give its dims "
                             "alone (e.g. 1x3x224x224)")
    return ModelSpec(origin.name, f"{origin.path or origin.module}:{origin.name}", origin.digest,
                     ((TORCH_INPUT, dims),))


def model_specs(models: list[str], shapes: list[str]) -> list[ModelSpec]:
    """`--model` given several times with `--shape` given once (every model) or once per model
    (in order); no `--shape`: each model's default."""
    if shapes and len(shapes) not in (1, len(models)):
        raise UsageError(f"--shape given {len(shapes)} times for {len(models)} --model: give it "
                         "once (every model) or once per --model, in order")
    if shapes and not models:
        raise UsageError("--shape applies to --model: give a model")
    paired = shapes if len(shapes) == len(models) else shapes * len(models)
    specs = [model_spec(m, paired[i] if paired else None) for i, m in enumerate(models)]
    names = [s.variant for s in specs]
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise UsageError(f"two models are named {', '.join(twice)}: rows are named by model, "
                         "rename one")
    return specs


def build_model(spec: ModelSpec, seed: int = 0):
    """The eval-mode torch model of `spec`: its factory called with no arguments (torch's RNG
    seeded with `seed`), checked to run on its input shape."""
    from mnv2prof.models import plugins
    from mnv2prof.models.blocks import seeded

    if spec.onnx_file:
        raise UsageError(f"{spec.variant} is an ONNX file: there is no torch module to build")
    origin = plugins.checked_origin(spec, "model")
    module = seeded(lambda: plugins.call_factory(origin, {}, "model"), seed, randomize_bn=False)
    plugins.check_forward(module, spec.input_shape, spec.variant, origin.source)
    return module
