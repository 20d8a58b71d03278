"""Finding and loading profiles (profiles/shipped.py) and the commands that read them."""

import textwrap

import pytest

from mnv2prof.errors import ValueRefused
from mnv2prof.measure.timing import max_threads
from mnv2prof.profiles.shipped import ProfileError, available_profiles, load_profile, with_cache

SHIPPED = {p.stem for p in available_profiles()}
GOOD_HEAD = 'name = "p"\ndescription = "d"\n'


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


def test_with_cache_replaces_the_mode_by_timingspecs_rule():
    profile = load_profile("compare")
    assert with_cache(profile, None) is profile
    assert with_cache(profile, "cold").timing.cache == "cold"
    with pytest.raises(ValueRefused) as info:
        with_cache(profile, "hot")
    assert info.value.as_flag() == "--cache must be one of warm, cold, got 'hot'"


def test_unknown_profile_name_lists_the_available_ones():
    with pytest.raises(ProfileError, match="no profile named 'nope'.*expansion-sweep"):
        load_profile("nope")


def test_cli_profiles_lists_name_rows_description(run_cli):
    code, out, err = run_cli("profiles")
    assert code == 0, err
    # a description past the width wraps under itself: an item starts in the first column
    lines = {line.split()[0]: line for line in out.strip().splitlines() if not line[0].isspace()}
    assert set(lines) == SHIPPED
    assert "30 rows" in lines["expansion-sweep"] and "36 rows" in lines["ablation-fig6"]


def test_cli_malformed_profile_exit_2_one_line(run_cli, tmp_path, monkeypatch):
    write(tmp_path, GOOD_HEAD + "[grid]\nexp_ratio = [true]\n")
    monkeypatch.setenv("MNV2PROF_PROFILES", str(tmp_path))
    code, _, err = run_cli("profiles")
    assert code == 2
    assert f"{tmp_path / 'p.toml'}:4: [grid] exp_ratio: must be an integer, got True" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run_cli("sweep", "p", "--out", tmp_path / "out.csv")
    assert code == 2 and "p.toml:4:" in err and not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(("body", "message"), [
    ("[measure]\nbudget_s = 1e308\n",
     "[measure] budget_s: must be at most 3600 seconds (an hour), got 1e+308"),
    ("[grid]\nthreads = [2147483648]\n",
     f"[grid] threads: must be at most {max_threads():,}, got 2,147,483,648"),
])
def test_a_refused_value_is_exit_2_in_one_line_before_anything_is_measured(
    run_cli, tmp_path, monkeypatch, body, message
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("MNV2PROF_CACHE", str(cache))  # an export would write here
    monkeypatch.setenv("MNV2PROF_PROFILES", str(tmp_path))
    path = write(tmp_path, GOOD_HEAD + 'variants = ["conv"]\n' + body)
    expected = f"mnv2prof: error: {path}:5: {message}"
    for args, out in ((("sweep", "p", "--out"), "x.csv"),
                      (("baseline", "--profile", path, "--out"), "b.csv"),
                      (("profiles",), None)):
        code, _, err = run_cli(*args, *([tmp_path / out] if out else []))
        assert (code, err.strip().splitlines()) == (2, [expected]), args
        assert out is None or not (tmp_path / out).exists()
    assert not [p for p in cache.rglob("*") if p.is_file()]  # nothing exported, nothing timed
