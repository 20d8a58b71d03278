"""Block variants as torch modules (after timm's `_efficientnet_blocks.py`).

Each stage is a named attribute with a one-line comment, optional parts are `nn.Identity()`,
`has_skip` is decided once in `__init__`, and `forward` is flat. The names become the ONNX
exporter's name scopes, so per-layer rows can say `conv_dw` rather than `node_Conv_21`.

Every block, built in or the user's, is called the same way (`block_factory`): with the keywords
of `BlockSpec.keywords()` (`in_chs`, `out_chs`, `mid_chs`, `exp_ratio`, `kernel_size`, `stride`,
and `chunks` for mbv2-streamed), each class taking those its signature names. The inner width
`mid_chs` is computed once, by the spec (`BlockSpec.mid_chs`); no class derives it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import nn

from mnv2prof.models import plugins
from mnv2prof.models.variants import BlockSpec


def _act(kind: str | None) -> nn.Module:
    if kind is None:
        return nn.Identity()
    return {"relu6": nn.ReLU6, "relu": nn.ReLU}[kind]()


class ConvBnAct(nn.Module):
    """k x k conv (no bias), BatchNorm, activation (`act=None`: linear)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: str | None = "relu6",
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = _act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class PlainConv(nn.Module):
    """One standard k x k conv C -> C."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.conv = ConvBnAct(in_chs, out_chs, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block: depthwise k x k, then pointwise 1x1."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        c = in_chs
        self.conv_dw = ConvBnAct(c, c, kernel_size, stride, groups=c)  # depthwise
        self.conv_pw = ConvBnAct(c, out_chs, 1)  # point-wise channel mixing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pw(self.conv_dw(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck (paper section 3.3, Table 1), with the Fig. 6 ablations as flags.

    `linear=False` puts ReLU6 after the projection (Fig. 6a); `noskip=True` drops the residual
    (Fig. 6b). With exp_ratio 1 (mid_chs = in_chs) there is no expansion conv, as in the paper's
    first bottleneck.
    """

    def __init__(self, in_chs: int, out_chs: int, mid_chs: int, kernel_size: int, stride: int,
                 linear: bool = True, noskip: bool = False) -> None:
        super().__init__()
        self.has_skip = not noskip and stride == 1 and in_chs == out_chs
        self.conv_pw = (  # point-wise expansion
            ConvBnAct(in_chs, mid_chs, 1) if mid_chs != in_chs else nn.Identity()
        )
        self.conv_dw = ConvBnAct(  # depthwise spatial filter
            mid_chs, mid_chs, kernel_size, stride, groups=mid_chs
        )
        self.conv_pwl = ConvBnAct(  # point-wise linear projection
            mid_chs, out_chs, 1, act=None if linear else "relu6"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pw(x)
        x = self.conv_dw(x)
        x = self.conv_pwl(x)
        if self.has_skip:
            x = x + shortcut
        return x


class StreamedInvertedResidual(nn.Module):
    """mbv2 under the paper's memory-efficient schedule (section 5.1), for real.

    The expanded tensor is computed in `chunks` channel groups: group i is expanded
    (`conv_pw[i]`), filtered (`conv_dw[i]`) and projected (`conv_pwl[i]`, the i-th column block
    of the projection), and the projections are summed, so only one group's inner tensors are
    alive at a time. The projection's BN is affine, so it is applied once, after the sum
    (`bn_pwl`): the block computes exactly what `InvertedResidual` computes with the same weights,
    with the same parameters and MACs, plus chunks - 1 elementwise adds.
    """

    def __init__(
        self, in_chs: int, out_chs: int, mid_chs: int, kernel_size: int, stride: int, chunks: int
    ) -> None:
        super().__init__()
        group_chs = mid_chs // chunks
        self.group_chs = group_chs  # t = 1: group i is a slice of the input itself
        self.has_skip = stride == 1 and in_chs == out_chs
        self.expands = mid_chs != in_chs
        self.conv_pw = nn.ModuleList(  # point-wise expansion, one channel group each
            ConvBnAct(in_chs, group_chs, 1) if self.expands else nn.Identity()
            for _ in range(chunks)
        )
        self.conv_dw = nn.ModuleList(  # depthwise spatial filter, one channel group each
            ConvBnAct(group_chs, group_chs, kernel_size, stride, groups=group_chs)
            for _ in range(chunks)
        )
        self.conv_pwl = nn.ModuleList(  # linear projection of one group, summed
            nn.Conv2d(group_chs, out_chs, 1, bias=False) for _ in range(chunks)
        )
        self.bn_pwl = nn.BatchNorm2d(out_chs)  # the projection's BN, once after the sum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = None
        for i, (pw, dw, pwl) in enumerate(zip(self.conv_pw, self.conv_dw, self.conv_pwl)):
            g = self.group_chs
            group = pw(x) if self.expands else x[:, i * g : (i + 1) * g]
            part = pwl(dw(group))
            out = part if out is None else out + part
        out = self.bn_pwl(out)
        if self.has_skip:
            out = out + x
        return out


class ResNetBottleneck(nn.Module):
    """Classic residual bottleneck (ResNet): wide -> narrow -> wide, full k x k in the middle.

    The narrow width `mid_chs` is the spec's (`BlockSpec.mid_chs`: C / reduction, rounded to a
    multiple of 8, at least 8). With stride 2 the shortcut is a 1x1 stride-2 projection (ResNet's
    option B), so the residual always exists.
    """

    def __init__(
        self, in_chs: int, out_chs: int, mid_chs: int, kernel_size: int, stride: int
    ) -> None:
        super().__init__()
        self.conv_reduce = ConvBnAct(in_chs, mid_chs, 1)  # point-wise reduction
        self.conv_kxk = ConvBnAct(mid_chs, mid_chs, kernel_size, stride)  # full conv
        self.conv_expand = ConvBnAct(mid_chs, out_chs, 1, act=None)  # linear expansion
        needs_projection = stride != 1 or in_chs != out_chs
        self.shortcut = (  # projection shortcut when the shape changes
            ConvBnAct(in_chs, out_chs, 1, stride, act=None)
            if needs_projection
            else nn.Identity()
        )
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.conv_reduce(x)
        x = self.conv_kxk(x)
        x = self.conv_expand(x)
        return self.act(x + shortcut)


class FusedMBConv(nn.Module):
    """EfficientNetV2's Fused-MBConv: one full k x k conv C -> t*C, then a linear 1x1 projection."""

    def __init__(
        self, in_chs: int, out_chs: int, mid_chs: int, kernel_size: int, stride: int
    ) -> None:
        super().__init__()
        self.has_skip = stride == 1 and in_chs == out_chs
        self.conv_exp = ConvBnAct(in_chs, mid_chs, kernel_size, stride)  # fused
        self.conv_pwl = ConvBnAct(mid_chs, out_chs, 1, act=None)  # point-wise linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pwl(self.conv_exp(x))
        if self.has_skip:
            x = x + shortcut
        return x


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    n, c, h, w = x.shape
    x = x.view(n, groups, c // groups, h, w).transpose(1, 2)
    return x.reshape(n, c, h, w)


class ShuffleV2Unit(nn.Module):
    """ShuffleNet V2 unit (Ma et al. 2018, Fig. 3c/d), ReLU as in the paper.

    Stride 1: split channels in half, one half goes 1x1-BN-ReLU, depthwise k x k-BN,
    1x1-BN-ReLU; concat with the untouched half; channel shuffle with 2 groups.
    Stride 2 (the downsampling unit): both branches see the whole input, each gives out_chs / 2.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        branch_chs = out_chs // 2
        in_right = in_chs // 2 if stride == 1 else in_chs
        k = kernel_size
        if stride == 2:
            self.branch_left = nn.Sequential(
                ConvBnAct(in_chs, in_chs, k, 2, groups=in_chs, act=None),
                ConvBnAct(in_chs, branch_chs, 1, act="relu"),
            )
        else:
            self.branch_left = nn.Identity()
        self.conv_pw = ConvBnAct(in_right, branch_chs, 1, act="relu")  # point-wise
        self.conv_dw = ConvBnAct(  # depthwise, linear
            branch_chs, branch_chs, k, stride, groups=branch_chs, act=None
        )
        self.conv_pwl = ConvBnAct(branch_chs, branch_chs, 1, act="relu")  # point-wise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
        else:
            left, right = self.branch_left(x), x
        right = self.conv_pwl(self.conv_dw(self.conv_pw(right)))
        return channel_shuffle(torch.cat((left, right), dim=1), 2)


# Each takes the keywords of `BlockSpec.keywords()` its signature names, as a user's NAME does.
BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "conv": PlainConv,
    "dwsep": DepthwiseSeparable,
    "mbv2": InvertedResidual,
    "mbv2-nonlinear": functools.partial(InvertedResidual, linear=False),
    "mbv2-noskip": functools.partial(InvertedResidual, noskip=True),
    "mbv2-streamed": StreamedInvertedResidual,
    "resnet": ResNetBottleneck,
    "fused": FusedMBConv,
    "shufflev2": ShuffleV2Unit,
}


def randomize_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Give every BN non-trivial running stats and affine parameters.

    Fresh BNs are identities in eval mode, which would let an exporter that drops or mis-folds
    them pass the parity check; random stats make the check mean something.
    """
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            c = bn.num_features
            with torch.no_grad():
                bn.running_mean.copy_(torch.rand(c, generator=generator) * 0.2 - 0.1)
                bn.running_var.copy_(torch.rand(c, generator=generator) * 0.5 + 0.75)
                bn.weight.copy_(torch.rand(c, generator=generator) * 0.5 + 0.75)
                bn.bias.copy_(torch.rand(c, generator=generator) * 0.2 - 0.1)


def seeded(factory: Callable[[], nn.Module], seed: int = 0, randomize_bn: bool = True) -> nn.Module:
    """`factory()` in eval mode, its weights depending only on what it builds and `seed`: the
    one recipe for blocks, networks, probes and the user's models (torch's global RNG is left as
    it was). `randomize_bn`: give BNs random statistics (a user's model keeps its own)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = factory()
    if randomize_bn:
        randomize_batchnorm(module, generator)
    return module.eval()


def block_factory(spec: BlockSpec) -> Callable[[], nn.Module]:
    """What builds the module of `spec`: a built-in's class or the user's NAME, called alike
    with `spec.keywords()`, only those its signature accepts (plugins.accepted_keywords); the
    user's is also checked to return an `nn.Module` (plugins.call_factory)."""
    values = spec.keywords()
    if spec.builtin:
        build = BUILDERS[spec.variant]
        return lambda: build(**plugins.accepted_keywords(build, values))
    origin = plugins.checked_origin(spec)
    return lambda: plugins.call_factory(origin, values)


def build_block(spec: BlockSpec, seed: int = 0) -> nn.Module:
    """The eval-mode module for `spec`, with weights that depend only on (spec, seed); a user's
    block is also checked to run on the spec's input (a `PluginError` naming the shape)."""
    module = seeded(block_factory(spec), seed)
    if not spec.builtin:
        plugins.check_forward(module, spec.input_shape, spec.variant, spec.source)
    return module


def count_params(module: nn.Module) -> int:
    """Every learnable tensor: conv weights, BN scale and shift (running stats are buffers)."""
    return sum(p.numel() for p in module.parameters())
