"""Run a profile's grid, appending each measured row to a CSV at once, so nothing measured is lost.

A sweep can take hours, so the CSV is the sweep's journal:
- each row goes to the file as soon as its grid point is measured, in one `os.write` of the whole
  line on a file opened for appending, then `fsync`: an interrupt (Ctrl-C, SIGTERM, a kill)
  leaves every finished row whole and never a partial one;
- the header is written once, from the first row's keys (`Record.row()`);
- one writer at a time: the file is locked (`fcntl.flock`, files.locks) from the checks to the
  last row, and a second sweep on it is refused naming the process that writes it (two
  `--resume` at once wrote every missing row twice);
- `resume=True` skips rows whose `spec_hash` (spec and threads) is already in the file; a file
  whose header differs from this version's rows is refused, as is one measured in another
  environment (env.COMPARABLE_KEYS), since its rows could not be compared with the new ones,
  and so is one `report` or `merge` would refuse (`readers.check_results`: one reader, one
  verdict), since appending would only add rows to a file no reader takes.

Grid points are timed in **batches** (`measure_points`): consecutive points with the same thread
count, up to the profile's `batch_rows` rows (default 48) and at most `BATCH_TIMING_S` seconds of
timing (`batch_points`), timed as one rotation of bursts through `pipeline.measure_rows`, with
the profile's `budget_s` for each point of the batch. Drift of the
machine then hits every point of a batch alike, not only the variants of one point: on the 2-core
development machine, whose speed jumps by up to 1.5x over seconds, the seven identical resnet
rows of the expansion sweep (t = 4..10) spread by up to 30% when each point was timed on its own.
Rows are written when their batch is done, so a kill loses at most the batch being timed: its
timing (`BATCH_TIMING_S`, or one point's if that is longer) and its exports. The cache mode is the profile's, so a file never
mixes cache modes (`--resume` refuses a file timed in another).

Past one machine (issue 18): `shard=(K, N)` keeps only the rows of shard K of N
(`sweeps.shard.select_shard`, by spec_hash), for CI matrices; `run(remote=...)` sends each grid
point elsewhere, e.g. to a Ray cluster as a task (`sweeps.cluster.run_points`, given by the
front end: this module imports no cluster code), and journals the rows as they come
back (`remote`), each with its own host's environment and `host`. The file, resume and interrupts behave as
locally; only the check that a resumed file was measured here is left out, since a cluster's
rows come from many hosts.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mnv2prof import interrupts
from mnv2prof.errors import Interrupted, Mnv2profError, UsageError
from mnv2prof.files.atomic import check_target, is_special, path_error, write_through
from mnv2prof.files.locks import Held, hold
from mnv2prof.files.results import check_one_cache_mode
from mnv2prof.models.user_models import Subject
from mnv2prof.profiles.shipped import GridPoint, Profile
from mnv2prof.run.records import Record, row_columns


class SweepInterrupted(Interrupted):
    """Ctrl-C or SIGTERM during a sweep: the rows measured so far are in the file."""


@dataclass
class SweepHooks:
    """Callbacks a front end may give to show progress; every one is optional."""

    on_start: Callable[[int, int], None] | None = None  # total rows, rows already in the file
    on_batch: Callable[[list[GridPoint], int], None] | None = None  # points, rows to measure
    on_row: Callable[[dict[str, object]], None] | None = None  # the row, once it is on disk


class SweepIncomplete(Mnv2profError):
    """A cluster sweep ended with rows no host could measure (exit 3): they are not in the
    file, and `--resume` measures them."""


@dataclass(frozen=True)
class SweepResult:
    total: int  # rows in the profile (in the shard, with --shard)
    skipped: int  # already in the file (resume)
    written: int  # measured and appended now
    missing: tuple[str, ...] = ()  # spec_hash of each row a cluster could not measure
    reasons: tuple[str, ...] = ()  # one line per grid point with missing rows


class CsvJournal:
    """An append-only CSV of `Record.row()` dicts, one durable write per row.

    Everything is checked on construction, before any measurement: the path, and on `resume`
    the whole existing file (UTF-8, every row whole, a spec_hash column, and the columns this
    version writes, `columns`). The file is never changed by the checks: it is only ever
    appended to, with complete rows. A last row that lost only its newline is whole and kept (the
    next append starts with the newline); a row cut off mid-write is refused, naming it. A device
    or a FIFO (/dev/null) holds no rows to keep or resume: the rows are written through to it.
    """

    def __init__(self, path: Path, resume: bool, force: bool) -> None:
        self.path = Path(path)
        self.header: list[str] | None = None
        self.done: set[str] = set()
        self.first_row: dict[str, str] | None = None
        self._truncate = False
        self._newline_missing = False
        self._held: Held | None = None
        self._made = False
        check_target(self.path, "--out")
        self._special = is_special(self.path)
        if self._special:
            if resume:
                raise UsageError(f"--resume: {path} is not a regular file, it holds no rows")
            return
        if not self.path.exists():
            return  # locked by `begin`, when it is made
        self._held = hold(self.path, "--out")  # one writer at a time (files.locks)
        try:
            if not resume:
                if not force:
                    raise UsageError(
                        f"{path} exists: pass --resume to add the missing rows, or --force to "
                        "replace it"
                    )
                self._truncate = True  # on the first row: an early interrupt keeps the old file
            else:
                self._read_existing()
        except BaseException:
            self.close()
            raise

    def begin(self) -> None:
        """Hold the file's lock before the first row is measured (a sweep's `run` calls it; an
        append does when nobody did): a file that was not there at the checks is made now, and
        refused if another writer made it meanwhile."""
        if self._special or (self._held is not None and self._held.fd is not None):
            return
        made = not self.path.exists()
        self._held = hold(self.path, "--out")
        self._made = self._made or made
        if self.header is None and not self._truncate and os.fstat(self._held.fd).st_size:
            self._held.release()
            raise UsageError(f"{self.path} was written by another process since it was "
                             "checked: pass --resume to add the missing rows")

    def close(self) -> None:
        """Release the file's lock; a file this journal made and never wrote a row to is
        removed, as if the sweep had not started."""
        if self._held is None or self._held.fd is None:
            return
        with contextlib.suppress(OSError):
            if self._made and os.fstat(self._held.fd).st_size == 0:
                self.path.unlink()
        self._held.release()

    def check_columns(self, columns: Sequence[str]) -> None:
        """The existing file's header must be the columns this version writes."""
        if self.header is not None and list(columns) != self.header:
            missing = [k for k in self.header if k not in columns]
            extra = [k for k in columns if k not in self.header]
            raise UsageError(
                f"{self.path} has other columns than this version writes (missing here: "
                f"{', '.join(missing) or 'none'}; new: {', '.join(extra) or 'none'}; "
                "order may differ): write to a new file"
            )

    def _read_existing(self) -> None:
        from mnv2prof.files.readers import check_results, csv_rows, input_file, read_text

        what = "sweep file"
        text = read_text(input_file(self.path, what), what)
        if not text.strip():
            return  # an empty file: the header comes with the first row
        header, rows = csv_rows(text, self.path, what)
        if "spec_hash" not in header:
            raise UsageError(f"{self.path} has no spec_hash column: not a sweep or compare CSV")
        column = header.index("spec_hash")
        for number, row in enumerate(rows, 1):
            if not row[column].strip():
                raise UsageError(f"sweep file {self.path}, row {number}: spec_hash is empty")
        check_results(self.path, what, header, rows)  # what report and merge would refuse
        self.header = header
        self.done = {row[column] for row in rows}
        self.first_row = dict(zip(header, rows[0], strict=True)) if rows else None
        self._newline_missing = not text.endswith(("\n", "\r"))

    def append(self, row: dict[str, object]) -> None:
        keys = list(row)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        if self.header is None or self._truncate:
            writer.writerow(keys)
        elif keys != self.header:
            raise UsageError(f"{self.path}: a row with other columns than the file's header")
        writer.writerow(["" if v is None else v for v in row.values()])
        newline = "\n" if self._newline_missing and not self._truncate else ""
        data = (newline + text.getvalue()).encode("utf-8")
        try:
            if self._special:  # a device or a FIFO: written through, never synced (EINVAL)
                write_through(self.path, data)
            else:
                self._write(data)
        except OSError as exc:  # a full disk
            raise path_error(self.path, exc) from None
        self.header, self._truncate, self._newline_missing = keys, False, False
        self.done.add(str(row["spec_hash"]))

    def _write(self, data: bytes) -> None:
        """`data` appended to the locked file in one write, then synced (cut first, once, with
        --force)."""
        self.begin()  # a no-op once held; again when a newer journal of this process took it
        fd = self._held.fd
        if self._truncate:
            os.ftruncate(fd, 0)
        written = os.write(fd, data)
        while written < len(data):  # regular files take it whole; this is for the odd FS
            written += os.write(fd, data[written:])
        os.fsync(fd)


