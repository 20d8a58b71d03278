"""The harness floor's artefact: an ONNX model that copies one float. Timed like the rows, it
gives the part of every latency that is the call itself (a pre-bound `run_with_iobinding` call
and the clock, with no work to do)."""

from __future__ import annotations

from pathlib import Path

from mnv2prof.errors import Mnv2profError


def identity_model() -> bytes:
    """An ONNX model that copies one float: timing it gives the harness floor (the cost of a
    pre-bound `run_with_iobinding` call and of the clock, with no work to do). Its bytes are
    kept in the export cache with their sha256, so a warm run need not import onnx (0.6 s) to
    build it again; a missing or damaged entry is built and written anew."""
    import hashlib
    from importlib.metadata import version

    from mnv2prof.artifacts.export import OPSET
    from mnv2prof.files.atomic import write_all
    from mnv2prof.files.cache import cache_dir

    path = cache_dir() / "harness" / f"identity-opset{OPSET}-onnx{version('onnx')}.onnx"
    digest = Path(str(path) + ".sha256")
    try:
        data = path.read_bytes()
        if digest.read_text(encoding="ascii").strip() == hashlib.sha256(data).hexdigest():
            return data
    except OSError:
        pass
    data = _build_identity_model()
    try:
        path.parent.mkdir(exist_ok=True)
        write_all([(path, data), (digest, hashlib.sha256(data).hexdigest() + "\n")])
    except (OSError, Mnv2profError):  # a cache that cannot be written costs the build next time, nothing more
        pass
    return data


def _build_identity_model() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    from mnv2prof.artifacts.export import OPSET

    value = [1]
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"], name="identity")],
        "harness_floor",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, value)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, value)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model.SerializeToString()
