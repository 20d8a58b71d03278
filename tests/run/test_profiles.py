import textwrap

import pytest

from mnv2prof.run.profiles import ProfileError, available_profiles, load_profile

SHIPPED = {p.stem for p in available_profiles()}


def write(tmp_path, text: str, name: str = "p"):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_shipped_profiles_load_and_are_named_after_their_files():
    assert {"compare", "expansion-sweep", "kernel-sizes", "resolution-width", "thread-scaling",
            "ablation-fig6"} <= SHIPPED
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name and profile.description


def test_expansion_sweep_is_t_1_to_10():
    profile = load_profile("expansion-sweep")
    points = profile.points()
    assert [dict(p.values)["exp_ratio"] for p in points] == list(range(1, 11))
    assert profile.rows == 10 * len(profile.variants)
    assert {s.exp_ratio for s in profile.subjects()} == set(range(1, 11))


def test_ablation_fig6_follows_mobilenetv2_table_2():
    profile = load_profile("ablation-fig6")
    assert profile.variant_names == ("mbv2", "mbv2-nonlinear", "mbv2-noskip")
    shapes = [
        (s.in_chs, s.out_chs, s.resolution, s.exp_ratio, s.stride)
        for s in (p.subjects[0] for p in profile.points())
    ]
    # Table 2 at 224x224: each stage's first block, then its repeated block when n > 1.
    assert shapes == [
        (32, 16, 112, 1, 1),
        (16, 24, 112, 6, 2), (24, 24, 56, 6, 1),
        (24, 32, 56, 6, 2), (32, 32, 28, 6, 1),
        (32, 64, 28, 6, 2), (64, 64, 14, 6, 1),
        (64, 96, 14, 6, 1), (96, 96, 14, 6, 1),
        (96, 160, 14, 6, 2), (160, 160, 7, 6, 1),
        (160, 320, 7, 6, 1),
    ]
    assert profile.rows == 36


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


GOOD_HEAD = 'name = "p"\ndescription = "d"\n'


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("[grid]\nexp_ratio = [1, 2\n", 4, "TOML syntax"),
        ("[grid]\nexp_ratio = [1, 2]\nexpansion = [3]\n", 5,
         "[grid] expansion: unknown key (did you mean 'exp_ratio'?)"),
        ("[grid]\nexp_ratio = [1, 0]\n", 4, "[grid] exp_ratio: expansion must be a positive"),
        ("[base]\nkernel_size = 4\n", 4, "[base] kernel_size: kernel must be odd"),
        ("[base]\nstride = \"2\"\n", 4, "[base] stride: expected an integer, got '2'"),
        ("[grid]\nstride = []\n", 4, "[grid] stride: expected a non-empty list"),
        ('variants = ["mbv2", "nope"]\n', 3, "variants: unknown variant 'nope'"),
        ("[measure]\nwarmup = 1\nbudget_s = -1\n", 5, "[measure] budget_s: expected a positive"),
        ("[measure]\nbudget_s = inf\n", 4, "[measure] budget_s: expected a positive"),
        ("[measure]\nbudget_s = nan\n", 4, "[measure] budget_s: expected a positive"),
        ("[measure]\nbudget = 1\n", 4, "[measure] budget: unknown key (did you mean 'budget_s'?)"),
        ("[grid]\nin_chs = [8]\n[[points]]\nresolution = 8\n[[points]]\nin_chs = 16\n", 8,
         "[[points]] #2 in_chs: also a [grid] axis"),
        ('variants = ["shufflev2"]\n[base]\nin_chs = 7\n', 3,
         "variants: a grid point cannot be built: shufflev2 splits channels"),
        ("threads = 2\n", 3, "threads: unknown key"),
    ],
)
def test_malformed_profile_names_file_line_and_key(tmp_path, body, line, message):
    path = write(tmp_path, GOOD_HEAD + body)
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text
    assert "\n" not in text


def test_name_must_match_file_and_description_is_required(tmp_path):
    with pytest.raises(ProfileError, match=r"p\.toml:1: name: 'other' must equal the file name"):
        load_profile(write(tmp_path, 'name = "other"\ndescription = "d"\n'))
    with pytest.raises(ProfileError, match=r"p\.toml:1: description: missing"):
        load_profile(write(tmp_path, 'name = "p"\n'))


def test_unknown_profile_name_lists_the_available_ones():
    with pytest.raises(ProfileError, match="no profile named 'nope'.*expansion-sweep"):
        load_profile("nope")


def test_cli_profiles_lists_name_rows_description(run_cli):
    code, out, err = run_cli("profiles")
    assert code == 0, err
    lines = {line.split()[0]: line for line in out.strip().splitlines()}
    assert set(lines) == SHIPPED
    assert "30 rows" in lines["expansion-sweep"] and "36 rows" in lines["ablation-fig6"]


def test_cli_malformed_profile_exit_2_one_line(run_cli, tmp_path, monkeypatch):
    write(tmp_path, GOOD_HEAD + "[grid]\nexp_ratio = [true]\n")
    monkeypatch.setenv("MNV2PROF_PROFILES", str(tmp_path))
    code, out, err = run_cli("profiles")
    assert code == 2
    assert f"{tmp_path / 'p.toml'}:4: [grid] exp_ratio: expected an integer" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run_cli("sweep", "p", "--out", tmp_path / "out.csv")
    assert code == 2 and "p.toml:4:" in err and not (tmp_path / "out.csv").exists()
