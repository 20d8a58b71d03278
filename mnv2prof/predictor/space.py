"""The sampling space of `predictor build`: which networks (and so which kernels) to sample.

The default is the MobileNetV2/V3 search space the architecture searches use (ProxylessNAS,
OFA, MnasNet): MobileNetV2's stage layout (paper Table 2: channels 16, 24, 32, 64, 96, 160, 320
with strides 1, 2, 2, 2, 1, 2, 1) at widths 0.35-1.4x and inputs of 96-320 pixels, each block
an inverted residual with its own kernel size (3, 5, 7), expansion (3, 4, 6), squeeze-and-excite
on or off and activation (ReLU6 or hard-swish), 1-4 blocks a stage, and MobileNetV2's or
MobileNetV3's head. Some networks are made of ShuffleNet V2 units instead (`shuffle`), and some
blocks get a depthwise conv before the expansion (`extra_dw`, MobileNetV4's ExtraDW), and some
lone blocks have channel counts that are not multiples of 8 (`odd_channels`: onnxruntime runs
those convs outside NCHWc, a dwconv about 1.5x slower for its size), so the kernels those bring
(split, concat, the channel shuffle, a max pool, a linear depthwise conv, NCHW convs) are
sampled too. A share of the samples (`lone_blocks`) is one block alone, whose input and
output stay in NCHW: what `predict VARIANT` and a user's block look like to onnxruntime.

A profile (`predictor build --profile SPACE.toml`) names another space; every key is optional::

    [space]
    resolution = [96, 320]   # smallest and largest input side, pixels
    resolution_step = 16
    width = [0.35, 1.4]      # width multipliers, sampled uniformly between the two
    kernel_size = [3, 5, 7]
    exp_ratio = [3, 4, 6]
    depth = [1, 4]           # blocks per stage, fewest and most
    se = [false, true]
    activation = ["relu6", "hswish"]   # also "relu"
    extra_dw = 0.15          # share of blocks with a depthwise conv before the expansion
    shuffle = 0.15           # share of networks made of ShuffleNet V2 units
    lone_blocks = 0.35       # share of samples that are one block alone
    odd_channels = 0.25      # share of lone blocks with even channel counts, not multiples of 8

    [build]
    threads = 1              # onnxruntime intra-op threads every kernel is timed at
    seed = 0
    networks = 64            # calibration models (networks, lone blocks), timed after the fit
    kernel_budget_s = 0.08   # seconds of timed rounds per kernel

A list that is empty leaves the space with no network: refused (`SpaceError`, exit 2), as is
any unknown key or bad value, naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnv2prof.errors import UsageError
from mnv2prof.models.variants import make_divisible

ACTIVATIONS = ("relu6", "relu", "hswish")
POOL_OPS = ("reducemean", "globalaveragepool")  # torch exports ReduceMean; others GAP
# MobileNetV2 paper, Table 2: (expansion, channels, stride) of each bottleneck stage
V2_STAGES = ((1, 16, 1), (None, 24, 2), (None, 32, 2), (None, 64, 2), (None, 96, 1),
             (None, 160, 2), (None, 320, 1))
SHUFFLE_STAGES = (116, 232, 464)  # ShuffleNet V2 1.0x (paper Table 5)
MAX_THREADS = 256


class SpaceError(UsageError):
    """A space that holds no network, or a bad key or value in its profile."""


@dataclass(frozen=True)
class Block:
    """One block: an inverted residual (`ir`) or a ShuffleNet V2 unit (`shuffle`)."""

    kind: str
    out_chs: int
    stride: int = 1
    kernel_size: int = 3
    exp_ratio: float = 6
    se: bool = False
    act: str = "relu6"
    extra_dw: bool = False
    divisor: int = 8  # channels are rounded to multiples of this (make_divisible)


@dataclass(frozen=True)
class Arch:
    """A whole network: stem, blocks, head."""

    resolution: int
    stem_chs: int
    blocks: tuple[Block, ...]
    head_chs: int
    stem_act: str = "relu6"
    max_pool: bool = False  # a 3x3 stride-2 max pool after the stem (ShuffleNet)
    hidden: int = 0  # MobileNetV3's head: a linear layer (and hard-swish) before the classifier
    classes: int = 1000
    pool_op: str = "reducemean"


@dataclass(frozen=True)
class LoneBlock:
    """One block alone, on an N x C x R x R input."""

    in_chs: int
    resolution: int
    block: Block
    pool_op: str = "reducemean"


@dataclass(frozen=True)
class Space:
    resolution: tuple[int, int] = (96, 320)
    resolution_step: int = 16
    width: tuple[float, float] = (0.35, 1.4)
    kernel_size: tuple[int, ...] = (3, 5, 7)
    exp_ratio: tuple[int, ...] = (3, 4, 6)
    depth: tuple[int, int] = (1, 4)
    se: tuple[bool, ...] = (False, True)
    activation: tuple[str, ...] = ("relu6", "hswish")
    extra_dw: float = 0.15
    shuffle: float = 0.15
    lone_blocks: float = 0.35
    odd_channels: float = 0.25
    threads: int = 1
    seed: int = 0
    networks: int = 64  # about 2.2 s each: 2.4 min of the build
    kernel_budget_s: float = 0.08

    def __post_init__(self) -> None:
        check_space(self)

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def _fail(where: str, key: str, problem: str) -> SpaceError:
    return SpaceError(f"{where}: {key} {problem}")


def check_space(space: Space) -> None:
    """Every rule of a space, in one place (a profile, the API and the defaults alike)."""
    for key in ("kernel_size", "exp_ratio", "se", "activation"):
        if not getattr(space, key):
            raise _fail("space", key, "is empty: the space holds no network")
    low, high = space.resolution
    if not 32 <= low <= high:
        raise _fail("space", "resolution", f"must be [smallest, largest] with 32 <= smallest <= "
                    f"largest, got [{low}, {high}]")
    if space.resolution_step < 1:
        raise _fail("space", "resolution_step", f"must be positive, got {space.resolution_step}")
    if not (0 < space.width[0] <= space.width[1] and math.isfinite(space.width[1])):
        raise _fail("space", "width", f"must be [smallest, largest] with 0 < smallest <= largest, "
                    f"got {list(space.width)}")
    if any(k < 1 or k % 2 == 0 for k in space.kernel_size):
        raise _fail("space", "kernel_size", f"must hold odd positive sizes, got "
                    f"{list(space.kernel_size)}")
    if any(t < 1 for t in space.exp_ratio):
        raise _fail("space", "exp_ratio", f"must hold ratios of at least 1, got "
                    f"{list(space.exp_ratio)}")
    if not 1 <= space.depth[0] <= space.depth[1]:
        raise _fail("space", "depth", f"must be [fewest, most] with 1 <= fewest <= most, got "
                    f"{list(space.depth)}")
    if unknown := [a for a in space.activation if a not in ACTIVATIONS]:
        raise _fail("space", "activation", f"has {', '.join(map(str, unknown))}: choose from "
                    f"{', '.join(ACTIVATIONS)}")
    for key in ("extra_dw", "shuffle", "lone_blocks", "odd_channels"):
        if not 0 <= getattr(space, key) <= 1:
            raise _fail("space", key, f"must be a share between 0 and 1, got {getattr(space, key)}")
    if space.networks < 0:
        raise _fail("space", "networks", f"must be 0 or more, got {space.networks}")
    if not 0 < space.kernel_budget_s <= 60:
        raise _fail("space", "kernel_budget_s", f"must be above 0 and at most 60 seconds, got "
                    f"{space.kernel_budget_s}")
    if not 1 <= space.threads <= MAX_THREADS:
        raise _fail("space", "threads", f"must be between 1 and {MAX_THREADS}, got {space.threads}")


_LISTS = {"kernel_size": int, "exp_ratio": int, "se": bool, "activation": str}
_PAIRS = {"resolution": int, "width": float, "depth": int}
_NUMBERS = {"resolution_step": int, "extra_dw": float, "shuffle": float, "lone_blocks": float,
            "odd_channels": float,
            "threads": int, "seed": int, "networks": int, "kernel_budget_s": float}
_SECTIONS = {"space": (*_LISTS, *_PAIRS, "resolution_step", "extra_dw", "shuffle",
                       "lone_blocks", "odd_channels"),
             "build": ("threads", "seed", "networks", "kernel_budget_s")}


def load_space(path: str | Path) -> Space:
    """The space of a profile file; one `SpaceError` line naming the file and key otherwise."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpaceError(f"--profile {path}: not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpaceError(f"--profile {path}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{path}: not TOML: {exc}") from None
    values: dict[str, object] = {}
    for section, table in data.items():
        if section not in _SECTIONS or not isinstance(table, dict):
            raise SpaceError(f"{path}: unknown table [{section}]: expected [space] or [build]")
        for key, value in table.items():
            if key not in _SECTIONS[section]:
                raise _fail(f"{path}", f"[{section}] {key}", "is not a key of the space: "
                            f"expected one of {', '.join(_SECTIONS[section])}")
            values[key] = _typed(f"{path}", f"[{section}] {key}", key, value)
    try:
        return Space(**values)
    except SpaceError as exc:  # the rule's own words, at the file
        raise SpaceError(f"{path}: {str(exc).removeprefix('space: ')}") from None


