"""What several test modules share: tiny CLI flags, a tiny profile, results files, gate frames,
baseline rows restated from their samples, a git repository, and the one-line refusal check.
(Fixtures live in conftest.py; this module holds plain functions and constants.)"""

import csv
import subprocess
import textwrap

import numpy as np
import pandas as pd

from mnv2prof.gating.decide import GatePolicy
from mnv2prof.measure.env import Environment
from mnv2prof.measure.stats import summarize

SPEC8 = ("--channels", "8", "--resolution", "8")  # the tiny spec most CLI tests measure
QUICK = (*SPEC8, "--budget", "0.05")  # ... timed briefly
QUICK_NO_EAGER = (*QUICK, "--no-eager")


# --- users' blocks, as a file (models/plugins' tests and the worker's) -----------------------------

WIDE = '''
import torch
from torch import nn


class Wide(nn.Module):
    """A 1x1 conv and BN, taking only the keywords it needs: MACs H*W*C_in*C_out, params
    C_in*C_out + 2*C_out."""

    def __init__(self, in_chs, out_chs):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x):
        return self.bn(self.conv(x))
'''  # a user's block file starts with it (tests/models/test_plugins, tests/cli/test_user_code)

# a block that raises and one whose conv expects another channel count (both files hold them)
FAULTY = '''


def raises(in_chs):
    raise ValueError(f"no block for {in_chs} channels")


class WrongChannels(nn.Module):
    def __init__(self, in_chs):
        super().__init__()
        self.conv = nn.Conv2d(in_chs + 1, 4, 1)

    def forward(self, x):
        return self.conv(x)
'''

PLUGIN_BLOCKS = WIDE + FAULTY + '''


def everything(**values):
    everything.seen = values
    return nn.Identity()


class NoInit(nn.Module):
    def forward(self, x):
        return x * 2


def not_a_module(in_chs):
    return 42


class Pair(nn.Module):
    def forward(self, x):
        return x, x


def tiny_net():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 2))
'''


def csv_rows(path) -> list[dict[str, str]]:
    """A CSV's rows as text cells."""
    with open(path, encoding="utf-8") as file:
        return list(csv.DictReader(file))


# --- the one-line refusal -----------------------------------------------------------------------


def refused(result, *fragments):
    code, out, err = result
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnv2prof: error:"), err
    assert "Traceback" not in out + err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# --- a tiny profile and a journal's rows --------------------------------------------------------


