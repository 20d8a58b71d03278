"""How long mnv2prof spends on itself: wall time minus the imports minus the timing budget.

Each case is a fresh process, run `--reps` times in rotation (so the machine's drift hits every
case alike), reported as the median (min-max):

- `import torch, onnxruntime`: the floor any tool that times onnxruntime beside torch pays;
- one variant, warm cache: `compare --variants mbv2 --no-eager --budget 0.5`; overhead = wall -
  import - 0.5 s (target: at most 1.0 s);
- the default compare, warm cache: `compare` (8 variants, onnxruntime and eager, 2 s each);
  overhead = wall - import - 4 s (target: at most 2.0 s);
- the default compare on a fresh cache (every export made): wall (target: at most 15 s);
- a bad flag: `compare --expansion abc`, refused (target: under 0.5 s);
- `--help`, for reference;
- the worker for the user's code (issue 31): the built-in conv given as a user's file
  (`USER_BLOCK`), warm, with eager timing off and on, against the built-in conv run alike;
  extra = its wall - the built-in's (target: at most 0.2 s). A user's block also pays for its
  size check on torch's meta device, which a built-in's closed form does not (models/sizes.py).

Usage: python benchmarks/overhead.py [--reps 5] [--out CSV] (the table is printed; the rows go
to --out only: name benchmarks/results/overhead.csv to update the committed results)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "mnv2prof"]
# (name, command, timing budget in the wall time (s), target, what the target bounds, cache)
CASES = [
    ("import torch, onnxruntime", [sys.executable, "-c", "import torch, onnxruntime"], 0.0,
     None, "", "warm"),
    ("one variant, warm", [*CLI, "compare", "--variants", "mbv2", "--no-eager", "--budget", "0.5"],
     0.5, 1.0, "overhead", "warm"),
    ("default compare, warm", [*CLI, "compare"], 4.0, 2.0, "overhead", "warm"),
    ("default compare, fresh cache", [*CLI, "compare"], 4.0, 15.0, "wall", "fresh"),
    ("bad flag", [*CLI, "compare", "--expansion", "abc"], 0.0, 0.5, "wall", "warm"),
    ("--help", [*CLI, "compare", "--help"], 0.0, None, "", "warm"),
]
# the built-in conv as a user's file: the same block, run through the worker (run.worker)
USER_BLOCK = "from mnv2prof.models.blocks import BUILDERS\n\nconv = BUILDERS['conv']\n"


def user_cases(folder: str) -> list[tuple]:
    """The worker's cases, each after the built-in it is measured against (`extra:` its name)."""
    user = f"{Path(folder) / 'user_conv.py'}:conv"
    cases = []
    for eager, budget, words in ((("--no-eager",), 0.5, ""), ((), 1.0, " with eager")):
        built_in = f"conv{words}, warm"
        for name, variant, target, bound in (
            (built_in, "conv", None, ""),
            (f"conv as a user's block{words}, warm", user, 0.2, f"extra:{built_in}"),
        ):
            command = [*CLI, "compare", "--variants", variant, *eager, "--budget", "0.5"]
            cases.append((name, command, budget, target, bound, "warm"))
    return cases


def wall(command: list[str], cache: str) -> float:
    env = dict(os.environ, MNV2PROF_CACHE=cache, COLUMNS="120")
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path,
                        help="write the rows to this CSV (benchmarks/results/overhead.csv "
                        "is the committed one: name it only to update it)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as files:
        (Path(files) / "user_conv.py").write_text(USER_BLOCK)
        cases = CASES + user_cases(files)
        times: dict[str, list[float]] = {name: [] for name, *_ in cases}
        wall([*CLI, "compare", "--budget", "0.05"], warm)  # fill the warm cache: not timed
        wall(cases[-1][1], warm)  # and the user's block's
        for rep in range(args.reps):
            for name, command, _, _, _, cache in cases:
                with tempfile.TemporaryDirectory() as fresh:
                    times[name].append(wall(command, fresh if cache == "fresh" else warm))
            print(f"repetition {rep + 1}/{args.reps}", file=sys.stderr)
    imports = statistics.median(times["import torch, onnxruntime"])
    rows = []
    for name, command, budget, target, bound, _ in cases:
        values = times[name]
        overhead = [v - imports - budget for v in values] if bound == "overhead" else values
        measured = statistics.median(overhead)
        if bound.startswith("extra:"):
            measured -= statistics.median(times[bound.partition(":")[2]])
        rows.append({
            "case": name, "command": " ".join(command[2:] if command[:2] == CLI[:2] else command),
            "wall_median_s": round(statistics.median(values), 2),
            "wall_min_s": round(min(values), 2), "wall_max_s": round(max(values), 2),
            "timing_budget_s": budget, "bound": bound or "-",
            "measured_s": round(measured, 2) if bound else None, "target_s": target,
            "met": (measured <= target) if target is not None else None,
        })
    frame = pd.DataFrame(rows)
    print(f"\n{args.reps} repetitions; import of torch + onnxruntime: {imports:.2f} s (median)\n")
    print("| case | wall (s), median (min-max) | bound | measured (s) | target (s) | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        measured = "-" if r["measured_s"] is None else f"{r['measured_s']:.2f}"
        target = "-" if r["target_s"] is None else f"{r['target_s']:g}"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "NO")
        print(f"| {r['case']} | {r['wall_median_s']:.2f} ({r['wall_min_s']:.2f}-"
              f"{r['wall_max_s']:.2f}) | {r['bound']} | {measured} | {target} | {met} |")
    if args.out:
        from mnv2prof.files.atomic import write_atomic

        write_atomic(args.out, frame.to_csv(index=False))
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
