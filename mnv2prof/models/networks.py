"""Whole networks from the papers' tables, built from the blocks `compare` measures.

MobileNetV2 is built from the MobileNetV2 paper's Table 2 and MobileNetV1 from the MobileNetV1
paper's Table 1, out of the same blocks `compare` measures (`ConvBnAct`, `InvertedResidual`,
`DepthwiseSeparable`). The width multiplier rounds every channel count with `make_divisible`
(multiple of 8, never down by more than 10%); MobileNetV2's last 1x1 conv keeps 1280 channels
for width < 1 and scales for width > 1 (as the reference implementations do).

Each row of the table is one named module (`features.0` ... `features.N`, `pool`,
`classifier`); the ONNX exporter records these names in each node's metadata, so the cost of
each row is read off the whole network's graph (run.network).

Any other model's stages (`network PATH.py:NAME`, `model_stages`) are its top-level children,
with a top-level `features`, `layers`, `stages` or `blocks` container opened one level (the
layouts of torchvision and timm), in the order its forward runs them, each with the shapes it
saw in one forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mnv2prof.errors import SpecError
from mnv2prof.models.blocks import ConvBnAct, block_factory, seeded
from mnv2prof.models.inputs import example_input
from mnv2prof.models.variants import BlockSpec, make_divisible

NETWORKS = ("mobilenetv2", "mobilenetv1")

# MobileNetV2 paper, Table 2: (operator, t, c, n, s) for a 224x224x3 input.
MOBILENETV2_TABLE = (
    ("conv2d 3x3", None, 32, 1, 2),
    ("bottleneck", 1, 16, 1, 1),
    ("bottleneck", 6, 24, 2, 2),
    ("bottleneck", 6, 32, 3, 2),
    ("bottleneck", 6, 64, 4, 2),
    ("bottleneck", 6, 96, 3, 1),
    ("bottleneck", 6, 160, 3, 2),
    ("bottleneck", 6, 320, 1, 1),
    ("conv2d 1x1", None, 1280, 1, 1),
)
# MobileNetV1 paper, Table 1, with repeated identical rows folded into n.
MOBILENETV1_TABLE = (
    ("conv2d 3x3", None, 32, 1, 2),
    ("dw+pw", None, 64, 1, 1),
    ("dw+pw", None, 128, 1, 2),
    ("dw+pw", None, 128, 1, 1),
    ("dw+pw", None, 256, 1, 2),
    ("dw+pw", None, 256, 1, 1),
    ("dw+pw", None, 512, 1, 2),
    ("dw+pw", None, 512, 5, 1),
    ("dw+pw", None, 1024, 1, 2),
    ("dw+pw", None, 1024, 1, 1),
)


MIN_WIDTH, MAX_WIDTH = 0.05, 10.0  # past them every layer rounds to 8 channels, or the weights
# alone outgrow any machine (1e300 overflowed torch's size arithmetic)
MAX_RESOLUTION = 8192  # pixels a side; 1e9 overflowed torch's size arithmetic (exit 3)


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network to build, export and measure. Validated on construction."""

    arch: str
    width: float = 1.0  # the paper's width multiplier alpha
    resolution: int = 224  # the paper's input resolution (rho scales it)
    num_classes: int = 1000
    streamed: bool = False  # mobilenetv2: every bottleneck as mbv2-streamed in t chunks (5.1)

    def __post_init__(self) -> None:
        if self.arch not in NETWORKS:
            raise SpecError(f"unknown network {self.arch!r}; choose from: {', '.join(NETWORKS)}")
        if not (self.width > 0 and math.isfinite(self.width)):
            raise SpecError(f"width must be a positive, finite number, got {self.width}")
        if not MIN_WIDTH <= self.width <= MAX_WIDTH:
            raise SpecError(f"width must be between {MIN_WIDTH:g} and {MAX_WIDTH:g} (the "
                            f"papers use 0.35-1.4), got {self.width:g}")
        if isinstance(self.resolution, bool) or not isinstance(self.resolution, int):
            raise SpecError(f"resolution must be an integer, got {self.resolution!r}")
        if not 32 <= self.resolution <= MAX_RESOLUTION:
            raise SpecError(f"resolution must be from 32 (5 stride-2 layers) to "
                            f"{MAX_RESOLUTION:,}, got {self.resolution:,}")
        if self.num_classes <= 0:
            raise SpecError(f"classes must be a positive integer, got {self.num_classes}")
        if self.streamed and self.arch != "mobilenetv2":
            raise SpecError("streamed applies only to mobilenetv2 (the bottlenecks to split)")

    @property
    def name(self) -> str:
        suffix = "-streamed" if self.streamed else ""
        return f"{self.arch}-w{self.width:g}-r{self.resolution}-n{self.num_classes}{suffix}"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 3, self.resolution, self.resolution)


@dataclass(frozen=True)
class Stage:
    """One row of the paper's table: what it does, and the module that does it."""

    key: str  # module path, e.g. features.3; the ONNX name scope of its nodes
    operator: str
    in_resolution: int
    in_chs: int
    t: int | None
    c: int | None  # output channels
    n: int
    s: int | None
    in_shape: tuple[int, ...] | None = None  # the stage module's one input; None: several

    @property
    def input_size(self) -> str:
        """`112x112x32` (H x W x C, as the paper's table), or `1280` for a flat input."""
        shape = self.in_shape
        if shape is None:
            return "-"
        if len(shape) == 4:
            return f"{shape[2]}x{shape[3]}x{shape[1]}"
        return "x".join(map(str, shape[1:]))


