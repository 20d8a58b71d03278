"""Sentences for under the tables that depend on how a run was measured: the cache state, the
roofline's ceilings, what was left out, a run spent in the machine's slow state. (The step that
measured gives the facts; the report says them.)"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from mnv2prof.run.machine_file import calibrate_command

if TYPE_CHECKING:
    from mnv2prof.run.history import SlowState


def cold_cache_note(llc_bytes: int | None = None) -> str:
    """What cold mode does on this machine, in one line (for under a table)."""
    from mnv2prof.measure.latency import FLUSH_LLC_MULTIPLE
    from mnv2prof.measure.machine import last_level_cache_bytes

    llc = llc_bytes or last_level_cache_bytes()
    mib = 2**20
    return (
        f"cache cold: before every timed call {FLUSH_LLC_MULTIPLE * llc / mib:,.0f} MiB are read "
        f"and written ({FLUSH_LLC_MULTIPLE} x the {llc / mib:,.0f} MiB last-level cache, from "
        "sysfs), outside the timed region, so weights and input come from memory."
    )


def calibrate_hint(threads: int) -> str:
    """How to get the roofline's ceilings at `threads`."""
    return f"run {calibrate_command(threads)}"


def roofline_notes(frame: pd.DataFrame, machine, threads: int) -> list[str]:
    """Under the table: which ceilings the bound used, or how to get them; and any row whose
    efficiency exceeds 1 (a wrong bound)."""
    if machine is None:
        return [(f"no roofline bound: this CPU has no calibration at {threads} thread(s); "
                f"{calibrate_hint(threads)}.")]
    notes = [
        (f"roofline bound = max(FLOPs / {machine.peak_gflops:,.1f} GFLOP/s, bytes moved / "
        f"{machine.bandwidth_gbs:,.1f} GB/s) (calibrated {machine.timestamp}); "
        "efficiency = bound / latency median.")
    ]
    above = frame.loc[frame["roofline_efficiency_x"] > 1, ["variant", "roofline_efficiency_x"]]
    if not above.empty:
        rows = ", ".join(f"{v} ({e:.2f})" for v, e in above.itertuples(index=False))
        notes.append(
            f"! efficiency above 1 for {rows}: the bound is wrong (the block beat the calibrated "
            "ceilings; bytes moved may count traffic onnxruntime's fusions avoid, or the "
            f"calibration is stale: {calibrate_hint(threads)})."
        )
    return notes


def run_notes(measured) -> list[str]:
    """What a measured run (run.pipeline.Measured) says under its tables: what cold mode did,
    then what was left out and why (its `notes`: measure.cuda.OrtCudaGap facts)."""
    from mnv2prof.measure.timing import CACHE_COLD

    cold = [cold_cache_note()] if measured.cache_mode == CACHE_COLD else []
    if not measured.notes:
        return cold
    from mnv2prof.report.cuda_report import ort_gap_note

    return cold + [ort_gap_note(gap) for gap in measured.notes]


def slow_state_note(state: SlowState) -> str:
    """A run spent wholly in the machine's slow state (run.history.record_fastest), in one
    line."""
    known = (f"the {state.known} rows this machine has timed before"
             + (f" (of {state.rows})" if state.rows > state.known else ""))
    return (f"! {state.slow} of {known} read {100 * state.low_rel:.0f}-"
            f"{100 * state.high_rel:.0f}% above the fastest calls this machine has given for "
            "them: the machine was in a slow state for the whole run (ratios of memory-bound "
            "blocks move most); run again.")
