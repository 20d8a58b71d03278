"""What a measurement is asked to be (`TimingSpec`): threads, budget, rounds, cache mode. It checks
itself, so every entry point (flags, a profile, the Python API) gets one set of rules.

Kept apart from the harness (latency.py) so that checking a command's options imports neither
numpy nor scipy nor torch: a bad flag is refused in a fraction of a second.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from mnv2prof.errors import ValueRefused

# The adaptive sampler stops once every median's CI lies within +-2% of it; a row whose CI is
# wider when the budget runs out is marked unstable.
TARGET_CI_REL = 0.02
# The `!` flag: a fastest call that moved more than this within one run (across its rounds or
# its onnxruntime sessions) is not one to quote. Measured on a quiet 2-core AMD EPYC (10 default
# compares, benchmarks/repeatability.py): at 2% the flag marked 51% of rows, since sessions
# differ by 2-4% there (where each session's buffers land), and it foretold the next run no better
# than chance (14 of the 40 rows the next run moved by more than 2%); at 5%, 8% of rows.
REPRODUCED_REL = 0.05

CACHE_WARM = "warm"  # bursts of back-to-back calls: the block's own data in cache
CACHE_COLD = "cold"  # the caches evicted before every timed call: weights and input from DRAM
CACHE_MODES = (CACHE_WARM, CACHE_COLD)

MAX_BUDGET_S = 3600.0  # an hour of timing per phase: past it a budget is a typo (1e308), and
# seconds that large overflow the round arithmetic
THREADS_PER_CORE = 8  # more threads than this per core is a typo (2**31 reaches onnxruntime)


def max_threads() -> int:
    return THREADS_PER_CORE * (os.cpu_count() or 1)


def check_count(value: object, word: str, minimum: int = 1, maximum: int | None = None) -> int:
    """An integer (never a bool) between `minimum` and `maximum`, or `ValueRefused`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueRefused(word, f"must be an integer, got {value!r}")
    if value < minimum:
        what = "positive" if minimum == 1 else f"at least {minimum}"
        raise ValueRefused(word, f"must be {what}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueRefused(word, f"must be at most {maximum:,}, got {value:,}")
    return value


def check_seconds(value: object, word: str = "budget", maximum: float = MAX_BUDGET_S) -> float:
    """Seconds: a positive, finite number, at most `maximum` (an hour), or `ValueRefused`."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueRefused(word, f"must be a number of seconds, got {value!r}")
    if not value > 0:
        raise ValueRefused(word, f"must be positive, got {value}")
    if not math.isfinite(value):
        raise ValueRefused(word, f"must be finite, got {value}")
    if value > maximum:
        raise ValueRefused(word, f"must be at most {maximum:g} seconds (an hour), got {value:g}")
    return float(value)


def check_cache(value: object) -> str:
    if value not in CACHE_MODES:
        raise ValueRefused("cache", f"must be one of {', '.join(CACHE_MODES)}, got {value!r}")
    return value


@dataclass(frozen=True)
class TimingSpec:
    threads: int = 1
    budget_s: float = 2.0  # wall-clock seconds of timed rounds, per phase (one runtime's runners)
    warmup: int = 5  # untimed calls per runner before the first round; they also size its burst
    min_samples: int = 10  # rounds (one sample each) run even past the budget
    max_samples: int = 2000  # rounds at most
    target_ci_rel: float = TARGET_CI_REL  # stop early once every median's CI is this tight
    cache: str = CACHE_WARM  # CACHE_MODES
    rounds_target: int = 20  # bursts are sized so that the budget holds about this many rounds

    def __post_init__(self) -> None:
        check_count(self.threads, "threads", 1, max_threads())
        object.__setattr__(self, "budget_s", check_seconds(self.budget_s, "budget"))
        check_count(self.warmup, "warmup", 0)
        check_count(self.min_samples, "min_samples", 1)
        check_count(self.max_samples, "max_samples", self.min_samples)
        check_cache(self.cache)
