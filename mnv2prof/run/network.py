"""A whole network's cost per stage, counted and timed: the papers' networks (a row of their
table per stage) or any torch model (`network PATH.py:NAME`: its top-level stages,
models.networks.model_stages).

The network is exported once (cached); MACs and elementwise ops are counted on the whole graph
and grouped by stage through the exporter's name scopes (onnx.scopes; a model's nodes outside
every stage, such as a mean in its forward, are a row of their own, `OTHER`); a stage's peak
activation memory is the liveness peak of its own nodes (its input alive from the start, its
output to the end); its parameters are the stage module's, recorded in the file at export.
Latency shares come from timing each stage as a measured thing of its own (run.deploy: on
onnxruntime its ONNX sub-model, cut from the network's graph at the stage's input and output
tensors; on ExecuTorch its torch module lowered at the shape it takes), all stages and the whole
network timed under one budget, their bursts rotating: share = stage median / sum of stage
medians. Stages are timed apart, not read from onnxruntime's profiler, because the profiler
names the nodes of its optimised graph (fused Conv+Clip...), which no longer carry the name
scopes.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from mnv2prof import interrupts
from mnv2prof.artifacts.export import ExportResult, ExportSource, export_cached
from mnv2prof.artifacts.sources import model_source, network_source
from mnv2prof.count.cost import CountedCost, count_graph_cost, params_by_part
from mnv2prof.count.counting import count_graph
from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.errors import UsageError
from mnv2prof.measure.latency import Measurement
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.networks import NetworkSpec, Stage, build_network, model_stages, stage_table
from mnv2prof.models.targets import Target
from mnv2prof.models.user_models import ModelSpec, build_model
from mnv2prof.onnx.graph import load_graph
from mnv2prof.onnx.scopes import extract_part, group_by_scope, subgraph
from mnv2prof.run import user_code
from mnv2prof.run.deploy import Prepared, artifacts
from mnv2prof.run.pipeline import in_process
from mnv2prof.run.user_code import ModuleRef

NETWORK = "network"  # the key of the whole network among the stages' keys
OTHER = "(between stages)"  # a model's nodes no stage module made


@dataclass(frozen=True)
class StageCost:
    stage: Stage
    params: int
    macs: int
    elementwise_ops: int
    peak_act_bytes: int  # liveness peak over the stage's own nodes (fp32, as exported)
    latency: Measurement | None  # the stage timed as its own sub-model; None: not timed


@dataclass(frozen=True)
class NetworkResult:
    name: str  # the network's spec name, or the model's
    paper: bool  # a paper's network (its table's rows) rather than a model's top-level stages
    input_shape: tuple[int, ...]
    outputs: int | None  # the total row's c: classes
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
    # every (precision, runtime) timed: {Target: {NETWORK or a stage key: Measurement}}; the
    # first is also `latency` and each stage's `latency`
    timings: dict = dataclasses.field(default_factory=dict)
    # each int8 target's error against fp32 on held-out inputs: {Target: {NETWORK or a stage
    # key: deploy.Artifact (max_abs_err, sqnr_db)}}
    accuracy: dict = dataclasses.field(default_factory=dict)
    fused: tuple[str, ...] = ()  # stages with no node of their own (fused into another stage's)

    def share(self, target, key: str) -> float:
        """A stage's fastest call (the headline) over the sum of the stages', in `target`."""
        timed = self.timings.get(target, {})
        total = sum(timed[s.stage.key].min_ms for s in self.stages if s.stage.key in timed)
        return timed[key].min_ms / total if key in timed and total else 0.0

    @property
    def stage_latency_sum_ms(self) -> float:
        """The stages' fastest calls, summed."""
        return sum(s.latency.min_ms for s in self.stages if s.latency is not None)

    @property
    def input_size(self) -> str:
        shape = self.input_shape
        return f"{shape[2]}x{shape[3]}x{shape[1]}" if len(shape) == 4 else "x".join(map(str, shape))


