"""The size check's closed form for built-in blocks equals the meta device's figure."""

import itertools

import pytest

from mnv2prof.errors import SpecError
from mnv2prof.models.sizes import block_size, closed_form, meta_block_size
from mnv2prof.models.variants import VARIANTS, BlockSpec

# every built-in variant over the shapes that change which leaves run (t = 1 drops conv_pw,
# stride 2 and a channel change add a projection, chunks split the expanded tensor)


def _spec(**values):
    try:
        return BlockSpec(**values)
    except SpecError:  # e.g. shufflev2 at stride 1 with a channel change
        return None


GRID = [s for s in (
    _spec(variant=v, in_chs=c, out_chs=o, resolution=r, exp_ratio=t, kernel_size=k, stride=s,
          batch=b, chunks=(2 if v == "mbv2-streamed" and c * t % 2 == 0 else 1))
    for v, c, o, r, t, k, s, b in itertools.product(
        VARIANTS, (16, 24), (16, 32), (7, 14), (1, 6), (3, 5), (1, 2), (1, 2))
) if s is not None]


def test_the_grid_covers_every_variant():
    assert {s.variant for s in GRID} == set(VARIANTS) and len(GRID) > 400


@pytest.mark.parametrize("spec", GRID, ids=lambda s: s.name)
def test_closed_form_equals_the_meta_device(spec):
    assert closed_form(spec) == meta_block_size(spec)


def test_block_size_of_a_builtin_is_the_closed_form_and_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; from mnv2prof.models.sizes import block_size;"
            "from mnv2prof.models.variants import BlockSpec;"
            "e = block_size(BlockSpec('mbv2', in_chs=32, resolution=56));"
            "print(e.total_bytes, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    total, imported = out.stdout.split()
    assert int(total) == block_size(BlockSpec("mbv2", in_chs=32, resolution=56)).total_bytes
    assert imported == "False"


@pytest.mark.parametrize("spec", [
    BlockSpec("resnet", 64, resolution=7, exp_ratio=6, reduction=2),
    BlockSpec("resnet", 24, 32, resolution=14, exp_ratio=1, reduction=3, stride=2),
], ids=lambda s: s.name)
def test_closed_form_reads_resnets_own_width(spec):
    assert closed_form(spec) == meta_block_size(spec)
    assert closed_form(spec) != closed_form(spec.with_(reduction=None))
