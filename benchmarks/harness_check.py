"""Does a block's latency belong to the block? The tool's harness against a bare loop.

All eight variants at the compare defaults (C=32, 56x56, t=6, k=3, 1 thread), each block
prepared once (`pipeline.prepare`: the tool's own cached export). Four experiments, each
repeated `--reps` times; this machine's speed drifts by up to 1.5x over seconds, so every
comparison is paired within a repetition (A B A, and the mean of the two A's), and each cell
reports the median over repetitions of the per-repetition ratio with the 95% CI of that median:

    A  bare loop / tool warm
       bare: a back-to-back loop of the call the tool times (`OrtRunner()`, i.e.
       `session.run_with_iobinding` on pre-bound inputs and outputs) on the tool's own export,
       same session options (1 intra-op, 1 inter-op thread, sequential), the way onnxruntime's
       perf_test measures: 20 warm-up calls, then `--bare-seconds` of calls, median. Also the
       same through plain `session.run` with numpy inputs, for reference.
       tool warm: `pipeline.time_artifacts` on all eight with eager on (what `compare` runs).
       Target: within +-5%.
    B  onnxruntime medians with eager on / off (the order alternates between repetitions).
       Target: within +-3%.
    C  alone (`--variants X --no-eager`, one run per variant) / among all eight (`--no-eager`).
       Target: within +-5%.
    D  the ratios to conv that the tool exists for, under: a bare loop, the tool warm, the tool
       cold, and the old harness (one call per variant per round, each onnxruntime call right
       after an eager call of the same block), for contrast.

Every median above is the statistic `--statistic` names: `median` (the median of the calls, of
the rounds for the tool) or `min` (the fastest call, the tool's headline since issue 23), so that
bare loop and tool are compared on the same statistic.

Usage: python benchmarks/harness_check.py [--reps 12] [--budget 2.0] [--statistic median|min]
       [--out CSV]
It prints Markdown tables and writes every median to --out (one row per experiment, repetition,
variant and measurement).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mnv2prof.measure.eager import EagerRunner, torch_threads
from mnv2prof.measure.latency import OrtRunner
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.measure.machine import last_level_cache_bytes
from mnv2prof.measure.stats import median_ci
from mnv2prof.models.variants import DEFAULT_VARIANTS, BlockSpec
from mnv2prof.files.atomic import write_atomic
from mnv2prof.models.targets import Target
from mnv2prof.run.deploy import Prepared, build_artifact
from mnv2prof.run.pipeline import prepare, time_artifacts

SPECS = [BlockSpec(v, in_chs=32, resolution=56, exp_ratio=6) for v in DEFAULT_VARIANTS]
Medians = dict[str, float]


STATISTIC = "median"  # or "min": set by --statistic


def bare_loop(call, seconds: float) -> float:
    """Median (or min) ms of a back-to-back loop of `call` lasting about `seconds`, after 20
    warm-ups."""
    for _ in range(20):
        call()
    t0 = time.perf_counter()
    call()
    calls = max(50, int(seconds / max(time.perf_counter() - t0, 1e-6)))
    times = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return (min(times) if STATISTIC == "min" else statistics.median(times)) / 1e6


def session_run(runner: OrtRunner):
    feed = {
        value.name: np.random.default_rng(0).standard_normal(value.shape).astype(np.float32)
        for value in runner.session.get_inputs()
    }
    return lambda: runner.session.run(None, feed)


def bare_loops(prepared: list[Prepared], seconds: float, plain: bool = False) -> Medians:
    """Each variant's bare loop, on a fresh session of its own file."""
    with torch_threads(1):
        result = {}
        for p in prepared:
            runner = OrtRunner(p.onnx_path)
            result[p.subject.variant] = bare_loop(session_run(runner) if plain else runner, seconds)
        return result


def tool(prepared, budget_s: float, cache: str = "warm", eager: bool = True) -> Medians:
    rows = [(p, build_artifact(p, Target())) for p in prepared]
    run = time_artifacts(rows, TimingSpec(budget_s=budget_s, cache=cache), eager=eager)
    if STATISTIC == "min":
        return {r.label: r.latency.min_ms for r in run.records}
    return {r.label: r.latency.median_ms for r in run.records}


def old_round_robin(prepared: list[Prepared], budget_s: float) -> Medians:
    """The harness before bursts: one call per variant per round, each onnxruntime call right
    after an eager call of the same block."""
    ort = {p.subject.variant: OrtRunner(p.onnx_path) for p in prepared}
    eager = {p.subject.variant: EagerRunner(p.module, p.input_shape) for p in prepared}
    samples: dict[str, list[float]] = {k: [] for k in ort}
    keys, rounds = list(ort), 0
    end = time.perf_counter() + budget_s
    with torch_threads(1):
        while time.perf_counter() < end or rounds < 10:
            for key in keys[rounds % len(keys):] + keys[: rounds % len(keys)]:
                start = time.perf_counter_ns()
                ort[key]()
                samples[key].append((time.perf_counter_ns() - start) / 1e6)
                eager[key]()
            rounds += 1
    pick = min if STATISTIC == "min" else statistics.median
    return {k: pick(v) for k, v in samples.items()}


def mean(a: Medians, b: Medians) -> Medians:
    return {k: (a[k] + b[k]) / 2 for k in a}


