"""ShuffleNet V2's four guidelines (Ma et al. 2018, section 2): the probe blocks and the claims.

Each guideline is a set of small blocks with the same MACs (closed forms below, tested), timed in
onnxruntime, their bursts rotating round by round (latency.py). The paper's claim is a ratio of
latencies at equal FLOPs; the verdict reads the 95% CI of that ratio, computed from round-paired
samples (both blocks timed in the same round, so drift of the machine cancels):

- G1, equal channel width minimises memory access cost: two 1x1 convs c1 -> c2 -> c1 at
  c1:c2 = 1:1, 1:2, 1:6, 1:12 with c1 * c2 held (the paper's Table 1 widths: c1 c2 = 16384,
  16200, 16224, 15552, within 5%, since c1:c2 = 1:2 with c1 c2 = 128^2 needs an irrational c1);
- G2, excessive group convolution increases it: two 1x1 group convs c -> c, g = 1, 2, 4, 8,
  c^2 / g held (the paper's Table 2 widths 128, 180, 256, 360: within 1.2%, for the same reason);
- G3, fragmentation reduces parallelism: k 1x1 fragments of c * c / k MACs per pixel each, in
  series (c -> c/k -> c ...) or in parallel (k branches c -> c/k, concatenated), k = 1, 2, 4:
  the MACs are equal exactly;
- G4, elementwise ops are not negligible: the MobileNetV2 block with and without its ReLU6s and
  its residual Add (the paper's Table 4 does this on a ResNet bottleneck): equal MACs exactly.

A claim *holds* when the contrast block is slower than the reference by more than `MIN_EFFECT`
with 95% confidence, *does not hold* when the CI excludes such a slowdown, and is
*inconclusive* otherwise. The blocks are plain modules here (not variants): they are probes of
the guidelines, not MobileNetV2 building blocks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from mnv2prof.models.blocks import ConvBnAct

MIN_EFFECT = 0.05  # a slowdown under 5% is what the paper would call negligible
GUIDELINES_FORMAT = 1  # bump when a probe changes, to invalidate cached exports
RESOLUTION = 28  # G1-G3 at 28x28, G4 at the compare defaults (C=32, 56x56, t=6)


class PointwisePair(nn.Module):
    """G1: `repeats` x (1x1 conv c1 -> c2, 1x1 conv c2 -> c1), linear (BN folds into the conv)."""

    def __init__(self, c1: int, c2: int, repeats: int, groups: int = 1) -> None:
        super().__init__()
        self.convs = nn.Sequential(*(
            nn.Sequential(
                ConvBnAct(c1, c2, 1, groups=groups, act=None),  # point-wise c1 -> c2
                ConvBnAct(c2, c1, 1, groups=groups, act=None),  # point-wise back, c2 -> c1
            )
            for _ in range(repeats)
        ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)


class Fragmented(nn.Module):
    """G3: k fragments of c * c / k MACs per pixel, in series or in parallel, `repeats` times."""

    def __init__(self, c: int, fragments: int, parallel: bool, repeats: int) -> None:
        super().__init__()
        self.parallel = parallel
        narrow = c // fragments
        if parallel:  # k branches c -> c/k, concatenated back to c channels
            stages = [nn.ModuleList(ConvBnAct(c, narrow, 1, act=None) for _ in range(fragments))
                      for _ in range(repeats)]
        else:  # c -> c/k -> c -> ... : k convs, each c * c / k MACs per pixel
            widths = [c if i % 2 == 0 else narrow for i in range(fragments + 1)]
            stages = [nn.ModuleList(ConvBnAct(a, b, 1, act=None)
                                    for a, b in itertools.pairwise(widths)) for _ in range(repeats)]
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for convs in self.stages:
            if self.parallel:
                x = torch.cat([conv(x) for conv in convs], dim=1)
            else:
                for conv in convs:
                    x = conv(x)
        return x


class ElementwiseProbe(nn.Module):
    """G4: the MobileNetV2 block (blocks.InvertedResidual's layers) with its ReLU6s and its
    residual Add each switchable; the convs, and so the MACs, stay the same."""

    def __init__(self, c: int, exp_ratio: int, relu: bool, skip: bool) -> None:
        super().__init__()
        act = "relu6" if relu else None
        mid = c * exp_ratio
        self.has_skip = skip
        self.conv_pw = ConvBnAct(c, mid, 1, act=act)  # point-wise expansion
        self.conv_dw = ConvBnAct(mid, mid, 3, groups=mid, act=act)  # depthwise spatial filter
        self.conv_pwl = ConvBnAct(mid, c, 1, act=None)  # point-wise linear projection

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x = self.conv_pwl(self.conv_dw(self.conv_pw(x)))
        if self.has_skip:
            x = x + shortcut
        return x


@dataclass(frozen=True)
class Config:
    label: str
    params: tuple[tuple[str, int | bool], ...]  # what builds it (and keys its cached export)
    build: Callable[[], nn.Module] = field(compare=False, repr=False)
    input_shape: tuple[int, ...]
    macs: int  # closed form


@dataclass(frozen=True)
class Guideline:
    key: str
    claim: str  # the paper's claim, in a line
    configs: tuple[Config, ...]
    reference: str  # label the paper says is fastest
    contrast: str  # label the paper says is slower; the verdict's ratio is contrast / reference


def _g1(repeats: int = 2, hw: int = RESOLUTION) -> Guideline:
    widths = {"1:1": (128, 128), "1:2": (90, 180), "1:6": (52, 312), "1:12": (36, 432)}
    configs = tuple(
        Config(label, (("c1", c1), ("c2", c2), ("repeats", repeats)),
               lambda c1=c1, c2=c2: PointwisePair(c1, c2, repeats), (1, c1, hw, hw),
               2 * repeats * hw * hw * c1 * c2)
        for label, (c1, c2) in widths.items()
    )
    return Guideline("G1", "equal channel width minimises memory access cost: at equal FLOPs, "
                     "c1:c2 = 1:1 is fastest", configs, "1:1", "1:12")


def _g2(repeats: int = 2, hw: int = RESOLUTION) -> Guideline:
    widths = {1: 128, 2: 180, 4: 256, 8: 360}
    configs = tuple(
        Config(f"g={g}", (("c", c), ("groups", g), ("repeats", repeats)),
               lambda c=c, g=g: PointwisePair(c, c, repeats, groups=g), (1, c, hw, hw),
               2 * repeats * hw * hw * c * c // g)
        for g, c in widths.items()
    )
    return Guideline("G2", "excessive group convolution increases memory access cost: at equal "
                     "FLOPs, g = 8 is slower than g = 1", configs, "g=1", "g=8")


def _g3(c: int = 128, repeats: int = 4, hw: int = RESOLUTION) -> Guideline:
    arrangements = [("1 fragment", 1, False), ("2 in series", 2, False),
                    ("4 in series", 4, False), ("2 in parallel", 2, True),
                    ("4 in parallel", 4, True)]
    configs = tuple(
        Config(label, (("c", c), ("fragments", k), ("parallel", par), ("repeats", repeats)),
               lambda k=k, par=par: Fragmented(c, k, par, repeats), (1, c, hw, hw),
               repeats * hw * hw * c * c)
        for label, k, par in arrangements
    )
    return Guideline("G3", "network fragmentation reduces parallelism: at equal FLOPs, "
                     "4 parallel fragments are slower than 1", configs, "1 fragment",
                     "4 in parallel")


def _g4(c: int = 32, exp_ratio: int = 6, hw: int = 56) -> Guideline:
    macs = hw * hw * c * exp_ratio * (c + 9 + c)  # MobileNetV2 paper, section 3: h*w*d'*t*(d' + k*k + d'')
    variants = [("ReLU + Add", True, True), ("no ReLU", False, True), ("no Add", True, False),
                ("no ReLU, no Add", False, False)]
    configs = tuple(
        Config(label, (("c", c), ("exp_ratio", exp_ratio), ("relu", relu), ("skip", skip)),
               lambda relu=relu, skip=skip: ElementwiseProbe(c, exp_ratio, relu, skip),
               (1, c, hw, hw), macs)
        for label, relu, skip in variants
    )
    return Guideline("G4", "element-wise ops (ReLU, Add) are not negligible: removing them "
                     "makes the block faster", configs, "no ReLU, no Add", "ReLU + Add")


def guidelines() -> tuple[Guideline, ...]:
    return (_g1(), _g2(), _g3(), _g4())
