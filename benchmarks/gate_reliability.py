"""How often does `mnv2prof gate` cry wolf, and how often does it sleep, on this machine?

Each trial measures four runs of the same variants (each run times its variants in warm bursts
that rotate round by round, onnxruntime only, through `pipeline.measure_rows`: the path
`mnv2prof baseline` and `gate` use):

    base      C=32 56x56 t=6   a fresh baseline
    base_t4   C=32 56x56 t=4   a baseline from before a "change" that raised the expansion to 6
    current   C=32 56x56 t=6   the same code measured again
    current72 C=32 72x72 t=6   a "change" that raised the resolution (1.65x the pixels)

and gates them with `gate.decide` (the decision `mnv2prof gate` makes):

    self           current vs base, absolute and relative to conv: every failed row is a false
                   failure; also the anchors' fixed threshold (median ratio > 1.10, no test) for
                   contrast
    expansion      current vs base_t4 (cost changes allowed, so latency alone decides), absolute
                   and relative to conv: rows whose variant uses t (mbv2, fused) must fail (a
                   pass is a miss); conv and dwsep are unchanged and must pass
    resolution     current72 vs base, absolute (cost changes allowed): every row must fail.
                   Relative mode is not scored here: it cannot see a change that slows every
                   block alike, the reference included (see gate.py)

Usage: python benchmarks/gate_reliability.py [--trials 10] [--budgets 2.0,0.5] [--out CSV]
It prints a Markdown table of counts and, with --out, writes one row per trial and check there.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd

from mnv2prof import gate
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.models.variants import VARIANTS, BlockSpec
from mnv2prof.files.atomic import write_atomic
from mnv2prof.run.frame import records_frame
from mnv2prof.run.pipeline import measure_rows

VARIANTS_GATED = ("conv", "dwsep", "mbv2", "fused")
REFERENCE = "conv"
POLICY = gate.GatePolicy()  # the CLI's defaults: 10% tolerance, alpha 0.01
ALLOW_COST = gate.GatePolicy(allow_cost_change=True)
NAIVE_THRESHOLD = 1.10  # the anchors' gate: fail when the median ratio exceeds this, no test


def measure(budget: float, **spec: int) -> pd.DataFrame:
    specs = [BlockSpec(v, in_chs=32, **spec) for v in VARIANTS_GATED]
    # onnxruntime only, warm cache: what `mnv2prof baseline` and `gate` time
    return records_frame(measure_rows(specs, TimingSpec(budget_s=budget), eager=False).records)


def trial(budget: float, index: int) -> list[dict[str, object]]:
    base = measure(budget, resolution=56, exp_ratio=6)
    base_t4 = measure(budget, resolution=56, exp_ratio=4)
    current = measure(budget, resolution=56, exp_ratio=6)
    current72 = measure(budget, resolution=72, exp_ratio=6)
    rows = []

    def score(check: str, mode: str, result: gate.GateResult, must_fail: set[str]) -> None:
        for r in result.rows:
            if r.latency is gate.Latency.REFERENCE:
                continue
            expected = "fail" if r.variant in must_fail else "pass"
            rows.append({
                "budget_s": budget, "trial": index, "check": check, "mode": mode,
                "variant": r.variant, "expected": expected, "verdict": r.verdict,
                "failed": r.failed, "ratio_x": round(r.ratio_x, 4), "p_value": r.p_value,
            })

    score("self", "absolute", gate.decide(base, current, POLICY), set())
    score("self", f"relative to {REFERENCE}",
          gate.decide(base, current, POLICY, relative_to=REFERENCE), set())
    naive = gate.decide(base, current, POLICY)
    for r in naive.rows:
        rows.append({"budget_s": budget, "trial": index, "check": "self", "mode": "naive 1.10",
                     "variant": r.variant, "expected": "pass",
                     "verdict": "fail" if r.ratio_x > NAIVE_THRESHOLD else "pass",
                     "failed": r.ratio_x > NAIVE_THRESHOLD, "ratio_x": round(r.ratio_x, 4),
                     "p_value": None})
    uses_t = {v for v in VARIANTS_GATED if VARIANTS[v].uses_expansion}
    score("expansion 4->6", "absolute", gate.decide(base_t4, current, ALLOW_COST), uses_t)
    score("expansion 4->6", f"relative to {REFERENCE}",
          gate.decide(base_t4, current, ALLOW_COST, relative_to=REFERENCE), uses_t)
    score("resolution 56->72", "absolute", gate.decide(base, current72, ALLOW_COST),
          set(VARIANTS_GATED))
    samples = {"n_samples_min": int(pd.concat([base, base_t4, current, current72])["latency_n"].min())}
    return [{**row, **samples} for row in rows]


def summarize(results: pd.DataFrame) -> str:
    lines = [
        "| budget (s) | check | mode | trials | rows gated | false failures (rows) | "
        "trials with a false failure | misses (rows) | min rounds per row |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    keys = ["budget_s", "check", "mode"]
    for (budget, check, mode), g in results.groupby(keys, sort=False):
        false_fail = g[(g["expected"] == "pass") & g["failed"]]
        misses = g[(g["expected"] == "fail") & ~g["failed"]]
        expect_fail = int((g["expected"] == "fail").sum())
        lines.append(
            f"| {budget:g} | {check} | {mode} | {g['trial'].nunique()} | {len(g)} | "
            f"{len(false_fail)} of {int((g['expected'] == 'pass').sum())} | "
            f"{false_fail['trial'].nunique()} | "
            f"{f'{len(misses)} of {expect_fail}' if expect_fail else '-'} | "
            f"{int(g['n_samples_min'].min())} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--budgets", default="2.0,0.5", help="timing budgets (s), comma-separated")
    parser.add_argument("--out", type=Path,
                        help="write the rows to this CSV (benchmarks/results/gate_reliability.csv "
                        "is the committed one: name it only to update it)")
    args = parser.parse_args()
    start, load_before = time.perf_counter(), os.getloadavg()
    rows = []
    for budget in (float(b) for b in args.budgets.split(",")):
        for index in range(args.trials):
            rows += trial(budget, index)
            print(f"budget {budget:g} s, trial {index + 1}/{args.trials} done "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    results = pd.DataFrame(rows)
    if args.out:
        write_atomic(args.out, results.to_csv(index=False))
    load_after = os.getloadavg()
    print()
    print(summarize(results))
    print()
    print(f"{os.cpu_count()} cores; 1-minute load average {load_before[0]:.2f} at the start, "
          f"{load_after[0]:.2f} at the end; {time.perf_counter() - start:.0f} s in all"
          + (f"; rows in {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