class Sweep:
    """A profile's grid against an output file: checked on construction, measured by `run`.

    Construction does every check that needs no measurement (the file, its columns, its
    environment), so a front end can fail before it shows progress.
    """

    def __init__(
        self,
        profile: Profile,
        out: Path,
        resume: bool = False,
        force: bool = False,
        device: str = "cpu",  # "cuda": each row also gets its GPU columns (pipeline.time_artifacts)
        shard: tuple[int, int] | None = None,  # (K, N): only the rows of shard K of N
        on_cluster: bool = False,  # rows come from a cluster's hosts, not from this one
    ):
        from mnv2prof.sweeps.shard import select_shard

        self.profile, self.out, self.device = profile, Path(out), device
        self.journal = CsvJournal(self.out, resume, force)
        try:
            self._check_resumed(on_cluster)
            points = profile.points()
            self.selected: list[tuple[GridPoint, list[Subject]]] = (
                select_shard(points, *shard) if shard else [(p, list(p.subjects)) for p in points]
            )
            self.total = sum(len(specs) for _, specs in self.selected)
            self.skipped = 0
            for point, specs in self.selected if self.journal.done else ():  # hashing takes time
                interrupts.check()
                self.skipped += sum(1 for s in specs if point.row_hash(s) in self.journal.done)
        except BaseException:
            self.journal.close()
            raise

    def _check_resumed(self, on_cluster: bool) -> None:
        """A resumed file's rows must be comparable with the new ones: this environment (its
        first row's; a cluster's rows come from many), this cache mode, these columns."""
        from mnv2prof.measure.env import current_environment

        first, out = self.journal.first_row, self.out
        if first is not None and not on_cluster:
            # Only the environment columns the file has: a compare CSV from a version that
            # wrote fewer of them is judged on what it recorded.
            differences = {
                k: v for k, v in current_environment(self.device).differences(first).items()
                if f"env_{k}" in first
            }
            if differences:
                shown = "; ".join(
                    f"{k}: {a or 'none'} there, {b or 'none'} here"
                    for k, (a, b) in differences.items()
                )
                raise UsageError(
                    f"{out} was measured in another environment ({shown}): resume it there, "
                    "or start a new file"
                )
        if first is not None:  # the file holds one mode (readers.check_results): its first row's
            check_one_cache_mode([(str(out), first.get("cache_mode", ""))],
                                 ("this sweep", self.profile.timing.cache),
                                 " in one file; start a new file")
        self.journal.check_columns(row_columns())

    def run(self, hooks: SweepHooks | None = None, remote: Callable | None = None) -> SweepResult:
        """Measure every row not yet in the file, appending each as it is measured.

        `remote`: measure elsewhere instead, `remote(profile, todo, on_row, device)` with `todo`
        the (grid point, specs) to measure and `on_row` called with each row dict as it arrives;
        it returns what it could not measure (`.missing` spec hashes, `.reasons`). A Ray
        cluster's is `functools.partial(sweeps.cluster.run_points, handle)`: this module knows no
        cluster."""
        hooks = hooks or SweepHooks()
        self.journal.begin()  # locked before anything is shown or measured
        if hooks.on_start:
            hooks.on_start(self.total, self.skipped)
        done = self.journal.done
        todo = [
            (point, [s for s in specs if point.row_hash(s) not in done] if done else specs)
            for point, specs in self.selected
        ]
        pending = [(p, specs) for p, specs in todo if specs]
        written = 0

        def append(row: dict[str, object]) -> None:
            nonlocal written
            self.journal.append(row)
            written += 1
            if hooks.on_row:
                hooks.on_row(row)

        missing: tuple[str, ...] = ()
        reasons: tuple[str, ...] = ()
        try:
            if remote is not None:
                if hooks.on_batch and pending:
                    hooks.on_batch([p for p, _ in pending], sum(len(s) for _, s in pending))
                result = remote(self.profile, pending, append, self.device)
                missing, reasons = tuple(result.missing), tuple(result.reasons)
            else:
                for batch in batches(pending, self.profile.batch_rows,
                                     batch_points(self.profile)):
                    interrupts.check()
                    if hooks.on_batch:
                        hooks.on_batch([p for p, _ in batch], sum(len(s) for _, s in batch))
                    for record in measure_points(self.profile, batch, self.device):
                        append(record.row())
        except (Interrupted, KeyboardInterrupt):
            raise SweepInterrupted(
                f"interrupted: {self.skipped + written} of {self.total} rows are in {self.out}; "
                "run again with --resume to measure the rest"
            ) from None
        finally:
            self.journal.close()
        return SweepResult(self.total, self.skipped, written, missing, reasons)


