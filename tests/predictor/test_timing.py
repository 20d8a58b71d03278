"""Kernels timed alone, and whole networks, on the harness compare uses. No test asserts a time:
only that each kernel is timed, once, with the harness's own rules."""

from mnv2prof.predictor.detect import detect, kernel_graph
from mnv2prof.predictor.graphs import GraphBuilder, T, network_model
from mnv2prof.predictor.space import Arch, Block
from mnv2prof.predictor.timing import (
    MIN_BATCH_BUDGET_S,
    SMALLEST_MS,
    TIMING_MIN_ROUNDS,
    kernel_spec,
    probe_graphs,
    time_kernels,
    time_network,
)


def test_kernel_spec_is_the_harness_spec():
    spec = kernel_spec(threads=1, kernels=40, kernel_budget_s=0.05)
    assert spec.budget_s == 2.0 and spec.min_samples == TIMING_MIN_ROUNDS and spec.threads == 1
    assert kernel_spec(1, 1, 0.05).budget_s == MIN_BATCH_BUDGET_S


def test_every_kernel_timed_once_less_the_floor():
    g = GraphBuilder(0)
    x = T("input", 8, 8, 8)
    y = g.conv_bn(g.conv_bn(x, 16, 1, act="relu"), 16, 3, 1, 16, act="relu6")
    detected = detect(g.model([x], [y]).SerializeToString())
    graphs = {k.key: kernel_graph(detected, k) for k in detected.kernels}
    times, floor, probe = time_kernels(graphs, threads=1, kernel_budget_s=0.01)
    assert set(times) == set(graphs)
    assert floor > 0 and probe == 0.0  # no probes asked for
    for key, timed in times.items():
        assert timed.key == key and timed.ms >= SMALLEST_MS and timed.rounds >= TIMING_MIN_ROUNDS


def test_time_network_gives_the_fastest_call():
    arch = Arch(32, 8, (Block("ir", 8, 1, 3, 1.0),), 16, classes=10)
    assert time_network(network_model(arch).SerializeToString(), 1, budget_s=0.05) > 0


def test_probes_ride_along_and_give_one_time():
    probes = probe_graphs(1)
    assert len(probes) >= 4  # the fixed block's reorders, convs and add
    g = GraphBuilder(0)
    x = T("input", 8, 8, 8)
    detected = detect(g.model([x], [g.conv_bn(x, 8, 1, act="relu")]).SerializeToString())
    graphs = {k.key: kernel_graph(detected, k) for k in detected.kernels}
    times, _, probe = time_kernels(graphs, 1, 0.01, probes)
    assert set(times) == set(graphs) and probe > 0


def test_dispatch_is_a_non_negative_cost_per_node():
    from mnv2prof.predictor.timing import dispatch_ms

    assert dispatch_ms(1, budget_s=0.05) >= 0.0
