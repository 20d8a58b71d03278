"""A whole network's cost per stage (row of the paper's table), counted and timed.

The network is exported once (cached); MACs and elementwise ops are counted on the whole graph
and grouped by stage through the exporter's name scopes (onnx.scopes); a stage's peak activation
memory is the liveness peak of its own nodes (its input alive from the start, its output to the
end); its parameters are the stage module's, recorded in the file at export. Latency shares come
from timing each stage as its own ONNX sub-model (cut from the network's graph at the stage's
input and output tensors), all stages and the whole network timed under one budget, their bursts
rotating: share = stage median / sum of stage medians. Stages are timed apart, not read from
onnxruntime's profiler, because the profiler names the nodes of its optimised graph (fused
Conv+Clip...), which no longer carry the name scopes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass

from mnv2prof import interrupts
from mnv2prof.count.cost import count_graph_cost, params_by_part
from mnv2prof.count.counting import count_graph
from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.measure.latency import Measurement, OrtRunner, TimingSpec
from mnv2prof.models.networks import Network, NetworkSpec, Stage, build_network, stage_table
from mnv2prof.onnx.export import ExportResult, export_cached
from mnv2prof.onnx.graph import load_graph
from mnv2prof.onnx.scopes import extract_part, group_by_scope, subgraph
from mnv2prof.onnx.sources import network_source


@dataclass(frozen=True)
class StageCost:
    stage: Stage
    params: int
    macs: int
    elementwise_ops: int
    peak_act_bytes: int  # liveness peak over the stage's own nodes (fp32, as exported)
    latency: Measurement | None  # the stage timed as its own sub-model; None: not timed


@dataclass(frozen=True)
class NetworkProfile:
    spec: NetworkSpec
    export: ExportResult
    stages: tuple[StageCost, ...]
    params: int
    macs: int  # the whole graph's count: equals the sum over stages (tested)
    elementwise_ops: int
    peak_act_bytes: int  # the whole graph's liveness peak
    unhandled_ops: str
    latency: Measurement | None  # the whole network as one session
    threads: int = 1
    gpu: object | None = None  # measure.cuda.ModuleOnGpu with device="cuda"
    # every (precision, runtime) timed: {Target: {"network" or a stage key: Measurement}}; the
    # first is also `latency` and each stage's `latency`
    timings: dict = dataclasses.field(default_factory=dict)
    # each int8 target's error against fp32 on held-out inputs: {Target: {"network" or a stage
    # key: onnx.quantize.Accuracy}}
    accuracy: dict = dataclasses.field(default_factory=dict)

    def share(self, target, key: str) -> float:
        """A stage's median over the sum of the stages' medians, in `target`."""
        timed = self.timings.get(target, {})
        total = sum(timed[s.stage.key].median_ms for s in self.stages if s.stage.key in timed)
        return timed[key].median_ms / total if key in timed and total else 0.0

    @property
    def stage_latency_sum_ms(self) -> float:
        return sum(s.latency.median_ms for s in self.stages if s.latency is not None)


def export_network(spec: NetworkSpec, seed: int = 0) -> ExportResult:
    """The checked ONNX file of `spec` (parity with torch proven), exported on a cache miss."""
    return export_cached(network_source(spec), seed)


def _runners(spec: NetworkSpec, exported: ExportResult, stage_graphs: dict, stages, target,
             timing: TimingSpec, seed: int, calibration: str, accuracy: dict,
             network: Callable[[], Network]) -> dict:
    """The whole network and each stage, as `target` (run.deploy.Target) runs them; an int8
    target's errors against fp32 go to `accuracy` ({"network" or a stage key: Accuracy}).
    `network()` gives the seeded torch network (built once, for the ExecuTorch targets)."""
    runners = {}
    if target.runtime == "onnxruntime":
        paths = {"network": exported.path}
        paths |= {key: extract_part(exported.path, key, part) for key, part in stage_graphs.items()}
        for key, path in paths.items():
            interrupts.check()
            if target.precision == "int8":
                from mnv2prof.onnx import quantize

                fp32 = path
                path = quantize.quantize_cached(fp32, seed=seed, method=calibration).path
                accuracy[key] = quantize.accuracy(fp32, path, seed=seed)
            runners[(target, key)] = OrtRunner(path, timing.threads, seed)
        return runners
    from mnv2prof.measure.executorch import EtRunner, lower_cached

    modules = {"network": (network(), spec.input_shape)}
    named = network().stage_modules()
    for stage in stages:  # each stage's module, fed the shape the table says it takes
        shape = ((1, stage.in_chs) if stage.key == "classifier"
                 else (1, stage.in_chs, stage.in_resolution, stage.in_resolution))
        modules[stage.key] = (named[stage.key], shape)
    identity = network_source(spec).identity
    for key, (module, shape) in modules.items():
        interrupts.check()
        lowered = lower_cached(module, shape, f"{spec.name}.{key}", f"{identity} {key}", target.precision,
                               seed)
        if lowered.accuracy is not None:
            accuracy[key] = lowered.accuracy
        runners[(target, key)] = EtRunner(lowered.path, timing.threads, shape, seed)
    return runners


def profile_network(
    spec: NetworkSpec,
    timing: TimingSpec | None = None,
    seed: int = 0,
    device: str = "cpu",
    targets: tuple = (),
    calibration: str = "minmax",
) -> NetworkProfile:
    """Export (cached), count per stage, and with `timing` time the network and each stage in
    every one of `targets` (run.deploy.Target; default fp32 onnxruntime), each in its own
    phase; `device="cuda"` also times the whole network on the GPU (eager and CUDA graph)."""
    from mnv2prof.measure.latency import measure_phases
    from mnv2prof.run.deploy import Target

    targets = tuple(targets) or (Target(),)
    exported = export_network(spec, seed)
    graph = load_graph(exported.path)
    cost = count_graph(graph)
    whole = count_graph_cost(graph, cost)
    by_name = {n.name: n for n in cost.nodes}
    stages = stage_table(spec)
    grouped = group_by_scope(graph, [stage.key for stage in stages])
    stage_graphs = {key: subgraph(graph, nodes) for key, nodes in grouped.items()}
    timings: dict = {}
    accuracy: dict = {target: {} for target in targets if target.precision == "int8"}
    network = functools.cache(lambda: build_network(spec, seed))
    if timing is not None:
        phases = [_runners(spec, exported, stage_graphs, stages, target, timing, seed,
                           calibration, accuracy.get(target, {}), network) for target in targets]
        measured = measure_phases(phases, timing)
        timings = {t: {key: m for (tt, key), m in measured.items() if tt == t} for t in targets}
    measurements = timings.get(targets[0], {})
    gpu = None
    if device == "cuda" and timing is not None:
        from mnv2prof.measure.cuda import measure_module

        gpu = measure_module(lambda: build_network(spec, seed), spec.input_shape, timing, seed)
    params = params_by_part(graph)
    return NetworkProfile(
        spec=spec,
        export=exported,
        stages=tuple(
            StageCost(
                stage=stage,
                params=params[stage.key],
                macs=sum(by_name[n.name].macs for n in grouped[stage.key]),
                elementwise_ops=sum(by_name[n.name].elementwise_ops for n in grouped[stage.key]),
                peak_act_bytes=peak_activation_memory(stage_graphs[stage.key]).peak_bytes,
                latency=measurements.get(stage.key),
            )
            for stage in stages
        ),
        params=whole.params,
        macs=whole.macs,
        elementwise_ops=whole.elementwise_ops,
        peak_act_bytes=whole.peak_act_bytes,
        unhandled_ops=whole.unhandled_ops,
        latency=measurements.get("network"),
        threads=timing.threads if timing is not None else 1,
        gpu=gpu,
        timings=timings,
        accuracy={t: a for t, a in accuracy.items() if a},
    )
