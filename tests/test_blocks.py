import pytest
import torch

from closed_forms import params as closed_params
from mnv2prof.blocks import build_block, count_params
from mnv2prof.variants import VARIANTS, BlockSpec

SPECS = [  # (C, R, t, k, s, N): stride 2 and t = 1 among them
    (32, 56, 6, 3, 1, 1),
    (16, 28, 1, 5, 2, 1),
    (24, 14, 3, 3, 2, 2),
    (64, 7, 4, 7, 1, 1),
]


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("c, r, t, k, s, n", SPECS)
def test_params_and_output_shape(variant, c, r, t, k, s, n):
    spec = BlockSpec(variant, c, resolution=r, exp_ratio=t, kernel_size=k, stride=s, batch=n)
    module = build_block(spec)
    assert count_params(module) == closed_params(variant, c, t, k, s)
    with torch.inference_mode():
        y = module(torch.randn(spec.input_shape))
    ho = (r - 1) // s + 1
    assert tuple(y.shape) == (n, c, ho, ho)


def test_mbv2_named_layers_and_skip():
    block = build_block(BlockSpec("mbv2"))
    assert [name for name, _ in block.named_children()] == ["conv_pw", "conv_dw", "conv_pwl"]
    assert block.has_skip
    assert not build_block(BlockSpec("mbv2", stride=2)).has_skip
    assert not build_block(BlockSpec("mbv2-noskip")).has_skip
    assert isinstance(build_block(BlockSpec("mbv2", exp_ratio=1)).conv_pw, torch.nn.Identity)


def test_linear_bottleneck_has_no_projection_activation():
    linear = build_block(BlockSpec("mbv2"))
    nonlinear = build_block(BlockSpec("mbv2-nonlinear"))
    assert isinstance(linear.conv_pwl.act, torch.nn.Identity)
    assert isinstance(nonlinear.conv_pwl.act, torch.nn.ReLU6)


def test_weights_depend_only_on_spec_and_seed():
    spec = BlockSpec("fused", 8, resolution=8)
    a, b = build_block(spec, seed=3), build_block(spec, seed=3)
    for (_, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb)
    c = build_block(spec, seed=4)
    assert not torch.equal(a.conv_exp.conv.weight, c.conv_exp.conv.weight)
    assert not torch.equal(a.conv_exp.bn.running_var, torch.ones_like(a.conv_exp.bn.running_var))
