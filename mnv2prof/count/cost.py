"""The one path from an ONNX graph to its counted cost, for every source: a block, a network,
a probe, or a file mnv2prof did not write.

**Parameters, one rule** (docs/conventions.md: every learnable tensor, BN scale and shift included): the
learnable scalars of the model as it was defined. For a file mnv2prof exported, that is the
torch module's parameter count, which the export writes into the file's metadata
(`artifacts.export.PARAMS_KEY`): the exporter folds BN into the conv, so the graph itself no longer
holds BN's scale (a mobilenetv2 block has 14,848 parameters, its graph 14,432 weights and
biases). For any other file the graph is all there is: the floating-point weights its computing
nodes read (`counting.count_params`); a BN its exporter folded is then counted as folded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

# `CountedCost` is all a record needs: the counting itself (and onnx, 0.6 s to import, with its
# ml_dtypes) is imported where a graph is counted, so a warm run whose counts are cached
# (`count_cached`) never imports onnx
if TYPE_CHECKING:
    from mnv2prof.count.counting import GraphCost
    from mnv2prof.count.memory import MemoryPeak
    from mnv2prof.onnx.graph import GraphInfo

from mnv2prof.artifacts.export import PARAMS_BY_PART_KEY, PARAMS_KEY  # noqa: E402 (no onnx)
from mnv2prof.errors import Mnv2profError  # noqa: E402
from mnv2prof.files.cache import SIDECAR_SUFFIX, file_sha256  # noqa: E402
from mnv2prof.files.nesting import load_json  # noqa: E402


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
    from mnv2prof.count.counting import count_params

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
    from mnv2prof.count.counting import count_graph
    from mnv2prof.count.memory import peak_activation_memory

    cost = cost if cost is not None else count_graph(graph)
    peak = peak if peak is not None else peak_activation_memory(graph)
    return CountedCost.from_graph(graph_params(graph), cost, peak)


def count_model(
    path: Path, input_shapes: Mapping[str, tuple[int, ...]] | None = None
) -> CountedCost:
    """`count_graph_cost` of the ONNX file at `path`."""
    from mnv2prof.onnx.graph import load_graph

    return count_graph_cost(load_graph(path, input_shapes))


COUNTED_SUFFIX = SIDECAR_SUFFIX  # beside a cached export: its counts, and what they belong to


@cache
def counting_fingerprint() -> str:
    """A hash of the code that counts (count/ and onnx/graph.py): a cached count made by other
    counting code is never reused, also in a checkout between releases."""
    here = Path(__file__).resolve().parent
    files = sorted(here.glob("*.py")) + [here.parent / "onnx" / "graph.py"]
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def read_counted(path: Path) -> CountedCost | None:
    """The cached count of the export at `path`: only when it was made from these very bytes
    (sha256) by this counting code; None otherwise (no entry, damaged, stale)."""
    sidecar = Path(str(path) + COUNTED_SUFFIX)
    try:
        entry = load_json(sidecar.read_text(encoding="utf-8"))
        if entry["counting"] != counting_fingerprint() or entry["sha256"] != file_sha256(path):
            return None
        return CountedCost(**entry["cost"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def count_cached(path: Path) -> CountedCost:
    """`count_model(path)`, read from its sidecar when the sidecar belongs to these bytes and this
    counting code, else counted and the sidecar written (atomically; a cache that cannot be
    written costs only the count next time)."""
    counted = read_counted(path)
    if counted is not None:
        return counted
    counted = count_model(path)
    entry = {"counting": counting_fingerprint(), "sha256": file_sha256(path),
             "cost": dataclasses.asdict(counted)}
    try:
        from mnv2prof.files.atomic import write_atomic

        write_atomic(Path(str(path) + COUNTED_SUFFIX), json.dumps(entry, indent=1) + "\n")
    except (OSError, Mnv2profError):  # a sidecar that cannot be written: counted next time
        pass
    return counted
