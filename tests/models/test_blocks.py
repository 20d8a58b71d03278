import pytest
import torch

from mnv2prof.models.blocks import BUILDERS, InvertedResidual, build_block, count_params, seeded
from mnv2prof.models.plugins import accepted_keywords
from mnv2prof.models.variants import VARIANTS, BlockSpec
from tests.closed_forms import params as closed_params

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


def _copy_dense_into_streamed(dense, streamed, chunks):
    """Slice mbv2's weights into mbv2-streamed's channel groups (same maths, another schedule)."""
    g = dense.conv_dw.conv.weight.shape[0] // chunks
    with torch.no_grad():
        for i in range(chunks):
            part = slice(i * g, (i + 1) * g)
            if not isinstance(dense.conv_pw, torch.nn.Identity):  # t = 1: no expansion
                _copy_cba(dense.conv_pw, streamed.conv_pw[i], part)
            _copy_cba(dense.conv_dw, streamed.conv_dw[i], part)
            streamed.conv_pwl[i].weight.copy_(dense.conv_pwl.conv.weight[:, part])
        streamed.bn_pwl.load_state_dict(dense.conv_pwl.bn.state_dict())


def _copy_cba(src, dst, part):
    dst.conv.weight.copy_(src.conv.weight[part])
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst.bn, name).copy_(getattr(src.bn, name)[part])


@pytest.mark.parametrize(
    "c, r, t, s, chunks", [(32, 14, 6, 1, 1), (32, 14, 6, 1, 2), (32, 14, 6, 1, 6),
                           (16, 14, 6, 2, 3), (16, 9, 1, 1, 4), (8, 8, 6, 1, 48)],
)  # fmt: skip
def test_streamed_equals_mbv2_with_the_same_weights(c, r, t, s, chunks):
    dense = build_block(BlockSpec("mbv2", c, resolution=r, exp_ratio=t, stride=s), seed=5)
    spec = BlockSpec("mbv2-streamed", c, resolution=r, exp_ratio=t, stride=s, chunks=chunks)
    streamed = build_block(spec, seed=5)
    assert count_params(streamed) == count_params(dense)
    _copy_dense_into_streamed(dense, streamed, chunks)
    x = torch.randn(spec.input_shape, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, actual = dense(x), streamed(x)
    assert streamed.has_skip == dense.has_skip
    assert torch.allclose(actual, expected, atol=1e-5, rtol=0), (actual - expected).abs().max()


def test_streamed_named_groups():
    block = build_block(BlockSpec("mbv2-streamed", 8, resolution=8, chunks=3))
    names = [name for name, _ in block.named_children()]
    assert names == ["conv_pw", "conv_dw", "conv_pwl", "bn_pwl"]
    assert len(block.conv_pw) == len(block.conv_dw) == len(block.conv_pwl) == 3
    assert block.conv_dw[0].conv.weight.shape == (16, 1, 3, 3)  # 48 / 3 channels per group


@pytest.mark.parametrize(
    "variant, taken",
    [
        ("conv", {"in_chs", "out_chs", "kernel_size", "stride"}),
        ("dwsep", {"in_chs", "out_chs", "kernel_size", "stride"}),
        ("shufflev2", {"in_chs", "out_chs", "kernel_size", "stride"}),
        ("mbv2", {"in_chs", "out_chs", "mid_chs", "kernel_size", "stride"}),
        ("mbv2-nonlinear", {"in_chs", "out_chs", "mid_chs", "kernel_size", "stride"}),
        ("mbv2-noskip", {"in_chs", "out_chs", "mid_chs", "kernel_size", "stride"}),
        ("resnet", {"in_chs", "out_chs", "mid_chs", "kernel_size", "stride"}),
        ("fused", {"in_chs", "out_chs", "mid_chs", "kernel_size", "stride"}),
        ("mbv2-streamed", {"in_chs", "out_chs", "mid_chs", "kernel_size", "stride", "chunks"}),
    ],
)
def test_a_built_in_takes_the_keywords_a_users_block_is_given(variant, taken):
    spec = BlockSpec(variant)
    assert set(accepted_keywords(BUILDERS[variant], spec.keywords())) == taken


def test_a_built_in_called_by_hand_with_the_keywords_is_the_built_block():
    spec = BlockSpec("mbv2", 16, 24, resolution=8, exp_ratio=4, kernel_size=5, stride=2)
    by_hand = seeded(lambda: InvertedResidual(in_chs=16, out_chs=24, mid_chs=64, kernel_size=5,
                                              stride=2), seed=2)
    built = build_block(spec, seed=2)
    assert built.state_dict().keys() == by_hand.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(),
                                                  by_hand.state_dict().values()))


@pytest.mark.parametrize("c, t, reduction", [(64, 6, 2), (64, 1, 4), (48, 6, 3), (32, 2, 8)])
def test_resnets_width_follows_its_reduction_not_t(c, t, reduction):
    spec = BlockSpec("resnet", c, resolution=8, exp_ratio=t, reduction=reduction)
    block = build_block(spec)
    # tests/closed_forms writes resnet's inner width from the paper with t as the divisor
    assert count_params(block) == closed_params("resnet", c, reduction, 3, 1)
    assert block.conv_reduce.conv.out_channels == spec.mid_chs
    assert count_params(build_block(spec.with_(exp_ratio=t + 1))) == count_params(block)
