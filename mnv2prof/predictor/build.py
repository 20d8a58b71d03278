"""`predictor build`: sample kernels over a space, time each alone, fit, calibrate, write.

Phases, within `--budget-minutes` (the sampling ends when the time left is what calibration
and the final fit are given, `CALIBRATION_SHARE` and `FIT_SHARE` of the budget):

1. **Prior**: networks and lone blocks drawn from the space (sampling.prior_samples), every new
   kernel of each timed alone, until `PRIOR_KERNELS` kernels are in the table.
2. **Adaptive** (nn-Meter, MobiSys'21 section 4.2): in rounds, each kind with enough samples is
   refitted and scored on its held-out 20%; around each held-out kernel predicted worse than
   ±10% of its time, a pattern with its channels moved (graphs.pattern) is sampled, the kinds
   with the lowest held-out share within ±10% first; a kind with too few samples gets patterns
   around those it has. A prior sample joins each round, so kinds with no pattern keep growing.
   Sampling ends early once every kind holds `TARGET_WITHIN_10` of its held-out kernels within
   ±10%.
3. **Fit**: every kind's regressor picked by held-out error (fitting.fit_kind); the FLOPs
   baseline fitted on the same kernels and scored on the same held-out kernels.
4. **Calibrate** (calibration.py): the space's `networks` models (networks and lone blocks),
   drawn apart from the samples, are predicted, profiled and timed whole on `compare`'s
   harness: context factors per kind, onnxruntime's dispatch per node, the scale, the
   interval.

Every kernel, sample and calibration network is journaled as it is measured (folder.Journal),
so an interrupt (exit 130) loses at most one sample and `--resume` carries on; the predictor's
own files are written at the end, all together. `run` (remote.py) may time samples elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mnv2prof import interrupts
from mnv2prof.errors import Interrupted, UsageError
from mnv2prof.predictor import folder as files
from mnv2prof.predictor.calibration import calibrate
from mnv2prof.predictor.fingerprint import describe_differences, differences, fingerprint
from mnv2prof.predictor.graphs import PATTERN_KINDS
from mnv2prof.predictor.kinds import FEATURES
from mnv2prof.predictor.sampling import (
    Pattern,
    Sample,
    SampleResult,
    measure_batch,
    prior_samples,
    take,
)
from mnv2prof.predictor.timing import undrift
from mnv2prof.predictor.space import Space

PRIOR_KERNELS = 600  # kernels timed before the first adaptive round
PRIOR_BATCH = 2  # prior samples whose new kernels are timed in one rotation
ROUND_PATTERNS = 8  # patterns per adaptive round
MIN_KIND_SAMPLES = 30  # a kind with fewer gets patterns around the samples it has
TARGET_WITHIN_10 = 0.95  # a kind is done once this share of its held-out kernels is within 10%
CALIBRATION_SHARE = 0.12
FIT_SHARE = 0.05
END_OF_SAMPLING = "end-of-sampling"

# batches of samples, the keys timed -> each batch's results as it is timed (`slots`: batches
# it times at once, 1 when it has no such attribute)
Runner = Callable[[Sequence[Sequence[Sample]], set[str]], Iterator[list[SampleResult]]]


class BuildInterrupted(Interrupted):
    """Ctrl-C or SIGTERM during a build: what was timed is in the folder's journals."""


@dataclass(frozen=True)
class BuildPlan:
    out: Path
    space: Space = field(default_factory=Space)
    budget_s: float = 25 * 60.0
    resume: bool = False

    def __post_init__(self) -> None:
        if not (self.budget_s > 0 and np.isfinite(self.budget_s)):
            raise UsageError(f"--budget-minutes must be positive and finite, got "
                             f"{self.budget_s / 60:g}")

    def header(self) -> dict[str, object]:
        return {"format": files.FORMAT, "space": self.space.as_dict(),
                "fingerprint": fingerprint(self.space.threads)}


