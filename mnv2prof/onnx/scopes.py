"""Parts of an exported graph, by the torch module that made each node.

torch's ONNX exporter records each node's module path in its metadata
(`pkg.torch.onnx.name_scopes`), so a network's graph can be split into the rows of a paper's
table (`features.3`, `pool`, ...) after export: counted per part, or cut out as a model of its
own and timed (`extract_part`).
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Collection
from pathlib import Path

import onnx

from mnv2prof.errors import SpecError
from mnv2prof.onnx.atomic import atomic_target
from mnv2prof.onnx.graph import GraphInfo

NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def node_scope(node: onnx.NodeProto, keys: Collection[str]) -> str | None:
    """The first of `keys` among the module paths the exporter recorded for `node`."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES_KEY:
            scopes = ast.literal_eval(prop.value)
            return next((s for s in scopes if s in keys), None)
    return None


def group_by_scope(
    graph: GraphInfo, keys: list[str], rest: str | None = None
) -> dict[str, list[onnx.NodeProto]]:
    """Nodes of each of `keys`, in graph order. A computing node no key claims goes to `rest`
    (a part of its own, last, present when it has nodes: a model's forward may compute between
    its stages), or without `rest` raises `SpecError`; nodes that only fold weights (constants)
    belong to none."""
    grouped: dict[str, list[onnx.NodeProto]] = {key: [] for key in keys}
    rest_nodes: list[onnx.NodeProto] = []
    for node in graph.nodes:
        key = node_scope(node, grouped)
        outputs = [graph.tensor(n) for n in node.output]
        if key is None and all(o is not None and o.static for o in outputs):
            continue  # weight folding material (constants): no part computes it
        if key is None and rest is None:
            raise SpecError(f"node {node.name} ({node.op_type}) carries no part's name scope")
        (rest_nodes if key is None else grouped[key]).append(node)
    if rest_nodes:
        grouped[rest] = rest_nodes
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


def extract_part(model_path: Path, key: str, part: GraphInfo) -> Path:
    """`part` (a `subgraph`) cut out of the ONNX file as a model of its own, cached beside it
    and written atomically."""
    path = model_path.with_name(f"{model_path.stem}.{key}.onnx")
    if not path.exists():
        with atomic_target(path, suffix=".onnx.tmp") as tmp:
            onnx.utils.extract_model(str(model_path), str(tmp), part.inputs, part.outputs)
    return path
