"""Progress bars on stderr for the long commands: done / total, elapsed, time remaining. Each
yields the hooks a command (mnv2prof.commands) calls; the command never knows it is watched."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


@contextlib.contextmanager
def plan_progress(plan) -> Iterator[object]:
    """Hooks (run.pipeline.Progress) for measuring `plan`: a bar for the exports and one for
    the timing, or for a profile's grid a rows bar naming the points being timed."""
    if plan.profile is not None:
        with rows_progress(plan.profile) as hooks:
            yield hooks
        return
    from mnv2prof.run.pipeline import Progress as Hooks

    with progress_bar() as bar:
        export_task = bar.add_task("export + count", total=len(set(plan.subjects)))
        timing_task = bar.add_task("timing", total=100, start=False)

        def on_export(subject, done: int, total: int) -> None:
            bar.update(export_task, completed=done, description=f"export + count {subject.name}")
            if done == total:
                bar.start_task(timing_task)

        def on_timing(fraction: float) -> None:
            bar.update(timing_task, completed=100 * fraction)

        yield Hooks(on_export, on_timing)


@contextlib.contextmanager
def rows_progress(profile) -> Iterator[object]:
    """Hooks for a profile's grid measured as `sweep.measure_profile` measures it: a rows bar."""
    from mnv2prof.run.pipeline import Progress as Hooks

    with progress_bar(" rows") as bar:
        task = bar.add_task(profile.name, total=profile.rows)

        def on_batch(points, rows: int) -> None:
            bar.update(task, description=f"{profile.name}: {points[0].label} ..")

        def on_rows(rows: int) -> None:
            bar.advance(task, rows)

        yield Hooks(on_batch=on_batch, on_rows=on_rows)


@contextlib.contextmanager
def sweep_progress(profile) -> Iterator[object]:
    """Hooks (sweeps.sweep.SweepHooks) for `sweep`: a rows bar naming the grid points being timed
    (on a cluster, the points sent away)."""
    from mnv2prof.sweeps.sweep import SweepHooks

    with progress_bar(" rows") as bar:
        task = bar.add_task(profile.name, total=profile.rows)

        def on_start(total: int, skipped: int) -> None:
            bar.update(task, total=total, completed=skipped)

        def on_batch(points, rows: int) -> None:
            first, last = points[0], points[-1]
            label = first.label if first is last else f"{first.label} .. {last.label}"
            threads = "" if "threads" in dict(first.values) else f", {first.threads} thread(s)"
            bar.update(task, description=f"{profile.name}: {label}{threads}")

        def on_row(row) -> None:
            bar.advance(task)

        yield SweepHooks(on_start, on_batch, on_row)
