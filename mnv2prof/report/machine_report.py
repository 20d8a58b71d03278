"""What `calibrate` and `guidelines` print: this machine's ceilings, and ShuffleNet V2's claims
beside this machine's ratios."""

from __future__ import annotations

from rich.table import Table

from mnv2prof.measure.roofline import MachineCeilings
from mnv2prof.run.guidelines import GuidelineResult


def calibration_lines(machine: MachineCeilings) -> list[str]:
    return [
        f"peak compute: {machine.peak_gflops:,.1f} GFLOP/s",
        (f"memory bandwidth: {machine.dram_gbs:,.1f} GB/s (beyond the last-level cache), "
         f"{machine.cache_gbs:,.1f} GB/s (L2-resident)"),
        (f"ridge point: {machine.ridge_flop_per_byte:,.2f} FLOP/B; {machine.cpu_model}, "
         f"{machine.threads} thread(s)"),
    ]


def guideline_report(result: GuidelineResult, threads: int) -> list[Table | str]:
    """A guideline's blocks (cost, latency, ratio to the paper's fastest and its CI), then the
    sentence that sets the paper's claim beside the verdict."""
    guideline = result.guideline
    table = Table(title=f"{guideline.key}, onnxruntime CPU, {threads} thread(s); "
                  "1 MAC = 1 multiply-accumulate", title_justify="left", header_style="bold")
    table.add_column("block", no_wrap=True)
    for header in ("MACs (M)", "params", "bytes moved (MiB)", "nodes", "latency median (ms)",
                   f"/ {guideline.reference} (x)", "95% CI (x)"):
        table.add_column(header, justify="right")
    for row in result.rows:
        table.add_row(row.config.label, f"{row.macs / 1e6:,.2f}", f"{row.params:,}",
                      f"{row.bytes_moved / 2**20:,.2f}", str(row.nodes),
                      f"{row.median_ms:.3f}", f"{row.ratio.median:.3f}",
                      f"{row.ratio.ci_low:.3f}-{row.ratio.ci_high:.3f}")
    return [table, guideline_sentence(result)]


def guideline_sentence(result: GuidelineResult) -> str:
    """The paper's claim beside this machine's ratio, its interval and the verdict."""
    g, r = result.guideline, result.ratio
    return (
        f"{g.key} paper: {g.claim}. Here: {g.contrast} / {g.reference} = {r.median:.3f}x "
        f"(95% CI {r.ci_low:.3f}-{r.ci_high:.3f}, {r.n} paired rounds): {result.verdict}."
    )
