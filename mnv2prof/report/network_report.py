"""Network profiles and the memory table -> pandas frames (CSV, units in column names) and rich
tables in the paper's shape (Table 2's rows with measured columns; Table 3 beside ours)."""

from __future__ import annotations

import math

import pandas as pd
from mnv2prof.measure.timing import REPRODUCED_REL
from mnv2prof.report.views import Column, View, view_table
from mnv2prof.run.memory_table import PAPER_MAX_KB
from mnv2prof.run.network import NETWORK, NetworkResult


def _dash(value: object) -> object:
    return "-" if value is None else value


def network_frame(profile: NetworkResult) -> pd.DataFrame:
    """`stage_frame` of every (precision, runtime) timed, one after the other, with `precision`
    and `runtime` columns (one target, or none timed: the fp32 onnxruntime rows alone)."""
    from mnv2prof.models.targets import Target

    targets = list(profile.timings) or [Target()]
    frames = []
    for target in targets:
        frame = stage_frame(profile, target)
        frame.insert(1, "precision", target.precision)
        frame.insert(2, "runtime", target.runtime)
        fp32 = profile.timings.get(Target("fp32", target.runtime), {})
        mine = profile.timings.get(target, {})
        errors = profile.accuracy.get(target, {})
        keys = [*(s.stage.key for s in profile.stages), NETWORK]  # the frame's row order
        frame["int8_speedup_x"] = [  # of fastest calls, the headline
            round(fp32[k].min_ms / mine[k].min_ms, 4)
            if target.precision == "int8" and k in fp32 and k in mine else math.nan
            for k in keys
        ]
        frame["int8_max_abs_err"] = [
            float(errors[k].max_abs_err) if k in errors else math.nan for k in keys
        ]
        frame["int8_sqnr_db"] = [
            round(float(errors[k].sqnr_db), 2) if k in errors else math.nan for k in keys
        ]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def stage_frame(profile: NetworkResult, target=None) -> pd.DataFrame:
    """One row per table row (stage), then a `total` row for the whole network; latencies of
    `target` (default: the first timed)."""
    timed = profile.timings.get(target) if target is not None else None
    if timed is None:
        timed = next(iter(profile.timings.values()), {})
    rows = []
    for cost in profile.stages:
        st = cost.stage
        rows.append(
            {
                "stage": st.key,
                "input_size": st.input_size,
                "operator": st.operator,
                "t": _dash(st.t),
                "c": _dash(st.c),
                "n": st.n,
                "s": _dash(st.s),
                "params": cost.params,
                "macs": cost.macs,
                "elementwise_ops": cost.elementwise_ops,
                "peak_act_bytes": cost.peak_act_bytes,
                **_latency(timed.get(st.key)),
                "latency_share_pct": round(100 * profile.share(target_of(profile, timed),
                                                               st.key), 2)
                if st.key in timed
                else math.nan,
            }
        )
    rows.append(
        {
            "stage": "total",
            "input_size": profile.input_size,
            "operator": profile.name,
            "t": "-",
            "c": _dash(profile.outputs),
            "n": "-",
            "s": "-",
            "params": profile.params,
            "macs": profile.macs,
            "elementwise_ops": profile.elementwise_ops,
            "peak_act_bytes": profile.peak_act_bytes,
            **_latency(timed.get(NETWORK)),
            "latency_share_pct": math.nan,  # shares are of the stage sum, see latency_note
        }
    )
    return pd.DataFrame(rows)


def _rows_kind(profile: NetworkResult) -> str:
    return "the paper's table rows" if profile.paper else "its top-level stages"


def target_of(profile: NetworkResult, timed: dict):
    return next((t for t, m in profile.timings.items() if m is timed), None)


def latency_note(profile: NetworkResult) -> str | None:
    """How the stages' fastest calls add up against the whole network's, timed as one session."""
    if profile.latency is None:
        return None
    whole, parts = profile.latency.min_ms, profile.stage_latency_sum_ms
    return (
        f"Stages timed one by one sum to {parts:.3f} ms (fastest calls); the whole network as "
        f"one session takes {whole:.3f} ms ({parts / whole:.2f}x); they differ by one call "
        "overhead per stage, the cache state each stage starts from, and the machine's noise."
    )


