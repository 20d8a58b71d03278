"""Per-layer view: one row per node of the graph onnxruntime actually runs, with its cost and time.

onnxruntime rewrites the exported graph before running it (Conv + Clip fused, NCHWc layout with
`ReorderInput`/`ReorderOutput` nodes inserted), so kernel times belong to *its* nodes. They are
mapped back to the exported nodes that carry MACs and names:
- an optimized node is named after an exported node or after the tensor it now computes
  (`hardtanh_nchwc` is the Conv whose fused Clip wrote `hardtanh`); that exported node is the
  group's end, and the group grows backwards through producers no other group ends at;
- nodes onnxruntime inserted (layout reorders) map to nothing: 0 MACs, their own row.
A group's bytes moved are what crosses its boundary (inputs and weights read, outputs written),
so a fusion's saved round trip through memory shows; an inserted node's tensors whose size the
exported graph does not know are taken to be as large as its known one (a reorder copies).

Kernel times come from onnxruntime's profiler (JSON trace); the first `warmup` runs are dropped
and each node's time is the median over the remaining runs. Readable layer names come from the
exporter's name scopes (`conv_pw`, `conv_dw`, `conv_pwl`, `add`).
"""

from __future__ import annotations

import ast
import json
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import onnx

from mnv2prof.count.counting import count_graph
from mnv2prof.measure.latency import OrtRunner
from mnv2prof.onnx.graph import GraphInfo, load_graph, load_model, with_input_shapes

_ORT_SUFFIXES = ("_nchwc",)  # onnxruntime's NCHWc transformer appends this to a node's name
_ORT_PREFIXES = ("fused ",)  # ... and the Conv + activation fusion prepends this


@dataclass(frozen=True)
class LayerRow:
    node: str  # onnxruntime's node name
    op_type: str
    layer: str  # readable name from the exporter's scopes; "(inserted)" for onnxruntime's own
    exported: tuple[str, ...]  # the exported nodes this node computes
    macs: int
    bytes_moved: int
    kernel_ms: float  # median over the timed runs

    def row(self, total_ms: float, total_macs: int) -> dict[str, object]:
        time_share = self.kernel_ms / total_ms if total_ms else 0.0
        macs_share = self.macs / total_macs if total_macs else 0.0
        return {
            "node": self.node,
            "op_type": self.op_type,
            "layer": self.layer,
            "exported_nodes": " ".join(self.exported),
            "macs": self.macs,
            "bytes_moved": self.bytes_moved,
            "arith_intensity_flop_per_byte": round(
                2 * self.macs / self.bytes_moved if self.bytes_moved else 0.0, 4
            ),
            "kernel_ms": round(self.kernel_ms, 6),
            "time_share_frac": round(time_share, 6),
            "macs_share_frac": round(macs_share, 6),
        }


def layer_name(node: onnx.NodeProto) -> str:
    """The block attribute a node came from (`conv_dw`), or its op's name (`add`) at top level."""
    props = {p.key: p.value for p in node.metadata_props}
    if "pkg.torch.onnx.name_scopes" in props:
        scopes = [str(s) for s in ast.literal_eval(props["pkg.torch.onnx.name_scopes"])]
    elif "namespace" in props:  # ": Block/conv_pw: ConvBnAct/conv_pw.bn: BatchNorm2d/op: aten..."
        scopes = [part.split(":")[0].strip() for part in props["namespace"].split("/")]
    else:
        return node.name
    return scopes[1] if len(scopes) > 2 else scopes[-1]


MAX_RUNS = 10_000  # profiled runs at most: past it a --runs is a typo (2**31 ran until killed)


