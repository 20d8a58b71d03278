"""Closed-form MACs and params of every variant, written from ../shared/PAPER.md, not the code."""

from __future__ import annotations


def _mid_resnet(c: int, t: int) -> int:
    # torchvision's _make_divisible(c / t, 8): nearest multiple of 8, >= 8, never 10% below
    v = c / t
    m = max(8, int(v + 4) // 8 * 8)
    return m + 8 if m < 0.9 * v else m


def macs(variant: str, c: int, r: int, t: int, k: int, s: int, n: int = 1) -> int:
    ho = (r - 1) // s + 1
    a, full = ho * ho, r * r  # output and input pixels
    if variant == "conv":
        per = a * c * c * k * k
    elif variant == "dwsep":
        per = a * c * k * k + a * c * c
    elif variant in ("mbv2", "mbv2-nonlinear", "mbv2-noskip", "mbv2-streamed"):
        # paper: h*w*d'*t*(d' + k^2 + d''), depthwise and projection terms / s^2
        per = (full * c * t * c if t != 1 else 0) + a * t * c * k * k + a * t * c * c
    elif variant == "resnet":
        m = _mid_resnet(c, t)
        per = full * c * m + a * m * m * k * k + a * m * c + (a * c * c if s == 2 else 0)
    elif variant == "fused":
        per = a * c * t * c * k * k + a * t * c * c
    elif variant == "shufflev2":
        h = c // 2
        if s == 1:
            per = full * (h * h + h * k * k + h * h)
        else:
            per = a * c * k * k + a * c * h + full * c * h + a * h * k * k + a * h * h
    else:
        raise KeyError(variant)
    return n * per


def params(variant: str, c: int, t: int, k: int, s: int) -> int:
    """Conv weights (no bias) + BN scale and shift (2 per channel)."""

    def cba(cin: int, cout: int, kk: int, groups: int = 1) -> int:
        return cout * (cin // groups) * kk * kk + 2 * cout

    if variant == "conv":
        return cba(c, c, k)
    if variant == "dwsep":
        return cba(c, c, k, c) + cba(c, c, 1)
    if variant.startswith("mbv2"):  # mbv2-streamed splits the same weights, shares one BN
        m = c * t
        return (cba(c, m, 1) if t != 1 else 0) + cba(m, m, k, m) + cba(m, c, 1)
    if variant == "resnet":
        m = _mid_resnet(c, t)
        return cba(c, m, 1) + cba(m, m, k) + cba(m, c, 1) + (cba(c, c, 1) if s == 2 else 0)
    if variant == "fused":
        return cba(c, c * t, k) + cba(c * t, c, 1)
    if variant == "shufflev2":
        h = c // 2
        right = cba(h if s == 1 else c, h, 1) + cba(h, h, k, h) + cba(h, h, 1)
        return right + (cba(c, c, k, c) + cba(c, h, 1) if s == 2 else 0)
    raise KeyError(variant)


def streamed_extra_elementwise_ops(c: int, r: int, s: int, chunks: int, n: int = 1) -> int:
    """mbv2-streamed's elementwise ops beyond mbv2's: chunks - 1 Adds summing the projections,
    and for chunks > 1 the projection BN stays a BatchNormalization node after the sum (2 ops per
    element) instead of a bias folded into the projection conv (1 op per element)."""
    ho = (r - 1) // s + 1
    out = n * c * ho * ho
    return (chunks - 1) * out + (out if chunks > 1 else 0)
