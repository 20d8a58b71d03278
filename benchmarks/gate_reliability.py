"""How often does each gate cry wolf, and how often does it sleep, on this machine?

Two gates are scored in the same trials (issue 33), on four blocks written as the user's code
(conv, dwsep, mbv2, fused at C=64 28x28 t=6) and on a user model (examples/mobilenet_v3.py):

- the A/B gate (`gate --against`): the base and the change timed in the same rounds, order
  reversing round by round, each row judged on its paired round ratios (gating.ab);
- the stored-number gate (`gate --baseline`): each trial's change side judged against a baseline
  stored at the start of the session (gating.decide, absolute).

Trials:

- A/A: the change is a byte-identical copy of the base; every failure is a false failure. Every
  second A/A trial runs with a CPU hog busy on the other core (taskset -c 1 when present).
- A/B: the change is 8-12% slower: the blocks' inner width 1.1x (rounded to a multiple of 8),
  the model's 14x14 stage's expanded width 1.5x (counted cost changes are allowed, so latency
  alone decides); its true slowdown is measured first by one long A/B run (`--truth-budget`). A
  pass is a miss.

Beside the shipped rule (measure.paired: the median of paired round ratios of burst medians, the
sign test), each trial's raw rounds are scored by the other candidate estimators: the paired
ratio of burst minima, the ratio of fastest calls with its trial interval (compare's), and asv's
rule (a ratio of medians past the tolerance and a Mann-Whitney p < 0.002, unpaired).

Usage: python benchmarks/gate_reliability.py [--aa 100] [--ab 40] [--budget 2.0]
       [--max-slowdown 0.05] [--out CSV]
It prints Markdown tables (false failures, catches, inconclusive rows, load averages, the time
of one model's gate) and, with --out, writes one row per trial, subject and estimator there.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mnv2prof.commands.gates import AbCheck, ab_measure
from mnv2prof.gating.ab import decide_pairs
from mnv2prof.files.atomic import write_atomic
from mnv2prof.gating.decide import GatePolicy, decide
from mnv2prof.measure.paired import ESTIMATOR, judge
from mnv2prof.measure.stats import min_spread_rel, ratio_interval, shifted_mann_whitney
from mnv2prof.run.frame import records_frame
from mnv2prof.run.plan import block_plan, model_subjects

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = """from mnv2prof.models.blocks import DepthwiseSeparable, FusedMBConv, InvertedResidual
from mnv2prof.models.blocks import PlainConv
from mnv2prof.models.variants import make_divisible

WIDTH = {width}  # the change makes the blocks' inner width 1.1x, in multiples of 8 (SIMD lanes)


def wider(channels):
    return make_divisible(channels * WIDTH) if WIDTH != 1.0 else channels


def conv(in_chs, out_chs, kernel_size, stride):
    return PlainConv(in_chs=in_chs, out_chs=wider(out_chs), kernel_size=kernel_size,
                     stride=stride)


def dwsep(in_chs, out_chs, kernel_size, stride):
    return DepthwiseSeparable(in_chs=in_chs, out_chs=wider(out_chs),
                              kernel_size=kernel_size, stride=stride)


def mbv2(in_chs, out_chs, mid_chs, kernel_size, stride):
    return InvertedResidual(in_chs=in_chs, out_chs=out_chs, mid_chs=wider(mid_chs),
                            kernel_size=kernel_size, stride=stride)


def fused(in_chs, out_chs, mid_chs, kernel_size, stride):
    return FusedMBConv(in_chs=in_chs, out_chs=out_chs, mid_chs=wider(mid_chs),
                       kernel_size=kernel_size, stride=stride)
