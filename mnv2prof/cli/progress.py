"""Progress bars on stderr for the long commands: done / total, elapsed, time remaining."""

from __future__ import annotations

from collections.abc import Sequence

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from mnv2prof.cli.app import stderr


def progress_bar(unit: str = "") -> Progress:
    """The progress bar of every long command, on stderr: done / total, elapsed, ETA. Only on a
    terminal, where it is erased when done: in a log or a pipe it would leave a blank line,
    and a following error would take two lines."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}" + unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,
    )


def measure_with_progress(rows: Sequence, timing, device: str = "cpu", eager: bool = True,
                          calibration: str = "minmax"):
    """`pipeline.measure_rows` with a bar for the exports and one for the timing; `rows` are
    subjects (block or model specs) or `deploy.Row`s."""
    from mnv2prof.run.pipeline import Progress as Hooks
    from mnv2prof.run.pipeline import measure_rows

    with progress_bar() as bar:
        subjects = {getattr(r, "subject", r) for r in rows}
        export_task = bar.add_task("export + count", total=len(subjects))
        timing_task = bar.add_task("timing", total=100, start=False)

        def on_export(subject, done: int, total: int) -> None:
            bar.update(export_task, completed=done, description=f"export + count {subject.name}")
            if done == total:
                bar.start_task(timing_task)

        def on_timing(fraction: float) -> None:
            bar.update(timing_task, completed=100 * fraction)

        hooks = Hooks(on_export, on_timing)
        return measure_rows(rows, timing, progress=hooks, device=device, eager=eager,
                            calibration=calibration)


def measure_profile_with_progress(plan) -> list:
    """`sweep.measure_profile` (every grid point, onnxruntime only) with a rows bar."""
    from mnv2prof.run.sweep import measure_profile

    with progress_bar(" rows") as bar:
        task = bar.add_task(plan.name, total=plan.rows)

        def on_batch(points, rows: int) -> None:
            bar.update(task, description=f"{plan.name}: {points[0].label} ..")

        def on_rows(rows: int) -> None:
            bar.advance(task, rows)

        return measure_profile(plan, on_batch, on_rows)


def sweep_with_progress(run, remote=None):
    """`Sweep.run` with a rows bar naming the grid points being timed (with `remote`, the points
    sent away)."""
    from mnv2prof.run.sweep import SweepHooks

    plan = run.profile
    with progress_bar(" rows") as bar:
        task = bar.add_task(plan.name, total=plan.rows)

        def on_start(total: int, skipped: int) -> None:
            bar.update(task, total=total, completed=skipped)

        def on_batch(points, rows: int) -> None:
            first, last = points[0], points[-1]
            label = first.label if first is last else f"{first.label} .. {last.label}"
            threads = "" if "threads" in dict(first.values) else f", {first.threads} thread(s)"
            bar.update(task, description=f"{plan.name}: {label}{threads}")

        def on_row(row) -> None:
            bar.advance(task)

        return run.run(SweepHooks(on_start, on_batch, on_row), remote=remote)
