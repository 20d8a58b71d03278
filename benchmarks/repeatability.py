"""Do the numbers hold on the next run? Back-to-back `compare` runs, exports cached.

Runs `mnv2prof compare --no-eager` (the default block set and budget) `--runs` times, each a fresh
process, and reads every run's CSV. For each variant it reports:

- the ratio to conv of every run (`latency_ratio_x`, the tool's headline: a ratio of minima), the
  10-run median, how many runs lie within +-3% of it, and the largest deviation;
- coverage: how often one run's 95% ratio interval (`latency_ratio_ci_low_x` .. `_high_x`) holds
  another run's ratio, over every ordered pair of runs;
- the same two for the median (the estimator before this one): the ratio of medians, and how often
  one run's 95% CI of the median holds another run's median;
- how many rows each run flagged (`latency_unstable`), and each run's wall time.

With `--old PATH` (a checkout of an earlier version), the runs alternate between this checkout and
that one (new, old, new, old...), so the two see the same machine, and the wall-time ratio is
measured in one session as the brief asks: a speed-up is a ratio, measured alternating the sides.

Usage: python benchmarks/repeatability.py [--runs 10] [--budget 2.0] [--old PATH] [--out CSV]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
WITHIN = 0.03  # the target: within +-3% of the 10-run median in 9 of 10 runs


def run_compare(tree: Path, out: Path, budget: float, extra: list[str]) -> float:
    """One `compare` in a fresh process on `tree`'s code; its wall time in seconds."""
    env = dict(os.environ, PYTHONPATH=str(tree), COLUMNS="160")
    command = [sys.executable, "-m", "mnv2prof", "compare", "--no-eager", "--budget", str(budget),
               "--csv", str(out), *extra]
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, cwd=tree, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE)
    return time.perf_counter() - start


def ratios(frame: pd.DataFrame, column: str) -> pd.Series:
    base = frame.loc[frame["variant"] == "conv", column].iloc[0]
    return (frame.set_index("variant")[column] / base).rename(column)


def _floats(text) -> np.ndarray:
    if not isinstance(text, str):
        return np.array([])
    return np.array([float(v) for v in text.split()])


def paired(frame: pd.DataFrame, variant: str, side: str) -> tuple[float, float, float]:
    """The median of the per-round ratios variant / conv of `side` (latency_samples_ms: burst
    medians; latency_mins_ms: burst minima) and its 95% order-statistic interval."""
    from mnv2prof.measure.paired import paired_ratios
    from mnv2prof.measure.stats import median_ci

    rows = frame.set_index("variant")
    ratios = paired_ratios(_floats(rows.loc["conv", side]), _floats(rows.loc[variant, side]))
    low, high = median_ci(ratios)
    return float(np.median(ratios)), low, high


PAIRED = {"paired round minima": "latency_mins_ms", "paired round medians": "latency_samples_ms"}


def paired_summary(runs: list[pd.DataFrame]) -> pd.DataFrame:
    """The candidates of issue 33 for compare's ratio, scored like the headline: repeatability
    and how often one run's interval holds another run's ratio."""
    rows = []
    for estimator, side in PAIRED.items():
        if side not in runs[0]:
            continue
        for variant in [v for v in runs[0]["variant"] if v != "conv"]:
            per_run = [paired(frame, variant, side) for frame in runs]
            values = np.array([p[0] for p in per_run])
            median = float(np.median(values))
            deviation = np.abs(values / median - 1)
            held = [a[1] <= b[0] <= a[2] for i, a in enumerate(per_run)
                    for j, b in enumerate(per_run) if i != j]
            rows.append({
                "variant": variant, "estimator": estimator, "ratio_median_x": round(median, 4),
                "runs_within_3pct": int((deviation <= WITHIN).sum()), "runs": len(values),
                "max_deviation_pct": round(100 * float(deviation.max()), 1),
                "coverage_pct": round(100 * float(np.mean(held)), 1),
            })
    return pd.DataFrame(rows)


def flag_score(runs: list[pd.DataFrame]) -> str:
    """The `!` flag, scored both ways: the share of rows flagged, and of the rows whose fastest
    call the next run did not reproduce within 2%, the share that were flagged."""
    flagged = missed_flagged = missed = rows = 0
    for this, after in zip(runs, runs[1:]):
        nxt = after.set_index("variant")["latency_min_ms"]
        for row in this.to_dict("records"):
            rows += 1
            flagged += bool(row["latency_unstable"])
            if abs(nxt[row["variant"]] / row["latency_min_ms"] - 1) > 0.02:
                missed += 1
                missed_flagged += bool(row["latency_unstable"])
    return (f"! flagged {flagged} of {rows} rows ({100 * flagged / max(rows, 1):.0f}%); "
            f"of the {missed} rows the next run did not reproduce within 2%, "
            f"{missed_flagged} were flagged")