"""
NAMES = ("conv", "dwsep", "mbv2", "fused")
ASV_P = 0.002


def write_subjects(folder: Path) -> dict[str, Path]:
    """base/ and copy/ (byte-identical) and wider/ (the change), each with blocks.py and the
    model."""
    sides = {}
    for side, width in (("base", "1.0"), ("copy", "1.0"), ("wider", "1.1")):
        where = folder / side
        where.mkdir(parents=True)
        (where / "blocks.py").write_text(BLOCKS.format(width=width))
        model = (ROOT / "examples" / "mobilenet_v3.py").read_text()
        if side == "wider":  # the 14x14 stage's expanded width 1.5x (80 channels in)
            model = re.sub(r"BneckConfig\((80), (\d), (\d+), ",
                           lambda m: f"BneckConfig({m[1]}, {m[2]}, {8 * round(int(m[3]) * 1.5 / 8)}, ",
                           model)
        (where / "mobilenet_v3.py").write_text(model)
        sides[side] = where
    return sides


def subjects(where: Path, suffix: str) -> list:
    blocks = list(block_plan([f"{where}/blocks.py:{n}" for n in NAMES], channels=64,
                             resolution=28, budget=1.0).subjects)
    model = model_subjects([f"{where}/mobilenet_v3.py:mobilenet_v3_large"])
    import dataclasses

    return [dataclasses.replace(s, variant=f"{s.variant}{suffix}") for s in blocks + model]


def ab_run(base: list, change: list, budget: float) -> list[tuple]:
    """One A/B measurement of every subject: (base Record, change Record) per subject."""
    import dataclasses

    plan = block_plan(["conv"], budget=budget, eager=False)  # the timing words alone
    pairs = tuple(zip(base, change, strict=True))
    plan = dataclasses.replace(plan, subjects=tuple(s for p in pairs for s in p))
    return ab_measure(AbCheck(plan.check(), pairs, "benchmark"))


def candidates(base, change, tolerance: float, alpha: float) -> dict[str, tuple]:
    """Each candidate estimator's verdict on one pair's raw rounds: (failed, inconclusive,
    ratio, detectable effect)."""
    b, c = base.latency, change.latency
    verdicts = {}
    for name, side in (("median of paired round medians", "samples_ms"),
                       ("median of paired round minima", "mins_ms")):
        paired = judge(getattr(b, side), getattr(c, side), tolerance, alpha)
        verdicts[name] = (paired.verdict.value == "slower",
                          paired.verdict.value == "inconclusive", paired.ratio, paired.mde_rel)
    ratio = c.min_ms / b.min_ms
    low, high = ratio_interval(ratio, min_spread_rel(c.mins_ms, c.trials),
                               min_spread_rel(b.mins_ms, b.trials))
    verdicts["ratio of fastest calls, trial interval"] = (
        bool(low > 1 + tolerance), bool(high > 1 + tolerance >= low), ratio, ratio - low)
    p = shifted_mann_whitney(np.asarray(b.samples_ms), np.asarray(c.samples_ms), 1.0, "greater")
    ratio = c.median_ms / b.median_ms
    verdicts["asv (ratio of medians, Mann-Whitney p < 0.002)"] = (
        bool(ratio > 1 + tolerance and p < ASV_P), False, ratio, np.nan)
    return verdicts


@contextlib.contextmanager
def cpu_hog(on: bool):
    """A busy loop on the other core (taskset -c 1 when present) for the duration."""
    if not on:
        yield
        return
    command = [sys.executable, "-c", "while True: pass"]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        command = ["taskset", "-c", "1", *command]
    hog = subprocess.Popen(command)
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def trial_rows(kind: str, index: int, hog: bool, pairs: list[tuple], stored: pd.DataFrame,
               policy: GatePolicy) -> list[dict]:
    """One row per subject and gate: the shipped A/B rule, the candidates, the stored gate."""
    rows = []
    result = decide_pairs(pairs, policy, "benchmark", 0.0)
    current = records_frame([change for _, change in pairs])
    stored_verdicts = {r.variant: r for r in decide(stored, current, policy).rows}
    load = os.getloadavg()[0]
    for (base, change), row in zip(pairs, result.rows, strict=True):
        common = {"kind": kind, "trial": index, "hog": hog, "subject": change.variant,
                  "rounds": row.paired.n, "load_1min": load}
        rows.append({**common, "gate": f"A/B shipped: {ESTIMATOR}",
                     "failed": row.paired.verdict.value == "slower",
                     "inconclusive": row.paired.verdict.value == "inconclusive",
                     "ratio_x": round(row.paired.ratio, 4),
                     "mde_rel": round(row.paired.mde_rel, 4)})
        found = candidates(base, change, policy.max_slowdown, policy.alpha)
        for name, (failed, inconclusive, ratio, mde) in found.items():
            rows.append({**common, "gate": f"A/B: {name}", "failed": failed,
                         "inconclusive": inconclusive, "ratio_x": round(ratio, 4),
                         "mde_rel": round(mde, 4)})
        verdict = stored_verdicts[change.variant]
        rows.append({**common, "gate": "stored baseline (absolute)", "inconclusive": False,
                     "failed": verdict.latency.value == "regression",
                     "ratio_x": round(verdict.ratio_x, 4), "mde_rel": np.nan})
    return rows


def summarize(results: pd.DataFrame, truth: dict[str, float]) -> str:
    lines = ["| gate | A/A trials | false failures (rows) | A/A with hog: false failures | "
             "A/B trials | caught (rows) | inconclusive (A/A, A/B rows) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for gate, g in results.groupby("gate", sort=False):
        aa, ab = g[g["kind"] == "A/A"], g[g["kind"] == "A/B"]
        hog = aa[aa["hog"]]
        lines.append(
            f"| {gate} | {aa['trial'].nunique()} | {int(aa['failed'].sum())} of {len(aa)} | "
            f"{int(hog['failed'].sum())} of {len(hog)} | {ab['trial'].nunique()} | "
            f"{int(ab['failed'].sum())} of {len(ab)} | "
            f"{int(aa['inconclusive'].sum())}, {int(ab['inconclusive'].sum())} |")
    lines += ["", "| subject | true slowdown (long A/B run) | A/B caught, shipped rule | "
              "A/A ratio, 2.5-97.5% of trials | detectable effect, median (%) |",
              "|---|---:|---:|---:|---:|"]
    shipped = results[results["gate"].str.startswith("A/B shipped")]
    for subject, g in shipped.groupby("subject", sort=False):
        aa, ab = g[g["kind"] == "A/A"], g[g["kind"] == "A/B"]
        low, high = np.percentile(aa["ratio_x"], [2.5, 97.5]) if len(aa) else (np.nan, np.nan)
        lines.append(f"| {subject} | {truth.get(subject, np.nan) - 1:+.1%} | "
                     f"{int(ab['failed'].sum())} of {len(ab)} | {low:.3f}-{high:.3f} | "
                     f"{100 * aa['mde_rel'].median():.1f} |")
    return "\n".join(lines)


def gate_wall_time(sides: dict[str, Path], budget: float) -> float:
    """Seconds to a verdict of one whole model's CLI gate, both exports cached."""
    model = "mobilenet_v3.py:mobilenet_v3_large"
    command = [sys.executable, "-m", "mnv2prof", "gate", "--against",
               f"{sides['base']}/{model}", "--model", f"{sides['copy']}/{model}", "--budget",
               str(budget)]
    subprocess.run(command, cwd=ROOT, capture_output=True, check=False)  # fills the caches
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aa", type=int, default=100, help="A/A trials (every second with a hog)")
    parser.add_argument("--ab", type=int, default=40, help="A/B trials")
    parser.add_argument("--budget", type=float, default=2.0, help="timing budget per trial (s)")
    parser.add_argument("--truth-budget", type=float, default=20.0,
                        help="budget of the long A/B run that measures the true slowdown (s)")
    parser.add_argument("--max-slowdown", type=float, default=0.05)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--out", type=Path, help="write the rows to this CSV")
    args = parser.parse_args()
    policy = GatePolicy(args.max_slowdown, args.alpha, allow_cost_change=True)
    start, load_before = time.perf_counter(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mnv2prof-gates-") as folder:
        sides = write_subjects(Path(folder))
        base, copy, wider = (subjects(sides[s], sfx) for s, sfx in
                             (("base", "@base"), ("copy", "@change"), ("wider", "@change")))
        truth = {change.variant: change.latency.min_ms / b.latency.min_ms
                 for b, change in ab_run(base, wider, args.truth_budget)}
        stored = records_frame([c for _, c in ab_run(base, copy, args.budget)])
        rows = []
        for index in range(args.aa):
            with cpu_hog(index % 2 == 1):
                rows += trial_rows("A/A", index, index % 2 == 1,
                                   ab_run(base, copy, args.budget), stored, policy)
            print(f"A/A {index + 1}/{args.aa} ({time.perf_counter() - start:.0f} s)", flush=True)
        for index in range(args.ab):
            rows += trial_rows("A/B", index, False, ab_run(base, wider, args.budget), stored,
                               policy)
            print(f"A/B {index + 1}/{args.ab} ({time.perf_counter() - start:.0f} s)", flush=True)
        wall = gate_wall_time(sides, args.budget)
    results = pd.DataFrame(rows)
    if args.out:
        write_atomic(args.out, results.to_csv(index=False))
    print()
    print(summarize(results, truth))
    print()
    print(f"one model's gate (mobilenet_v3_large, both exports cached, --budget {args.budget:g}): "
          f"{wall:.1f} s to its verdict")
    print(f"{os.cpu_count()} cores; max slowdown {args.max_slowdown:.0%}; 1-minute load average "
          f"{load_before[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; "
          f"{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
