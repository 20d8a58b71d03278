"""Cells and sentences every table shares: number formats, per-layer cost and share cells, and
the rank agreement between MACs and latency with the pairs where they disagree."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from mnv2prof.run.frame import headline_column


@dataclass(frozen=True)
class RankAgreement:
    rho: float  # Spearman rank correlation between MACs and median latency
    n: int
    disagreements: tuple[tuple[str, str], ...]  # (more MACs but faster, than this one)

    def sentence(self) -> str:
        if self.n < 3 or math.isnan(self.rho):
            return "Too few rows (or no spread) for a rank correlation between MACs and latency."
        if self.rho >= 0.9:
            verdict = "MACs order the blocks almost as latency does"
        elif self.rho >= 0.5:
            verdict = "MACs only partly predict which block is faster"
        else:
            verdict = "MACs are a poor guide to which block is faster"
        return (
            f"Spearman rank correlation between MACs and latency: rho = {self.rho:.2f} over "
            f"{self.n} blocks (1 = same order, 0 = unrelated): {verdict}."
        )


def row_label(row, target: bool = True) -> str:
    """A row's name in tables: its variant, with its chunk count where the variant takes one
    (`mbv2-streamed (2 chunks)`) and, if `target`, its precision and runtime where they are not
    fp32 onnxruntime (`mbv2 (int8)`, `mbv2 (fp32, ET)`); the CSV keeps them apart (`variant`,
    `chunks`, `precision`, `runtime`)."""
    from mnv2prof.models.variants import VARIANTS

    variant = str(row["variant"])
    info = VARIANTS.get(variant)
    get = row.get if hasattr(row, "get") else (lambda key, default=None: default)
    chunks = get("chunks")
    parts = []
    if info is not None and info.uses_chunks and chunks is not None and not pd.isna(chunks):
        parts.append(f"{int(chunks)} chunk{'s' if int(chunks) != 1 else ''}")
    precision, runtime = get("precision") or "fp32", get("runtime") or "onnxruntime"
    if target and (precision, runtime) != ("fp32", "onnxruntime"):  # "mbv2 (int8)", "mbv2 (fp32, ET)"
        parts.append(precision if runtime == "onnxruntime" else f"{precision}, ET")
    return f"{variant} ({', '.join(parts)})" if parts else variant


def spearman(x: pd.Series, y: pd.Series) -> float:
    """Spearman's rho: Pearson's r of the ranks, ties averaged (scipy.stats.spearmanr's
    definition, without importing scipy for one number)."""
    return float(x.rank().corr(y.rank()))


def rank_agreement(frame: pd.DataFrame, limit: int = 3) -> RankAgreement:
    n = len(frame)
    latency = headline_column(frame)
    if n < 3 or frame["macs"].nunique() < 2 or frame[latency].nunique() < 2:
        return RankAgreement(float("nan"), n, ())
    rho = spearman(frame["macs"], frame[latency])
    pairs = []
    labels = [row_label(r) for r in frame.to_dict("records")]
    rows = list(zip(labels, frame["macs"], frame[latency], strict=True))
    for a_label, a_macs, a_ms in rows:
        for b_label, b_macs, b_ms in rows:
            if a_macs > b_macs and a_ms < b_ms:
                # how strongly the pair contradicts MACs: MAC ratio times speed ratio
                pairs.append(((a_macs / b_macs) * (b_ms / a_ms), a_label, b_label))
    pairs.sort(reverse=True)
    return RankAgreement(rho, n, tuple((a, b) for _, a, b in pairs[:limit]))


def disagreement_lines(frame: pd.DataFrame, agreement: RankAgreement) -> list[str]:
    by_name = frame.set_axis([row_label(r) for r in frame.to_dict("records")])
    latency = headline_column(frame)
    lines = []
    for more, fewer in agreement.disagreements:
        a, b = by_name.loc[more], by_name.loc[fewer]
        lines.append(
            f"{more} has {a['macs'] / b['macs']:.1f}x the MACs of {fewer} yet takes "
            f"{a[latency] / b[latency]:.2f}x its latency."
        )
    return lines


def fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


def ms_digits(value: float) -> int:
    """Decimals for a latency in ms: 3 below 10 ms, 2 above (four significant digits or more),
    and more for a tiny block's so that it keeps three significant digits (0.00612), at most 6."""
    if not (math.isfinite(value) and value > 0):
        return 3
    return max(3 if value < 10 else 2, min(6, 2 - math.floor(math.log10(value))))


def table_digits(values) -> int:
    """One `ms_digits` for a whole column: the smallest latency's, so the decimals line up."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    return ms_digits(min(finite)) if finite else 3


def ms_text(value: float, half: float | None = None, digits: int | None = None) -> str:
    """A latency in ms (to `digits` decimals, else `ms_digits`), and with `half` its ± (nan:
    "± -") to as many decimals."""
    if value is None or not math.isfinite(value):
        return "-"
    digits = ms_digits(value) if digits is None else digits
    text = f"{value:,.{digits}f}"
    if half is None:
        return text
    return f"{text} ± {half:.{digits}f}" if math.isfinite(half) else f"{text} ± -"


def optional(value: object, scale: float, digits: int) -> str:
    """A cell for a measurement that may be missing (None / NaN in the frame)."""
    if value is None or pd.isna(value):
        return "-"
    return fmt(float(value) * scale, digits)


COST_HEADERS = ("MACs (M)", "bytes moved (KiB)", "intensity (FLOP/B)")
SHARE_HEADERS = ("time share (%)", "MACs share (%)", "time / MACs share (x)")


def cost_cells(row: dict) -> list[str]:
    """COST_HEADERS' cells of a per-layer row (`macs`, `bytes_moved`, intensity)."""
    return [
        fmt(row["macs"] / 1e6, 2),
        fmt(row["bytes_moved"] / 1024, 1),
        fmt(row["arith_intensity_flop_per_byte"], 1),
    ]


def share_cells(row: dict) -> list[str]:
    """SHARE_HEADERS' cells: the row's share of the time and of the MACs, and their ratio."""
    time_share, macs_share = row["time_share_frac"], row["macs_share_frac"]
    return [
        fmt(100 * time_share, 1),
        fmt(100 * macs_share, 1),
        fmt(time_share / macs_share, 2) if macs_share else "-",
    ]