def _typed(where: str, label: str, key: str, value: object) -> object:
    def of(kind: type, item: object) -> object:
        if kind is float and isinstance(item, int) and not isinstance(item, bool):
            return float(item)
        if not isinstance(item, kind) or (kind is int and isinstance(item, bool)):
            raise _fail(where, label, f"must hold {kind.__name__} values, got {item!r}")
        return item

    if key in _NUMBERS:
        return of(_NUMBERS[key], value)
    if not isinstance(value, list):
        raise _fail(where, label, f"must be a list, got {value!r}")
    items = tuple(of((_LISTS | _PAIRS)[key], item) for item in value)
    if key in _PAIRS and len(items) != 2:
        raise _fail(where, label, f"must be [smallest, largest], got {list(items)}")
    return items


# --- drawing networks and blocks from the space ------------------------------------------------


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _resolution(space: Space, rng: np.random.Generator) -> int:
    low, high = space.resolution
    steps = (high - low) // space.resolution_step
    return low + space.resolution_step * int(rng.integers(steps + 1))


def _ir_block(space: Space, rng: np.random.Generator, out_chs: int, stride: int,
              exp_ratio: float | None = None) -> Block:
    return Block("ir", out_chs, stride, int(_pick(rng, space.kernel_size)),
                 float(exp_ratio if exp_ratio is not None else _pick(rng, space.exp_ratio)),
                 bool(_pick(rng, space.se)), str(_pick(rng, space.activation)),
                 bool(rng.random() < space.extra_dw))


