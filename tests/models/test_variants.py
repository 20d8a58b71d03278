import pytest

from mnv2prof.errors import SpecError
from mnv2prof.models.variants import (
    DEFAULT_VARIANTS,
    VARIANTS,
    BlockSpec,
    format_spec,
    make_divisible,
    parse_spec,
    parse_variant_list,
)


def test_eight_default_variants_in_the_documented_order():
    assert DEFAULT_VARIANTS == (
        "conv", "dwsep", "mbv2", "mbv2-nonlinear", "mbv2-noskip", "resnet", "fused", "shufflev2",
    )  # fmt: skip
    assert list(VARIANTS) == [*DEFAULT_VARIANTS, "mbv2-streamed"]


@pytest.mark.parametrize(
    "text",
    [
        "mbv2_c32_r56_e6_k3_s1_b1",
        "mbv2-nonlinear_c16_r28_e1_k5_s2_b4",
        "conv_c32_o64_r56_e6_k3_s2_b1",
        "shufflev2_c48_r14_e6_k3_s1_b1",
        "mbv2-streamed_c32_r56_e6_k3_s1_b1",
        "mbv2-streamed_c32_o64_r56_e6_k3_s2_b1_p6",
    ],
)
def test_format_parse_round_trip(text):
    assert format_spec(parse_spec(text)) == text


def test_parse_fills_defaults_and_out_chs():
    spec = parse_spec("fused_c24")
    assert spec == BlockSpec("fused", in_chs=24, out_chs=24, resolution=56, exp_ratio=6)
    assert spec.input_shape == (1, 24, 56, 56)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("mbv2_c32_x5", "bad token 'x5'"),
        ("mbv2_c32_eabc", "bad token 'eabc'"),
        ("mbv2_c32_c16", "repeats in_chs"),
        ("nope_c32", "unknown variant 'nope'"),
        ("mbv2_e0", "expansion must be a positive integer, got 0"),
        ("mbv2_s3", "stride must be 1 or 2, got 3"),
        ("conv_k4", "kernel must be odd"),
        ("shufflev2_c30_o31_s2", "channels must be even"),
        ("mbv2_p2", "chunks applies only to mbv2-streamed, not mbv2"),
        ("mbv2-streamed_c8_e3_p5", "chunks 5 must divide the expanded channels 8 x 3 = 24"),
        ("mbv2-streamed_p0", "chunks must be a positive integer, got 0"),
        ("mbv2-streamed_p2_p3", "repeats chunks"),
    ],
)
def test_bad_specs_name_the_problem(text, fragment):
    with pytest.raises(SpecError, match=fragment.replace("(", r"\(")):
        parse_spec(text)


@pytest.mark.parametrize("field", ["in_chs", "resolution", "exp_ratio", "batch"])
@pytest.mark.parametrize("value", [0, -3])
def test_non_positive_values_rejected(field, value):
    with pytest.raises(SpecError, match="must be a positive integer"):
        BlockSpec("mbv2", **{field: value})


def test_chunks_token_written_only_when_not_one():
    assert BlockSpec("mbv2-streamed").name == "mbv2-streamed_c32_r56_e6_k3_s1_b1"
    assert BlockSpec("mbv2-streamed", chunks=6).name == "mbv2-streamed_c32_r56_e6_k3_s1_b1_p6"
    assert parse_spec("mbv2-streamed_c16_p4").chunks == 4
    assert BlockSpec("mbv2-streamed", chunks=2).label == "mbv2-streamed/k2"
    assert BlockSpec("mbv2").label == "mbv2"


def test_digest_unchanged_by_the_chunks_field_at_its_default():
    # the hash of a spec written before `chunks` existed (fields without it, no extras)
    assert BlockSpec("mbv2").digest() == "d209652251c9b835"
    assert BlockSpec("mbv2-streamed").digest() != BlockSpec("mbv2-streamed", chunks=2).digest()


def test_digest_is_stable_and_sensitive():
    a, b = BlockSpec("mbv2"), BlockSpec("mbv2", exp_ratio=4)
    assert a.digest() == BlockSpec("mbv2").digest()
    assert a.digest() != b.digest()
    assert a.digest("torch 2.13") != a.digest("torch 2.14")


def test_variant_list_parsing():
    assert [r.name for r in parse_variant_list(" conv, mbv2 ")] == ["conv", "mbv2"]
    assert all(r.source == "" for r in parse_variant_list("conv,mbv2"))
    with pytest.raises(SpecError, match="unknown variant 'foo'"):
        parse_variant_list("conv,foo")
    with pytest.raises(SpecError, match="no variant given"):
        parse_variant_list(" , ")


@pytest.mark.parametrize(
    "value, expected",
    [(32 * 0.75, 24), (16 * 1.4, 24), (32 / 6, 8), (1280 * 1.4, 1792), (96 * 0.35, 32), (20, 24)],
)
def test_make_divisible_matches_torchvision(value, expected):
    assert make_divisible(value) == expected


def test_chunk_lists_expand_only_streamed_specs():
    from mnv2prof.models.variants import parse_chunk_list, with_chunks

    assert parse_chunk_list("1, 2,6") == (1, 2, 6)
    for bad, fragment in (("0", "'0'"), ("2,x", "'x'"), ("", "''"), ("2,2", "listed twice")):
        with pytest.raises(SpecError, match=fragment):
            parse_chunk_list(bad)
    specs = with_chunks([BlockSpec("mbv2"), BlockSpec("mbv2-streamed")], (1, 2, 6))
    assert [s.label for s in specs] == [
        "mbv2", "mbv2-streamed/k1", "mbv2-streamed/k2", "mbv2-streamed/k6",
    ]  # fmt: skip