def rows(experiment: str, rep: int, measured: dict[str, Medians]) -> list[dict[str, object]]:
    return [
        {"experiment": experiment, "rep": rep, "variant": variant, "measurement": name,
         "median_ms": round(values[variant], 6)}
        for name, values in measured.items() for variant in values
    ]


def experiment_a(prepared, rep, args) -> list[dict[str, object]]:
    before = bare_loops(prepared, args.bare_seconds)
    warm = tool(prepared, args.budget)
    after = bare_loops(prepared, args.bare_seconds)
    plain = bare_loops(prepared, args.bare_seconds, plain=True)
    return rows("A", rep, {"bare": mean(before, after), "tool warm": warm,
                           "session.run": plain, "bare before": before})


def experiment_b(prepared, rep, args) -> list[dict[str, object]]:
    first, second = ("eager on", "eager off") if rep % 2 == 0 else ("eager off", "eager on")
    measured = {name: tool(prepared, args.budget, eager=name == "eager on")
                for name in (first, second)}
    return rows("B", rep, measured)


def experiment_c(prepared, rep, args) -> list[dict[str, object]]:
    before = tool(prepared, args.budget, eager=False)
    alone = {}
    for p in prepared:
        alone.update(tool([p], args.budget, eager=False))
    after = tool(prepared, args.budget, eager=False)
    return rows("C", rep, {"among all": mean(before, after), "alone": alone})


def experiment_d(prepared, rep, args) -> list[dict[str, object]]:
    return rows("D", rep, {
        "bare": bare_loops(prepared, args.bare_seconds),
        "tool warm": tool(prepared, args.budget, eager=False),
        "tool cold": tool(prepared, args.budget, cache="cold", eager=False),
        "old round robin": old_round_robin(prepared, args.budget),
    })


def ratio_cell(values: pd.Series) -> str:
    low, high = median_ci(values.to_numpy())
    ci = "" if np.isnan(low) else f" [{low:.3f}, {high:.3f}]"
    return f"{values.median():.3f}{ci}"


def ratio_table(frame: pd.DataFrame, experiment: str, pairs: list[tuple[str, str]]) -> str:
    wide = frame[frame["experiment"] == experiment].pivot_table(
        index=["variant", "rep"], columns="measurement", values="median_ms")
    head = [f"{num} / {den}" for num, den in pairs]
    lines = ["| variant | " + " | ".join(head) + " |", "|---|" + "---|" * len(head)]
    for variant in DEFAULT_VARIANTS:
        per_rep = wide.loc[variant]
        cells = [ratio_cell(per_rep[num] / per_rep[den]) for num, den in pairs]
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def contrast_table(frame: pd.DataFrame) -> str:
    d = frame[frame["experiment"] == "D"].pivot_table(
        index=["measurement", "rep"], columns="variant", values="median_ms")
    names = ["bare", "tool warm", "tool cold", "old round robin"]
    lines = ["| ratio | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for variant in ("dwsep", "shufflev2", "mbv2", "fused"):
        cells = [ratio_cell(d.loc[name][variant] / d.loc[name]["conv"]) for name in names]
        lines.append(f"| {variant}/conv | " + " | ".join(cells) + " |")
    medians = d.groupby(level="measurement").median()
    lines += ["", "| median (ms) | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for variant in DEFAULT_VARIANTS:
        lines.append(f"| {variant} | "
                     + " | ".join(f"{medians.loc[n, variant]:.4f}" for n in names) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--budget", type=float, default=2.0, help="--budget of each tool run")
    parser.add_argument("--bare-seconds", type=float, default=0.25,
                        help="seconds of bare loop per variant")
    parser.add_argument("--experiments", default="ABCD")
    parser.add_argument("--statistic", choices=("median", "min"), default="median")
    parser.add_argument("--out", type=Path,
                        help="write the rows to this CSV (benchmarks/results/harness_check.csv "
                        "is the committed one: name it only to update it)")
    args = parser.parse_args()
    global STATISTIC
    STATISTIC = args.statistic
    started = time.perf_counter()
    prepared = [prepare(spec) for spec in SPECS]
    experiments = {"A": experiment_a, "B": experiment_b, "C": experiment_c, "D": experiment_d}
    measured = []
    for rep in range(args.reps):
        for name in args.experiments:
            measured += experiments[name](prepared, rep, args)
        print(f"repetition {rep + 1}/{args.reps} done at {time.perf_counter() - started:.0f} s",
              flush=True)
    frame = pd.DataFrame(measured)
    if args.out:
        write_atomic(args.out, frame.to_csv(index=False))
    print(f"\n{args.reps} repetitions, --budget {args.budget:g} s per runtime, last-level cache "
          f"{last_level_cache_bytes() / 2**20:.0f} MiB. Each cell: the median over repetitions "
          "of the per-repetition ratio [95% CI of that median]\n")
    if "A" in args.experiments:
        print(ratio_table(frame, "A", [("tool warm", "bare"), ("session.run", "bare")]), "\n")
    if "B" in args.experiments:
        print(ratio_table(frame, "B", [("eager off", "eager on")]), "\n")
    if "C" in args.experiments:
        print(ratio_table(frame, "C", [("alone", "among all")]), "\n")
    if "D" in args.experiments:
        print(contrast_table(frame), "\n")
    print((f"wrote {args.out} in " if args.out else "done in ")
          + f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
