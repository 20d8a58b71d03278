import pytest
import torch

from mnv2prof.measure.eager import (
    EagerRunner,
    _peak_at,
    _top_level_ends,
    inference_graph,
    measure_memory,
    torch_threads,
)
from mnv2prof.models.blocks import build_block
from mnv2prof.models.variants import BlockSpec
from mnv2prof.run.pipeline import prepare


def test_torch_threads_are_pinned_then_restored():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_eager_runner_runs_without_autograd():
    import torch

    module = build_block(BlockSpec("dwsep", in_chs=8, resolution=8), 0)
    runner = EagerRunner(module, (1, 8, 8, 8))
    runner.input.requires_grad_(True)  # a graph would be recorded, were autograd on
    seen = []
    module.register_forward_hook(
        lambda m, args, out: seen.append((torch.is_inference_mode_enabled(), out.requires_grad))
    )
    runner()
    assert seen == [(True, False)]  # under inference_mode: no graph, no grad on the output


def test_peak_at_op_boundaries_ignores_scratch_freed_inside_an_op():
    # op A: [0, 10] allocates 100 (kept) and 50 of scratch freed at 8; op B: [11, 20] adds 30
    allocations = [(1, 100), (2, 50), (8, -50), (12, 30)]
    ends = _top_level_ends([(0, 10), (1, 9), (11, 20), (12, 13)])  # nested ops are not boundaries
    assert ends == [10, 20]
    assert _peak_at(allocations, ends) == 130
    assert _peak_at(allocations, [t for t, _ in allocations]) == 150


def test_measured_peak_agrees_with_the_static_peak_on_mbv2():
    spec = BlockSpec("mbv2", in_chs=16, resolution=16, exp_ratio=6)
    static = prepare(spec).cost.peak_act_bytes
    measured = measure_memory(inference_graph(build_block(spec, 0)), spec.input_shape)
    assert measured.peak_bytes == pytest.approx(static, rel=0.10)
    assert measured.alloc_peak_bytes >= measured.peak_bytes