def summary(runs: list[pd.DataFrame], headline: bool) -> pd.DataFrame:
    """Per variant: repeatability and coverage of the headline ratio (or of the median)."""
    rows = []
    variants = [v for v in runs[0]["variant"] if v != "conv"]
    for variant in variants:
        per_run = []
        for frame in runs:
            row = frame.set_index("variant").loc[variant]
            if headline:
                per_run.append((row["latency_ratio_x"], row["latency_ratio_ci_low_x"],
                                row["latency_ratio_ci_high_x"]))
            else:  # the median: its ratio, and its CI (of the median itself, not of a ratio)
                base = frame.set_index("variant").loc["conv", "latency_median_ms"]
                per_run.append((row["latency_median_ms"] / base, row["latency_ci_low_ms"],
                                row["latency_ci_high_ms"], row["latency_median_ms"]))
        values = np.array([p[0] for p in per_run])
        median = float(np.median(values))
        deviation = np.abs(values / median - 1)
        held = []
        for i, interval in enumerate(per_run):
            for j, other in enumerate(per_run):
                if i != j:
                    value = other[0] if headline else other[3]
                    held.append(interval[1] <= value <= interval[2])
        rows.append({
            "variant": variant, "estimator": "min (headline)" if headline else "median (before)",
            "ratio_median_x": round(median, 4), "runs_within_3pct": int((deviation <= WITHIN).sum()),
            "runs": len(values), "max_deviation_pct": round(100 * float(deviation.max()), 1),
            "coverage_pct": round(100 * float(np.mean(held)), 1),
        })
    return pd.DataFrame(rows)


def markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def report(name: str, runs: list[pd.DataFrame], walls: list[float]) -> pd.DataFrame:
    parts = [summary(runs, True)] if "latency_ratio_ci_low_x" in runs[0] else []
    table = pd.concat([*parts, paired_summary(runs), summary(runs, False)], ignore_index=True)
    flags = [int(f["latency_unstable"].astype(bool).sum()) for f in runs]
    print(f"\n## {name}: {len(runs)} runs, wall {np.median(walls):.1f} s median "
          f"({min(walls):.1f}-{max(walls):.1f}), rows flagged per run: {flags}\n")
    print(markdown(table))
    print(f"\n{flag_score(runs)}")
    return table.assign(tree=name, wall_median_s=round(float(np.median(walls)), 2),
                        flagged_per_run=" ".join(map(str, flags)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--budget", type=float, default=2.0)
    parser.add_argument("--old", type=Path, help="an earlier checkout, run alternately")
    parser.add_argument("--out", type=Path,
                        help="write the rows to this CSV (benchmarks/results/repeatability.csv "
                        "is the committed one: name it only to update it)")
    parser.add_argument("--raw", type=Path, help="also keep every run's rows (one CSV)")
    parser.add_argument("extra", nargs="*", help="more compare flags, after --")
    args = parser.parse_args()
    trees = {"this checkout": ROOT, **({"old": args.old.resolve()} if args.old else {})}
    frames = {name: [] for name in trees}
    walls = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as tmp:
        for name, tree in trees.items():  # warm the export cache first: not timed
            run_compare(tree, Path(tmp) / "warm.csv", 0.05, args.extra)
        for i in range(args.runs):
            for name, tree in trees.items():
                out = Path(tmp) / f"{name.replace(' ', '_')}-{i}.csv"
                walls[name].append(run_compare(tree, out, args.budget, args.extra))
                frames[name].append(pd.read_csv(out))
            print(f"run {i + 1}/{args.runs}: " + ", ".join(
                f"{n} {walls[n][-1]:.1f} s" for n in trees), file=sys.stderr)
    tables = [report(name, frames[name], walls[name]) for name in trees]
    if args.raw:
        from mnv2prof.files.atomic import write_atomic as write

        raw = pd.concat([f.assign(tree=name, run=i) for name in trees
                         for i, f in enumerate(frames[name])], ignore_index=True)
        write(args.raw, raw.to_csv(index=False))
    if args.old:
        ratio = np.array(walls["this checkout"]) / np.array(walls["old"])
        print(f"\nwall time, this checkout / old, run by run: median {np.median(ratio):.2f}x "
              f"({ratio.min():.2f}-{ratio.max():.2f})")
    if args.out:
        from mnv2prof.files.atomic import write_atomic

        write_atomic(args.out, pd.concat(tables, ignore_index=True).to_csv(index=False))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
