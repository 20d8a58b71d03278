"""An ONNX file's inputs: their dims from the file, from `--shape`, or (a symbolic batch dim
alone) set to 1 and said so."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx

from mnv2prof.errors import UsageError
from mnv2prof.models.user_models import ModelSpec, format_shape
from mnv2prof.onnx.graph import load_model

Shapes = dict[str, tuple[int, ...]]


def parse_shapes(values: Sequence[str]) -> Shapes:
    """`["data=1x3x224x224"]` -> `{"data": (1, 3, 224, 224)}`; a `UsageError` names a bad one.

    The name is everything before the last `=` (input names may hold `/`, `:` or `=`). One value
    of dims alone (`1x3x224x224`) is the model's only input, named "" until the file says
    (`resolved`).
    """
    shapes: Shapes = {}
    for value in values:
        name, sep, dims_text = value.rpartition("=")
        if not sep and len(values) == 1 and value[:1].isdigit():
            name, sep, dims_text = "", "=", value
        elif not sep or not name or not dims_text:
            raise UsageError(
                f"--shape {value!r}: expected INPUT=D0xD1x... (e.g. data=1x3x224x224)"
            )
        dims = []
        for token in dims_text.lower().split("x"):
            token = token.strip()
            if not (token.isascii() and token.isdigit()) or int(token) <= 0:
                raise UsageError(f"--shape {value!r}: {token!r} is not a positive integer dim")
            dims.append(int(token))
        if name in shapes:
            raise UsageError(f"--shape gives input {name!r} twice")
        shapes[name] = tuple(dims)
    return shapes


def resolve_input_shapes(
    model: onnx.ModelProto, given: Mapping[str, tuple[int, ...]]
) -> tuple[Shapes, tuple[str, ...]]:
    """Concrete dims for every activation input, and notes on the ones mnv2prof chose itself.

    Initializers that old exporters also list as graph inputs are weights, not inputs.
    """
    initializers = {t.name for t in model.graph.initializer}
    inputs = [v.name for v in model.graph.input if v.name not in initializers]
    unknown = sorted(set(given) - set(inputs))
    if unknown:
        raise UsageError(
            f"--shape names {', '.join(map(repr, unknown))}, not an input of the model "
            f"(inputs: {', '.join(inputs) or 'none'})"
        )
    shapes: Shapes = {}
    notes: list[str] = []
    missing: list[str] = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if value.name in given:
            shapes[value.name] = tuple(given[value.name])
            continue
        if not value.type.HasField("tensor_type"):
            raise UsageError(f"input {value.name!r} is not a tensor; only tensor inputs can be fed")
        if not value.type.tensor_type.HasField("shape"):
            missing.append(f"input {value.name!r} has no shape in the model")
            continue
        dims = value.type.tensor_type.shape.dim
        free = [i for i, d in enumerate(dims) if not d.HasField("dim_value")]
        symbols = [d.dim_param or "?" for d in dims]
        if not free:
            shapes[value.name] = tuple(d.dim_value for d in dims)
        elif free == [0] and len(dims) >= 2:
            shapes[value.name] = (1, *(d.dim_value for d in dims[1:]))
            notes.append(
                f"input {value.name!r}: batch dim 0 ({symbols[0]!r}) is symbolic, set to 1 "
                f"(give --shape {value.name}=... to choose)"
            )
        else:
            template = format_shape(
                [f"<{symbols[i]}>" if i in free else d.dim_value for i, d in enumerate(dims)]
            )
            named = ", ".join(f"{i} ({symbols[i]!r})" for i in free)
            missing.append(
                f"input {value.name!r} has symbolic dims {named}; "
                f"give --shape {value.name}={template}"
            )
    if missing:
        raise UsageError("; ".join(missing))
    return shapes, tuple(notes)


def resolved(spec: ModelSpec) -> tuple[ModelSpec, tuple[str, ...]]:
    """`spec` with every input's dims, from the file and the shapes it was given (an unnamed
    one: the file's only input), and the notes on dims mnv2prof chose itself."""
    model = load_model(Path(spec.source), check=True)
    given = dict(spec.input_shapes)
    if "" in given:
        initializers = {t.name for t in model.graph.initializer}
        inputs = [v.name for v in model.graph.input if v.name not in initializers]
        if len(inputs) != 1:
            raise UsageError(f"--shape {format_shape(given[''])}: {Path(spec.source).name} has "
                             f"{len(inputs)} inputs ({', '.join(inputs)}): name one, "
                             "INPUT=D0xD1x...")
        given = {inputs[0]: given.pop("")}
    shapes, notes = resolve_input_shapes(model, given)
    return spec.with_shapes(tuple(shapes.items())), notes
