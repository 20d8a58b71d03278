"""Which latency estimator holds from one run to the next? One long recording, cut into runs.

Rotates conv, dwsep, mbv2, resnet and shufflev2 (the compare defaults: C=32, 56x56, t=6, the
tool's cached exports, pre-bound onnxruntime sessions, 1 thread) and two machine-state probes (4
MiB of in-place adds; four 64x64 matmuls) in bursts of about 10 ms, the first call of each burst
untimed, every call's time kept, for `--seconds`. The recording is then cut into windows of
`--window` seconds, each a stand-in for one `compare` run, and for each estimator it reports the
share of windows whose ratio to conv lies within +-3% of the windows' median (the issue's target:
9 runs in 10), worst and mean over the variants, and each variant's largest deviation.

Usage: python benchmarks/estimators.py [--seconds 90] [--window 2.5] [--out JSON]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

VARIANTS = ["conv", "dwsep", "mbv2", "resnet", "shufflev2"]


def record(seconds: float) -> list[dict]:
    from mnv2prof.measure.eager import torch_threads
    from mnv2prof.measure.latency import OrtRunner
    from mnv2prof.models.variants import BlockSpec
    from mnv2prof.run.pipeline import prepare

    runners = {v: OrtRunner(prepare(BlockSpec(v, in_chs=32, resolution=56, exp_ratio=6)).onnx_path)
               for v in VARIANTS}
    memory = np.zeros(4 * 2**20 // 8)
    a = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    runners["probe_mem"] = lambda: np.add(memory, 1.0, out=memory)
    runners["probe_flop"] = lambda: a @ a @ a @ a
    clock = time.perf_counter_ns
    calls = {}
    for key, run in runners.items():
        warm = []
        for _ in range(10):
            t = clock()
            run()
            warm.append((clock() - t) / 1e6)
        calls[key] = max(1, int(10 / statistics.median(warm)))
    log, keys, rounds = [], list(runners), 0
    end = time.time() + seconds
    with torch_threads(1):
        while time.time() < end:
            offset = rounds % len(keys)
            row = {"t": time.time()}
            for key in keys[offset:] + keys[:offset]:
                run = runners[key]
                run()  # the switch
                times = []
                for _ in range(calls[key]):
                    t = clock()
                    run()
                    times.append((clock() - t) / 1e6)
                row[key] = times
            log.append(row)
            rounds += 1
    return log


def windows(log: list[dict], seconds: float) -> list[list[dict]]:
    cut: dict[int, list[dict]] = {}
    for row in log:
        cut.setdefault(int((row["t"] - log[0]["t"]) // seconds), []).append(row)
    return [rows for rows in cut.values() if len(rows) >= 5]


def calls(rows, key):
    return np.concatenate([r[key] for r in rows])


ESTIMATORS = {
    "median of round medians (before)": lambda rows, k: np.median([np.median(r[k]) for r in rows]),
    "minimum of round medians": lambda rows, k: min(np.median(r[k]) for r in rows),
    "25% quantile of all calls": lambda rows, k: np.quantile(calls(rows, k), 0.25),
    "10% quantile of all calls": lambda rows, k: np.quantile(calls(rows, k), 0.10),
    "5% quantile of all calls": lambda rows, k: np.quantile(calls(rows, k), 0.05),
    "1% quantile of all calls": lambda rows, k: np.quantile(calls(rows, k), 0.01),
    "fastest call": lambda rows, k: calls(rows, k).min(),
}


def paired(rows, key):  # the median of per-round ratios of burst medians
    return np.median([np.median(r[key]) / np.median(r["conv"]) for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=90.0)
    parser.add_argument("--window", type=float, default=2.5)
    parser.add_argument("--out", type=Path, help="keep the recording (JSON)")
    parser.add_argument("--load", type=Path, help="analyse a recording kept with --out")
    args = parser.parse_args()
    log = json.loads(args.load.read_text()) if args.load else record(args.seconds)
    if args.out:
        args.out.write_text(json.dumps(log))
    runs = windows(log, args.window)
    print(f"{len(log)} rounds, {len(runs)} windows of {args.window:g} s\n")
    print("| estimator | worst | mean | " + " | ".join(f"{v} max dev" for v in VARIANTS[1:]) + " |")
    print("|---|---|---|" + "---|" * (len(VARIANTS) - 1))
    table = {**{name: (lambda f: lambda rows, k: f(rows, k) / f(rows, "conv"))(f)
                for name, f in ESTIMATORS.items()},
             "median of per-round ratios (paired)": paired}
    for name, ratio in table.items():
        shares, deviations = [], []
        for variant in VARIANTS[1:]:
            values = np.array([ratio(rows, variant) for rows in runs])
            deviation = np.abs(values / np.median(values) - 1)
            shares.append(float(np.mean(deviation <= 0.03)))
            deviations.append(100 * float(deviation.max()))
        print(f"| {name} | {min(shares):.2f} | {np.mean(shares):.2f} | "
              + " | ".join(f"{d:.1f}%" for d in deviations) + " |")
    probe = [np.median([np.median(r["probe_mem"]) for r in rows]) for rows in runs]
    conv = [calls(rows, "conv").min() for rows in runs]
    print(f"\nmemory probe, window medians: {min(probe):.4f}-{max(probe):.4f} ms; conv's fastest "
          f"call: {min(conv):.4f}-{max(conv):.4f} ms")


if __name__ == "__main__":
    main()
