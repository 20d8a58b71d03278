"""A profile's TOML, validated (profiles/reader.py): every error names file, line and key."""

import textwrap

import pytest

from mnv2prof.errors import ValueRefused
from mnv2prof.measure.timing import TimingSpec, max_threads
from mnv2prof.profiles.reader import ProfileError, parse_profile

GOOD_HEAD = 'name = "p"\ndescription = "d"\n'


def write(tmp_path, text: str, name: str = "p"):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def parse(path):
    return parse_profile(path, path.read_text(), max_points=None)


@pytest.mark.parametrize(
    "body, line, message",
    [
        ("[grid]\nexp_ratio = [1, 2\n", 4, "TOML syntax"),
        ("[grid]\nexp_ratio = [1, 2]\nexpansion = [3]\n", 5,
         "[grid] expansion: unknown key (did you mean 'exp_ratio'?)"),
        ("[grid]\nexp_ratio = [1, 0]\n", 4, "[grid] exp_ratio: expansion must be a positive"),
        ("[base]\nkernel_size = 4\n", 4, "[base] kernel_size: kernel must be odd"),
        ("[base]\nstride = \"2\"\n", 4, "[base] stride: must be an integer, got '2'"),
        ("[base]\nstride = true\n", 4, "[base] stride: must be an integer, got True"),
        ("[grid]\nstride = []\n", 4, "[grid] stride: expected a non-empty list"),
        ('variants = ["mbv2", "nope"]\n', 3, "variants: unknown variant 'nope'"),
        ("[measure]\nwarmup = 1\nbudget_s = -1\n", 5,
         "[measure] budget_s: must be positive, got -1"),
        ("[measure]\nbudget_s = inf\n", 4, "[measure] budget_s: must be finite, got inf"),
        ("[measure]\nbudget_s = nan\n", 4, "[measure] budget_s: must be positive, got nan"),
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
        parse(path)
    text = str(info.value)
    assert text.startswith(f"{path}:{line}: "), text
    assert message in text
    assert "\n" not in text


def test_name_must_match_file_and_description_is_required(tmp_path):
    with pytest.raises(ProfileError, match=r"p\.toml:1: name: 'other' must equal the file name"):
        parse(write(tmp_path, 'name = "other"\ndescription = "d"\n'))
    with pytest.raises(ProfileError, match=r"p\.toml:1: description: missing"):
        parse(write(tmp_path, 'name = "p"\n'))


# What the project's one rules refuse (measure.timing.TimingSpec, models.targets), in their words
# at the key's line: the same words `--budget`, `--threads`, `--precision` get on the command line.
@pytest.mark.parametrize(
    "body, line, message",
    [
        ("[measure]\nbudget_s = 1e308\n", 4,
         "[measure] budget_s: must be at most 3600 seconds (an hour), got 1e+308"),
        ("[measure]\nbudget_s = 3601\n", 4,
         "[measure] budget_s: must be at most 3600 seconds (an hour), got 3601"),
        ("[measure]\nbudget_s = \"1\"\n", 4,
         "[measure] budget_s: must be a number of seconds, got '1'"),
        ("[measure]\nmin_samples = 10\nmax_samples = 5\n", 5,
         "[measure] max_samples: must be at least 10, got 5"),
        ("[measure]\nwarmup = -1\n", 4, "[measure] warmup: must be at least 0, got -1"),
        ("[measure]\ncache = \"hot\"\n", 4,
         "[measure] cache: must be one of warm, cold, got 'hot'"),
        ("[measure]\nseed = -1\n", 4, "[measure] seed: must be at least 0, got -1"),
        ("[measure]\nbatch_rows = 0\n", 4, "[measure] batch_rows: must be positive, got 0"),
        ("[base]\nthreads = 0\n", 4, "[base] threads: must be positive, got 0"),
        ("[grid]\nthreads = [1, 2147483648]\n", 4,
         f"[grid] threads: must be at most {max_threads():,}, got 2,147,483,648"),
        ("[grid]\nprecision = [\"fp32\", \"int4\"]\n", 4,
         "[grid] precision: 'int4': choose from fp32, int8"),
        ("[[points]]\nruntime = \"tflite\"\n", 4,
         "[[points]] #1 runtime: 'tflite': choose from onnxruntime, executorch"),
    ],
)
def test_a_value_a_rule_refuses_is_that_rules_words_at_the_keys_line(tmp_path, body, line,
                                                                      message):
    path = write(tmp_path, GOOD_HEAD + body)
    with pytest.raises(ProfileError) as info:
        parse(path)
    assert str(info.value) == f"{path}:{line}: {message}"


def test_threads_get_timingspecs_cap_and_no_other(tmp_path):
    cap = max_threads()
    path = write(tmp_path, GOOD_HEAD + f'variants = ["conv"]\n[grid]\nthreads = [1, {cap}]\n')
    assert [p.threads for p in parse(path).points()] == [1, cap]
    path.write_text(path.read_text().replace(f"{cap}]", f"{cap + 1}]"))
    with pytest.raises(ProfileError) as info:
        parse(path)
    assert str(info.value) == f"{path}:5: [grid] threads: must be at most {cap:,}, got {cap + 1:,}"
    with pytest.raises(ValueRefused) as info:  # the rule a profile reaches is TimingSpec's own
        TimingSpec(threads=cap + 1)
    assert info.value.problem == f"must be at most {cap:,}, got {cap + 1:,}"