@dataclass(frozen=True)
class Progress:
    phase: str  # "prior", "adaptive", "calibration", "fit"
    kernels: int  # kernels in the table
    samples: int  # samples done
    elapsed_s: float
    budget_s: float


@dataclass(frozen=True)
class BuildResult:
    out: Path
    kernels: int
    kernels_timed: int  # in this session
    samples: int
    seconds: float  # this session's wall time
    stopped: str  # "budget", "converged", "resumed finished"
    kinds: dict[str, dict]  # predictor.json's "kinds"
    calibration: dict

    @property
    def kernels_per_s(self) -> float:
        return self.kernels_timed / self.seconds if self.seconds else 0.0


class Table:
    """The kernels timed so far (the journal's rows), by key; their times are read relative to
    the drift probes (timing.py): kernel_ms x the probes' median over the table / the probes'
    time in the kernel's batch."""

    def __init__(self, rows: Iterable[dict[str, object]]) -> None:
        self.rows: dict[str, dict[str, object]] = {}
        self.add(rows)

    def add(self, rows: Iterable[dict[str, object]]) -> int:
        before = len(self.rows)
        for row in rows:
            self.rows.setdefault(str(row["key"]), row)
        return len(self.rows) - before

    def reference_ms(self) -> float:
        """The probes' median time over every row (0: no probes)."""
        probes = [float(r["probe_ms"]) for r in self.rows.values() if float(r["probe_ms"] or 0)]
        return float(np.median(probes)) if probes else 0.0

    def kind(self, kind: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
        """(features, kernel_ms relative to the probes, rows) of one kind, in table order."""
        rows = [r for r in self.rows.values() if r["kind"] == kind]
        x = np.array([[float(r["macs"] if f == "macs" else r[f]) for f in FEATURES[kind]]
                      for r in rows], dtype=float).reshape(len(rows), len(FEATURES[kind]))
        return x, np.array([undrift(r["kernel_ms"], r["probe_ms"], self.reference_ms())
                            for r in rows]), rows

    def kinds(self) -> list[str]:
        return sorted({str(r["kind"]) for r in self.rows.values()})


def local_runner(threads: int, kernel_budget_s: float | None) -> Runner:
    def run(batches: Sequence[Sequence[Sample]], known: set[str]) -> Iterator[list[SampleResult]]:
        for batch in batches:
            interrupts.check()
            yield measure_batch(batch, known, threads, kernel_budget_s)
    return run


class Session:
    """One build session: the plan, the journals, the clock."""

    def __init__(self, plan: BuildPlan, on_progress: Callable[[Progress], None] | None,
                 run: Runner | None) -> None:
        self.plan = plan
        self.here = plan.header()["fingerprint"]
        files.open_build(plan.out, plan.resume, plan.header())
        self.kernels = files.Journal(plan.out / files.KERNELS_FILE, files.KERNEL_COLUMNS)
        self.samples = files.Journal(plan.out / files.SAMPLES_FILE, files.SAMPLE_COLUMNS)
        self.networks = files.Journal(plan.out / files.NETWORKS_FILE, files.NETWORK_COLUMNS)
        self.table = Table(self.kernels.rows())
        self.done = {r["sample"] for r in self.samples.rows()}
        self.run = run or local_runner(plan.space.threads, plan.space.kernel_budget_s)
        self.slots = max(1, int(getattr(self.run, "slots", 1)))  # batches timed at once
        self.on_progress = on_progress
        self.start = time.monotonic()
        self.timed = 0

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def progress(self, phase: str) -> None:
        if self.on_progress:
            self.on_progress(Progress(phase, len(self.table.rows), len(self.done),
                                      self.elapsed(), self.plan.budget_s))

    def measure(self, batches: Sequence[Sequence[Sample]], phase: str, until: float) -> None:
        """Time `batches` of samples (skipping those done), journaling each batch as it
        arrives; stop taking results once `until` (seconds into the session) has passed."""
        todo = [[s for s in batch if s.id not in self.done] for batch in batches]
        texts = {s.id: s.text for batch in todo for s in batch}
        for results in self.run([b for b in todo if b], set(self.table.rows)):
            for result in results:
                self._keep(result, texts.get(result.sample, ""))
            self.progress(phase)
            if self.elapsed() >= until:
                return

    def _keep(self, result: SampleResult, text: str) -> None:
        if found := differences(result.fingerprint, self.here):
            raise UsageError(f"host {result.host} differs from this machine "
                             f"({describe_differences(found)}): a predictor is timed on "
                             "identical hosts")
        fresh = [r for r in result.rows if str(r["key"]) not in self.table.rows]
        self.kernels.append(fresh)
        self.timed += self.table.add(fresh)
        self.samples.append([{"sample": result.sample, "recipe": text,
                              "kernels": result.kernels, "new_kernels": len(fresh),
                              "seconds": round(result.seconds, 3)}])
        self.done.add(result.sample)


def sample_kernels(session: Session) -> str:
    """Phases 1 and 2; returns why sampling stopped ("budget" or "converged")."""
    plan, slots = session.plan, session.slots
    until = plan.budget_s * (1 - CALIBRATION_SHARE - FIT_SHARE)
    prior = prior_samples(plan.space)
    round_index = 0
    while session.elapsed() < until:
        interrupts.check()
        if len(session.table.rows) < PRIOR_KERNELS:
            batches = [take(prior, session.done, PRIOR_BATCH) for _ in range(slots)]
            session.measure(batches, "prior", until)
            continue
        patterns = adaptive_round(session.table, plan.space.seed, round_index,
                                  ROUND_PATTERNS * slots)
        if patterns is None:
            return "converged"
        round_index += 1
        batches = [[*patterns[i::slots], *take(prior, session.done, 1)] for i in range(slots)]
        session.measure(batches, "adaptive", until)
    return "budget"


def adaptive_round(table: Table, seed: int, round_index: int, count: int = ROUND_PATTERNS
                   ) -> list[Sample] | None:
    """Patterns around the kernels the current fit gets wrong, worst kinds first; None once
    every kind is done (enough samples, `TARGET_WITHIN_10` of its held-out kernels within 10%)."""
    from mnv2prof.predictor.fitting import fit_kind

    wanted: list[tuple[float, str, dict]] = []  # (held-out share within 10%, kind, features)
    for kind in [k for k in table.kinds() if k in PATTERN_KINDS]:
        x, y, rows = table.kind(kind)
        if len(rows) < MIN_KIND_SAMPLES:
            picks = np.random.default_rng([seed, round_index]).choice(len(rows), 2)
            wanted += [(0.0, kind, rows[i]) for i in picks]
            continue
        fit = fit_kind(kind, x, y, seed, candidates=["forest"], refit=False)
        if fit.held_out.within_10 < TARGET_WITHIN_10:
            wanted += [(fit.held_out.within_10, kind, rows[i]) for i in fit.misses]
    if not wanted:
        return None
    wanted.sort(key=lambda item: item[0])
    patterns = []
    for number, (_, kind, row) in enumerate(wanted[:count]):
        features = tuple((f, float(row["macs"] if f == "macs" else row[f])) for f in FEATURES[kind])
        patterns.append(Sample(f"p{round_index}.{number}",
                               Pattern(kind, features, seed * 7919 + round_index * 101 + number)))
    return patterns


def fit_all(table: Table, seed: int) -> tuple[dict[str, object], dict[str, dict], list[dict], dict]:
    """Phase 3: (models by kind, predictor.json's "kinds", errors.csv's rows, the FLOPs
    baseline's record), every kind's held-out kernels scored by both."""
    from mnv2prof.predictor.fitting import fit_flops, fit_kind, scores, split

    models, kinds, fits = {}, {}, {}
    train_rows, test_rows = [], {}
    for kind in table.kinds():
        x, y, rows = table.kind(kind)
        fits[kind] = fit = fit_kind(kind, x, y, seed)
        models[kind] = fit.model
        kinds[kind] = {"regressor": fit.regressor, "features": list(FEATURES[kind]),
                       "samples": len(rows), "candidates_rmspe": fit.candidates,
                       "held_out": fit.held_out.as_dict() if fit.held_out else None}
        train, test = split(len(rows), seed) if fit.held_out else (np.arange(len(rows)), [])
        train_rows += [rows[i] for i in train]
        test_rows[kind] = [rows[i] for i in test]

    def macs_ms(rows):
        return (np.array([float(r["macs"]) for r in rows]),
                np.array([float(r["kernel_ms"]) for r in rows]))

    baseline = fit_flops(*macs_ms(train_rows))
    errors = []
    for kind, fit in fits.items():
        macs, ms = macs_ms(test_rows[kind])
        flops = scores(baseline.kernel_ms(macs), ms) if len(ms) else None
        kinds[kind]["flops_held_out"] = flops.as_dict() if flops else None
        errors.append(_error_row(kind, kinds[kind]["samples"], fit, flops))
    everything = list(table.rows.values())
    held_macs, held_ms = macs_ms([r for rows in test_rows.values() for r in rows])
    record = {"fit": vars(fit_flops(*macs_ms(everything))),
              "held_out": scores(baseline.kernel_ms(held_macs), held_ms).as_dict()}
    return models, kinds, errors, record


def _error_row(kind: str, samples: int, fit, flops) -> dict[str, object]:
    held = fit.held_out
    return {"kind": kind, "regressor": fit.regressor, "samples_n": samples,
            "held_out_n": held.n if held else 0,
            "within_10_frac": round(held.within_10, 4) if held else None,
            "within_5_frac": round(held.within_5, 4) if held else None,
            "rmspe_frac": round(held.rmspe, 4) if held else None,
            "rmse_ms": round(held.rmse_ms, 6) if held else None,
            "flops_within_10_frac": round(flops.within_10, 4) if flops else None,
            "flops_rmspe_frac": round(flops.rmspe, 4) if flops else None}


def build(plan: BuildPlan, on_progress: Callable[[Progress], None] | None = None,
          run: Runner | None = None) -> BuildResult:
    """Build the predictor of `plan` into `plan.out` (see the module docstring)."""
    session = Session(plan, on_progress, run)
    try:
        if END_OF_SAMPLING in session.done:
            stopped = "sampled before"
        else:
            stopped = sample_kernels(session)
            session.samples.append([{"sample": END_OF_SAMPLING, "recipe": stopped}])
        sampling_s = session.elapsed()
        if not session.table.rows:
            raise UsageError(f"no kernel was timed in {plan.budget_s / 60:g} minutes: give "
                             "--budget-minutes more time")
        session.progress("fit")
        models, kinds, errors, baseline = fit_all(session.table, plan.space.seed)
        floor = float(np.median([float(r["floor_ms"]) for r in session.table.rows.values()]))
        meta = {**plan.header(), "floor_ms": round(floor, 7), "kinds": kinds,
                "flops_baseline": baseline}
        meta["calibration"] = calibrate(session, meta, models)
    except (Interrupted, KeyboardInterrupt):
        raise BuildInterrupted(
            f"interrupted: {len(session.table.rows)} kernels are in {plan.out}; run again with "
            "--resume to finish the build") from None
    meta["build"] = {"kernels": len(session.table.rows), "samples": len(session.done),
                     "kernels_timed_now": session.timed, "sampling_s": round(sampling_s, 1),
                     "seconds": round(session.elapsed(), 1), "stopped": stopped,
                     "budget_minutes": plan.budget_s / 60,
                     "hosts": sorted({str(r["host"]) for r in session.table.rows.values()})}
    files.write_predictor(plan.out, meta, models, errors)
    return BuildResult(plan.out, len(session.table.rows), session.timed, len(session.done),
                       sampling_s, stopped, kinds, meta["calibration"])
