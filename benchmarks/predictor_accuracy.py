"""How well `predict` predicts networks it never saw, beside the FLOPs baseline (issue 32).

Held-out networks, none used to build the predictor:
- `--networks` (default 100) random MobileNetV2/V3-style networks drawn from the default space
  with seeds of their own (kernel 3/5/7, expansion 3/4/6, depth per stage, width, resolution, SE
  on or off, ReLU6 or hard-swish; some ShuffleNet V2 ones), written as *torch modules* here and
  exported by mnv2prof's exporter, as a user's model would be (the build samples graphs it
  writes itself with onnx.helper);
- examples/: ShuffleNet V2 1.0x, MobileNetV3-Large, the four UIB blocks at two specs each;
- MobileNetV2 at widths 0.5, 1.0 and 1.4 (224x224).

Each is predicted (kernel detection and the regressors timed apart), and timed whole as
`compare` times an onnxruntime row (predict.timing.time_network: its fastest call), at the
predictor's threads. Scored as nn-Meter scores: the share within +-10% and +-5%, the RMSE and the
RMSPE, for the kernel predictor and the FLOPs baseline (a x MACs + b fitted on the same
kernels), side by side; also without the calibration scale. Where it misses: for the networks it
misses most and a few it gets right, every node is timed inside the network by onnxruntime's
profiler and compared, kind by kind, with its prediction alone (misses.csv).

Writes OUT/networks.csv (one row per network), OUT/misses.csv, OUT/summary.json, and prints a
Markdown summary. Reported figures: run it under `flock /tmp/mnv2prof-timing.lock` and note the
load average (the summary records it at the start and the end).

Usage:
    python benchmarks/predictor_accuracy.py --out DIR [--predictor DIR | --build-minutes 25]
        [--networks 100] [--budget 2] [--ray-minutes M] [--seed 1] [--passes 2 | --truth CSV]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnv2prof.models.variants import make_divisible  # noqa: E402
from mnv2prof.predictor.space import Arch, Block, Space, random_arch  # noqa: E402

ACTS = {"relu6": nn.ReLU6, "relu": nn.ReLU, "hswish": nn.Hardswish, None: nn.Identity}
UIB = ("uib_extradw", "uib_ib", "uib_convnext", "uib_ffn")
UIB_SPECS = ({"in_chs": 32, "resolution": 56, "exp_ratio": 4, "kernel_size": 3, "stride": 1},
             {"in_chs": 64, "resolution": 28, "exp_ratio": 4, "kernel_size": 5, "stride": 2})


# --- held-out networks as torch modules --------------------------------------------------------


def conv_bn(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act=None):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), ACTS[act]())


class SqueezeExcite(nn.Module):
    def __init__(self, chs: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(chs, squeeze, 1), nn.Conv2d(squeeze, chs, 1)
        self.act, self.gate = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, b: Block) -> None:
        super().__init__()
        mid = make_divisible(cin * b.exp_ratio)
        layers = [conv_bn(cin, cin, b.kernel_size, 1, cin)] if b.extra_dw else []
        if mid != cin:
            layers.append(conv_bn(cin, mid, 1, act=b.act))
        layers.append(conv_bn(mid, mid, b.kernel_size, b.stride, mid, b.act))
        if b.se:
            layers.append(SqueezeExcite(mid, make_divisible(mid // 4)))
        layers.append(conv_bn(mid, b.out_chs, 1))
        self.body = nn.Sequential(*layers)
        self.skip = b.stride == 1 and cin == b.out_chs

    def forward(self, x):
        return self.body(x) + x if self.skip else self.body(x)


class ShuffleUnit(nn.Module):
    def __init__(self, cin: int, b: Block) -> None:
        super().__init__()
        half, k, self.stride = b.out_chs // 2, b.kernel_size, b.stride
        self.left = (conv_bn(cin, cin, k, 2, cin) if b.stride == 2 else nn.Identity())
        if b.stride == 2:
            self.left = nn.Sequential(self.left, conv_bn(cin, half, 1, act="relu"))
        right_in = cin if b.stride == 2 else cin // 2
        self.right = nn.Sequential(conv_bn(right_in, half, 1, act="relu"),
                                   conv_bn(half, half, k, b.stride, half),
                                   conv_bn(half, half, 1, act="relu"))

    def forward(self, x):
        left, right = x.chunk(2, dim=1) if self.stride == 1 else (self.left(x), x)
        out = torch.cat((left, self.right(right)), dim=1)
        n, c, h, w = out.shape
        return out.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)


class Network(nn.Module):
    def __init__(self, arch: Arch) -> None:
        super().__init__()
        layers = [conv_bn(3, arch.stem_chs, 3, 2, act=arch.stem_act)]
        if arch.max_pool:
            layers.append(nn.MaxPool2d(3, 2, 1))
        chs = arch.stem_chs
        for b in arch.blocks:
            layers.append((ShuffleUnit if b.kind == "shuffle" else InvertedResidual)(chs, b))
            chs = b.out_chs
        layers.append(conv_bn(chs, arch.head_chs, 1, act="hswish" if arch.hidden else "relu6"))
        self.features = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        head = [nn.Linear(arch.head_chs, arch.hidden), nn.Hardswish()] if arch.hidden else []
        last = arch.hidden or arch.head_chs
        self.classifier = nn.Sequential(*head, nn.Linear(last, arch.classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def held_out_archs(count: int, seed: int) -> list[Arch]:
    """`count` networks from the default space, on seeds no build draws ([seed, 7777, i])."""
    return [random_arch(Space(), np.random.default_rng([seed, 7777, i])) for i in range(count)]


def export_arch(arch: Arch, index: int) -> Path:
    from mnv2prof.artifacts.export import ExportSource, export_cached
    from mnv2prof.models.blocks import seeded

    source = ExportSource(name=f"heldout-{index}", identity=json.dumps(["heldout", repr(arch)]),
                          build=lambda seed: seeded(lambda: Network(arch), seed),
                          input_shape=(1, 3, arch.resolution, arch.resolution),
                          folder="predictor-bench")
    return export_cached(source).path


# --- the subjects ------------------------------------------------------------------------------


def subjects(networks: int, seed: int) -> list[tuple[str, str, Path, dict]]:
    """(set, name, ONNX file, input shapes) of every held-out subject."""
    from mnv2prof.artifacts.export import export_cached
    from mnv2prof.artifacts.sources import network_source
    from mnv2prof.models.networks import NetworkSpec
    from mnv2prof.run.pipeline import prepare
    from mnv2prof.run.plan import block_plan, model_plan

    found = []
    for i, arch in enumerate(held_out_archs(networks, seed)):
        kinds = "+".join(sorted({b.kind for b in arch.blocks}))
        found.append(("random", f"heldout-{i} {kinds} r{arch.resolution}", export_arch(arch, i),
                      {}))
    examples = [("shufflenet_v2", "examples/shufflenet_v2.py:shufflenet_v2_x1_0", {}),
                ("mobilenet_v3_large", "examples/mobilenet_v3.py:mobilenet_v3_large", {})]
    examples += [(f"{name} c{s['in_chs']} r{s['resolution']} k{s['kernel_size']} "
                  f"s{s['stride']}", f"examples/uib.py:{name}", s)
                 for name in UIB for s in UIB_SPECS if not (name == "uib_ffn" and s["stride"] == 2)]
    for name, reference, block in examples:
        plan = (block_plan([str(ROOT / reference)], channels=block["in_chs"],
                           resolution=block["resolution"], expansion=block["exp_ratio"],
                           kernel=block["kernel_size"], stride=block["stride"])
                if block else model_plan(str(ROOT / reference)))
        prepared = prepare(plan.check().subjects[0])
        found.append(("examples", name, Path(prepared.onnx_path),
                      dict(prepared.input_shapes or {})))
    for width in (0.5, 1.0, 1.4):
        path = export_cached(network_source(NetworkSpec("mobilenetv2", width, 224))).path
        found.append(("mobilenetv2", f"mobilenetv2 w{width:g}", path, {}))
    return found


def weight_bytes(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sum(int(np.prod(t.dims)) * 4 for t in model.graph.initializer)


def evaluate(predictor, found, budget: float, passes: int = 1,
             truth: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predict every subject, then time each in `passes` passes (the order reversed every other
    pass), the drift probes rotating beside it (timing.time_network_probed).

    Per pass: `measured_ms_pN` (its fastest call, as `compare` reads it) and `steady_ms_pN` (the
    same with the machine's drift divided out: over the probes' time in that pass against their
    time over the predictor's build, the reference its kernel times are read at, build.Table).
    `measured_ms` is pass 0's, as before; `steady_ms` the median of the passes' steady times.
    With `truth` (an earlier run's networks.csv), its passes are taken instead of timing again:
    two predictors scored against one truth differ by the predictors alone."""
    from mnv2prof.predictor.detect import detect
    from mnv2prof.predictor.prediction import kernel_times, predict_kernels

    rows = []
    for group, name, path, shapes in found:
        start = time.perf_counter()
        detected = detect(path, predictor.threads, shapes or None)
        detect_ms = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        p = predict_kernels(predictor, detected.kernels, detected.weight_bytes)
        predict_ms = (time.perf_counter() - start) * 1e3
        rows.append({"set": group, "network": name, "onnx": path.name, "macs": p.macs,
                     "kernels": len(p.kernels), "unpredicted": len(p.unpredicted),
                     "weight_bytes": weight_bytes(path), "predicted_ms": p.total_ms,
                     "uncalibrated_ms": p.floor_ms + sum(
                         t for t in kernel_times(predictor, detected.kernels) if t is not None),
                     "flops_ms": p.flops_ms, "low_ms": p.low_ms, "high_ms": p.high_ms,
                     "detect_ms": detect_ms, "regressors_ms": predict_ms})
    if truth is None:
        for number in range(passes):
            time_pass(predictor, found, rows, budget, number)
    else:
        passes = take_truth(truth, rows)
    frame = pd.DataFrame(rows)
    frame["measured_ms"] = frame["measured_ms_p0"]
    frame["steady_ms"] = frame[[f"steady_ms_p{n}" for n in range(passes)]].median(axis=1)
    for column in ("predicted", "uncalibrated", "flops"):
        frame[f"{column}_error_rel"] = frame[f"{column}_ms"] / frame["measured_ms"] - 1
        frame[f"{column}_steady_error_rel"] = frame[f"{column}_ms"] / frame["steady_ms"] - 1
    frame["inside_interval"] = (frame["low_ms"] <= frame["measured_ms"]) & (
        frame["measured_ms"] <= frame["high_ms"])
    return frame


