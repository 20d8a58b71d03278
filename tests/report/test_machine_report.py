"""What `calibrate` and `guidelines` print (report.machine_report), from the facts below."""

from mnv2prof.measure.roofline import MachineCeilings
from mnv2prof.measure.stats import Ratio
from mnv2prof.models.probes import Config, Guideline
from mnv2prof.report.machine_report import calibration_lines, guideline_sentence
from mnv2prof.run.guidelines import ConfigResult, GuidelineResult


def test_calibration_lines_give_the_ceilings_and_the_ridge():
    machine = MachineCeilings("Test CPU", 2, 1234.56, 10.0, 50.0, "1.0", "t")
    assert calibration_lines(machine) == [
        "peak compute: 1,234.6 GFLOP/s",
        "memory bandwidth: 10.0 GB/s (beyond the last-level cache), 50.0 GB/s (L2-resident)",
        "ridge point: 24.69 FLOP/B; Test CPU, 2 thread(s)",
    ]


def test_a_guideline_is_the_papers_claim_beside_the_measured_ratio():
    configs = tuple(Config(label, (), lambda: None, (1, 8, 4, 4), 100) for label in ("a", "b"))
    guideline = Guideline("G9", "b is slower than a", configs, reference="a", contrast="b")
    rows = tuple(ConfigResult(c, 100, 1, 64, 1, 1.0, Ratio(r, r - 0.1, r + 0.1, 40))
                 for c, r in zip(configs, (1.0, 1.5), strict=True))
    assert guideline_sentence(GuidelineResult(guideline, rows)) == (
        "G9 paper: b is slower than a. Here: b / a = 1.500x (95% CI 1.400-1.600, 40 paired "
        "rounds): holds.")
