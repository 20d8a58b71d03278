"""Precisions and runtimes side by side: per variant its MACs, then fp32 and int8 latency (the
fastest call) on each runtime and the int8 speedup; under the table, where int8 gains least and
how well MACs rank the blocks in each (runtime, precision)."""

from __future__ import annotations

import math

import pandas as pd

from mnv2prof.measure.timing import REPRODUCED_REL
from mnv2prof.report.cells import fmt, ms_text, row_label, spearman, table_digits
from mnv2prof.report.views import Column, View, view_table
from mnv2prof.run.frame import headline_column

SHORT = {"onnxruntime": "ORT", "executorch": "ET"}


def targets(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """(runtime, precision) pairs in the frame, in the order they first appear."""
    return list(dict.fromkeys(zip(frame["runtime"], frame["precision"], strict=True)))


def is_deployment_frame(frame: pd.DataFrame) -> bool:
    return "runtime" in frame.columns and len(targets(frame)) > 1


def _wide(frame: pd.DataFrame) -> list[dict]:
    """One dict per block (label): its MACs and, per (runtime, precision), its fastest call
    (ms, the headline), speedup and SQNR."""
    latency = headline_column(frame)
    rows: dict[str, dict] = {}
    for row in frame.to_dict("records"):
        label = row_label(row, target=False)  # the columns name precision and runtime
        wide = rows.setdefault(label, {"label": label, "macs": row["macs"]})
        key = (row["runtime"], row["precision"])
        wide[key] = row[latency]
        wide[(*key, "unstable")] = bool(row["latency_unstable"])
        wide[(*key, "speedup")] = row.get("int8_speedup_x")
        wide[(*key, "sqnr")] = row.get("int8_sqnr_db")
        wide[(*key, "err")] = row.get("int8_max_abs_err")
    return list(rows.values())


def _ms(row: dict, key, digits: int) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    flag = " [yellow]![/]" if row.get((*key, "unstable")) else "  "
    return ms_text(value, digits=digits) + flag


def _x(row: dict, key, digits: int = 2) -> str:
    value = row.get(key)
    return "-" if value is None or pd.isna(value) else fmt(value, digits)


def deployment_table(frame: pd.DataFrame, title: str, show: frozenset[str] = frozenset()) -> View:
    """MACs, then per (runtime, precision) the fastest call (ms), and for int8 the speedup over
    fp32 on that runtime; `show` "accuracy" adds each int8 target's max abs error and SQNR."""
    digits = table_digits(frame[headline_column(frame)])
    columns = [Column("variant", lambda r: r["label"], justify="left"),
               Column("MACs\n(M)", lambda r: fmt(r["macs"] / 1e6, 2))]
    for runtime, precision in targets(frame):
        short = SHORT.get(runtime, runtime)
        key = (runtime, precision)
        columns.append(Column(f"{short} {precision}\n(ms)", lambda r, k=key: _ms(r, k, digits)))
        if precision == "int8":
            columns.append(Column(f"{short} int8\nspeedup (x)",
                                  lambda r, k=(*key, "speedup"): _x(r, k)))
            columns.append(Column(f"{short} int8\nmax abs err",
                                  lambda r, k=(*key, "err"): _x(r, k, 4), "accuracy"))
            columns.append(Column(f"{short} int8\nSQNR (dB)",
                                  lambda r, k=(*key, "sqnr"): _x(r, k, 1), "accuracy"))
    return view_table(title, columns, _wide(frame), show)


def deployment_notes(frame: pd.DataFrame) -> list[str]:
    """Where int8 gains least (per runtime), and the rank correlation between MACs and latency
    in each (runtime, precision)."""
    notes = []
    int8 = frame[(frame["precision"] == "int8") & frame["int8_speedup_x"].notna()]
    for runtime, rows in int8.groupby("runtime", sort=False):
        least = rows.sort_values("int8_speedup_x").head(3)
        listed = ", ".join(f"{row_label(r, target=False)} ({r['int8_speedup_x']:.2f}x)"
                           for r in least.to_dict("records"))
        notes.append(f"int8 gains least on {runtime}: {listed} (speedup = fp32 ms / int8 ms, "
                     "of fastest calls; below 1, int8 is slower).")
    for runtime, precision in targets(frame):
        rows = frame[(frame["runtime"] == runtime) & (frame["precision"] == precision)]
        if len(rows) >= 3 and rows["macs"].nunique() > 1:
            rho = spearman(rows["macs"], rows[headline_column(rows)])
            notes.append(f"rank correlation between MACs and latency, {runtime} {precision}: "
                         f"rho = {rho:.2f} over {len(rows)} blocks.")
    notes.append("ORT = onnxruntime, ET = ExecuTorch with the XNNPACK delegate; int8: static "
                 "quantization (int8 weights per channel, 8-bit activations), "
                 "1 MAC = 1 multiply-accumulate; ! = fastest call not reproduced within "
                 f"{REPRODUCED_REL:.0%}.")
    return notes