def take_truth(truth: pd.DataFrame, rows: list[dict]) -> int:
    """Copy each network's timed passes from `truth` into `rows` (matched by name and ONNX
    file); the number of passes."""
    timed = [c for c in truth.columns if c.startswith(("measured_ms_p", "probe_ms_p",
                                                        "steady_ms_p"))]
    by_name = truth.set_index("network")
    for row in rows:
        if row["network"] not in by_name.index:
            raise SystemExit(f"--truth: {row['network']} was not timed there")
        found = by_name.loc[row["network"]]
        if found["onnx"] != row["onnx"]:
            raise SystemExit(f"--truth: {row['network']} was another graph ({found['onnx']})")
        row.update({c: float(found[c]) for c in timed})
    return sum(c.startswith("measured_ms_p") for c in timed)


def reference_ms(predictor) -> float:
    """The probes' median time over the predictor's build (build.Table.reference_ms)."""
    import csv

    from mnv2prof.predictor.build import Table

    with (predictor.folder / "kernels.csv").open(newline="") as handle:
        return Table(csv.DictReader(handle)).reference_ms()


def time_pass(predictor, found, rows: list[dict], budget: float, number: int) -> None:
    from mnv2prof.predictor.timing import probe_graphs, time_network_probed, undrift

    reference, probes = reference_ms(predictor), probe_graphs(predictor.threads)
    order = list(range(len(found)))[::-1 if number % 2 else 1]
    for done, index in enumerate(order):
        _, name, path, shapes = found[index]
        measured, probe = time_network_probed(str(path), predictor.threads, budget,
                                              shapes or None, 0, probes)
        row = rows[index]
        row[f"measured_ms_p{number}"], row[f"probe_ms_p{number}"] = measured, probe
        row[f"steady_ms_p{number}"] = undrift(measured, probe, reference)
        print(f"[pass {number} {done + 1}/{len(found)}] {name}: measured {measured:.3f} ms "
              f"(steady {row[f'steady_ms_p{number}']:.3f}), predicted "
              f"{row['predicted_ms']:.3f} ({row['predicted_ms'] / measured - 1:+.1%}), "
              f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)