# Computed on branch core (252c75a) before resnet's reduction and BlockSpec.keywords() existed:
# stored baselines and results files hash their rows with these.
CORE_DIGESTS_1 = {
    "conv": "c5e30b99110274d1", "dwsep": "c6729607642f66a9", "mbv2": "6e948aa9c6ad461d",
    "mbv2-nonlinear": "c406eb5651e826cf", "mbv2-noskip": "e67b268689508bda",
    "resnet": "f998b04447257584", "fused": "af2da9668d222157", "shufflev2": "d386fe515cfda901",
    "mbv2-streamed": "f1e8f5a3ca91e9d9",
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_builtin_digests_and_strings_are_those_of_core(variant):
    spec = BlockSpec(variant)
    assert spec.digest(1) == CORE_DIGESTS_1[variant]
    assert spec.name == f"{variant}_c32_r56_e6_k3_s1_b1"


def test_other_digests_are_those_of_core():
    resnet = BlockSpec("resnet", 64, resolution=7, exp_ratio=4, kernel_size=7)
    assert (resnet.name, resnet.digest()) == ("resnet_c64_r7_e4_k7_s1_b1", "317bbdececdc4cd8")
    assert BlockSpec("resnet").digest() == "1cd71b677772afc0"
    assert BlockSpec("mbv2-streamed", chunks=6).digest() == "aa9002303d972d37"
    users = BlockSpec("UIB", source="/x/y.py:UIB", source_hash="0123456789abcdef")
    assert (users.name, users.digest(1)) == ("UIB_c32_r56_e6_k3_s1_b1", "256ba69d03987fc1")


@pytest.mark.parametrize(
    "spec, mid_chs",
    [
        (BlockSpec("mbv2", 64, exp_ratio=6), 384),  # expands: C x t
        (BlockSpec("fused", 24, exp_ratio=4), 96),
        (BlockSpec("mbv2-streamed", 32, exp_ratio=6, chunks=6), 192),
        (BlockSpec("resnet", 64, exp_ratio=6), 16),  # narrows: 64 / 6 = 10.7, rounded to 8 is
        (BlockSpec("resnet", 32, exp_ratio=6), 8),  # more than 10% down, so 16; 5.3 -> 8 (>= 8)
        (BlockSpec("resnet", 32, exp_ratio=1), 32),
        (BlockSpec("resnet", 64, exp_ratio=6, reduction=2), 32),  # its own divisor, not t
        (BlockSpec("resnet", 64, exp_ratio=1, reduction=4), 16),
        (BlockSpec("resnet", 64, source="/x/y.py:resnet", source_hash="0" * 16), 384),  # a user's
    ],
    ids=lambda v: v.name if isinstance(v, BlockSpec) else str(v),
)
def test_mid_chs_is_one_rule_per_variant(spec, mid_chs):
    assert spec.mid_chs == mid_chs
    assert spec.keywords()["mid_chs"] == mid_chs


def test_resnets_reduction_follows_t_unless_given():
    follows = BlockSpec("resnet", 64, exp_ratio=2)
    assert follows.reduction is None and follows.mid_chs == 32
    assert follows.with_(exp_ratio=4).mid_chs == 16  # a sweep over exp_ratio still moves it
    pinned = BlockSpec("resnet", 64, exp_ratio=2, reduction=2)
    assert pinned.with_(exp_ratio=4).mid_chs == 32
    assert pinned.digest(1) != follows.digest(1)  # the field enters the identity once given
    assert "reduction" not in follows.identity() and pinned.identity()["reduction"] == 2


def test_reduction_token_written_only_when_given():
    assert BlockSpec("resnet", reduction=4).name == "resnet_c32_r56_e6_k3_s1_b1_d4"
    text = "resnet_c32_r56_e6_k3_s1_b1_d4"
    assert format_spec(parse_spec(text)) == text
    assert parse_spec("resnet_c64_d2") == BlockSpec("resnet", 64, reduction=2)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"variant": "mbv2", "reduction": 4}, "reduction applies only to the built-in resnet, not mbv2"),
        ({"variant": "resnet", "reduction": 0}, "reduction must be a positive integer, got 0"),
        ({"variant": "resnet", "reduction": True}, "reduction must be a positive integer"),
        ({"variant": "resnet", "source": "/x/y.py:resnet", "source_hash": "0" * 16,
          "reduction": 2}, "reduction applies only to the built-in resnet, not resnet"),
    ],
)
def test_reduction_is_resnets_alone(values, message):
    with pytest.raises(SpecError, match=message):
        BlockSpec(**values)


def test_keywords_are_the_vocabulary_and_chunks_only_where_taken():
    assert BlockSpec("mbv2", 8, 16, exp_ratio=4, kernel_size=5, stride=2).keywords() == {
        "in_chs": 8, "out_chs": 16, "mid_chs": 32, "exp_ratio": 4, "kernel_size": 5, "stride": 2,
    }  # fmt: skip
    assert BlockSpec("mbv2-streamed", 8, chunks=2).keywords()["chunks"] == 2
    assert "chunks" not in BlockSpec("conv").keywords()
