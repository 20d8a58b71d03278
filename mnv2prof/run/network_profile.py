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

from dataclasses import dataclass
from pathlib import Path

from mnv2prof import interrupts
from mnv2prof.count.cost import count_graph_cost, params_by_part
from mnv2prof.count.counting import count_graph
from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.measure.latency import Measurement, OrtRunner, TimingSpec, measure
from mnv2prof.models.networks import NetworkSpec, Stage, build_stages
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
    model_path: Path
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

    @property
    def stage_latency_sum_ms(self) -> float:
        return sum(s.latency.median_ms for s in self.stages if s.latency is not None)

    def latency_share(self, stage: StageCost) -> float:
        total = self.stage_latency_sum_ms
        return stage.latency.median_ms / total if stage.latency is not None and total else 0.0


def export_network(spec: NetworkSpec, seed: int = 0) -> ExportResult:
    """The checked ONNX file of `spec` (parity with torch proven), exported on a cache miss."""
    return export_cached(network_source(spec), seed)


def profile_network(
    spec: NetworkSpec, timing: TimingSpec | None = None, seed: int = 0, device: str = "cpu"
) -> NetworkProfile:
    """Export (cached), count per stage, and with `timing` time the network and each stage;
    `device="cuda"` also times the whole network on the GPU (eager and CUDA graph)."""
    exported = export_network(spec, seed)
    graph = load_graph(exported.path)
    cost = count_graph(graph)
    whole = count_graph_cost(graph, cost)
    by_name = {n.name: n for n in cost.nodes}
    stages, _ = build_stages(spec)
    grouped = group_by_scope(graph, [stage.key for stage in stages])
    stage_graphs = {key: subgraph(graph, nodes) for key, nodes in grouped.items()}
    measurements: dict[str, Measurement] = {}
    if timing is not None:
        runners = {"network": OrtRunner(exported.path, timing.threads, seed)}
        for key, part in stage_graphs.items():
            interrupts.check()
            runners[key] = OrtRunner(extract_part(exported.path, key, part), timing.threads, seed)
        measurements = measure(runners, timing)
    gpu = None
    if device == "cuda" and timing is not None:
        from mnv2prof.measure.cuda import measure_module
        from mnv2prof.models.networks import build_network

        gpu = measure_module(lambda: build_network(spec, seed), spec.input_shape, timing, seed)
    params = params_by_part(graph)
    return NetworkProfile(
        spec=spec,
        model_path=exported.path,
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
    )
