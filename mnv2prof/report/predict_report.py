"""`predict`'s view: the per-kernel table and the lines under it (the total with its interval,
the FLOPs baseline, what was not predicted, and with --check the error)."""

from __future__ import annotations

from collections import Counter

from rich.table import Table

_ACT_SHORT = {"relu6": "relu6", "relu": "relu", "hswish": "hswish", "hsigmoid": "hsig",
              "sigmoid": "sigm", "other": "act"}


def _detail(kernel) -> str:
    """A kernel's shape in at most 26 characters: `3x3/2 32>64 112 relu6+` (kernel/stride,
    channels, side (HxW when not square), fused activation, + a fused residual sum)."""
    f = kernel.features
    if kernel.kind in ("conv", "dwconv"):
        k, s, h, w = (int(f[n]) for n in ("kernel_size", "stride", "h", "w"))
        chs = f"dw{int(f['cin'])}" if kernel.kind == "dwconv" else \
            f"{int(f['cin'])}>{int(f['cout'])}"
        act = next((_ACT_SHORT[a.removeprefix("act_")] for a, v in f.items()
                    if a.startswith("act_") and v and a != "act_none"), "")
        side = f"{h}" if h == w else f"{h}x{w}"
        return f"{k}x{k}/{s} {chs} {side} {act}".rstrip() + ("+" if f.get("sum") else "")
    if kernel.kind == "gemm":
        return f"{int(f['k'])}>{int(f['n'])}"
    if "c" in f:
        return f"{int(f['c'])}x{int(f['h'])}x{int(f['w'])}"
    return kernel.op


def prediction_view(result) -> list:
    """The per-kernel table and the lines under it (total, interval, baseline, check)."""
    p = result.prediction
    table = Table(title=f"{result.name}: predicted per kernel (onnxruntime's nodes, MACs as "
                  "run)", title_justify="left")
    for header in ("#", "kind", "shape", "MACs (M)", "predicted (ms)", "share (%)"):
        table.add_column(header, justify="left" if header in ("kind", "shape") else "right")
    summed = sum(r.ms for r in p.kernels if r.ms is not None) or 1.0
    for i, row in enumerate(p.kernels, 1):
        ms = "-" if row.ms is None else f"{row.ms:.4f}"
        share = "-" if row.ms is None else f"{100 * row.ms / summed:.1f}"
        table.add_row(str(i), row.kernel.kind or row.kernel.op, _detail(row.kernel),
                      f"{row.kernel.macs / 1e6:.2f}", ms, share)
    lines = [table, f"predicted {p.total_ms:.3f} ms (interval {p.low_ms:.3f}-{p.high_ms:.3f}), "
             f"{len(p.kernels)} kernels, {p.macs / 1e6:.1f} M MACs; FLOPs baseline "
             f"(a x MACs + b) {p.flops_ms:.3f} ms"]
    if p.unpredicted:
        counts = Counter(r.why for r in p.unpredicted)
        lines.append(f"{len(p.unpredicted)} kernel(s) not predicted, left out of the total: "
                     + "; ".join(f"{why} x{n}" for why, n in counts.items()))
    if result.measured_ms:
        flops = p.flops_ms / result.measured_ms - 1
        lines.append(f"measured {result.measured_ms:.3f} ms (fastest call, as compare): "
                     f"prediction {result.error_rel:+.1%}, FLOPs baseline {flops:+.1%}")
    return lines
