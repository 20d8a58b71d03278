"""Block variants as torch modules (after timm's `_efficientnet_blocks.py`).

Each stage is a named attribute with a one-line comment, optional parts are `nn.Identity()`,
`has_skip` is decided once in `__init__`, and `forward` is flat. The names become the ONNX
exporter's name scopes, so per-layer rows can say `conv_dw` rather than `node_Conv_21`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mnv2prof.models.variants import BlockSpec, make_divisible


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

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.conv = ConvBnAct(spec.in_chs, spec.out_chs, spec.kernel_size, spec.stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class DepthwiseSeparable(nn.Module):
    """MobileNetV1 block: depthwise k x k, then pointwise 1x1."""

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        c = spec.in_chs
        self.conv_dw = ConvBnAct(c, c, spec.kernel_size, spec.stride, groups=c)  # depthwise
        self.conv_pw = ConvBnAct(c, spec.out_chs, 1)  # point-wise channel mixing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_pw(self.conv_dw(x))


class InvertedResidual(nn.Module):
    """MobileNetV2 bottleneck (paper section 3.3, Table 1), with the Fig. 6 ablations as flags.

    `linear=False` puts ReLU6 after the projection (Fig. 6a); `noskip=True` drops the residual
    (Fig. 6b). With exp_ratio 1 there is no expansion conv, as in the paper's first bottleneck.
    """

    def __init__(self, spec: BlockSpec, linear: bool = True, noskip: bool = False) -> None:
        super().__init__()
        mid_chs = spec.in_chs * spec.exp_ratio
        self.has_skip = not noskip and spec.stride == 1 and spec.in_chs == spec.out_chs
        self.conv_pw = (  # point-wise expansion
            ConvBnAct(spec.in_chs, mid_chs, 1) if spec.exp_ratio != 1 else nn.Identity()
        )
        self.conv_dw = ConvBnAct(  # depthwise spatial filter
            mid_chs, mid_chs, spec.kernel_size, spec.stride, groups=mid_chs
        )
        self.conv_pwl = ConvBnAct(  # point-wise linear projection
            mid_chs, spec.out_chs, 1, act=None if linear else "relu6"
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

    The expanded tensor is computed in `spec.chunks` channel groups: group i is expanded
    (`conv_pw[i]`), filtered (`conv_dw[i]`) and projected (`conv_pwl[i]`, the i-th column block
    of the projection), and the projections are summed, so only one group's inner tensors are
    alive at a time. The projection's BN is affine, so it is applied once, after the sum
    (`bn_pwl`): the block computes exactly what `InvertedResidual` computes with the same weights,
    with the same parameters and MACs, plus chunks - 1 elementwise adds.
    """

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        group_chs = spec.mid_chs // spec.chunks
        self.group_chs = group_chs  # t = 1: group i is a slice of the input itself
        self.has_skip = spec.stride == 1 and spec.in_chs == spec.out_chs
        self.expands = spec.exp_ratio != 1
        self.conv_pw = nn.ModuleList(  # point-wise expansion, one channel group each
            ConvBnAct(spec.in_chs, group_chs, 1) if self.expands else nn.Identity()
            for _ in range(spec.chunks)
        )
        self.conv_dw = nn.ModuleList(  # depthwise spatial filter, one channel group each
            ConvBnAct(group_chs, group_chs, spec.kernel_size, spec.stride, groups=group_chs)
            for _ in range(spec.chunks)
        )
        self.conv_pwl = nn.ModuleList(  # linear projection of one group, summed
            nn.Conv2d(group_chs, spec.out_chs, 1, bias=False) for _ in range(spec.chunks)
        )
        self.bn_pwl = nn.BatchNorm2d(spec.out_chs)  # the projection's BN, once after the sum

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

    The narrow width is C / t rounded by `make_divisible` (at least 8). With stride 2 the shortcut
    is a 1x1 stride-2 projection (ResNet's option B), so the residual always exists.
    """

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid_chs = make_divisible(spec.in_chs / spec.exp_ratio)
        self.conv_reduce = ConvBnAct(spec.in_chs, mid_chs, 1)  # point-wise reduction
        self.conv_kxk = ConvBnAct(mid_chs, mid_chs, spec.kernel_size, spec.stride)  # full conv
        self.conv_expand = ConvBnAct(mid_chs, spec.out_chs, 1, act=None)  # linear expansion
        needs_projection = spec.stride != 1 or spec.in_chs != spec.out_chs
        self.shortcut = (  # projection shortcut when the shape changes
            ConvBnAct(spec.in_chs, spec.out_chs, 1, spec.stride, act=None)
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

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        mid_chs = spec.in_chs * spec.exp_ratio
        self.has_skip = spec.stride == 1 and spec.in_chs == spec.out_chs
        self.conv_exp = ConvBnAct(spec.in_chs, mid_chs, spec.kernel_size, spec.stride)  # fused
        self.conv_pwl = ConvBnAct(mid_chs, spec.out_chs, 1, act=None)  # point-wise linear

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

    def __init__(self, spec: BlockSpec) -> None:
        super().__init__()
        self.stride = spec.stride
        branch_chs = spec.out_chs // 2
        in_right = spec.in_chs // 2 if spec.stride == 1 else spec.in_chs
        k = spec.kernel_size
        if spec.stride == 2:
            self.branch_left = nn.Sequential(
                ConvBnAct(spec.in_chs, spec.in_chs, k, 2, groups=spec.in_chs, act=None),
                ConvBnAct(spec.in_chs, branch_chs, 1, act="relu"),
            )
        else:
            self.branch_left = nn.Identity()
        self.conv_pw = ConvBnAct(in_right, branch_chs, 1, act="relu")  # point-wise
        self.conv_dw = ConvBnAct(  # depthwise, linear
            branch_chs, branch_chs, k, spec.stride, groups=branch_chs, act=None
        )
        self.conv_pwl = ConvBnAct(branch_chs, branch_chs, 1, act="relu")  # point-wise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            left, right = x.chunk(2, dim=1)
        else:
            left, right = self.branch_left(x), x
        right = self.conv_pwl(self.conv_dw(self.conv_pw(right)))
        return channel_shuffle(torch.cat((left, right), dim=1), 2)


BUILDERS: dict[str, Callable[[BlockSpec], nn.Module]] = {
    "conv": PlainConv,
    "dwsep": DepthwiseSeparable,
    "mbv2": InvertedResidual,
    "mbv2-nonlinear": lambda spec: InvertedResidual(spec, linear=False),
    "mbv2-noskip": lambda spec: InvertedResidual(spec, noskip=True),
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
    """What builds the module of `spec`: a built-in's class, or the user's NAME called with the
    spec's values (models/plugins.py: only the keywords its signature accepts)."""
    if spec.builtin:
        return lambda: BUILDERS[spec.variant](spec)
    from mnv2prof.models import plugins

    origin = plugins.checked_origin(spec)
    values = {"in_chs": spec.in_chs, "out_chs": spec.out_chs, "mid_chs": spec.mid_chs,
              "exp_ratio": spec.exp_ratio, "kernel_size": spec.kernel_size,
              "stride": spec.stride}
    return lambda: plugins.call_factory(origin, values)


def build_block(spec: BlockSpec, seed: int = 0) -> nn.Module:
    """The eval-mode module for `spec`, with weights that depend only on (spec, seed); a user's
    block is also checked to run on the spec's input (a `PluginError` naming the shape)."""
    module = seeded(block_factory(spec), seed)
    if not spec.builtin:
        from mnv2prof.models import plugins

        plugins.check_forward(module, spec.input_shape, spec.variant, spec.source)
    return module


def count_params(module: nn.Module) -> int:
    """Every learnable tensor: conv weights, BN scale and shift (running stats are buffers)."""
    return sum(p.numel() for p in module.parameters())
