"""The one path from an ONNX graph to its counted cost, for every source: a block, a network,
a probe, or a file mnv2prof did not write.

**Parameters, one rule** (PAPER.md: every learnable tensor, BN scale and shift included): the
learnable scalars of the model as it was defined. For a file mnv2prof exported, that is the
torch module's parameter count, which the export writes into the file's metadata
(`onnx.export.PARAMS_KEY`): the exporter folds BN into the conv, so the graph itself no longer
holds BN's scale (a mobilenetv2 block has 14,848 parameters, its graph 14,432 weights and
biases). For any other file the graph is all there is: the floating-point weights its computing
nodes read (`counting.count_params`); a BN its exporter folded is then counted as folded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mnv2prof.count.counting import GraphCost, count_graph, count_params
from mnv2prof.count.memory import MemoryPeak, peak_activation_memory
from mnv2prof.onnx.export import PARAMS_BY_PART_KEY, PARAMS_KEY
from mnv2prof.onnx.graph import GraphInfo, load_graph


@dataclass(frozen=True)
class CountedCost:
    """What is counted from the graph (indirect cost, and static memory)."""

    params: int
    macs: int
    elementwise_ops: int
    peak_act_bytes: int
    weight_bytes: int
    bytes_moved: int
    unhandled_ops: str  # "Op xN, ..." of nodes no handler counted; "" when none
    nodes: int = 0  # graph nodes that compute (counting.GraphCost.nodes): a per-kernel cost term

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def arithmetic_intensity(self) -> float:
        return self.flops / self.bytes_moved if self.bytes_moved else 0.0

    @classmethod
    def from_graph(cls, params: int, cost: GraphCost, peak: MemoryPeak) -> CountedCost:
        return cls(
            params=params,
            macs=cost.macs,
            elementwise_ops=cost.elementwise_ops,
            peak_act_bytes=peak.peak_bytes,
            weight_bytes=cost.weight_bytes,
            bytes_moved=cost.bytes_moved,
            unhandled_ops=cost.unhandled_summary(),
            nodes=len(cost.nodes),
        )


def _metadata(graph: GraphInfo) -> dict[str, str]:
    return {prop.key: prop.value for prop in graph.model.metadata_props}


def graph_params(graph: GraphInfo) -> int:
    """The model's learnable scalars, by the rule in the module docstring."""
    recorded = _metadata(graph).get(PARAMS_KEY)
    return int(recorded) if recorded is not None else count_params(graph)


def params_by_part(graph: GraphInfo) -> dict[str, int]:
    """{module path: learnable scalars} of the parts the export recorded (a network's stages)."""
    recorded = _metadata(graph).get(PARAMS_BY_PART_KEY)
    return {str(k): int(v) for k, v in json.loads(recorded).items()} if recorded else {}


def count_graph_cost(
    graph: GraphInfo, cost: GraphCost | None = None, peak: MemoryPeak | None = None
) -> CountedCost:
    """Params, MACs, elementwise ops, bytes and the liveness peak of `graph` (`cost`, `peak`:
    its `count_graph` and `peak_activation_memory`, when the caller has them already)."""
    cost = cost if cost is not None else count_graph(graph)
    peak = peak if peak is not None else peak_activation_memory(graph)
    return CountedCost.from_graph(graph_params(graph), cost, peak)


def count_model(
    path: Path, input_shapes: Mapping[str, tuple[int, ...]] | None = None
) -> CountedCost:
    """`count_graph_cost` of the ONNX file at `path`."""
    return count_graph_cost(load_graph(path, input_shapes))