def time_layers(
    model_path: Path,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 10,
    seed: int = 0,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> list[LayerRow]:
    """Run `model_path` `warmup + runs` times under onnxruntime's profiler; one row per node run.

    `input_shapes` gives dims to inputs the file leaves symbolic. onnxruntime's trace and its
    optimised graph refer to nodes by name, so nodes without a unique name (old exporters) are
    named (`Conv_3`) in the copy that is counted and run.
    """
    model = load_model(model_path)
    if input_shapes:
        model = with_input_shapes(model, input_shapes)
    name_nodes(model)
    graph = load_graph(model)
    with tempfile.TemporaryDirectory(prefix="mnv2prof-layers-") as tmp:
        optimized_path = Path(tmp) / "optimized.onnx"
        runner = OrtRunner(
            model.SerializeToString(),
            threads,
            seed,
            input_shapes=dict(input_shapes) if input_shapes else None,
            profile_prefix=str(Path(tmp) / "trace"),
            optimized_model_path=optimized_path,
        )
        for _ in range(warmup + runs):
            runner()
        trace = json.loads(Path(runner.session.end_profiling()).read_text())
        optimized = load_model(optimized_path)
    # OrtRunner's set-up run is the first model_run: drop it with the warm-up runs.
    kernel_ms = _kernel_times(trace, skip=warmup + 1)
    return _rows(graph, list(optimized.graph.node), kernel_ms)


def name_nodes(model: onnx.ModelProto) -> bool:
    """Give every unnamed or duplicate-named node a unique name (`Conv_3`); True if any changed."""
    seen: set[str] = set()
    changed = False
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
            changed = True
        seen.add(node.name)
    return changed


def _kernel_times(trace: list[dict], skip: int) -> dict[str, float]:
    """Node name -> median kernel time (ms) over the model runs after the first `skip`."""
    runs = sorted(
        (e["ts"], e["ts"] + e["dur"])
        for e in trace
        if e.get("cat") == "Session" and e.get("name") == "model_run"
    )[skip:]
    per_run: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(runs))
    for e in trace:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        for i, (start, end) in enumerate(runs):
            if start <= e["ts"] <= end:
                per_run[e["name"].removesuffix("_kernel_time")][i] += e["dur"] / 1000.0
                break
    return {name: statistics.median(times) for name, times in per_run.items() if runs}


def _rows(
    graph: GraphInfo, optimized: list[onnx.NodeProto], kernel_ms: dict[str, float]
) -> list[LayerRow]:
    exported = {n.name: n for n in graph.nodes}
    producer = {out: n.name for n in graph.nodes for out in n.output if out}
    costs = {c.name: c for c in count_graph(graph).nodes}

    ends: dict[str, str] = {}  # optimized node -> the exported node its group ends at
    for node in optimized:
        if (end := _match(node, exported, producer)) is not None and end not in ends.values():
            ends[node.name] = end
    claimed = set(ends.values())
    groups: dict[str, list[str]] = {}
    for name, end in ends.items():
        group, frontier = [end], [end]
        while frontier:
            for tensor in exported[frontier.pop()].input:
                source = producer.get(tensor)
                if source in costs and source not in claimed:
                    claimed.add(source)
                    group.append(source)
                    frontier.append(source)
        groups[name] = [n.name for n in graph.nodes if n.name in group]  # execution order

    rows = []
    for node in optimized:
        members = groups.get(node.name, [])
        if members:
            layers = dict.fromkeys(layer_name(exported[m]) for m in members)
            layer, moved = "+".join(layers), boundary_bytes(graph, members)
        else:
            layer, moved = "(inserted)", _inserted_bytes(graph, node)
        rows.append(
            LayerRow(
                node=node.name,
                op_type=node.op_type,
                layer=layer,
                exported=tuple(members),
                macs=sum(costs[m].macs for m in members if m in costs),
                bytes_moved=moved,
                kernel_ms=kernel_ms.get(node.name, 0.0),
            )
        )
    return rows


def _match(node: onnx.NodeProto, exported: dict, producer: dict[str, str]) -> str | None:
    name = node.name
    for prefix in _ORT_PREFIXES:
        name = name.removeprefix(prefix)
    for suffix in _ORT_SUFFIXES:
        name = name.removesuffix(suffix)
    if name in exported:
        return name
    return producer.get(name)


def boundary_bytes(graph: GraphInfo, members: list[str]) -> int:
    nodes = [n for n in graph.nodes if n.name in set(members)]
    made = {out for n in nodes for out in n.output}
    used_outside = {t for n in graph.nodes if n.name not in set(members) for t in n.input}
    reads = {t for n in nodes for t in n.input if t and t not in made}
    writes = {t for t in made if t in used_outside or t in graph.outputs}
    return sum((graph.tensor(t).nbytes or 0) for t in reads | writes if graph.tensor(t))


def _inserted_bytes(graph: GraphInfo, node: onnx.NodeProto) -> int:
    names = [t for t in [*node.input, *node.output] if t]
    known = [graph.tensor(t).nbytes or 0 for t in names if graph.tensor(t) is not None]
    unknown = len(names) - len(known)
    return sum(known) + unknown * (max(known) if known else 0)