def _out(resolution: int, stride: int) -> int:
    return (resolution - 1) // stride + 1


def _rows(spec: NetworkSpec):
    table = MOBILENETV2_TABLE if spec.arch == "mobilenetv2" else MOBILENETV1_TABLE
    for operator, t, c, n, s in table:
        if spec.arch == "mobilenetv2" and c == 1280:
            c = make_divisible(c * max(1.0, spec.width))  # keeps 1280 for width < 1
        else:
            c = make_divisible(c * spec.width)
        yield operator, t, c, n, s


def stage_table(spec: NetworkSpec) -> list[Stage]:
    """The table's rows for `spec`, pool and classifier last: arithmetic only, no module built."""
    stages = []
    chs, res = 3, spec.resolution
    for i, (operator, t, c, n, s) in enumerate(_rows(spec)):
        stages.append(Stage(f"features.{i}", operator, res, chs, t, c, n, s, (1, chs, res, res)))
        chs, res = c, _out(res, s)
    stages.append(Stage("pool", f"avgpool {res}x{res}", res, chs, None, chs, 1, None,
                        (1, chs, res, res)))
    classifier = Stage("classifier", "linear (conv2d 1x1)", 1, chs, None, spec.num_classes, 1, None,
                       (1, chs))
    stages.append(classifier)
    return stages


STAGE_CONTAINERS = ("features", "layers", "stages", "blocks")  # opened one level


def stage_candidates(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(module path, module) of a model's stages: its top-level children, a top-level
    `STAGE_CONTAINERS` child opened one level."""
    found = []
    for name, child in module.named_children():
        inner = list(child.named_children())
        if name in STAGE_CONTAINERS and inner:
            found += [(f"{name}.{n}", c) for n, c in inner]
        else:
            found.append((name, child))
    return found


def model_stages(module: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> list[Stage]:
    """The stages of any model (`stage_candidates`), in the order one forward pass on a seeded
    input of `input_shape` runs them, with the shapes each saw; stages it never runs are left
    out."""
    seen: dict[str, tuple[tuple[int, ...] | None, tuple[int, ...] | None]] = {}
    candidates = stage_candidates(module)

    def before(key):
        def hook(_, args):
            if key not in seen:
                tensors = [a for a in args if isinstance(a, torch.Tensor)]
                shape = tuple(tensors[0].shape) if len(tensors) == 1 == len(args) else None
                seen[key] = (shape, None)
        return hook

    def after(key):
        def hook(_, args, out):
            if key in seen and seen[key][1] is None and isinstance(out, torch.Tensor):
                seen[key] = (seen[key][0], tuple(out.shape))
        return hook

    handles = []
    for key, child in candidates:
        handles += [child.register_forward_pre_hook(before(key)),
                    child.register_forward_hook(after(key))]
    x = example_input(input_shape, seed)
    try:
        with torch.inference_mode():
            module.eval()(x)
    finally:
        for handle in handles:
            handle.remove()
    named = dict(candidates)
    stages = []
    for key, (in_shape, out_shape) in seen.items():  # dicts keep the order the hooks ran
        child = named[key]
        count = len(child) if isinstance(child, nn.Sequential | nn.ModuleList) else 1
        operator = type(child).__name__ + (f" x{count}" if count > 1 else "")
        in_res = in_shape[-1] if in_shape and len(in_shape) == 4 else None
        out_res = out_shape[-1] if out_shape and len(out_shape) == 4 else None
        stride = in_res // out_res if in_res and out_res and in_res % out_res == 0 else None
        stages.append(Stage(
            key, operator, in_res, in_shape[1] if in_shape and len(in_shape) > 1 else None,
            None, out_shape[1] if out_shape and len(out_shape) > 1 else None, count, stride,
            in_shape,
        ))
    return stages


def _stage_module(stage: Stage, streamed: bool) -> nn.Module:
    """The module of one `features.*` row."""
    if stage.operator.startswith("conv2d"):
        return ConvBnAct(stage.in_chs, stage.c, 3 if "3x3" in stage.operator else 1, stage.s)
    blocks = []
    for j in range(stage.n):
        stride = stage.s if j == 0 else 1
        block_in, block_res = ((stage.in_chs, stage.in_resolution) if j == 0
                               else (stage.c, _out(stage.in_resolution, stage.s)))
        if stage.operator == "bottleneck":
            variant = "mbv2-streamed" if streamed else "mbv2"
            chunks = stage.t if streamed else 1
            block = BlockSpec(variant, block_in, stage.c, block_res, stage.t, 3, stride,
                              chunks=chunks)
        else:
            block = BlockSpec("dwsep", block_in, stage.c, block_res, 1, 3, stride)
        blocks.append(block_factory(block)())  # built as `compare` builds it
    return nn.Sequential(*blocks)


def build_stages(spec: NetworkSpec) -> tuple[list[Stage], list[nn.Module]]:
    """The table's rows (stages) and one module per `features.*` row, in order."""
    stages = stage_table(spec)
    modules = [_stage_module(s, spec.streamed) for s in stages if s.key.startswith("features.")]
    return stages, modules


class Network(nn.Module):
    """`features` (one child per table row), global average `pool`, linear `classifier`."""

    def __init__(self, spec: NetworkSpec) -> None:
        super().__init__()
        self.stages, rows = build_stages(spec)
        self.features = nn.Sequential(*rows)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(self.stages[-1].in_chs, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def build_network(spec: NetworkSpec, seed: int = 0) -> Network:
    """The eval-mode network, with weights that depend only on (spec, seed), BNs randomised."""
    return seeded(lambda: Network(spec), seed)
