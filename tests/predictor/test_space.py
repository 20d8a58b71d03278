"""The sampling space: its rules in one place (a profile, the API and the defaults alike), and
networks drawn from it reproducibly."""

import dataclasses

import numpy as np
import pytest

from mnv2prof.predictor.space import Space, SpaceError, load_space, random_arch, random_lone_block


def _profile(tmp_path, text: str):
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_issue_space():
    space = Space()
    assert space.resolution == (96, 320) and space.width == (0.35, 1.4)
    assert space.kernel_size == (3, 5, 7) and space.exp_ratio == (3, 4, 6)
    assert set(space.activation) == {"relu6", "hswish"} and set(space.se) == {False, True}


def test_profile_values_replace_the_defaults(tmp_path):
    space = load_space(_profile(tmp_path, "[space]\nkernel_size = [3]\nwidth = [0.5, 1]\n"
                                          "[build]\nnetworks = 0\nkernel_budget_s = 0.01\n"))
    assert space.kernel_size == (3,) and space.width == (0.5, 1.0)
    assert (space.networks, space.kernel_budget_s) == (0, 0.01)
    assert space.exp_ratio == Space().exp_ratio


@pytest.mark.parametrize("text, fragment", [
    ("[space]\nkernel_size = []\n", "kernel_size is empty: the space holds no network"),
    ("[space]\nactivation = []\n", "activation is empty"),
    ("[space]\nkernels = [3]\n", "[space] kernels is not a key of the space"),
    ("[grid]\nx = 1\n", "unknown table [grid]"),
    ("[space]\nkernel_size = [4]\n", "kernel_size must hold odd positive sizes"),
    ("[space]\nwidth = [1.0]\n", "width must be [smallest, largest]"),
    ("[space]\nresolution = [320, 96]\n", "resolution must be [smallest, largest]"),
    ("[space]\nactivation = [\"gelu\"]\n", "activation has gelu"),
    ("[space]\nse = [1]\n", "must hold bool values"),
    ("[build]\nnetworks = -1\n", "networks must be 0 or more"),
    ("[space\n", "not TOML"),
])
def test_bad_profile_is_one_line_naming_file_and_key(tmp_path, text, fragment):
    path = _profile(tmp_path, text)
    with pytest.raises(SpaceError) as caught:
        load_space(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and fragment in message and "\n" not in message
    assert caught.value.exit_code == 2


def test_missing_profile(tmp_path):
    with pytest.raises(SpaceError, match="not found"):
        load_space(tmp_path / "nope.toml")


def test_api_space_is_checked_too():
    with pytest.raises(SpaceError, match="exp_ratio is empty"):
        Space(exp_ratio=())


def test_draws_are_reproducible_and_inside_the_space():
    space = Space(shuffle=0.0)
    first = [random_arch(space, np.random.default_rng(seed)) for seed in range(20)]
    again = [random_arch(space, np.random.default_rng(seed)) for seed in range(20)]
    assert first == again
    for arch in first:
        assert 96 <= arch.resolution <= 320 and arch.resolution % 16 == 0
        assert all(b.kind == "ir" and b.out_chs % 8 == 0 for b in arch.blocks)
        assert {b.kernel_size for b in arch.blocks} <= {3, 5, 7}
        assert {b.exp_ratio for b in arch.blocks[1:]} <= {3, 4, 6}
        assert arch.blocks[0].exp_ratio == 1  # MobileNetV2's first bottleneck
    assert len({a.resolution for a in first}) > 1


def test_shuffle_share_one_draws_shufflenets():
    arch = random_arch(dataclasses.replace(Space(), shuffle=1.0), np.random.default_rng(0))
    assert {b.kind for b in arch.blocks} == {"shuffle"} and arch.max_pool
    assert all(b.out_chs % 4 == 0 for b in arch.blocks)


def test_lone_blocks_fit_their_input():
    space = Space()
    for seed in range(30):
        lone = random_lone_block(space, np.random.default_rng(seed))
        if lone.block.kind == "shuffle" and lone.block.stride == 1:
            assert lone.in_chs == lone.block.out_chs
        assert lone.resolution >= 4
