"""Cells and sentences every table shares: number formats, per-layer cost and share cells, and
the rank agreement between MACs and latency with the pairs where they disagree."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd


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


def rank_agreement(frame: pd.DataFrame, limit: int = 3) -> RankAgreement:
    from scipy.stats import spearmanr

    n = len(frame)
    if n < 3 or frame["macs"].nunique() < 2 or frame["latency_median_ms"].nunique() < 2:
        return RankAgreement(float("nan"), n, ())
    rho = float(spearmanr(frame["macs"], frame["latency_median_ms"]).statistic)
    pairs = []
    rows = list(frame[["variant", "macs", "latency_median_ms"]].itertuples(index=False))
    for a in rows:
        for b in rows:
            if a.macs > b.macs and a.latency_median_ms < b.latency_median_ms:
                # how strongly the pair contradicts MACs: MAC ratio times speed ratio
                strength = (a.macs / b.macs) * (b.latency_median_ms / a.latency_median_ms)
                pairs.append((strength, a.variant, b.variant))
    pairs.sort(reverse=True)
    return RankAgreement(rho, n, tuple((a, b) for _, a, b in pairs[:limit]))


def disagreement_lines(frame: pd.DataFrame, agreement: RankAgreement) -> list[str]:
    by_name = frame.set_index("variant")
    lines = []
    for more, fewer in agreement.disagreements:
        a, b = by_name.loc[more], by_name.loc[fewer]
        lines.append(
            f"{more} has {a['macs'] / b['macs']:.1f}x the MACs of {fewer} yet takes "
            f"{a['latency_median_ms'] / b['latency_median_ms']:.2f}x its latency."
        )
    return lines


def fmt(value: float, digits: int) -> str:
    return f"{value:,.{digits}f}"


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
