"""`compare`: block variants and models exported, counted and timed side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnv2prof.run.pipeline import Measured, Progress, measure_rows
from mnv2prof.run.plan import Plan

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Compared:
    """A compare's rows and what the report says about how they were measured."""

    plan: Plan
    frame: pd.DataFrame  # the CSV's columns, the ratio columns, the roofline's when calibrated
    measured: Measured  # the records, the harness floor, what was left out
    machine: object | None  # measure.roofline's calibration at the plan's threads, or None
    slow_state: object | None  # run.history.SlowState: the run read well above this machine's
    # best fastest calls (None: it did not, or too few rows are known)


def compare(plan: Plan, progress: Progress | None = None) -> Compared:
    """Check `plan`, measure its rows, add the ratios to its baseline row and the roofline
    columns, and keep each row's fastest call in this machine's history."""
    from mnv2prof.run.frame import add_roofline, records_frame
    from mnv2prof.run.history import record_fastest
    from mnv2prof.run.machine_file import load_machine

    plan.check()
    measured = measure_rows(plan.rows(), plan.timing, plan.seed, progress, plan.calibration,
                            plan.device, plan.eager)
    machine = load_machine(plan.timing.threads)  # measured by `calibrate`, never here
    frame = add_roofline(records_frame(measured.records, plan.baseline), machine)
    return Compared(plan, frame, measured, machine, record_fastest(frame))
