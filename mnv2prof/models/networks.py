"""Whole networks from the papers' tables, and their cost per stage (row of the table).

MobileNetV2 is built from the MobileNetV2 paper's Table 2 and MobileNetV1 from the MobileNetV1
paper's Table 1, out of the same blocks `compare` measures (`ConvBnAct`, `InvertedResidual`,
`DepthwiseSeparable`). The width multiplier rounds every channel count with `make_divisible`
(multiple of 8, never down by more than 10%); MobileNetV2's last 1x1 conv keeps 1280 channels
for width < 1 and scales for width > 1 (as the reference implementations do).

Each row of the table is one named module (`features.0` ... `features.N`, `pool`,
`classifier`); the ONNX exporter records these names in each node's metadata
(`pkg.torch.onnx.name_scopes`), so MACs are counted on the whole network's graph and grouped
by row. Peak activation memory of a row is `memory.peak_activation_memory` over the row's own
nodes (its input alive from the start, its output to the end). Latency shares come from timing
each row as its own ONNX sub-model (cut from the network's graph at the row's input and output
tensors), all rows timed under one budget, their bursts rotating: share = row median / sum of
row medians.
Timing rows apart, not reading onnxruntime's profiler, because the profiler names the nodes of
its optimised graph (fused Conv+Clip...), which no longer carry the name scopes.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from mnv2prof.models.blocks import (
    ConvBnAct,
    DepthwiseSeparable,
    InvertedResidual,
    StreamedInvertedResidual,
    count_params,
    randomize_batchnorm,
)
from mnv2prof.count.counting import count_graph
from mnv2prof.errors import SpecError
from mnv2prof.onnx.graph import GraphInfo, load_graph
from mnv2prof.measure.latency import Measurement, OrtRunner, TimingSpec, measure
from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.models.variants import BlockSpec, make_divisible

NETWORKS = ("mobilenetv2", "mobilenetv1")
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"

# MobileNetV2 paper, Table 2: (operator, t, c, n, s) for a 224x224x3 input.
MOBILENETV2_TABLE = (
    ("conv2d 3x3", None, 32, 1, 2),
    ("bottleneck", 1, 16, 1, 1),
    ("bottleneck", 6, 24, 2, 2),
    ("bottleneck", 6, 32, 3, 2),
    ("bottleneck", 6, 64, 4, 2),
    ("bottleneck", 6, 96, 3, 1),
    ("bottleneck", 6, 160, 3, 2),
    ("bottleneck", 6, 320, 1, 1),
    ("conv2d 1x1", None, 1280, 1, 1),
)
# MobileNetV1 paper, Table 1, with repeated identical rows folded into n.
MOBILENETV1_TABLE = (
    ("conv2d 3x3", None, 32, 1, 2),
    ("dw+pw", None, 64, 1, 1),
    ("dw+pw", None, 128, 1, 2),
    ("dw+pw", None, 128, 1, 1),
    ("dw+pw", None, 256, 1, 2),
    ("dw+pw", None, 256, 1, 1),
    ("dw+pw", None, 512, 1, 2),
    ("dw+pw", None, 512, 5, 1),
    ("dw+pw", None, 1024, 1, 2),
    ("dw+pw", None, 1024, 1, 1),
)


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network to build, export and measure. Validated on construction."""

    arch: str
    width: float = 1.0  # the paper's width multiplier alpha
    resolution: int = 224  # the paper's input resolution (rho scales it)
    num_classes: int = 1000
    streamed: bool = False  # mobilenetv2: every bottleneck as mbv2-streamed in t chunks (5.1)

    def __post_init__(self) -> None:
        if self.arch not in NETWORKS:
            raise SpecError(f"unknown network {self.arch!r}; choose from: {', '.join(NETWORKS)}")
        if not self.width > 0:
            raise SpecError(f"width must be positive, got {self.width}")
        if self.resolution < 32:
            raise SpecError(
                f"resolution must be at least 32 (5 stride-2 layers), got {self.resolution}"
            )
        if self.num_classes <= 0:
            raise SpecError(f"classes must be a positive integer, got {self.num_classes}")
        if self.streamed and self.arch != "mobilenetv2":
            raise SpecError("streamed applies only to mobilenetv2 (the bottlenecks to split)")

    @property
    def name(self) -> str:
        suffix = "-streamed" if self.streamed else ""
        return f"{self.arch}-w{self.width:g}-r{self.resolution}-n{self.num_classes}{suffix}"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.resolution, self.resolution)

    def digest(self, *extra: object) -> str:
        payload = json.dumps([dataclasses.asdict(self), *extra], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Stage:
    """One row of the paper's table: what it does, and the module that does it."""

    key: str  # module path, e.g. features.3; the ONNX name scope of its nodes
    operator: str
    in_resolution: int
    in_chs: int
    t: int | None
    c: int
    n: int
    s: int | None


def _out(resolution: int, stride: int) -> int:
    return (resolution - 1) // stride + 1


def _rows(spec: NetworkSpec):
    table = MOBILENETV2_TABLE if spec.arch == "mobilenetv2" else MOBILENETV1_TABLE
    for operator, t, c, n, s in table:
        if spec.arch == "mobilenetv2" and c == 1280:
            c = make_divisible(c * max(1.0, spec.width))  # keeps 1280 for width < 1
        else:
            c = make_divisible(c * spec.width)
        yield operator, t, c, n, s


def build_stages(spec: NetworkSpec) -> tuple[list[Stage], list[nn.Module]]:
    """The table's rows (stages) and one module per row, in order, pool and classifier last."""
    stages, modules = [], []
    chs, res = 3, spec.resolution
    for i, (operator, t, c, n, s) in enumerate(_rows(spec)):
        if operator.startswith("conv2d"):
            k = 3 if "3x3" in operator else 1
            module = ConvBnAct(chs, c, k, s)
        else:
            blocks = []
            for j in range(n):
                stride = s if j == 0 else 1
                block_in, block_res = (chs, res) if j == 0 else (c, _out(res, s))
                if operator == "bottleneck":
                    variant = "mbv2-streamed" if spec.streamed else "mbv2"
                    chunks = t if spec.streamed else 1
                    block = BlockSpec(variant, block_in, c, block_res, t, 3, stride, chunks=chunks)
                    build = StreamedInvertedResidual if spec.streamed else InvertedResidual
                else:
                    block = BlockSpec("dwsep", block_in, c, block_res, 1, 3, stride)
                    build = DepthwiseSeparable
                blocks.append(build(block))
            module = nn.Sequential(*blocks)
        stages.append(Stage(f"features.{i}", operator, res, chs, t, c, n, s))
        modules.append(module)
        chs, res = c, _out(res, s)
    stages.append(Stage("pool", f"avgpool {res}x{res}", res, chs, None, chs, 1, None))
    classifier = Stage("classifier", "linear (conv2d 1x1)", 1, chs, None, spec.num_classes, 1, None)
    stages.append(classifier)
    return stages, modules


class Network(nn.Module):
    """`features` (one child per table row), global average `pool`, linear `classifier`."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.stages, rows = build_stages(spec)
        self.features = nn.Sequential(*rows)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(self.stages[-1].in_chs, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))

    def stage_modules(self) -> dict[str, nn.Module]:
        named = dict(self.named_modules())
        return {stage.key: named[stage.key] for stage in self.stages}


def build_network(spec: NetworkSpec, seed: int = 0) -> Network:
    """The eval-mode network, with weights that depend only on (spec, seed), BNs randomised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = Network(spec)
    randomize_batchnorm(network, generator)
    return network.eval()


@dataclass(frozen=True)
class NetworkExport:
    path: Path
    cached: bool
    max_abs_diff: float | None  # parity of this export; None when loaded from the cache


def export_network(
    spec: NetworkSpec, seed: int = 0, directory: Path | None = None
) -> NetworkExport:
    """The checked ONNX file of `spec` (parity with torch proven), exported on a cache miss."""
    from mnv2prof.onnx.export import EXPORT_FORMAT, OPSET, cache_dir, export_module, library_versions

    directory = directory or cache_dir() / "onnx"
    key = spec.digest(seed, OPSET, EXPORT_FORMAT, library_versions())
    path = directory / f"{spec.name}-{key}.onnx"
    if path.exists():
        return NetworkExport(path, cached=True, max_abs_diff=None)
    diff = export_module(build_network(spec, seed), spec.input_shape, path, seed)
    return NetworkExport(path, cached=False, max_abs_diff=diff)


def node_stage(node: onnx.NodeProto, keys: set[str]) -> str | None:
    """The stage (table row) a node belongs to, from the exporter's name scopes."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES_KEY:
            scopes = ast.literal_eval(prop.value)
            return next((s for s in scopes if s in keys), None)
    return None


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
    export: NetworkExport
    stages: tuple[StageCost, ...]
    params: int
    macs: int  # the whole graph's count: equals the sum over stages (tested)
    elementwise_ops: int
    peak_act_bytes: int  # the whole graph's liveness peak
    unhandled_ops: str
    latency: Measurement | None  # the whole network as one session

    @property
    def stage_latency_sum_ms(self) -> float:
        return sum(s.latency.median_ms for s in self.stages if s.latency is not None)

    def latency_share(self, stage: StageCost) -> float:
        total = self.stage_latency_sum_ms
        return stage.latency.median_ms / total if stage.latency is not None and total else 0.0


def stage_nodes(graph: GraphInfo, stages: list[Stage]) -> dict[str, list[onnx.NodeProto]]:
    """Nodes of each stage, in graph order. A node no stage scope claims raises `SpecError`."""
    keys = {stage.key for stage in stages}
    grouped: dict[str, list[onnx.NodeProto]] = {stage.key: [] for stage in stages}
    for node in graph.nodes:
        key = node_stage(node, keys)
        outputs = [graph.tensor(n) for n in node.output]
        if key is None and all(o is not None and o.static for o in outputs):
            continue  # weight folding material (constants): no stage computes it
        if key is None:
            raise SpecError(f"node {node.name} ({node.op_type}) carries no stage name scope")
        grouped[key].append(node)
    return grouped


def subgraph(graph: GraphInfo, nodes: list[onnx.NodeProto]) -> GraphInfo:
    """`nodes` as a graph of their own: activations they read from outside are its inputs,
    activations read after them (or graph outputs) are its outputs."""
    made = {name for node in nodes for name in node.output if name}
    inner = {id(node) for node in nodes}
    read_later = {name for node in graph.nodes if id(node) not in inner for name in node.input}
    inputs: list[str] = []
    for node in nodes:
        for name in node.input:
            info = graph.tensor(name)
            if name not in made and info is not None and not info.static and name not in inputs:
                inputs.append(name)
    outputs = [n for n in dict.fromkeys(made) if n in read_later or n in graph.outputs]
    return dataclasses.replace(graph, nodes=list(nodes), inputs=inputs, outputs=outputs)


def profile_network(
    spec: NetworkSpec, timing: TimingSpec | None = None, seed: int = 0
) -> NetworkProfile:
    """Export (cached), count per stage, and with `timing` time the network and each stage."""
    exported = export_network(spec, seed)
    network = build_network(spec, seed)
    graph = load_graph(exported.path)
    cost = count_graph(graph)
    by_name = {n.name: n for n in cost.nodes}
    grouped = stage_nodes(graph, network.stages)
    stage_graphs = {key: subgraph(graph, nodes) for key, nodes in grouped.items()}
    measurements: dict[str, Measurement] = {}
    if timing is not None:
        runners = {"network": OrtRunner(exported.path, timing.threads, seed)}
        for key, sub in stage_graphs.items():
            path = _stage_model(exported.path, key, sub)
            runners[key] = OrtRunner(path, timing.threads, seed)
        measurements = measure(runners, timing)
    modules = network.stage_modules()
    stages = tuple(
        StageCost(
            stage=stage,
            params=count_params(modules[stage.key]),
            macs=sum(by_name[n.name].macs for n in grouped[stage.key]),
            elementwise_ops=sum(by_name[n.name].elementwise_ops for n in grouped[stage.key]),
            peak_act_bytes=peak_activation_memory(stage_graphs[stage.key]).peak_bytes,
            latency=measurements.get(stage.key),
        )
        for stage in network.stages
    )
    return NetworkProfile(
        spec=spec,
        model_path=exported.path,
        export=exported,
        stages=stages,
        params=count_params(network),
        macs=cost.macs,
        elementwise_ops=cost.elementwise_ops,
        peak_act_bytes=peak_activation_memory(graph).peak_bytes,
        unhandled_ops=cost.unhandled_summary(),
        latency=measurements.get("network"),
    )


def _stage_model(network_path: Path, key: str, sub: GraphInfo) -> Path:
    """The stage cut out of the network's ONNX file as a model of its own (cached beside it)."""
    path = network_path.with_name(f"{network_path.stem}.{key}.onnx")
    if not path.exists():
        tmp = path.with_name(path.name + ".tmp")
        onnx.utils.extract_model(str(network_path), str(tmp), sub.inputs, sub.outputs)
        tmp.replace(path)
    return path
