"""The sentences report.notes and report.cuda_report make of the facts run/ and measure/ give:
word for word what the tool printed before the facts moved below."""

import pytest

from mnv2prof.measure.cuda import OrtCudaGap, OrtCudaReason
from mnv2prof.measure.timing import CACHE_COLD
from mnv2prof.report.cuda_report import ort_gap_note
from mnv2prof.report.notes import calibrate_hint, cold_cache_note, run_notes, slow_state_note
from mnv2prof.run.history import SlowState
from mnv2prof.run.pipeline import Measured

NOT_LISTED = OrtCudaGap(OrtCudaReason.NOT_LISTED, "1.2.3")
NOT_LOADED = OrtCudaGap(OrtCudaReason.NOT_LOADED, "1.2.3")


def test_a_slow_state_is_one_line_with_the_counts_and_the_range():
    state = SlowState(slow=2, known=3, low_rel=0.5616 / 0.530 - 1, high_rel=1.1731 / 0.97 - 1,
                      rows=5)
    assert slow_state_note(state) == (
        "! 2 of the 3 rows this machine has timed before (of 5) read 6-21% above the fastest "
        "calls this machine has given for them: the machine was in a slow state for the whole "
        "run (ratios of memory-bound blocks move most); run again.")
    every = SlowState(slow=2, known=3, low_rel=0.06, high_rel=0.2, rows=3)
    assert slow_state_note(every).startswith("! 2 of the 3 rows this machine has timed before "
                                             "read 6-20% above")


@pytest.mark.parametrize(("gap", "line"), [
    (NOT_LISTED, ("onnxruntime 1.2.3 has no CUDAExecutionProvider (install onnxruntime-gpu): "
                  "the onnxruntime GPU column is left out.")),
    (NOT_LOADED, ("onnxruntime 1.2.3 lists CUDAExecutionProvider but could not load it (CUDA or "
                  "cuDNN libraries missing?): the onnxruntime GPU column is left out.")),
])
def test_why_the_onnxruntime_gpu_column_is_left_out(gap, line):
    assert ort_gap_note(gap) == line


def test_run_notes_say_cold_mode_then_what_was_left_out():
    assert run_notes(Measured([], None)) == []
    assert run_notes(Measured([], None, (NOT_LISTED,))) == [ort_gap_note(NOT_LISTED)]
    cold = Measured([], None, (NOT_LOADED,), cache_mode=CACHE_COLD)
    assert run_notes(cold) == [cold_cache_note(), ort_gap_note(NOT_LOADED)]


def test_the_calibrate_hint_names_the_thread_count():
    assert calibrate_hint(4) == "run mnv2prof calibrate --threads 4"