def tiny_profile(tmp_path, name="tiny", resolution=8, expansions=(1, 2),
                 variants=("conv", "mbv2"), batch_rows=48, budget="0.05", grid=""):
    """The one tiny profile of the tests: `variants` at C=8, `resolution`, t in `expansions`;
    `grid`: one more line of its [grid] table (precision = ["int8"])."""
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""
        name = "{name}"
        description = "channels 8, {resolution}x{resolution}, t in {list(expansions)}"
        variants = {list(variants)}
        [base]
        in_chs = 8
        resolution = {resolution}
        [grid]
        exp_ratio = {list(expansions)}
        {grid}
        [measure]
        budget_s = {budget}
        warmup = 1
        batch_rows = {batch_rows}
    """))
    return path


def read_rows(path):
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    assert all(len(row) == len(header) for row in body), "a row is not whole"
    return pd.read_csv(path)


# --- results files (report, plot, merge) ----------------------------------------------------------


def results_csv(tmp_path, **extra_columns):
    """Two variants at exp_ratio 1 and 2, with round numbers to pin the formatting."""
    frame = pd.DataFrame(
        {
            "variant": ["conv", "mbv2", "conv", "mbv2"],
            "spec": ["conv_c8_r8_e1_k3_s1_b1", "mbv2_c8_r8_e1_k3_s1_b1",
                     "conv_c8_r8_e2_k3_s1_b1", "mbv2_c8_r8_e2_k3_s1_b1"],
            "spec_hash": ["a", "b", "c", "d"],
            "in_chs": [8] * 4,
            "resolution": [8] * 4,
            "exp_ratio": [2, 2, 1, 1],
            "threads": [1] * 4,
            "params": [592, 168, 592, 480],
            "macs": [36_864, 9_728, 36_864, 29_696],
            "peak_act_bytes": [4096, 6144, 4096, 10240],
            "latency_median_ms": [1.23, 2.5, 1.2, 2.0],
            "latency_iqr_ms": [0.04, 0.1, 0.05, 0.2],
            "latency_n": [40, 40, 12, 40],
            "gmacs_per_s": [0.03, 0.0039, 0.0307, 0.0148],
            "env_cpu_model": ["Test CPU"] * 4,
            "env_onnxruntime": ["1.0"] * 4,
            **extra_columns,
        }
    )
    path = tmp_path / "results.csv"
    frame.to_csv(path, index=False)
    return path


def two_hosts_csv(tmp_path):
    """The same four rows measured on two hosts (a cluster sweep, merged shards)."""
    frame = pd.read_csv(results_csv(tmp_path))
    other = frame.assign(host="beta", env_cpu_model="Other CPU",
                         latency_median_ms=frame["latency_median_ms"] * 2,
                         spec_hash=frame["spec_hash"])
    both = pd.concat([frame.assign(host="alpha"), other], ignore_index=True)
    path = tmp_path / "hosts.csv"
    both.to_csv(path, index=False)
    return path


# --- gate frames, and baseline rows restated from their samples -----------------------------------


POLICY = GatePolicy()  # 10% tolerance, alpha 0.01
COST = {"macs": 1000, "params": 10, "peak_act_bytes": 400, "bytes_moved": 800, "weight_bytes": 40}
ENV = Environment(
    cpu_model="Test CPU", cpu_cores=2, python="3.11", platform="linux", torch="2.13",
    onnxruntime="1.20", onnx="1.20", onnxscript="0.5", numpy="2.0", timestamp="t",
)


def tight(median: float, n: int = 60, seed: int = 0) -> np.ndarray:
    """Samples within +-1% of `median`."""
    return median * (1 + 0.01 * np.random.default_rng(seed).uniform(-1, 1, n))


def frame(samples: dict[str, np.ndarray], env: Environment = ENV, threads: int = 1,
          **cost_overrides) -> pd.DataFrame:
    """Rows in `Record.row()` form (the columns the gate reads) for {variant: samples}."""
    rows = []
    for variant, values in samples.items():
        cost = {**COST, **cost_overrides.get(variant, {})}
        rows.append({
            "variant": variant, "spec": f"{variant}_c8_r8_e6_k3_s1_b1", "threads": threads,
            "cache_mode": "warm", **cost, "latency_samples_ms": " ".join(f"{s:.5f}" for s in values),
            **env.columns(),
        })
    return pd.DataFrame(rows)


def restated(rows: pd.DataFrame, number: int, samples, mins) -> pd.DataFrame:
    """`rows` (text cells) with row `number`'s samples and rounds' fastest calls replaced, and
    every statistic the row stores recomputed from them, rounded as `Record.row()` rounds."""
    rows = rows.copy()
    samples = np.round(np.asarray(samples, dtype=float), 5)
    summary = summarize(samples)
    rows.loc[number, ["latency_samples_ms", "latency_mins_ms", "latency_min_ms", "latency_n"]] = [
        " ".join(f"{v:.5f}" for v in samples), " ".join(f"{v:.6f}" for v in mins),
        f"{min(mins):.6f}", str(len(samples))]
    for key in ("median", "q1", "q3", "iqr", "p95", "ci_low", "ci_high"):
        value = getattr(summary, key)
        rows.loc[number, f"latency_{key}_ms"] = "" if np.isnan(value) else f"{value:.6f}"
    gmacs = int(rows.loc[number, "macs"]) / summary.median / 1e6
    rows.loc[number, "gmacs_per_s"] = str(round(gmacs, 4))
    return rows


def slower(rows: pd.DataFrame, factor: float) -> pd.DataFrame:
    """`rows` as if every call had taken `factor` times as long."""
    for number, row in rows.iterrows():
        rows = restated(rows, number, [float(v) * factor for v in row["latency_samples_ms"].split()],
                        [float(v) * factor for v in row["latency_mins_ms"].split()])
    return rows


# --- a git repository ---------------------------------------------------------------------------


def git(repo, *args) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def git_repo(folder, files: dict[str, str], message: str = "base"):
    """A repository at `folder` whose first commit holds `files` (name -> text)."""
    folder.mkdir(parents=True, exist_ok=True)
    git(folder, "init", "-q")
    git(folder, "config", "user.email", "t@example.com")
    git(folder, "config", "user.name", "t")
    for name, text in files.items():
        (folder / name).write_text(text)
    git(folder, "add", *files)
    git(folder, "commit", "-qm", message)
    return folder
