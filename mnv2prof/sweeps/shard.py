"""`sweep --shard K/N`: a deterministic part of a profile's grid, for CI matrices without Ray.

N jobs each run `mnv2prof sweep PROFILE --shard K/N --out part-K.csv` (K = 1..N, counted from
1 as CI matrices count), and `mnv2prof merge part-*.csv --out all.csv` joins the parts.

A row belongs to shard `shard_of(spec_hash, N)`: its spec_hash (`BlockSpec.digest(threads)`,
the first 16 hex digits of a SHA-256) read as a number, modulo N, plus one. The hash is already
uniform, so hashing it again would add nothing; and the rule can be checked by hand
(`python -c "print(int('9f2c...', 16) % 4 + 1)"`). A row's shard depends on nothing but its own
spec and N, so adding or removing grid points never moves the other rows between shards, and
every job computes the same partition without talking to the others.

The price of hashing: shards are balanced only on average (a 30-row profile split 4 ways may
give 5 rows to one job and 10 to another), where a round-robin over the grid would be exact but
would reshuffle every row whenever the grid changes.

`by="spec"` (the issue's rule, the default) splits a grid point's variants across shards, so
the variants of one point may be timed on different machines, no longer in one rotation of
bursts; `by="point"` keeps each point whole (its shard is the smallest spec_hash among its
rows), for comparisons between variants. Either way every row lands in exactly one shard.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mnv2prof.errors import UsageError
from mnv2prof.models.user_models import Subject
from mnv2prof.profiles.shipped import GridPoint

SHARD_BY = ("spec", "point")
_SHARD_RE = re.compile(r"([0-9]+)/([0-9]+)")  # ASCII digits, nothing around them


def parse_shard(text: str) -> tuple[int, int]:
    """(K, N) from "K/N", 1 <= K <= N; anything else is one UsageError line."""
    match = _SHARD_RE.fullmatch(str(text))
    if not match:
        raise UsageError(f"--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got "
                         f"{text!r}")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise UsageError(f"--shard {text}: N must be at least 1")
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be between 1 and N ({n}), counted from 1")
    return k, n


def shard_of(spec_hash: str, n: int) -> int:
    """The shard (1..n) a row with `spec_hash` belongs to: int(spec_hash, 16) % n + 1."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    try:
        number = int(spec_hash, 16)
    except (TypeError, ValueError):
        raise UsageError(f"spec_hash {spec_hash!r} is not hexadecimal") from None
    return number % n + 1


def select_shard(
    points: Sequence[GridPoint], k: int, n: int, by: str = "spec"
) -> list[tuple[GridPoint, list[Subject]]]:
    """(point, its specs in shard k of n) for every point with at least one, in grid order.

    `by="spec"`: each row by its own spec_hash (`point.row_hash(spec)`); `by="point"`:
    each point whole, by the smallest spec_hash of its rows.
    """
    if by not in SHARD_BY:
        raise ValueError(f"by must be one of {SHARD_BY}, got {by!r}")
    if not 1 <= k <= n:
        raise UsageError(f"--shard {k}/{n}: K must be between 1 and N ({n}), counted from 1")
    selected = []
    for point in points:
        hashes = [point.row_hash(spec) for spec in point.subjects]
        if by == "point":
            keep = list(point.subjects) if hashes and shard_of(min(hashes), n) == k else []
        else:
            keep = [s for s, h in zip(point.subjects, hashes, strict=True) if shard_of(h, n) == k]
        if keep:
            selected.append((point, keep))
    return selected