def random_arch(space: Space, rng: np.random.Generator) -> Arch:
    """A network drawn from `space`: MobileNetV2/V3-style, or (share `shuffle`) ShuffleNet V2."""
    width = float(rng.uniform(*space.width))
    resolution = _resolution(space, rng)
    pool_op = str(_pick(rng, POOL_OPS))
    if rng.random() < space.shuffle:
        return _shuffle_arch(space, rng, width, resolution, pool_op)
    blocks = []
    for i, (t, chs, stride) in enumerate(V2_STAGES):
        depth = 1 if i == 0 else int(rng.integers(space.depth[0], space.depth[1] + 1))
        out = make_divisible(chs * width)
        blocks += [_ir_block(space, rng, out, stride if j == 0 else 1, t) for j in range(depth)]
    v3_head = bool(rng.random() < 0.5)
    last = blocks[-1].out_chs
    head = make_divisible(6 * last) if v3_head else make_divisible(1280 * max(1.0, width))
    return Arch(resolution, make_divisible(32 * width), tuple(blocks), head,
                stem_act=str(_pick(rng, space.activation)),
                hidden=make_divisible(1280 * max(1.0, width)) if v3_head else 0, pool_op=pool_op)


def _shuffle_arch(space: Space, rng: np.random.Generator, width: float, resolution: int,
                  pool_op: str) -> Arch:
    blocks = []
    for stage, chs in enumerate(SHUFFLE_STAGES):
        out = 4 * max(2, round(chs * width / 4))  # halves must stay even: multiples of 4
        repeats = int(rng.integers(space.depth[0], space.depth[1] + 1)) * (2 if stage == 1 else 1)
        k = int(_pick(rng, space.kernel_size))
        blocks += [Block("shuffle", out, 2 if j == 0 else 1, k, act="relu")
                   for j in range(repeats)]
    return Arch(resolution, 24, tuple(blocks), make_divisible(1024 * max(1.0, width)),
                stem_act="relu", max_pool=True, pool_op=pool_op)


def random_lone_block(space: Space, rng: np.random.Generator) -> LoneBlock:
    """One block drawn from `space`, alone: an inverted residual (or, share `shuffle`, a
    ShuffleNet V2 unit) at a stage's channels and resolution."""
    width = float(rng.uniform(*space.width))
    stage = int(rng.integers(1, len(V2_STAGES)))
    scale = 2 ** sum(1 for _, _, s in V2_STAGES[:stage] if s == 2) * 2  # the stem's stride
    resolution = max(4, _resolution(space, rng) // scale)
    in_chs = make_divisible(V2_STAGES[stage - 1][1] * width)
    if rng.random() < space.shuffle:
        chs = 4 * max(2, round(_pick(rng, SHUFFLE_STAGES) * width / 4))
        stride = int(_pick(rng, (1, 2)))
        return LoneBlock(chs if stride == 1 else chs // 2, resolution,
                         Block("shuffle", chs, stride, int(_pick(rng, space.kernel_size)),
                               act="relu"))
    _, chs, stride = V2_STAGES[stage]
    out = make_divisible(chs * width) if rng.random() < 0.5 else in_chs
    block = _ir_block(space, rng, out, stride if out != in_chs else int(_pick(rng, (1, 2))))
    if rng.random() < space.odd_channels:  # onnxruntime keeps such convs out of NCHWc
        residual = block.out_chs == in_chs
        in_chs = _even_near(in_chs, rng)
        out = in_chs if residual else _even_near(block.out_chs, rng)
        block = dataclasses.replace(block, out_chs=out, divisor=2)
    return LoneBlock(in_chs, resolution, block, str(_pick(rng, POOL_OPS)))


def _even_near(chs: int, rng: np.random.Generator) -> int:
    """An even channel count near `chs` that is not a multiple of 8."""
    value = 2 * max(1, round(chs * rng.uniform(0.8, 1.2) / 2))
    return value + 2 if value % 8 == 0 else value