def repeatability(frame: pd.DataFrame, passes: int) -> dict[str, dict]:
    """How the truth repeats: pass 1 scored against pass 0 as a prediction would be, raw and
    with the drift divided out."""
    from mnv2prof.predictor.fitting import scores

    if passes < 2:
        return {}
    return {name: scores(frame[f"{name}_ms_p1"], frame[f"{name}_ms_p0"]).as_dict()
            for name in ("measured", "steady")}


def score_table(frame: pd.DataFrame) -> dict[str, dict]:
    from mnv2prof.predictor.fitting import scores

    table = {}
    for name, part in [("all", frame), *frame.groupby("set")]:
        table[name] = {
            column: scores(part[f"{column}_ms"], part["measured_ms"]).as_dict()
            for column in ("predicted", "uncalibrated", "flops")}
        table[name].update({
            f"{column}_steady": scores(part[f"{column}_ms"], part["steady_ms"]).as_dict()
            for column in ("predicted", "flops")})
        table[name]["inside_interval_frac"] = round(float(part["inside_interval"].mean()), 4)
    return table


def misses(predictor, frame: pd.DataFrame, found, worst: int = 4, best: int = 2) -> pd.DataFrame:
    """For the random networks predicted worst and best: each kind's time inside the network
    (onnxruntime's profiler, the median of 30 runs) against its kernels' predictions alone."""
    from mnv2prof.measure.layers import time_layers
    from mnv2prof.predictor.detect import detect
    from mnv2prof.predictor.prediction import kernel_times

    random = frame[frame["set"] == "random"].copy()
    random["miss"] = random["predicted_error_rel"].abs()
    chosen = pd.concat([random.nlargest(worst, "miss"), random.nsmallest(best, "miss")])
    paths = {name: (path, shapes) for _, name, path, shapes in found}
    rows = []
    for _, net in chosen.iterrows():
        path, shapes = paths[net["network"]]
        kernels = detect(path, predictor.threads, shapes or None).kernels
        alone = dict(zip([k.name for k in kernels], kernel_times(predictor, kernels), strict=True))
        inside = {r.node: r.kernel_ms for r in time_layers(path, predictor.threads, runs=30,
                                                           warmup=5, input_shapes=shapes or None)}
        for kind in sorted({k.kind or "(none)" for k in kernels}):
            names = [k.name for k in kernels if (k.kind or "(none)") == kind]
            rows.append({"network": net["network"], "error_rel": net["predicted_error_rel"],
                         "kind": kind, "kernels": len(names),
                         "inside_ms": sum(inside.get(n, 0.0) for n in names),
                         "alone_predicted_ms": sum(alone[n] or 0.0 for n in names)})
    table = pd.DataFrame(rows)
    table["inside_over_alone"] = table["inside_ms"] / table["alone_predicted_ms"].where(
        table["alone_predicted_ms"] > 0)
    return table


