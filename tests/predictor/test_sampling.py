"""Samples: reproducible recipes, each written as a valid graph, its new kernels timed once."""

import itertools

import numpy as np
import onnx
import onnxruntime as ort

from mnv2prof.predictor.folder import KERNEL_COLUMNS
from mnv2prof.predictor.graphs import lone_block_model, network_model
from mnv2prof.predictor.sampling import Sample, measure_batch, prior_samples
from mnv2prof.predictor.space import Arch, Block, LoneBlock, Space


def test_prior_samples_are_numbered_and_reproducible():
    space = Space()
    first = list(itertools.islice(prior_samples(space), 12))
    assert first == list(itertools.islice(prior_samples(space), 12))
    assert [s.id[1:] for s in first] == [str(i) for i in range(12)]
    assert {s.id[0] for s in first} <= {"n", "b"}
    networks = list(itertools.islice(prior_samples(space, prefix="c", lone_share=0.0), 5))
    assert all(s.id.startswith("cn") for s in networks)


def _run(model: onnx.ModelProto, shape):
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = np.zeros(shape, np.float32)
    return session.run(None, {session.get_inputs()[0].name: feed})[0]


def test_graphs_run_with_the_shapes_they_claim():
    arch = Arch(64, 16, (Block("ir", 16, 1, 3, 1.0), Block("ir", 24, 2, 5, 6.0, True, "hswish"),
                         Block("ir", 24, 1, 7, 3.0, extra_dw=True)), 64, hidden=32, classes=7)
    assert _run(network_model(arch), (1, 3, 64, 64)).shape == (1, 7)
    shuffle = LoneBlock(24, 10, Block("shuffle", 24, 1, 3, act="relu"))
    assert _run(lone_block_model(shuffle), (1, 24, 10, 10)).shape == (1, 24, 10, 10)
    down = LoneBlock(24, 10, Block("shuffle", 48, 2, 3, act="relu"))
    assert _run(lone_block_model(down), (1, 24, 10, 10)).shape == (1, 48, 5, 5)


def test_measure_batch_times_only_new_kernels_once():
    """Two samples share kernels: each kernel is timed once, credited to the first sample that
    has it, its row beside the batch's probes; known kernels are not timed again."""
    block = LoneBlock(16, 8, Block("ir", 16, 1, 3, 3.0))
    a, b = Sample("b0", block), Sample("b1", block)
    first, second = measure_batch([a, b], set(), kernel_budget_s=0.01)
    assert first.kernels == second.kernels >= 4 and second.rows == []
    assert len(first.rows) == len({r["key"] for r in first.rows})
    assert set(first.rows[0]) <= set(KERNEL_COLUMNS)
    assert {r["kind"] for r in first.rows} >= {"conv", "dwconv"}
    assert len({r["probe_ms"] for r in first.rows}) == 1 and first.rows[0]["probe_ms"] > 0
    (again,) = measure_batch([a], {r["key"] for r in first.rows}, kernel_budget_s=0.01)
    assert again.rows == [] and again.kernels == first.kernels