@dataclass(frozen=True)
class _Network:
    """What a network is measured from: its export, its stages, its torch module and theirs."""

    name: str
    source: ExportSource
    stages: list[Stage]
    build: functools.partial | object  # () -> the seeded torch network, built once
    paper: bool
    outputs: int | None
    # a user's model from a file (run.user_code.ModuleRef): exported, and its stages lowered,
    # in the worker; `build` then builds it in this process for --device cuda alone
    worker: object | None = None


def _network(spec: NetworkSpec | ModelSpec, seed: int) -> _Network:
    if isinstance(spec, NetworkSpec):
        build = functools.cache(lambda: build_network(spec, seed))
        return _Network(spec.name, network_source(spec), stage_table(spec), build, True,
                        spec.num_classes)
    if spec.onnx_file:
        raise UsageError(f"network {spec.variant}: an ONNX file has no torch stages; give "
                         "PATH.py:NAME or package.module:NAME (or run `profile` on the file)")
    worker = None
    if user_code.needs_worker(spec):
        stages = list(user_code.stages(spec, seed))
        build, worker = functools.cache(lambda: build_model(spec, seed)), ModuleRef(spec, seed)
    else:
        with in_process(spec):  # a Python API callable
            module = build_model(spec, seed)
            stages = model_stages(module, spec.input_shape, seed)
        build = lambda: module  # built once, above
    if not stages:
        raise UsageError(f"network {spec.variant}: the model has no child modules to call "
                         "stages")
    last = stages[-1]
    return _Network(spec.variant, model_source(spec, tuple(s.key for s in stages)), stages,
                    build, False, last.c, worker)


def _exported(net: _Network, spec: NetworkSpec | ModelSpec, seed: int) -> ExportResult:
    """The network's checked ONNX file, from the cache or exported (in the worker for a user's
    model from a file)."""
    if net.worker is not None:
        return user_code.export(spec, seed, parts=net.source.parts)
    if net.paper:
        return export_cached(net.source, seed)
    with in_process(spec):
        return export_cached(net.source, seed, module=net.build())


def export_network(spec: NetworkSpec, seed: int = 0) -> ExportResult:
    """The checked ONNX file of `spec` (parity with torch proven), exported on a cache miss."""
    return export_cached(network_source(spec), seed)


def _prepared(net: _Network, exported: ExportResult, whole: CountedCost, stage_graphs: dict,
              seed: int) -> list[Prepared]:
    """The whole network and each stage as measured things (run.deploy): a stage's ONNX part
    for onnxruntime, its torch module at the shape it takes for ExecuTorch (a stage fed several
    tensors, or the nodes between stages, has none)."""
    def stage_module(key):
        return lambda: dict(net.build().named_modules())[key]

    shapes = {s.key: s.in_shape for s in net.stages}
    def worker(key=""):
        return dataclasses.replace(net.worker, stage=key) if net.worker is not None else None

    things = [Prepared(NETWORK, net.name, net.source.identity, exported.path, whole,
                       net.source.input_shape, module_of=net.build, worker=worker())]
    for key, part in stage_graphs.items():
        interrupts.check()
        shape = shapes.get(key)
        things.append(Prepared(
            key, f"{net.name}.{key}", f"{net.source.identity} {key}",
            extract_part(exported.path, key, part), None, shape or (),
            module_of=stage_module(key) if shape else None,
            worker=worker(key) if shape else None,
        ))
    return things


def _stage_cost(stage: Stage, params: dict, nodes: list, graph, latency) -> StageCost:
    """A stage's row: its counted nodes, and its graph's liveness peak (none: fused away)."""
    return StageCost(
        stage=stage,
        params=params.get(stage.key, 0),
        macs=sum(n.macs for n in nodes),
        elementwise_ops=sum(n.elementwise_ops for n in nodes),
        peak_act_bytes=peak_activation_memory(graph).peak_bytes if graph is not None else 0,
        latency=latency,
    )


