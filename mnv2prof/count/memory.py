"""Peak activation memory of a graph under its own execution order (MobileNetV2 paper, 5.1).

The paper defines a graph's memory as the maximum, over a schedule, of the total size of the
tensors that must be alive. Here the schedule is the ONNX node order. A tensor is alive from the
step of the node that makes it (graph inputs from the start) through the step of its last
consumer (graph outputs to the end); while a node runs, its inputs and outputs are all alive.
Weights (static tensors) are excluded: `GraphCost.weight_bytes` reports them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnv2prof.onnx.graph import GraphInfo


@dataclass(frozen=True)
class MemoryPeak:
    peak_bytes: int
    peak_step: int  # index into GraphInfo.nodes; -1 when the graph has no nodes
    peak_tensors: tuple[str, ...]  # the tensors alive at the peak, largest first
    unknown_tensors: tuple[str, ...]  # activations whose size shape inference could not give


def peak_activation_memory(graph: GraphInfo) -> MemoryPeak:
    n = len(graph.nodes)
    last = n - 1
    born: dict[str, int] = {name: 0 for name in graph.inputs}
    dies: dict[str, int] = {name: 0 for name in graph.inputs}
    for step, node in enumerate(graph.nodes):
        for name in node.input:
            if name in born:
                dies[name] = max(dies[name], step)
        for name in node.output:
            info = graph.tensor(name)
            if name and info is not None and not info.static:
                born[name] = step
                dies[name] = max(dies.get(name, step), step)
    for name in graph.outputs:
        if name in born:
            dies[name] = max(last, 0)

    sizes = {name: graph.tensors[name].nbytes for name in born}
    unknown = tuple(sorted(name for name, size in sizes.items() if size is None))
    # Sweep line: +size at birth, -size after death.
    delta = [0] * (n + 2)
    for name, size in sizes.items():
        if size:
            delta[born[name]] += size
            delta[dies[name] + 1] -= size
    peak, peak_step, live = 0, -1, 0
    for step in range(max(n, 1)):
        live += delta[step]
        if live > peak:
            peak, peak_step = live, step
    alive = sorted(
        (name for name in born if sizes[name] and born[name] <= peak_step <= dies[name]),
        key=lambda name: -(sizes[name] or 0),
    )
    return MemoryPeak(peak, peak_step if n else -1, tuple(alive), unknown)
