"""Grouping a graph's nodes by the module that made them, nodes the exporter left unscoped
included (the Split that `x.chunk(2, dim=1)` becomes carries no metadata at all)."""

import pytest
from onnx import TensorProto, helper

from mnv2prof.errors import SpecError
from mnv2prof.onnx.graph import load_graph
from mnv2prof.onnx.scopes import NAME_SCOPES_KEY, group_by_scope


def _node(op, inputs, outputs, scopes=None, **attrs):
    node = helper.make_node(op, inputs, outputs, name=f"n_{outputs[0]}", **attrs)
    if scopes is not None:
        node.metadata_props.add(key=NAME_SCOPES_KEY, value=repr(["", *scopes]))
    return node


def _graph(split_readers):
    """x -> Relu (stem) -> Split (no scopes) -> its halves read by `split_readers` -> Concat
    (body) -> ReduceMean (the top-level forward: scoped, but by no part)."""
    nodes = [
        _node("Relu", ["x"], ["a"], ["stem"]),
        _node("Split", ["a"], ["h0", "h1"], num_outputs=2, axis=1),
        _node("Relu", ["h0"], ["r0"], split_readers[0]),
        _node("Relu", ["h1"], ["r1"], split_readers[1]),
        _node("Concat", ["r0", "r1"], ["c"], ["body"], axis=1),
        _node("ReduceMean", ["c"], ["y"], ["mean"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return load_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def _ops(grouped):
    return {key: [n.op_type for n in nodes] for key, nodes in grouped.items()}


def test_an_unscoped_node_joins_the_part_that_reads_it():
    grouped = group_by_scope(_graph([["body"], ["body"]]), ["stem", "body"], rest="rest")
    assert _ops(grouped) == {"stem": ["Relu"], "body": ["Split", "Relu", "Relu", "Concat"],
                             "rest": ["ReduceMean"]}


def test_an_unscoped_node_read_by_two_parts_joins_the_part_that_made_its_input():
    grouped = group_by_scope(_graph([["body"], ["stem"]]), ["stem", "body"], rest="rest")
    assert _ops(grouped)["stem"] == ["Relu", "Split", "Relu"]


def test_a_node_scoped_by_no_part_still_needs_a_rest():
    with pytest.raises(SpecError, match=r"n_y \(ReduceMean\) carries no part's name scope"):
        group_by_scope(_graph([["body"], ["body"]]), ["stem", "body"])