def _timed(things: list[Prepared], timing: TimingSpec, targets: tuple, seed: int,
           calibration: str) -> tuple[dict, dict]:
    """The network and its stages timed in every target, each in its own phase: their
    measurements and each int8 target's artefacts (their accuracy), by target."""
    from mnv2prof.measure.latency import measure_phases
    from mnv2prof.run.pipeline import HARNESS_FLOOR, runtime_phases

    pairs = [(p, t) for t in targets for p in things if t.runtime == "onnxruntime" or p.has_module]
    built = artifacts(pairs, seed, calibration, between=interrupts.check, counted=False)
    phases = runtime_phases(built, timing.threads, seed)
    watched = [key for phase in phases for key in phase if key != HARNESS_FLOOR]
    measured = measure_phases(phases, timing, converge=watched)
    measured.pop(HARNESS_FLOOR)
    timings = {t: {key: m for (tt, key), m in measured.items() if tt == t} for t in targets}
    accuracy = {t: {p.subject: a for p, a in built if a.target == t}
                for t in targets if t.precision == "int8"}
    return timings, accuracy


def measure_network(
    spec: NetworkSpec | ModelSpec,
    timing: TimingSpec | None = None,
    seed: int = 0,
    device: str = "cpu",
    targets: tuple = (),
    calibration: str = "minmax",
) -> NetworkResult:
    """Export (cached), count per stage, and with `timing` time the network and each stage in
    every one of `targets` (models.targets.Target; default fp32 onnxruntime), each in its own
    phase; `device="cuda"` also times the whole network on the GPU (eager and CUDA graph)."""
    targets = tuple(targets) or (Target(),)
    net = _network(spec, seed)
    exported = _exported(net, spec, seed)
    graph = load_graph(exported.path)
    cost = count_graph(graph)
    whole = count_graph_cost(graph, cost)
    by_name = {n.name: n for n in cost.nodes}
    keys = [stage.key for stage in net.stages]
    grouped = group_by_scope(graph, keys, rest=None if net.paper else OTHER)
    stages = list(net.stages)
    if OTHER in grouped:
        stages.append(Stage(OTHER, "ops in forward", None, None, None, None, 1, None, None))
    # a stage whose every node the exporter fused into another (a BN child folded into the conv
    # before it) keeps its row and params; it has no graph of its own to count or time
    stage_graphs = {key: subgraph(graph, nodes) for key, nodes in grouped.items() if nodes}
    timings: dict = {}
    accuracy: dict = {}
    if timing is not None:
        things = _prepared(net, exported, whole, stage_graphs, seed)
        timings, accuracy = _timed(things, timing, targets, seed, calibration)
    measurements = timings.get(targets[0], {})
    gpu = None
    if device == "cuda" and timing is not None:
        from mnv2prof.measure.cuda import measure_module

        gpu = measure_module(net.build, net.source.input_shape, timing, seed)
    params = params_by_part(graph)
    return NetworkResult(
        name=net.name,
        paper=net.paper,
        input_shape=net.source.input_shape,
        outputs=net.outputs,
        export=exported,
        stages=tuple(_stage_cost(stage, params, [by_name[n.name] for n in grouped[stage.key]],
                                 stage_graphs.get(stage.key), measurements.get(stage.key))
                     for stage in stages),
        params=whole.params,
        macs=whole.macs,
        elementwise_ops=whole.elementwise_ops,
        peak_act_bytes=whole.peak_act_bytes,
        unhandled_ops=whole.unhandled_ops,
        latency=measurements.get(NETWORK),
        threads=timing.threads if timing is not None else 1,
        gpu=gpu,
        timings=timings,
        accuracy={t: a for t, a in accuracy.items() if a},
        fused=tuple(key for key in keys if key not in stage_graphs),
    )