BATCH_TIMING_S = 10.0  # seconds of timing in one batch at most: what a kill can lose


def batch_points(profile: Profile, eager: bool | None = None) -> int:
    """Grid points a batch may hold so that its timing (`budget_s` per point and phase: the
    point's runtime, and eager torch when it is on) stays within `BATCH_TIMING_S`; at least 1."""
    phases = 2 if (profile.eager if eager is None else eager) else 1
    return max(1, int(BATCH_TIMING_S // (profile.timing.budget_s * phases)))


def batches(
    points: Sequence[tuple[GridPoint, Sequence[Subject]]], limit: int, max_points: int | None = None
) -> list[list[tuple[GridPoint, Sequence[Subject]]]]:
    """Consecutive (point, specs) with the same thread count, at most `limit` specs and
    `max_points` points a batch (a point larger than the limit is a batch of its own)."""
    result: list[list[tuple[GridPoint, Sequence[Subject]]]] = []
    rows = 0
    for point, specs in points:
        current = result[-1] if result else None
        if (current and current[0][0].threads == point.threads and rows + len(specs) <= limit
                and (max_points is None or len(current) < max_points)):
            current.append((point, specs))
            rows += len(specs)
        else:
            result.append([(point, specs)])
            rows = len(specs)
    return result


def measure_points(
    profile: Profile,
    batch: Sequence[tuple[GridPoint, Sequence[Subject]]],
    device: str = "cpu",
    eager: bool | None = None,
) -> list[Record]:
    """Time a batch of grid points (each with the specs to measure, all at one thread count) as
    one rotation of bursts: a Record per spec, in order.

    `sweep` and `mnv2prof baseline/gate --profile` measure alike: the point's threads, the
    profile's timing (cache mode included; `budget_s` per point) and export seed. `eager` None:
    the profile's setting.
    """
    import dataclasses

    from mnv2prof.run.pipeline import Row, measure_rows

    point = batch[0][0]
    timing = profile.timing_for(point)
    timing = dataclasses.replace(timing, budget_s=timing.budget_s * len(batch))
    return measure_rows(
        [Row(subject, p.target) for p, subjects in batch for subject in subjects],
        timing,
        seed=profile.seed,
        device=device,
        eager=profile.eager if eager is None else eager,
    ).records


def measure_profile(
    profile: Profile,
    on_batch: Callable[[list[GridPoint], int], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
) -> list[tuple[GridPoint, list[Record]]]:
    """(grid point, its records) for every point of `profile`, measured as `sweep` measures
    them (in batches of points timed together), onnxruntime only: what `baseline --profile` and
    `gate --profile` compare."""
    measured = []
    points = [(p, p.subjects) for p in profile.points()]
    for batch in batches(points, profile.batch_rows, batch_points(profile, eager=False)):
        if on_batch:
            on_batch([p for p, _ in batch], sum(len(specs) for _, specs in batch))
        records = iter(measure_points(profile, batch, eager=False))
        for point, specs in batch:
            measured.append((point, [next(records) for _ in specs]))
            if on_rows:
                on_rows(len(specs))
    return measured
