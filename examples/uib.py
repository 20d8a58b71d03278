"""MobileNetV4's universal inverted bottleneck (UIB), written as a user's block file.

Qin, Leichner, Delakis, Fornoni, Luo, Yang, Wang, Banbury, Ye, Akin, Aggarwal, Zhu, Moro and
Howard, "MobileNetV4: Universal Models for the Mobile Ecosystem", ECCV 2024 (arXiv:2404.10518),
section 3.1 and Fig. 4. The UIB is the inverted bottleneck with two optional depthwise convs, one
before the expansion and one between the expansion and the projection; their four combinations
are the block's four instances:

| factory | start dw | middle dw | the paper's name |
|---|---|---|---|
| `uib_extradw` | yes | yes | Extra DW |
| `uib_ib` | no | yes | Inverted Bottleneck (MobileNetV2's) |
| `uib_convnext` | yes | no | ConvNext-like |
| `uib_ffn` | no | no | FFN (two 1x1 convs) |

Layers, named as timm's `UniversalInvertedResidual` names them, each conv followed by BN:
`dw_start` k x k depthwise (no activation), `pw_exp` 1x1 expansion to mid_chs (ReLU), `dw_mid`
k x k depthwise (ReLU), `pw_proj` 1x1 projection to out_chs (linear); a residual add when the
stride is 1 and in_chs == out_chs. The stride goes to `dw_mid` when there is one, else to
`dw_start` (as in timm); the FFN has no spatial conv to stride and refuses stride 2. One
`kernel_size` serves both depthwise convs (the paper's ExtraDW instances mix 3 and 5); mid_chs is
make_divisible(in_chs x exp_ratio), which is in_chs x exp_ratio whenever that is a multiple of 8.

Closed forms (C = in_chs, M = mid_chs, D = out_chs, k = kernel_size, s = stride, input h x w,
output h' x w' with h' = (h - 1) // s + 1; every conv has no bias and is followed by BN, which
adds 2 params per channel and no MACs; 1 MAC = 1 multiply-accumulate):

    dw_start   MACs  hs*ws*C*k^2    params C*k^2 + 2C     (hs = h' when it strides, else h)
    pw_exp     MACs  hs*ws*C*M      params C*M + 2M
    dw_mid     MACs  h'*w'*M*k^2    params M*k^2 + 2M
    pw_proj    MACs  h'*w'*M*D      params M*D + 2D

so at stride 1 `uib_ib` is MobileNetV2's `h*w*C*t*(C + k^2 + D)` MACs, `uib_extradw` adds
`h*w*C*k^2`, `uib_convnext` is `h*w*(C*k^2 + C*M + M*D)` and `uib_ffn` is `h*w*M*(C + D)`.

Use: `mnv2prof compare --variants conv,dwsep,examples/uib.py:uib_ib,examples/uib.py:uib_extradw`
(mnv2prof calls each factory with the keywords of its spec that the signature accepts).
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor`, never down by more than 10% (torchvision's
    `_make_divisible`, from the TF MobileNet reference implementation)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _conv_bn(in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups,
                  bias=False),
        nn.BatchNorm2d(out_chs),
    ]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UIB(nn.Module):
    """Universal inverted bottleneck: optional start dw, 1x1 expansion, optional middle dw, 1x1
    projection, residual when the shapes match (paper Fig. 4)."""

    def __init__(self, in_chs: int, out_chs: int, exp_ratio: float = 4, kernel_size: int = 3,
                 stride: int = 1, start_dw: bool = True, middle_dw: bool = True) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, not {stride}")
        if stride != 1 and not (start_dw or middle_dw):
            raise ValueError("the FFN instance (no depthwise conv) has nothing to stride; "
                             "use stride 1")
        mid_chs = make_divisible(in_chs * exp_ratio)
        start_stride = 1 if middle_dw else stride
        self.dw_start = (_conv_bn(in_chs, in_chs, kernel_size, start_stride, groups=in_chs,
                                  act=False)  # depthwise, before the expansion
                         if start_dw else nn.Identity())
        self.pw_exp = _conv_bn(in_chs, mid_chs, 1)  # point-wise expansion
        self.dw_mid = (_conv_bn(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs)  # depthwise
                       if middle_dw else nn.Identity())
        self.pw_proj = _conv_bn(mid_chs, out_chs, 1, act=False)  # point-wise linear projection
        self.has_skip = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.dw_start(x)
        x = self.pw_exp(x)
        x = self.dw_mid(x)
        x = self.pw_proj(x)
        if self.has_skip:
            x = x + shortcut
        return x


def uib_extradw(in_chs: int, out_chs: int, exp_ratio: float = 4, kernel_size: int = 3,
                stride: int = 1) -> UIB:
    """Extra DW: start and middle depthwise. Stride 1 MACs h*w*(C*k^2 + C*M + M*k^2 + M*D);
    params C*k^2 + 2C + C*M + 2M + M*k^2 + 2M + M*D + 2D."""
    return UIB(in_chs, out_chs, exp_ratio, kernel_size, stride, start_dw=True, middle_dw=True)


def uib_ib(in_chs: int, out_chs: int, exp_ratio: float = 4, kernel_size: int = 3,
           stride: int = 1) -> UIB:
    """Inverted Bottleneck (MobileNetV2's): middle depthwise only. MACs
    h*w*C*M + h'*w'*M*(k^2 + D); params C*M + 2M + M*k^2 + 2M + M*D + 2D."""
    return UIB(in_chs, out_chs, exp_ratio, kernel_size, stride, start_dw=False, middle_dw=True)


def uib_convnext(in_chs: int, out_chs: int, exp_ratio: float = 4, kernel_size: int = 3,
                 stride: int = 1) -> UIB:
    """ConvNext-like: start depthwise only (it takes the stride). MACs
    h'*w'*(C*k^2 + C*M + M*D); params C*k^2 + 2C + C*M + 2M + M*D + 2D."""
    return UIB(in_chs, out_chs, exp_ratio, kernel_size, stride, start_dw=True, middle_dw=False)


def uib_ffn(in_chs: int, out_chs: int, exp_ratio: float = 4, stride: int = 1) -> UIB:
    """FFN: two 1x1 convs, no depthwise (stride 2 is refused). MACs h*w*M*(C + D); params
    C*M + 2M + M*D + 2D."""
    return UIB(in_chs, out_chs, exp_ratio, stride=stride, start_dw=False, middle_dw=False)
