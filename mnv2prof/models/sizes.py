"""How much memory a block or a network needs, known before any of it is allocated.

The guard against sizes nobody can run (`--channels 999999999`, `--resolution 100000`,
`network --width 1000`): the static peak, activations plus weights at fp32, is estimated
- first in plain integers from the spec (the input and output tensors, and the smallest weight a
  variant has), which is cheap and cannot overflow, and
- then, if that fits, on torch's meta device: the module is built and run on tensors that have a
  shape but no storage, every leaf module's input and output sizes are recorded, and the
  estimate is the weights plus the largest input-and-output pair of any leaf plus the block's
  input (held for a residual). That is the liveness peak's shape, without a byte allocated.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOAT_BYTES = 4


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


def _on_meta(name: str, build, input_shape: tuple[int, ...], strict: bool = True) -> SizeEstimate:
    """Build with `build()` and run it on the meta device; see the module docstring.

    `strict=False` (the user's code, which may compute on values a meta tensor does not have):
    a forward that fails on the meta device gives the input and the weights alone; the real
    forward, before export, then says what fails (models/plugins.check_forward)."""
    import math

    import torch

    with torch.device("meta"):
        module = build().eval()
        x = torch.empty(*input_shape)
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
    return SizeEstimate(name, (largest + math.prod(input_shape)) * FLOAT_BYTES, weights)


def block_size(spec) -> SizeEstimate:
    """The static peak of the block of `spec`: the integer bound if that is already past any
    machine's memory (`limit`-free: the caller compares), else the meta-device estimate."""
    from mnv2prof.models.blocks import block_factory

    bound = _lower_bound(spec)
    if bound.total_bytes > 2**40:  # a terabyte: no need to build it to know
        return bound
    return _on_meta(spec.name, block_factory(spec), spec.input_shape, strict=spec.builtin)


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
