"""Block variants and their specs: what to build, as small frozen dataclasses.

Vocabulary (after timm, used alike in specs, CLI flags, CSV columns and docs):
`in_chs`, `out_chs`, `exp_ratio` (t), `kernel_size` (k), `stride` (s), `resolution` (square input
side, pixels), `batch` (N), `chunks`, `reduction` (resnet's), and `mid_chs`, the inner width,
derived by one rule (`BlockSpec.mid_chs`): C x t, or for resnet C / reduction rounded to a
multiple of 8 (reduction is t unless given, so `--expansion` still sets it).

A spec has a compact string form (timm's `ir_r1_k3_s1_e6_c16` style), one token per field::

    mbv2_c32_r56_e6_k3_s1_b1        variant mbv2, C=32 in and out, 56x56, t=6, k=3, s=1, N=1
    conv_c32_o64_r56_e6_k3_s2_b1    `o` gives out_chs when it differs from in_chs

    mbv2-streamed_c32_r56_e6_k3_s1_b1_p6   `p` gives chunks when it is not 1

    resnet_c32_r56_e6_k3_s1_b1_d4          `d` gives resnet's reduction when it is not t

Tokens after the variant name are a letter and an integer: `c` in_chs, `o` out_chs, `r`
resolution, `e` exp_ratio, `k` kernel_size, `s` stride, `b` batch, `p` chunks (the pieces the
expanded tensor is computed in, paper section 5.1; written only when not 1), `d` reduction
(resnet: the 1x1 narrows C to C / d; written only when given). Both are left out at their
defaults, so specs written before them keep their strings and hashes.
`format_spec(parse_spec(s)) == s` holds for every string `format_spec` writes (its canonical
form).

**The user's own blocks** (models/plugins.py): wherever a variant name is accepted, so is
`PATH.py:NAME`, `package.module:NAME` or the name of an installed `mnv2prof.variants` entry
point. Its spec's `variant` is NAME (the row's name), `source` the reference it is loaded from
(a file's path made absolute) and `source_hash` the hash of that file's bytes, which the spec's
digest includes (its path does not: a checkout in another folder is the same block). NAME is
called as a built-in's class is, with `BlockSpec.keywords()` (`in_chs`, `out_chs`, `mid_chs`,
`exp_ratio`, `kernel_size`, `stride`), only those its signature accepts. Its compact string is
written like a built-in's (`UIB_c32_r56_e6_k3_s1_b1`), but only a built-in's can be parsed back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mnv2prof.errors import SpecError


@dataclass(frozen=True)
class VariantInfo:
    name: str
    summary: str
    uses_expansion: bool  # whether exp_ratio changes the block
    uses_chunks: bool = False  # whether chunks changes the block (its schedule, not its maths)
    uses_reduction: bool = False  # whether the inner width is C / reduction rather than C x t


VARIANTS: dict[str, VariantInfo] = {
    v.name: v
    for v in (
        VariantInfo("conv", "standard k x k conv C -> C, BN, ReLU6", False),
        VariantInfo("dwsep", "depthwise k x k then pointwise 1x1 C -> C (MobileNetV1)", False),
        VariantInfo(
            "mbv2",
            "inverted residual, linear bottleneck: 1x1 expand to t*C, depthwise k x k, "
            "linear 1x1 project, residual add (MobileNetV2)",
            True,
        ),
        VariantInfo("mbv2-nonlinear", "mbv2 with ReLU6 after the projection (paper Fig. 6a)", True),
        VariantInfo("mbv2-noskip", "mbv2 without the residual add (paper Fig. 6b)", True),
        VariantInfo(
            "resnet",
            "classic bottleneck: 1x1 reduce to C/t or C/reduction (multiple of 8, >= 8), "
            "k x k conv, linear 1x1 expand, residual add, ReLU6",
            True,
            uses_reduction=True,
        ),
        VariantInfo(
            "fused",
            "Fused-MBConv (EfficientNetV2): k x k conv C -> t*C, linear 1x1 project, residual add",
            True,
        ),
        VariantInfo(
            "shufflev2",
            "ShuffleNet V2 unit: split, 1x1 / depthwise k x k / 1x1 on one half, concat, "
            "channel shuffle (stride 2: the downsampling unit)",
            False,
        ),
        VariantInfo(
            "mbv2-streamed",
            "mbv2 computed in `chunks` channel groups (expand, depthwise, project each group, sum "
            "the projections): the paper's memory-efficient schedule (section 5.1)",
            True,
            uses_chunks=True,
        ),
    )
}

# What `compare` runs without --variants: the eight blocks that differ in their maths.
# mbv2-streamed is left out: it is mbv2 under another schedule (ask for it in --variants).
DEFAULT_VARIANTS: tuple[str, ...] = (
    "conv", "dwsep", "mbv2", "mbv2-nonlinear", "mbv2-noskip", "resnet", "fused", "shufflev2",
)  # fmt: skip


@dataclass(frozen=True)
class BlockSpec:
    """One block to build, export and measure. Validated on construction."""

    variant: str
    in_chs: int = 32
    out_chs: int | None = None  # None: same as in_chs
    resolution: int = 56
    exp_ratio: int = 6
    kernel_size: int = 3
    stride: int = 1
    batch: int = 1
    chunks: int = 1  # mbv2-streamed: channel groups the expanded tensor is computed in
    reduction: int | None = None  # resnet: the 1x1 narrows to C / reduction; None: exp_ratio
    source: str = ""  # a user's block: PATH.py:NAME (absolute) or module:NAME; "": built in
    source_hash: str = ""  # a user's block: sha256 of its file (plugins.file_digest)

    def __post_init__(self) -> None:
        if self.out_chs is None:
            object.__setattr__(self, "out_chs", self.in_chs)
        _validate(self)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_chs, self.resolution, self.resolution)

    @property
    def out_resolution(self) -> int:
        # 'same' padding k // 2 with odd k: floor((R - 1) / s) + 1
        return (self.resolution - 1) // self.stride + 1

    @property
    def mid_chs(self) -> int:
        """The inner width, one rule for every reader (a built-in's class and a user's NAME are
        called with it, the size check counts it): resnet narrows to C / reduction, rounded by
        `make_divisible` (a multiple of 8, at least 8); every other block, a user's included,
        expands to C x t (conv, dwsep and shufflev2 have no inner tensor and do not take it)."""
        if self.builtin and VARIANTS[self.variant].uses_reduction:
            return make_divisible(self.in_chs / (self.reduction or self.exp_ratio))
        return self.in_chs * self.exp_ratio

    def keywords(self) -> dict[str, int]:
        """What builds the block: every block, a built-in's class or a user's NAME, is called
        with these, each taking those its signature accepts (models/blocks.block_factory);
        `chunks` only for a variant that takes them."""
        values = {"in_chs": self.in_chs, "out_chs": self.out_chs, "mid_chs": self.mid_chs,
                  "exp_ratio": self.exp_ratio, "kernel_size": self.kernel_size,
                  "stride": self.stride}
        return {**values, "chunks": self.chunks} if takes_chunks(self) else values

    @property
    def name(self) -> str:
        return format_spec(self)

    @property
    def builtin(self) -> bool:
        return not self.source

    @property
    def label(self) -> str:
        """The row name in tables: the variant, with `/kK` for variants that take chunks."""
        if self.builtin and VARIANTS[self.variant].uses_chunks:
            return f"{self.variant}/k{self.chunks}"
        return self.variant

    def with_(self, **changes: object) -> BlockSpec:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, object]:
        """What the block depends on: the fields, less those at a default older specs did not
        have (so their hashes stay as they were), and for a user's block its file's hash and
        NAME in place of the file's path (a checkout elsewhere is the same block)."""
        fields = self.to_dict()
        if fields["chunks"] == 1:
            del fields["chunks"]
        if fields["reduction"] is None:
            del fields["reduction"]
        source = fields.pop("source")
        if not source:
            del fields["source_hash"]
        else:
            fields["factory"] = source.rpartition(":")[2]
        return fields

    def digest(self, *extra: object) -> str:
        """A short stable hash of the spec (and of `extra`, e.g. library versions)."""
        payload = json.dumps([self.identity(), *extra], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _positive(spec: BlockSpec, field: str, label: str) -> None:
    value = getattr(spec, field)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SpecError(f"{label} must be a positive integer, got {value!r}")


def _validate(spec: BlockSpec) -> None:
    if spec.source:
        if not spec.variant or any(c in spec.variant for c in " ,/\\:\t\n"):
            raise SpecError(f"a user's block needs a plain name, got {spec.variant!r}")
    elif spec.variant not in VARIANTS:
        raise SpecError(
            f"unknown variant {spec.variant!r}; choose from: {', '.join(VARIANTS)}, or "
            "PATH.py:NAME or package.module:NAME for your own block"
        )
    for field, label in (
        ("in_chs", "channels"),
        ("out_chs", "out channels"),
        ("resolution", "resolution"),
        ("exp_ratio", "expansion"),
        ("kernel_size", "kernel"),
        ("batch", "batch"),
        ("chunks", "chunks"),
    ):
        _positive(spec, field, label)
    if spec.stride not in (1, 2):
        raise SpecError(f"stride must be 1 or 2, got {spec.stride!r}")
    if spec.kernel_size % 2 == 0:
        raise SpecError(f"kernel must be odd (same padding), got {spec.kernel_size}")
    if spec.reduction is not None:
        _positive(spec, "reduction", "reduction")
        if not spec.builtin or not VARIANTS[spec.variant].uses_reduction:
            raise SpecError(
                f"reduction applies only to the built-in resnet, not {spec.variant}"
            )
    if spec.source:
        if spec.chunks != 1:
            raise SpecError(f"chunks applies only to mbv2-streamed, not {spec.variant}")
        return
    if spec.variant == "shufflev2":
        if spec.in_chs % 2 or spec.out_chs % 2:
            raise SpecError(
                f"shufflev2 splits channels into 2 groups: channels must be even, got "
                f"{spec.in_chs} -> {spec.out_chs}"
            )
        if spec.stride == 1 and spec.in_chs != spec.out_chs:
            raise SpecError("shufflev2 with stride 1 needs in channels == out channels")
    if spec.chunks != 1 and not VARIANTS[spec.variant].uses_chunks:
        raise SpecError(f"chunks applies only to mbv2-streamed, not {spec.variant}")
    if spec.mid_chs % spec.chunks and VARIANTS[spec.variant].uses_chunks:
        raise SpecError(
            f"chunks {spec.chunks} must divide the expanded channels "
            f"{spec.in_chs} x {spec.exp_ratio} = {spec.mid_chs}"
        )


_TOKENS = {
    "c": "in_chs",
    "o": "out_chs",
    "r": "resolution",
    "e": "exp_ratio",
    "k": "kernel_size",
    "s": "stride",
    "b": "batch",
    "p": "chunks",
    "d": "reduction",
}
_TOKEN_RE = re.compile(r"^([a-z])(\d+)$")


def parse_spec(text: str) -> BlockSpec:
    """Parse the compact form (see the module docstring); a `SpecError` names the bad token."""
    variant, *tokens = text.strip().split("_")
    values: dict[str, int] = {}
    for token in tokens:
        match = _TOKEN_RE.match(token)
        if not match or match.group(1) not in _TOKENS:
            raise SpecError(
                f"bad token {token!r} in spec {text!r}: expected a letter from "
                f"{''.join(_TOKENS)} followed by an integer"
            )
        field = _TOKENS[match.group(1)]
        if field in values:
            raise SpecError(f"token {token!r} repeats {field} in spec {text!r}")
        values[field] = int(match.group(2))
    return BlockSpec(variant, **values)


def format_spec(spec: BlockSpec) -> str:
    parts = [spec.variant, f"c{spec.in_chs}"]
    if spec.out_chs != spec.in_chs:
        parts.append(f"o{spec.out_chs}")
    parts += [
        f"r{spec.resolution}",
        f"e{spec.exp_ratio}",
        f"k{spec.kernel_size}",
        f"s{spec.stride}",
        f"b{spec.batch}",
    ]
    if spec.chunks != 1:
        parts.append(f"p{spec.chunks}")
    if spec.reduction is not None:
        parts.append(f"d{spec.reduction}")
    return "_".join(parts)


@dataclass(frozen=True)
class VariantRef:
    """A variant as a list names it: a built-in's name, or a user's block (`source`)."""

    name: str  # the row's variant: the built-in's name, NAME, or the entry point's name
    source: str = ""  # BlockSpec.source
    source_hash: str = ""

    def spec(self, **values: object) -> BlockSpec:
        return BlockSpec(self.name, **values, source=self.source, source_hash=self.source_hash)


def resolve_variant(text: str, base_dir: Path | None = None) -> VariantRef:
    """A built-in's name, `PATH.py:NAME` (relative to `base_dir`, else the current folder),
    `package.module:NAME`, or an installed entry point's name (models/plugins.py)."""
    from mnv2prof.models import plugins

    text = text.strip()
    if text in VARIANTS:
        return VariantRef(text)
    if plugins.is_reference(text):
        origin = plugins.resolve(text, base_dir)
        return VariantRef(origin.name, f"{origin.path or origin.module}:{origin.name}",
                          origin.digest)
    if text in plugins.entry_points():
        origin = plugins.entry_point_origin(text)
        return VariantRef(text, f"{origin.module}:{origin.name}", origin.digest)
    raise SpecError(
        f"unknown variant {text!r}; choose from: {', '.join(VARIANTS)}, or PATH.py:NAME or "
        "package.module:NAME for your own block (see `mnv2prof variants`)"
    )


def parse_variant_list(
    text: str | Sequence[str], base_dir: Path | None = None
) -> tuple[VariantRef, ...]:
    """`"conv, mbv2, my.py:MyBlock"` (or a list of those) -> their `VariantRef`s, in order; an
    unknown or broken one raises a `SpecError` or `plugins.PluginError` naming it."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip() for n in items if n.strip()]
    if not names:
        raise SpecError("no variant given; choose from: " + ", ".join(VARIANTS))
    if len(set(names)) != len(names):
        raise SpecError(f"variant listed twice in {text!r}")
    refs = tuple(resolve_variant(n, base_dir) for n in names)
    seen: dict[str, str] = {}
    for given, ref in zip(names, refs, strict=True):
        if ref.name in seen:
            raise SpecError(f"two variants are named {ref.name!r} ({seen[ref.name]} and {given}): "
                            "rows are named by variant, rename one")
        seen[ref.name] = given
    return refs


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of `divisor`, never down by more than 10%.

    From torchvision's `_make_divisible` (itself from the TensorFlow MobileNet code), the rule the
    MobileNetV2 paper's width multiplier uses.
    """
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def parse_chunk_list(text: str) -> tuple[int, ...]:
    """`"1,2,6"` -> (1, 2, 6); anything else raises a `SpecError` naming it."""
    values = []
    for item in (part.strip() for part in text.split(",")):
        if not (item.isascii() and item.isdigit()) or int(item) <= 0:
            raise SpecError(f"--chunks takes positive integers separated by commas, got {item!r}")
        values.append(int(item))
    if len(set(values)) != len(values):
        raise SpecError(f"chunk count listed twice in {text!r}")
    return tuple(values)


def takes_chunks(spec: BlockSpec) -> bool:
    return spec.builtin and VARIANTS[spec.variant].uses_chunks


def default_chunks(spec: BlockSpec) -> int:
    """The chunk count `compare` gives mbv2-streamed when none is asked for: t, the paper's t
    pieces (section 5.1). The paper bounds the schedule's memory by the bottleneck tensors plus
    one piece of n / t channels (n = t x C, the expanded tensor), and t is the fewest chunks
    whose piece is that narrow.

    Measured (static peak at fp32): with C in and out and stride 1, fewer chunks leave one
    piece's conv and ReLU6 outputs alive beside the input and the partial sum, 2 x t x C / k +
    2 x C channels; from t chunks on the peak is 4 x C (the input, two partial sums, their sum)
    and more chunks lower nothing. At C=32, 56x56, t=6: 5,096 KiB at 1 chunk (mbv2 itself),
    3,136 at 2, 2,352 at 3, 1,960 at 4, 1,568 at 6, 8, 12 and 24. Elsewhere t is not always
    the lowest: at stride 2 the peak keeps falling past t chunks, and with out_chs = 3 x C the
    wider partial sums make 2 chunks lower than t (docs/networks.md)."""
    return spec.exp_ratio if takes_chunks(spec) else 1


def with_chunks(specs: list[BlockSpec], chunks: tuple[int, ...] | None = None) -> list[BlockSpec]:
    """Each spec whose variant takes chunks once per chunk count (None: once, at its
    `default_chunks`); the others once, unchanged."""
    def counts(spec: BlockSpec) -> tuple[int, ...]:
        return chunks if chunks is not None else (default_chunks(spec),)

    return [
        spec.with_(chunks=k) if takes_chunks(spec) else spec
        for spec in specs
        for k in (counts(spec) if takes_chunks(spec) else (1,))
    ]
