"""A profile's grid (profiles/grid.py): its points, made and counted."""

import textwrap
from pathlib import Path

from mnv2prof.models.targets import Target
from mnv2prof.models.variants import parse_variant_list
from mnv2prof.profiles.grid import Profile
from mnv2prof.profiles.shipped import load_profile


def write(tmp_path, text: str, name: str = "p"):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_grid_is_a_product_applied_to_every_point(tmp_path):
    path = write(tmp_path, """
        name = "p"
        description = "d"
        variants = ["conv", "mbv2"]
        [base]
        in_chs = 8
        resolution = 16
        [grid]
        exp_ratio = [1, 2]
        threads = [1, 2]
        [[points]]
        resolution = 8
        [[points]]
        in_chs = 16
        [measure]
        budget_s = 0.05
        seed = 3
    """)
    profile = load_profile(path)
    points = profile.points()
    assert len(points) == 2 * 2 * 2 and profile.rows == 16
    first = points[0]
    assert first.threads == 1 and dict(first.values) == {"resolution": 8, "exp_ratio": 1,
                                                         "threads": 1}
    assert [s.name for s in first.subjects] == ["conv_c8_r8_e1_k3_s1_b1", "mbv2_c8_r8_e1_k3_s1_b1"]
    assert points[-1].subjects[1].name == "mbv2_c16_r16_e2_k3_s1_b1" and points[-1].threads == 2
    assert profile.timing_for(points[-1]).threads == 2
    assert profile.timing.budget_s == 0.05 and profile.seed == 3


def test_points_and_rows_are_counted_without_making_them():
    profile = Profile(
        "p", "d", Path("p.toml"), parse_variant_list(["conv", "mbv2"]), base=(("in_chs", 8),),
        grid=(("exp_ratio", (1, 2, 3)), ("precision", ("fp32", "int8"))),
        points_table=((("resolution", 8),), (("resolution", 16),)),
    )
    assert (profile.block_points, profile.point_count, profile.rows) == (12, 12, 24)
    points = profile.points()
    assert len(points) == 12 and sum(len(p.subjects) for p in points) == 24
    first, last = points[0], points[-1]
    assert first.label == "resolution=8 exp_ratio=1 precision=fp32"
    assert (first.threads, first.target) == (1, Target("fp32", "onnxruntime"))
    assert last.target == Target("int8", "onnxruntime") and last.subjects[1].resolution == 16
    # an int8 row's spec_hash adds its precision and runtime; fp32 onnxruntime's adds nothing
    assert first.row_hash(first.subjects[0]) == first.subjects[0].digest(1)
    assert last.row_hash(last.subjects[0]) == last.subjects[0].digest(1, "int8", "onnxruntime")


def test_a_profile_without_a_grid_is_one_point_of_the_defaults():
    profile = Profile("p", "d", Path("p.toml"), parse_variant_list(["dwsep"]), (), (), ())
    (point,) = profile.points()
    assert point.label == "defaults" and (profile.point_count, profile.rows) == (1, 1)
    assert point.subjects[0].name == "dwsep_c32_r56_e6_k3_s1_b1"
