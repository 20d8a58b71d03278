"""Parts of an exported graph, by the torch module that made each node.

torch's ONNX exporter records each node's module path in its metadata
(`pkg.torch.onnx.name_scopes`), so a network's graph can be split into the rows of a paper's
table (`features.3`, `pool`, ...) after export: counted per part, or cut out as a model of its
own and timed (`extract_part`).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import json
from collections.abc import Collection
from pathlib import Path

import onnx

from mnv2prof.errors import SpecError
from mnv2prof.files.atomic import atomic_target
from mnv2prof.onnx.graph import GraphInfo

NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def node_scopes(node: onnx.NodeProto) -> list[str] | None:
    """The module paths the exporter recorded for `node`; None when it recorded none (a node
    that a graph rewrite made and left without metadata, such as the Split of `chunk`)."""
    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES_KEY:
            return ast.literal_eval(prop.value)
    return None


def node_scope(node: onnx.NodeProto, keys: Collection[str]) -> str | None:
    """The first of `keys` among the module paths the exporter recorded for `node`."""
    return next((s for s in node_scopes(node) or () if s in keys), None)


def group_by_scope(
    graph: GraphInfo, keys: list[str], rest: str | None = None
) -> dict[str, list[onnx.NodeProto]]:
    """Nodes of each of `keys`, in graph order. A computing node no key claims goes to `rest`
    (a part of its own, last, present when it has nodes: a model's forward may compute between
    its stages), or without `rest` raises `SpecError`; nodes that only fold weights (constants)
    belong to none. A node without any name scope (torch's exporter leaves the Split it makes
    of `x.chunk(2, dim=1)` so, in every ShuffleNet V2 unit) belongs to the part of the nodes
    that read its outputs, when they are all one part, else to the part of those that made its
    inputs, when that is one part."""
    part: dict[int, str | None] = {}
    unscoped: list[onnx.NodeProto] = []
    for node in graph.nodes:
        outputs = [graph.tensor(n) for n in node.output]
        if all(o is not None and o.static for o in outputs):
            if node_scope(node, keys) is None:
                continue  # weight folding material (constants): no part computes it
        if node_scopes(node) is None:
            unscoped.append(node)
        part[id(node)] = node_scope(node, keys)
    if unscoped:
        made_by = {name: node for node in graph.nodes for name in node.output if name}
        readers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.nodes:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        for node in reversed(unscoped):  # a reader may itself be unscoped, and come later
            after = {part.get(id(r)) for name in node.output for r in readers.get(name, ())}
            before = {part[id(made_by[name])] for name in node.input
                      if name in made_by and id(made_by[name]) in part}  # constants: no part
            for near in (after, before):
                if len(near) == 1 and None not in near:
                    part[id(node)] = near.pop()
                    break
    grouped: dict[str, list[onnx.NodeProto]] = {key: [] for key in keys}
    rest_nodes: list[onnx.NodeProto] = []
    for node in graph.nodes:
        if id(node) not in part:
            continue
        key = part[id(node)]
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
    and written atomically; the file's name holds a hash of the cut's inputs and outputs, so a
    change in how nodes are grouped never reuses a cut made at other tensors."""
    cut = hashlib.sha256(json.dumps([part.inputs, part.outputs]).encode()).hexdigest()[:8]
    path = model_path.with_name(f"{model_path.stem}.{key}-{cut}.onnx")
    if not path.exists():
        with atomic_target(path, suffix=".onnx.tmp") as tmp:
            onnx.utils.extract_model(str(model_path), str(tmp), part.inputs, part.outputs)
    return path