def _latency(m) -> dict[str, object]:
    """A stage's latency columns: the fastest call and its spread, whether it was reproduced,
    the median and its 95% CI (ms); NaN when not timed."""
    if m is None:
        return {**dict.fromkeys(("latency_min_ms", "latency_min_spread_rel", "latency_median_ms",
                                 "latency_ci_low_ms", "latency_ci_high_ms"), math.nan),
                "latency_unstable": None}
    return {"latency_min_ms": round(m.min_ms, 6),
            "latency_min_spread_rel": round(m.minimum.spread_rel, 6),
            "latency_unstable": m.unstable,
            "latency_median_ms": round(m.median_ms, 6),
            "latency_ci_low_ms": round(m.ci_low_ms, 6),
            "latency_ci_high_ms": round(m.ci_high_ms, 6)}


def _cell(value: float, digits: int) -> str:
    return "-" if math.isnan(value) else f"{value:,.{digits}f}"


def _min_cell(row: dict) -> str:
    """The stage's fastest call, flagged when the run did not reproduce it."""
    flag = " [yellow]![/]" if row.get("latency_unstable") else "  "
    return _cell(row["latency_min_ms"], 3) + (flag if math.isfinite(row["latency_min_ms"]) else "")


STAGE_COLUMNS = [
    Column("stage", lambda r: r["stage"], justify="left"),
    Column("input", lambda r: r["input_size"], "table", justify="left"),
    Column("operator", lambda r: r["operator"], justify="left"),
    *(Column(k, lambda r, k=k: str(r[k]), "table") for k in ("t", "c", "n", "s")),
    Column("params", lambda r: f"{r['params']:,}"),
    Column("MACs\n(M)", lambda r: f"{r['macs'] / 1e6:,.2f}"),
    Column("peak act\n(KiB)", lambda r: f"{r['peak_act_bytes'] / 1024:,.1f}"),
    Column("elem ops\n(M)", lambda r: f"{r['elementwise_ops'] / 1e6:,.2f}", "memory"),
    Column("latency\nmin (ms)", _min_cell),
    Column("median\n(ms)", lambda r: _cell(r["latency_median_ms"], 3), "stats"),
    Column("share\n(%)", lambda r: _cell(r["latency_share_pct"], 1)),
]


def stage_table(frame: pd.DataFrame, title: str, show: frozenset[str] = frozenset()) -> View:
    """The stages (rows of the paper's table) and the total (the whole network, named in the
    title); `show`: `table` adds the paper's input, t, c, n, s columns, `memory` the elementwise
    ops, `stats` the median."""
    rows = frame.to_dict("records")
    total = {**rows[-1], "operator": "whole network"}
    return view_table(title, STAGE_COLUMNS, rows[:-1] + [total], show, total=True)


MEMORY_COLUMNS = [
    Column("size", lambda r: r["size"], justify="left"),
    *(Column(f"{schedule}\n{header}", lambda r, k=f"{key}_{field}": r[k])
      for key, schedule in (("naive", "naive"), ("efficient", "efficient"))
      for field, header in (("max_chs", "max chs"), ("max_tensor_kb", "max tensor\n(kB)"),
                            ("peak_set_kb", "peak set\n(kB)"))),
    Column("paper\nchs/kB", lambda r: r["paper"]),
]


def memory_table(frame: pd.DataFrame, title: str) -> View:
    """Paper Table 3's column beside ours: max channels / kB (1000 B) per spatial size, naive
    and memory-efficient, then the largest of each."""
    rows = []
    for row in frame.to_dict("records"):
        side = row["side_px"]
        paper = ("-" if pd.isna(row["paper_max_chs"])
                 else f"{int(row['paper_max_chs'])}/{int(row['paper_kb'])}")
        rows.append({"size": f"{side}x{side}", "paper": paper,
                     **{f"{s}_max_chs": str(row[f"{s}_max_chs"]) for s in ("naive", "efficient")},
                     **{f"{s}_{k}": f"{row[f'{s}_{k}']:,.1f}" for s in ("naive", "efficient")
                        for k in ("max_tensor_kb", "peak_set_kb")}})
    paper_max = ("-" if frame["paper_kb"].isna().all()
                 else f"{PAPER_MAX_KB[frame['network'].iloc[0]]}K")
    rows.append({"size": "max", "paper": paper_max,
                 **{f"{s}_max_chs": "" for s in ("naive", "efficient")},
                 **{f"{s}_{k}": f"{frame[f'{s}_{k}'].max():,.1f}" for s in ("naive", "efficient")
                    for k in ("max_tensor_kb", "peak_set_kb")}})
    return view_table(title, MEMORY_COLUMNS, rows, total=True)


