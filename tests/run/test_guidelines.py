import numpy as np
import pytest
import torch
from torch import nn

from mnv2prof.measure.stats import Ratio, paired_ratio
from mnv2prof.models import probes as gl
from mnv2prof.run.guidelines import verdict


def _conv_macs(module, shape):
    """MACs of every Conv2d, from the shapes torch sees (the test's oracle)."""
    total = []

    def hook(conv, _, out):
        total.append(out.numel() * conv.in_channels // conv.groups * conv.kernel_size[0]
                     * conv.kernel_size[1])

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        module(torch.zeros(shape))
    for h in handles:
        h.remove()
    return sum(total)


@pytest.mark.parametrize("guideline", gl.guidelines(), ids=lambda g: g.key)
def test_closed_form_macs_match_the_modules(guideline):
    for config in guideline.configs:
        assert _conv_macs(config.build(), config.input_shape) == config.macs, config.label


def test_macs_are_equal_within_each_guideline():
    g1, g2, g3, g4 = gl.guidelines()
    assert [c.macs for c in g1.configs] == [2 * 2 * 28 * 28 * p for p in (16384, 16200, 16224,
                                                                          15552)]
    assert max(c.macs for c in g1.configs) / min(c.macs for c in g1.configs) < 1.054
    assert [c.macs for c in g2.configs] == [2 * 2 * 28 * 28 * p for p in (16384, 16200, 16384,
                                                                          16200)]
    assert len({c.macs for c in g3.configs}) == 1 and g3.configs[0].macs == 4 * 28 * 28 * 128**2
    assert len({c.macs for c in g4.configs}) == 1
    assert g4.configs[0].macs == 56 * 56 * 32 * 6 * (32 + 9 + 32)


def test_g1_ratios_and_g2_group_divisibility():
    g1, g2, *_ = gl.guidelines()
    ratios = [dict(c.params)["c2"] / dict(c.params)["c1"] for c in g1.configs]
    assert ratios == [1, 2, 6, 12]
    assert all(dict(c.params)["c"] % dict(c.params)["groups"] == 0 for c in g2.configs)


def test_verdicts_on_synthetic_samples():
    rng = np.random.default_rng(0)
    reference = 1.0 + rng.random(60) * 0.01
    assert verdict(paired_ratio(reference * 1.2, reference)) == "holds"
    assert paired_ratio(reference * 1.2, reference).median == pytest.approx(1.2)
    assert verdict(paired_ratio(reference * 1.0, reference)) == "does not hold"
    assert verdict(paired_ratio(reference * 0.8, reference)) == "does not hold"
    noisy = reference * np.where(np.arange(60) % 2 == 0, 0.9, 1.25)
    assert verdict(paired_ratio(noisy, reference)) == "inconclusive"
    assert verdict(paired_ratio(reference[:4] * 2, reference[:4])) == "inconclusive"  # no CI


def test_verdict_thresholds():
    assert verdict(Ratio(1.2, 1.051, 1.3, 50)) == "holds"
    assert verdict(Ratio(1.04, 1.03, 1.049, 50)) == "does not hold"
    assert verdict(Ratio(1.06, 1.04, 1.08, 50)) == "inconclusive"


def test_paired_ratio_uses_the_common_rounds():
    r = paired_ratio(np.array([2.0] * 10 + [100.0] * 5), np.array([1.0] * 10))
    assert r.n == 10 and r.median == 2.0


def test_guidelines_command_prints_claims_and_verdicts(run_cli, monkeypatch):
    tiny = (gl._g3(c=8, repeats=1, hw=4),)
    monkeypatch.setattr(gl, "guidelines", lambda: tiny)
    code, out, err = run_cli("guidelines", "--budget", "0.05")
    assert code == 0, err
    words = " ".join(out.split())  # notes wrap to the console's width
    assert "G3 paper: network fragmentation reduces parallelism" in words
    assert "4 in parallel / 1 fragment =" in words
    assert any(v in out for v in (": holds.", ": does not hold.", ": inconclusive."))
    for label in ("1 fragment", "2 in series", "4 in series", "2 in parallel", "4 in parallel"):
        assert label in out
