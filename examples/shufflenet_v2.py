"""ShuffleNet V2 1.0x, written as a user's model file (no torchvision needed).

Ma, Zhang, Zheng and Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018 (arXiv:1807.11164). Table 5 gives 1.0x: 146M FLOPs (multiply-adds),
2.3M parameters, 30.6% top-1 error on ImageNet at 224x224.

The layout (module names, channel split and shuffle, the stride-2 unit's two branches) follows
torchvision's `shufflenet_v2_x1_0`, so the state-dict keys and shapes are torchvision's and its
weights load as they are. Its figures: 2,278,604 parameters (exactly, this file gives the same)
and 0.14 GFLOPS as torchvision writes them (multiply-adds). torch.utils.flop_counter counts
144,907,992 MACs (0.145 G) on 1x3x224x224 for the convs and the classifier (BN, ReLU, pooling
and the shuffle not counted), within 1% of the paper's 146M; mnv2prof counts the same on the
exported graph (`mnv2prof compare --model examples/shufflenet_v2.py:shufflenet_v2_x1_0`).

Unit (torchvision's `InvertedResidual`; paper Fig. 3c and 3d):
- stride 1: split the channels in half; the left half passes through, the right half goes
  through 1x1 conv-BN-ReLU, 3x3 depthwise conv-BN, 1x1 conv-BN-ReLU; concat; shuffle (2 groups).
- stride 2: no split; branch1 = 3x3 depthwise (s2)-BN, 1x1-BN-ReLU; branch2 = 1x1-BN-ReLU on
  all input channels, 3x3 depthwise (s2)-BN, 1x1-BN-ReLU; concat (doubles the channels); shuffle.
Convs have no bias.

Use: `shufflenet_v2_x1_0()` or `ShuffleNetV2([4, 8, 4], [24, 116, 232, 464, 1024])`.
"""

from __future__ import annotations

import torch
from torch import nn


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave the channels of `groups` groups (paper section 3, Fig. 3)."""
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)  # (N, g, C/g, H, W)
    x = torch.transpose(x, 1, 2).contiguous()  # (N, C/g, g, H, W)
    return x.view(n, c, h, w)


def _depthwise(chs: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(chs, chs, 3, stride, 1, groups=chs, bias=False)


class InvertedResidual(nn.Module):
    """ShuffleNet V2 unit (torchvision's name for it)."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, not {stride}")
        self.stride = stride
        branch_features = oup // 2
        if stride == 1 and inp != branch_features * 2:
            raise ValueError(f"a stride-1 unit keeps its channels: inp {inp} != oup {oup}")

        if stride > 1:
            self.branch1 = nn.Sequential(
                _depthwise(inp, stride),  # 3x3 depthwise, stride 2
                nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, 1, 1, 0, bias=False),  # 1x1
                nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True),
            )
        else:
            self.branch1 = nn.Sequential()  # identity: the left half passes through

        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
            _depthwise(branch_features, stride),  # 3x3 depthwise, no activation after it
            nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, 1, 1, 0, bias=False),
            nn.BatchNorm2d(branch_features),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2(nn.Module):
    """ShuffleNet V2 (paper Table 5), laid out as torchvision's `ShuffleNetV2`.

    `stages_repeats`: units in stage2..stage4 (1.0x: 4, 8, 4); `stages_out_channels`: conv1,
    stage2..stage4, conv5 (1.0x: 24, 116, 232, 464, 1024).
    """

    def __init__(
        self,
        stages_repeats: list[int],
        stages_out_channels: list[int],
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if len(stages_repeats) != 3:
            raise ValueError("expected stages_repeats as a list of 3 positive ints")
        if len(stages_out_channels) != 5:
            raise ValueError("expected stages_out_channels as a list of 5 positive ints")
        self._stage_out_channels = list(stages_out_channels)

        input_channels = 3
        output_channels = stages_out_channels[0]
        self.conv1 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 3, 2, 1, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        input_channels = output_channels
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        for name, repeats, output_channels in zip(
            ("stage2", "stage3", "stage4"), stages_repeats, stages_out_channels[1:4]
        ):
            units = [InvertedResidual(input_channels, output_channels, 2)]
            units += [InvertedResidual(output_channels, output_channels, 1)
                      for _ in range(repeats - 1)]
            setattr(self, name, nn.Sequential(*units))
            input_channels = output_channels

        output_channels = stages_out_channels[-1]
        self.conv5 = nn.Sequential(
            nn.Conv2d(input_channels, output_channels, 1, 1, 0, bias=False),
            nn.BatchNorm2d(output_channels),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(output_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x = self.maxpool(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.conv5(x)
        x = x.mean([2, 3])  # global average pool
        return self.fc(x)


def shufflenet_v2_x1_0(num_classes: int = 1000) -> ShuffleNetV2:
    """ShuffleNet V2 1.0x: 2,278,604 parameters, 0.145 G MACs at 224x224."""
    return ShuffleNetV2([4, 8, 4], [24, 116, 232, 464, 1024], num_classes=num_classes)
