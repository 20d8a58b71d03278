"""How much memory a block or a network needs, known before any of it is allocated.

The guard against sizes nobody can run (`--channels 999999999`, `--resolution 100000`,
`network --width 1000`): the static peak, activations plus weights at fp32, is estimated
- first in plain integers from the spec (the input and output tensors, and the smallest weight a
  variant has), which is cheap and cannot overflow, and
- then, if that fits, the static peak itself: the weights plus the largest input-and-output pair
  of any leaf module plus the block's input (held for a residual), the liveness peak's shape
  without a byte allocated. For a built-in block it is computed from the spec in integers
  (`closed_form`: each variant's leaves as blocks.py builds them, tested equal to the meta
  device's figure over a grid of specs); for a network or a user's code, on torch's meta device
  (`_on_meta`: the module is built and run on tensors that have a shape but no storage, and
  every leaf module's input and output sizes are recorded). The closed form needs no torch: a
  meta-device forward imports half of torch._dynamo (1-1.4 s) through the decompositions of
  elementwise ops.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT_BYTES = 4
_SHAPE_PRESERVING: tuple = ()  # leaf classes whose output has their input's shape


@dataclass(frozen=True)
class SizeEstimate:
    name: str
    activation_bytes: int
    weight_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.activation_bytes + self.weight_bytes


def _lower_bound(spec) -> SizeEstimate:
    """Input and output tensors, and a 1x1 conv's weights between the narrowest channels every
    variant has (ShuffleNet V2's half): nothing a block can need less than."""
    from mnv2prof.models.variants import BlockSpec

    assert isinstance(spec, BlockSpec)
    inputs = spec.batch * spec.in_chs * spec.resolution**2
    if not spec.builtin:  # a user's block: its input is all that is known without running it
        return SizeEstimate(spec.name, inputs * FLOAT_BYTES, 0)
    outputs = spec.batch * spec.out_chs * spec.out_resolution**2
    narrow = min(spec.in_chs, spec.out_chs) // 2
    return SizeEstimate(spec.name, (inputs + outputs) * FLOAT_BYTES, narrow**2 * FLOAT_BYTES)


def _shape_preserving():
    from torch import nn

    return (nn.modules.batchnorm._BatchNorm, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Hardswish,
            nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.GELU, nn.Identity, nn.Dropout)


def _on_meta(name: str, build, input_shape: tuple[int, ...], strict: bool = True) -> SizeEstimate:
    """Build with `build()` and run it on the meta device; see the module docstring.

    `strict=False` (the user's code, which may compute on values a meta tensor does not have):
    a forward that fails on the meta device gives the input and the weights alone; the real
    forward, before export, then says what fails (models/plugins.check_forward)."""
    import math

    import torch

    global _SHAPE_PRESERVING
    _SHAPE_PRESERVING = _SHAPE_PRESERVING or _shape_preserving()
    with torch.device("meta"):
        module = build().eval()
        x = torch.empty(*input_shape)
    # elementwise leaves keep the shape: on meta their decompositions import torch._dynamo
    # (1-1.4 s), so they are replaced for this run, on a module built here on meta only (a
    # factory may hand back a module it keeps, which must come back as it was)
    on_meta = all(p.is_meta for p in module.parameters())
    patched = [leaf for leaf in module.modules()
               if on_meta and isinstance(leaf, _SHAPE_PRESERVING) and "forward" not in vars(leaf)]
    for leaf in patched:
        leaf.forward = torch.empty_like
    weights = sum(p.numel() for p in module.parameters()) * FLOAT_BYTES
    largest = 0

    def record(leaf, args, out) -> None:
        nonlocal largest
        ins = sum(a.numel() for a in args if isinstance(a, torch.Tensor))
        outs = out.numel() if isinstance(out, torch.Tensor) else 0
        largest = max(largest, ins + outs)

    hooks = [m.register_forward_hook(record) for m in module.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            module(x)
    except Exception:  # the user's forward on meta tensors (strict: ours, which must run)
        if strict:
            raise
    finally:
        for hook in hooks:
            hook.remove()
        for leaf in patched:
            del leaf.forward
    return SizeEstimate(name, (largest + math.prod(input_shape)) * FLOAT_BYTES, weights)


def block_size(spec) -> SizeEstimate:
    """The static peak of the block of `spec`: the integer bound if that is already past any
    machine's memory (`limit`-free: the caller compares), else the meta-device estimate."""
    bound = _lower_bound(spec)
    if bound.total_bytes > 2**40:  # a terabyte: no need to build it to know
        return bound
    if spec.builtin:
        return closed_form(spec)
    from mnv2prof.models.blocks import block_factory

    return _on_meta(spec.name, block_factory(spec), spec.input_shape, strict=False)


def _cba(cin: int, cout: int, k: int, p_in: int, p_out: int, groups: int = 1):
    """A ConvBnAct's (params, leaf pairs): its conv, BN and activation (Identity too)."""
    params = cout * (cin // groups) * k * k + 2 * cout
    return params, [cin * p_in + cout * p_out, 2 * cout * p_out, 2 * cout * p_out]


def closed_form(spec) -> SizeEstimate:
    """`_on_meta`'s figure for a built-in block, in integers from the spec (models/blocks.py's
    modules, leaf by leaf: a ConvBnAct is three leaves, conv, BN and activation; the inner
    width is the spec's one `mid_chs`)."""
    c, o, k, s, m, v = (spec.in_chs, spec.out_chs, spec.kernel_size, spec.stride,
                        spec.mid_chs, spec.variant)
    a = spec.batch * spec.resolution**2  # input pixels (times the batch)
    ao = spec.batch * spec.out_resolution**2
    parts = []  # (params, leaf pairs) of every leaf module that runs
    if v == "conv":
        parts.append(_cba(c, o, k, a, ao))
    elif v == "dwsep":
        parts += [_cba(c, c, k, a, ao, groups=c), _cba(c, o, 1, ao, ao)]
    elif v in ("mbv2", "mbv2-nonlinear", "mbv2-noskip"):
        parts.append(_cba(c, m, 1, a, a) if m != c else (0, [2 * c * a]))  # Identity when t = 1
        parts += [_cba(m, m, k, a, ao, groups=m), _cba(m, o, 1, ao, ao)]
    elif v == "mbv2-streamed":
        g = m // spec.chunks
        for _ in range(spec.chunks):
            if m != c:  # with t = 1 a group is a slice of the input, conv_pw is not called
                parts.append(_cba(c, g, 1, a, a))
            parts += [_cba(g, g, k, a, ao, groups=g), (g * o, [g * ao + o * ao])]
        parts.append((2 * o, [2 * o * ao]))  # bn_pwl, once after the sum
    elif v == "resnet":
        parts += [_cba(c, m, 1, a, a), _cba(m, m, k, a, ao), _cba(m, o, 1, ao, ao)]
        projection = s != 1 or c != o
        parts.append(_cba(c, o, 1, a, ao) if projection else (0, [2 * c * a]))
        parts.append((0, [2 * o * ao]))  # the ReLU6 after the add
    elif v == "fused":
        parts += [_cba(c, m, k, a, ao), _cba(m, o, 1, ao, ao)]
    elif v == "shufflev2":
        b = o // 2
        if s == 2:  # the downsampling unit: a left branch of its own, the right one sees all
            parts += [_cba(c, c, k, a, ao, groups=c), _cba(c, b, 1, ao, ao)]
        right = c // 2 if s == 1 else c
        parts += [_cba(right, b, 1, a, a), _cba(b, b, k, a, ao, groups=b), _cba(b, b, 1, ao, ao)]
    else:
        raise ValueError(f"no closed form for {v!r}")
    weights = sum(p for p, _ in parts)
    largest = max(pair for _, pairs in parts for pair in pairs)
    return SizeEstimate(spec.name, (largest + spec.batch * c * spec.resolution**2) * FLOAT_BYTES,
                        weights * FLOAT_BYTES)


def meta_block_size(spec) -> SizeEstimate:
    """A built-in block's static peak on the meta device: what `closed_form` is tested against."""
    from mnv2prof.models.blocks import block_factory

    return _on_meta(spec.name, block_factory(spec), spec.input_shape)


def model_size(spec) -> SizeEstimate:
    """The static peak of a user's torch model at its input shape (meta device; the input alone
    when its forward cannot run there)."""
    import math

    from mnv2prof.models import plugins

    inputs = math.prod(spec.input_shape) * FLOAT_BYTES
    if inputs > 2**40:
        return SizeEstimate(spec.name, inputs, 0)
    origin = plugins.checked_origin(spec, "model")
    return _on_meta(spec.name, lambda: plugins.call_factory(origin, {}, "model"),
                    spec.input_shape, strict=False)


def network_size(spec) -> SizeEstimate:
    """The static peak of the network of `spec` (meta device; a network's widths are bounded by
    its width multiplier, which is checked on construction)."""
    from mnv2prof.models.networks import Network

    return _on_meta(spec.name, lambda: Network(spec), spec.input_shape)