def network_report(
    profile: NetworkResult, show: frozenset[str] = frozenset()
) -> tuple[pd.DataFrame, list[View | str]]:
    """`network`'s rows (the stages and the total) and what it prints: the table in the paper's
    shape, the note on the stage sum, ops left uncounted, and the GPU line with --device cuda."""
    frame = network_frame(profile)
    if len(profile.timings) > 1:
        return frame, _deployment(profile)
    title = (f"{profile.name}: {_rows_kind(profile)}, onnxruntime CPU, "
             f"{profile.threads} thread(s)")
    shown: list[View | str] = [stage_table(stage_frame(profile), title, show)]
    shown.append("1 MAC = 1 multiply-accumulate; peak act at fp32; latency min = the fastest "
                 "call; share = a stage's fastest call / the sum of the stages'; ! = not "
                 f"reproduced within {REPRODUCED_REL:.0%}.")
    if note := latency_note(profile):
        shown.append(note)
    if profile.unhandled_ops:
        shown.append(f"ops without a cost handler (not counted): {profile.unhandled_ops}")
    if profile.fused:
        shown.append(f"no node of their own in the graph (an identity, or nodes the exporter "
                     f"fused into a neighbouring stage's, e.g. a BN into the conv before it, "
                     f"whose MACs are counted there): {', '.join(profile.fused)}")
    if profile.gpu is not None:
        from mnv2prof.report.cuda_report import module_line

        gpu = profile.gpu
        shown.append(module_line(profile.name, gpu.eager, gpu.graph, gpu.peak_bytes,
                                 gpu.env.gpu_name))
    return frame, shown


def _deployment(profile: NetworkResult) -> list[View | str]:
    """Per stage and for the whole network: the latency of every (precision, runtime) and
    int8's speedup per runtime; then the stages int8 helps least."""
    from mnv2prof.report.deploy_report import SHORT

    targets = list(profile.timings)
    keys = [s.stage.key for s in profile.stages] + [NETWORK]
    columns = [Column("stage", lambda r: r["stage"], justify="left"),
               Column("operator", lambda r: r["operator"], justify="left"),
               Column("MACs\n(M)", lambda r: f"{r['macs'] / 1e6:,.2f}")]
    for t in targets:
        short = SHORT.get(t.runtime, t.runtime)
        columns.append(Column(f"{short} {t.precision}\n(ms)",
                              lambda r, t=t: _cell(r.get(t, math.nan), 3)))
        if t.precision == "int8":
            columns.append(Column(f"{short} int8\nspeedup (x)",
                                  lambda r, t=t: _cell(r.get((t, "x"), math.nan), 2)))
    rows = []
    for key in keys:
        stage = next((s for s in profile.stages if s.stage.key == key), None)
        row = {"stage": key if stage else "total",
               "operator": stage.stage.operator if stage else profile.name,
               "macs": stage.macs if stage else profile.macs}
        for t in targets:
            measured = profile.timings[t].get(key)
            row[t] = measured.min_ms if measured else math.nan
        for t in targets:
            fp32 = next((u for u in targets if u.runtime == t.runtime and u.precision == "fp32"),
                        None)
            if t.precision == "int8" and fp32 is not None and row[t] > 0:
                row[(t, "x")] = row[fp32] / row[t]
        rows.append(row)
    title = (f"{profile.name}: {_rows_kind(profile)}, {profile.threads} thread(s), each "
             "stage timed as its own model, latency = the fastest call")
    rows[-1]["operator"] = "whole network"
    shown: list[View | str] = [view_table(title, columns, rows, total=True)]
    for t in targets:
        if t.precision != "int8" or not any((t, "x") in r for r in rows):
            continue
        least = sorted((r for r in rows[:-1] if (t, "x") in r), key=lambda r: r[(t, "x")])[:3]
        listed = ", ".join(f"{r['stage']} {r['operator']} ({r[(t, 'x')]:.2f}x)" for r in least)
        notes = f"int8 gains least on {t.runtime} in: {listed}"
        whole = rows[-1].get((t, "x"))
        shown.append(notes + (f"; the whole network {whole:.2f}x." if whole else "."))
    shown.append("1 MAC = 1 multiply-accumulate; speedup = fp32 ms / int8 ms on the same runtime, "
                 "of fastest calls.")
    return shown
