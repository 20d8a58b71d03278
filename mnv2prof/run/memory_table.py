"""The MobileNetV2 paper's Table 3 (section 5.1), measured on the exported networks.

For each spatial size, the largest set of activations that must be alive at once, under two
schedules, both read off real ONNX graphs with `memory.peak_activation_memory`:

- *naive*: the network as exported (`mobilenetv2`): every bottleneck's expanded t*d' tensor is
  materialised whole.
- *memory-efficient*: the same network with every bottleneck built as `mbv2-streamed` with t
  chunks (`NetworkSpec(streamed=True)`): the inner tensor is computed in t pieces whose
  projections are summed, so only one piece is alive at a time (paper 5.1). MobileNetV1 has no
  inner tensor to split; both columns are its one graph.

An op belongs to the spatial size it *reads* (its first activation input), so a stride-2 op
sits with the larger size; the set alive at a size is the liveness peak of that size's ops,
their inputs alive from the start and their outputs to the end. Bytes are for `--act-dtype`
activations (the paper's table uses 16-bit); the graphs are exported in fp32 and scaled.
`max_chs` is the widest single tensor of that size the ops read or write, the paper's column.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mnv2prof.count.memory import peak_activation_memory
from mnv2prof.errors import UsageError
from mnv2prof.models.networks import NetworkSpec
from mnv2prof.onnx.graph import GraphInfo, load_graph
from mnv2prof.onnx.scopes import subgraph
from mnv2prof.run.network import export_network

ACT_DTYPES = {"fp16": 2, "fp32": 4}
KB = 1000  # the paper's Kb: 64 x 112 x 112 x 2 bytes = 1,605,632 B is its "1600"

# Paper Table 3: size -> (max channels, memory in Kb) for MobileNetV1, MobileNetV2.
PAPER_TABLE3: dict[str, dict[int, tuple[int, int]]] = {
    "mobilenetv1": {112: (64, 1600), 56: (128, 800), 28: (256, 400), 14: (512, 200),
                    7: (1024, 199), 1: (1024, 2)},
    "mobilenetv2": {112: (16, 400), 56: (32, 200), 28: (64, 100), 14: (160, 62),
                    7: (320, 32), 1: (1280, 2)},
}  # fmt: skip
PAPER_MAX_KB = {"mobilenetv1": 1600, "mobilenetv2": 400}


@dataclass(frozen=True)
class SizePeak:
    side: int  # spatial side of the tensors the ops read (1: the pooled vector)
    max_chs: int  # widest single activation of this side read or written
    peak_set_bytes: int  # liveness peak of this side's ops, at the chosen activation dtype


def act_itemsize(act_dtype: str) -> int:
    if act_dtype not in ACT_DTYPES:
        raise UsageError(f"--act-dtype must be one of {', '.join(ACT_DTYPES)}, got {act_dtype!r}")
    return ACT_DTYPES[act_dtype]


def _side(shape: tuple[int, ...] | None) -> int | None:
    if shape is None:
        return None
    return shape[2] if len(shape) == 4 else 1


def size_peaks(graph: GraphInfo, itemsize: int) -> dict[int, SizePeak]:
    """Per spatial side: widest tensor and liveness peak of the ops that read that side."""
    groups: dict[int, list] = {}
    for node in graph.nodes:
        acts = [t for t in graph.node_inputs(node) if not t.static and t.shape is not None]
        if not acts:
            continue  # weight folding material
        groups.setdefault(_side(acts[0].shape), []).append(node)
    peaks = {}
    for side, nodes in groups.items():
        touched = [
            t
            for node in nodes
            for t in (*graph.node_inputs(node), *graph.node_outputs(node))
            if not t.static and _side(t.shape) == side
        ]
        max_chs = max(t.shape[1] for t in touched)
        peak = peak_activation_memory(subgraph(graph, nodes))
        scaled = peak.peak_bytes * itemsize // 4  # exported activations are fp32
        peaks[side] = SizePeak(side, max_chs, scaled)
    return dict(sorted(peaks.items(), reverse=True))


def memory_frame(
    arch: str, act_dtype: str = "fp16", resolution: int = 224, width: float = 1.0, seed: int = 0
) -> pd.DataFrame:
    """One row per spatial side: naive and memory-efficient columns beside the paper's."""
    itemsize = act_itemsize(act_dtype)
    naive_spec = NetworkSpec(arch, width, resolution)
    naive = size_peaks(load_graph(export_network(naive_spec, seed).path), itemsize)
    efficient = naive
    if arch == "mobilenetv2":
        streamed = NetworkSpec(arch, width, resolution, streamed=True)
        efficient = size_peaks(load_graph(export_network(streamed, seed).path), itemsize)
    paper = PAPER_TABLE3.get(arch, {}) if (resolution, width) == (224, 1.0) else {}
    rows = []
    for side, n in naive.items():
        e = efficient[side]
        p_chs, p_kb = paper.get(side, (None, None))
        rows.append(
            {
                "network": arch,
                "side_px": side,
                "naive_max_chs": n.max_chs,
                "naive_max_tensor_kb": round(n.max_chs * side * side * itemsize / KB, 1),
                "naive_peak_set_kb": round(n.peak_set_bytes / KB, 1),
                "efficient_max_chs": e.max_chs,
                "efficient_max_tensor_kb": round(e.max_chs * side * side * itemsize / KB, 1),
                "efficient_peak_set_kb": round(e.peak_set_bytes / KB, 1),
                "paper_max_chs": p_chs,
                "paper_kb": p_kb,
                "act_dtype": act_dtype,
            }
        )
    return pd.DataFrame(rows)
