"""Result CSV -> a paper-ready table: Markdown, LaTeX (booktabs), CSV or JSON.

The table has the columns that vary across the rows (or the `group_by` ones) as its key, then the
variant, then counted and measured cost with units in the headers: params in thousands, MACs in
millions (1 MAC = 1 multiply-accumulate), peak activation memory in KiB, latency in ms and GMAC/s.
Latency is the headline every view gives, the fastest call `± spread` (how far another run's may
lie: `latency_min_spread_rel`), with the median beside it, and GMAC/s at the fastest call. A CSV
from before the fastest call was kept gives `median ± spread` instead: half the 95% CI of the
median when it has `latency_ci_low_ms` / `latency_ci_high_ms`, else the inter-quartile range
(`latency_iqr_ms`). Columns are read by name, so a CSV with more columns (a newer version) reads
the same. The CSV and JSON formats carry the numbers rounded to the digits they hold (6 decimals
of ms, MACs in M to the MAC), never a float's noise.

When several hosts measured the rows (a cluster sweep, merged shards), the host is the first key:
one machine's rows are never mixed with another's in a group, and the caption names each host's
CPU. Precision and runtime are keys when they vary (int8 and ExecuTorch rows).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mnv2prof.errors import UsageError
from mnv2prof.report.cells import ms_text, table_digits

REQUIRED_COLUMNS = {  # column -> kind (files.readers), checked in every row
    "variant": "key", "spec": "key", "params": "count", "macs": "count",
    "peak_act_bytes": "count", "latency_median_ms": "positive", "latency_iqr_ms": "non-negative",
    "latency_n": "count", "gmacs_per_s": "non-negative",
}  # fmt: skip
KEY_COLUMNS = (
    "in_chs", "out_chs", "resolution", "exp_ratio", "kernel_size", "stride", "batch", "threads",
)
# Keys beside the spec: the host first (rows of one machine together: a cluster sweep's hosts
# are never mixed in a group), then precision and runtime (issue 17's deployment rows).
HOST_COLUMN = "host"
TARGET_COLUMNS = ("precision", "runtime")
GROUP_COLUMNS = (HOST_COLUMN, *KEY_COLUMNS, "variant", *TARGET_COLUMNS)
# Key columns keep their CSV names (one vocabulary); units where they have one.
KEY_HEADERS = {"resolution": "resolution (px)"}
CI_COLUMNS = ("latency_ci_low_ms", "latency_ci_high_ms")
MIN_COLUMNS = {"latency_min_ms", "latency_min_spread_rel"}
# digits each number is exact to: params and MACs are integers (k: 3, M: 6 decimals), KiB are
# exact in binary (10 decimals reach a byte / 1024^2), ms are kept to the ns, GMAC/s to 4
ROUNDING = {"params_k": 3, "macs_m": 6, "peak_act_kib": 4, "latency_min_ms": 6,
            "latency_spread_ms": 6, "latency_median_ms": 6, "gmacs_per_s": 4}
FORMATS = ("md", "latex", "csv", "json")


def load_results(path: Path) -> pd.DataFrame:
    """Read a sweep or compare CSV, every required column present and typed in every row
    (files.readers): a missing file, a row cut off, text in a number is one line naming it."""
    from mnv2prof.files.readers import read_table

    return read_table(path, "results file", REQUIRED_COLUMNS, results=True,
                      hint=": not a CSV written by mnv2prof compare or sweep")


@dataclass(frozen=True)
class PaperTable:
    """The numbers of the table (`numbers`, one column per quantity, units in the names) and how
    to show them (`keys`: the grouping columns, `spread_name`: what the ± means)."""

    numbers: pd.DataFrame
    keys: tuple[str, ...]
    spread_name: str
    samples: tuple[int, int]  # fewest and most latency samples of a row
    environment: str
    runtimes: tuple[str, ...] = ("onnxruntime",)
    headline: str = "median"  # "min": the fastest call ± its spread, the median beside it


def varying_keys(frame: pd.DataFrame) -> list[str]:
    """The key columns whose values differ between rows: the host, the spec's, the target's."""
    columns = (HOST_COLUMN, *KEY_COLUMNS, *TARGET_COLUMNS)
    return [c for c in columns if c in frame.columns and frame[c].nunique() > 1]


def hosts(frame: pd.DataFrame) -> list[str]:
    """The hosts of the rows in first-seen order ([] for a file without a host column)."""
    if HOST_COLUMN not in frame.columns:
        return []
    return list(dict.fromkeys(frame[HOST_COLUMN].astype(str)))


def environment(frame: pd.DataFrame) -> str:
    """Where the rows were measured, for a caption: the CPU, onnxruntime and threads, per host
    when more than one host measured them."""
    if "env_cpu_model" not in frame.columns:
        return ""

    def one(rows: pd.DataFrame) -> str:
        threads = sorted(rows["threads"].unique()) if "threads" in rows.columns else []
        ort = rows["env_onnxruntime"].iloc[0] if "env_onnxruntime" in rows.columns else "?"
        return (f"{rows['env_cpu_model'].iloc[0]}, onnxruntime {ort}, "
                f"{'/'.join(map(str, threads))} thread(s)")

    names = hosts(frame)
    if len(names) <= 1:
        return one(frame)
    column = frame[HOST_COLUMN].astype(str)
    return f"{len(names)} hosts (" + "; ".join(
        f"{name}: {one(frame[column == name])}" for name in names
    ) + ")"


def paper_table(frame: pd.DataFrame, group_by: Sequence[str] = ()) -> PaperTable:
    unknown = [c for c in group_by if c not in frame.columns]
    if unknown:
        raise UsageError(
            f"--group-by {', '.join(unknown)}: no such column; choose from: "
            f"{', '.join(c for c in frame.columns if c in GROUP_COLUMNS)}"
        )
    keys = [c for c in group_by if c != "variant"] or varying_keys(frame)
    if len(hosts(frame)) > 1 and HOST_COLUMN not in keys:
        keys = [HOST_COLUMN, *keys]  # rows of different machines are never one group
    numbers = pd.DataFrame({**{k: frame[k] for k in keys}, "variant": frame["variant"],
                            "params_k": frame["params"] / 1e3, "macs_m": frame["macs"] / 1e6,
                            "peak_act_kib": frame["peak_act_bytes"] / 1024})
    latency, spread_name, headline = _latency_numbers(frame)
    numbers = numbers.assign(**latency)
    numbers = numbers.round(ROUNDING)
    # Stable sort: rows keep their measured order (the profile's variant order) within a group.
    numbers = numbers.sort_values(keys, kind="stable").reset_index(drop=True) if keys else numbers
    samples = (int(frame["latency_n"].min()), int(frame["latency_n"].max()))
    runtimes = list(dict.fromkeys(frame["runtime"])) if "runtime" in frame.columns else []
    return PaperTable(numbers, tuple(keys), spread_name, samples, environment(frame),
                      tuple(runtimes) or ("onnxruntime",), headline)


def _latency_numbers(frame: pd.DataFrame) -> tuple[dict[str, pd.Series], str, str]:
    """The latency columns of the table, what their ± is, and the headline ("min": the fastest
    call ± its spread, the median beside it; "median" for a CSV without fastest calls)."""
    if MIN_COLUMNS <= set(frame.columns) and frame[list(MIN_COLUMNS)].notna().all().all():
        spread = frame["latency_min_ms"] * frame["latency_min_spread_rel"]
        return {"latency_min_ms": frame["latency_min_ms"],
                "latency_spread_ms": spread.replace(math.inf, math.nan),  # fewer than 4 rounds
                "latency_median_ms": frame["latency_median_ms"],
                "gmacs_per_s": frame["macs"] / frame["latency_min_ms"] / 1e6}, "spread", "min"
    if all(c in frame.columns for c in CI_COLUMNS):
        spread = (frame[CI_COLUMNS[1]] - frame[CI_COLUMNS[0]]) / 2
        spread_name = "95% CI half-width"
    else:
        spread, spread_name = frame["latency_iqr_ms"], "IQR"
    return {"latency_median_ms": frame["latency_median_ms"], "latency_spread_ms": spread,
            "gmacs_per_s": frame["gmacs_per_s"]}, spread_name, "median"


def _headers(table: PaperTable, pm: str) -> list[str]:
    latency = ([f"latency (ms), fastest call {pm} spread", "median (ms)"] if table.headline == "min"
               else [f"latency (ms), median {pm} {table.spread_name}"])
    return [*(KEY_HEADERS.get(k, k) for k in table.keys), "variant", "params (k)", "MACs (M)",
            "peak act. (KiB)", *latency, "GMAC/s"]


def _cells(table: PaperTable, pm: str) -> list[list[str]]:
    rows = []
    first = "latency_min_ms" if table.headline == "min" else "latency_median_ms"
    digits = table_digits(table.numbers[first])
    for row in table.numbers.to_dict("records"):
        latency = [ms_text(row[first], row["latency_spread_ms"], digits).replace("±", pm)]
        if table.headline == "min":
            latency.append(ms_text(row["latency_median_ms"], digits=digits))
        rows.append([*(str(row[k]) for k in table.keys), str(row["variant"]),
                     f"{row['params_k']:.1f}", _significant(row["macs_m"]),
                     f"{row['peak_act_kib']:.1f}", *latency, f"{row['gmacs_per_s']:.2f}"])
    return rows


def _significant(value: float) -> str:
    """Two decimals, or three significant digits below 1 (a tiny block's 0.0369 M MACs)."""
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"


def caption(table: PaperTable) -> str:
    low, high = table.samples
    n = f"{low}" if low == high else f"{low}-{high}"
    where = f" on {table.environment}" if table.environment else ""
    runtimes = " and ".join(table.runtimes)
    if table.headline == "min":
        latency = (f"latency is {runtimes} CPU, the fastest call {chr(177)} its spread (how far "
                   f"another run's fastest call may lie) over {n} rounds of back-to-back calls, "
                   "the median of the rounds' medians beside it; GMAC/s at the fastest call")
    else:
        latency = (f"latency is {runtimes} CPU, median {chr(177)} {table.spread_name} over {n} "
                   "rounds (each the median of a burst of back-to-back calls)")
    return (f"Counted and measured cost per block{where}; {latency}. "
            "1 MAC = 1 multiply-accumulate (FLOPs = 2 x MACs).")


def to_markdown(table: PaperTable) -> str:
    headers = _headers(table, "±")
    cells = _cells(table, "±")
    aligns = [":--" if h in (*table.keys, "variant") else "--:" for h in headers]
    lines = [
        "| " + " | ".join(headers) + " |",
        "| " + " | ".join(aligns) + " |",
        *("| " + " | ".join(row) + " |" for row in cells),
        "",
        caption(table),
    ]
    return "\n".join(lines) + "\n"


_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(table: PaperTable) -> str:
    """A `table` float with a booktabs `tabular` (needs `\\usepackage{booktabs}`)."""
    headers = [_tex(h).replace(" ±", r" $\pm$") for h in _headers(table, "±")]
    cells = [
        [_tex(c).replace(" ± ", r" $\pm$ ") for c in row] for row in _cells(table, "±")
    ]
    title = _tex(caption(table)).replace("±", r"$\pm$")
    n_keys = len(table.keys) + 1  # the keys and the variant are left-aligned text
    spec = "l" * n_keys + "r" * (len(headers) - n_keys)
    lines = [
        "% mnv2prof report; needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{title}}}",
        f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule",
        " & ".join(headers) + " \\\\",
        "\\midrule",
    ]
    group_of = table.numbers[list(table.keys[:1])].astype(str).agg("|".join, axis=1)
    previous = None
    for group, row in zip(group_of, cells, strict=True):
        if previous is not None and table.keys and group != previous:
            lines.append("\\midrule")  # between groups of the first key column
        lines.append(" & ".join(row) + " \\\\")
        previous = group
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(table: PaperTable) -> str:
    """The numbers as written in decimal, never in exponent form (7.9e-05 reads 0.000079)."""
    import numpy as np

    return table.numbers.to_csv(
        index=False, float_format=lambda v: np.format_float_positional(v, trim="0"))


def to_json(table: PaperTable) -> str:
    return json.dumps(
        {
            "caption": caption(table),
            "spread": table.spread_name,
            "rows": json.loads(table.numbers.to_json(orient="records")),
        },
        indent=2,
    )


def render(table: PaperTable, fmt: str) -> str:
    writers = {"md": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json}
    if fmt not in writers:
        raise UsageError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    return writers[fmt](table)
