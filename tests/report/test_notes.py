"""The sentences report.notes makes of the facts run/ and measure/ give: word for word what the
tool printed before the facts moved below."""

from mnv2prof.report.notes import calibrate_hint, slow_state_note
from mnv2prof.run.history import SlowState


def test_a_slow_state_is_one_line_with_the_counts_and_the_range():
    state = SlowState(slow=2, known=3, low_rel=0.5616 / 0.530 - 1, high_rel=1.1731 / 0.97 - 1)
    assert slow_state_note(state) == (
        "! 2 of 3 rows read 6-21% above the fastest calls this machine has given for them: the "
        "machine was in a slow state for the whole run (ratios of memory-bound blocks move "
        "most); run again.")


def test_the_calibrate_hint_names_the_thread_count():
    assert calibrate_hint(4) == "run mnv2prof calibrate --threads 4"