def build_predictor(out: Path, minutes: float, ray: str | None = None):
    from mnv2prof.predictor.build import BuildPlan, build

    def progress(p) -> None:
        print(f"\rbuild{' (ray)' if ray else ''}: {p.phase} {p.kernels} kernels "
              f"{p.elapsed_s / 60:.1f} min", end="", file=sys.stderr)

    plan = BuildPlan(out, Space(), minutes * 60)
    if ray is None:
        result = build(plan, progress)
    else:
        from mnv2prof.predictor.remote import cluster_runner
        from mnv2prof.run.cluster import connect

        with connect(ray) as handle:
            result = build(plan, progress, cluster_runner(handle, 1, Space().kernel_budget_s))
    print(file=sys.stderr)
    return result


def markdown(summary: dict) -> str:
    lines = ["| set | n | kernel predictor: within 10% / 5% | RMSE ms | RMSPE | FLOPs baseline: "
             "within 10% / 5% | RMSE ms | RMSPE |", "|---|---|---|---|---|---|---|---|"]
    for name, row in summary["scores"].items():
        p, f = row["predicted"], row["flops"]
        lines.append(f"| {name} | {p['n']} | {p['within_10']:.1%} / {p['within_5']:.1%} | "
                     f"{p['rmse_ms']:.3f} | {p['rmspe']:.1%} | {f['within_10']:.1%} / "
                     f"{f['within_5']:.1%} | {f['rmse_ms']:.3f} | {f['rmspe']:.1%} |")
    lines += ["", "against the truth with the machine's drift divided out (steady_ms):", "",
              "| set | kernel predictor: within 10% / 5% | RMSPE | FLOPs: within 10% / 5% |",
              "|---|---|---|---|"]
    for name, row in summary["scores"].items():
        p, f = row["predicted_steady"], row["flops_steady"]
        lines.append(f"| {name} | {p['within_10']:.1%} / {p['within_5']:.1%} | {p['rmspe']:.1%} "
                     f"| {f['within_10']:.1%} / {f['within_5']:.1%} |")
    for name, row in summary["repeatability"].items():
        lines.append(f"truth repeated ({name}): pass 1 within 10% / 5% of pass 0 for "
                     f"{row['within_10']:.1%} / {row['within_5']:.1%} (RMSPE {row['rmspe']:.1%})")
    speed = summary["speed"]
    lines += ["", f"prediction: kernel detection {speed['detect_ms_median']:.0f} ms (median), "
              f"regressors {speed['regressors_ms_median']:.2f} ms (median, p90 "
              f"{speed['regressors_ms_p90']:.2f}) per network",
              f"load average: {summary['load_start']} at the start, {summary['load_end']} at "
              "the end"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--predictor", type=Path, help="use this predictor (else build one)")
    parser.add_argument("--build-minutes", type=float, default=25.0)
    parser.add_argument("--ray-minutes", type=float, default=0.0,
                        help="also build one with --ray local for this long (kernels/s)")
    parser.add_argument("--networks", type=int, default=100)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing a network")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--truth", type=Path,
                        help="an earlier run's networks.csv: score against its timings")
    parser.add_argument("--passes", type=int, default=1,
                        help="time every network this many times (2+: the truth's repeatability)")
    args = parser.parse_args(argv)
    from mnv2prof.predictor.folder import load_predictor

    args.out.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()
    folder = args.predictor
    if folder is None:
        folder = args.out / "predictor"
        build_predictor(folder, args.build_minutes)
    ray_build = None
    if args.ray_minutes:
        result = build_predictor(args.out / "predictor-ray", args.ray_minutes, "local")
        ray_build = {"kernels_timed": result.kernels_timed, "sampling_s": result.seconds,
                     "kernels_per_s": result.kernels_per_s}
    predictor = load_predictor(folder)
    found = subjects(args.networks, args.seed)
    truth = pd.read_csv(args.truth) if args.truth else None
    frame = evaluate(predictor, found, args.budget, args.passes, truth)
    passes = sum(c.startswith("measured_ms_p") for c in frame.columns)
    frame.to_csv(args.out / "networks.csv", index=False)
    if truth is None:  # profiling the misses times them again
        misses(predictor, frame, found).to_csv(args.out / "misses.csv", index=False)
    build_meta = predictor.meta["build"]
    summary = {
        "predictor": str(folder), "build": build_meta, "ray_build": ray_build,
        "kernels_per_s": build_meta["kernels_timed_now"] / build_meta["sampling_s"]
        if build_meta.get("sampling_s") else None,
        "calibration": predictor.meta["calibration"],
        "kinds": {k: v["held_out"] for k, v in predictor.meta["kinds"].items()},
        "scores": score_table(frame), "repeatability": repeatability(frame, passes),
        "speed": {"detect_ms_median": statistics.median(frame["detect_ms"]),
                  "regressors_ms_median": statistics.median(frame["regressors_ms"]),
                  "regressors_ms_p90": float(np.quantile(frame["regressors_ms"], 0.9))},
        "load_start": [round(v, 2) for v in load_start],
        "load_end": [round(v, 2) for v in os.getloadavg()],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
