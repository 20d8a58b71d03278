"""What a measurement is asked to be (`TimingSpec`): threads, budget, rounds, cache mode.

Kept apart from the harness (latency.py) so that checking a command's options imports neither
numpy nor scipy nor torch: a bad flag is refused in a fraction of a second.
"""

from __future__ import annotations

from dataclasses import dataclass

from mnv2prof.errors import UsageError

# The adaptive sampler stops once every median's CI lies within +-2% of it; a row whose CI is
# wider when the budget runs out is marked unstable.
TARGET_CI_REL = 0.02

CACHE_WARM = "warm"  # bursts of back-to-back calls: the block's own data in cache
CACHE_COLD = "cold"  # the caches evicted before every timed call: weights and input from DRAM
CACHE_MODES = (CACHE_WARM, CACHE_COLD)


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
        if self.cache not in CACHE_MODES:
            modes = ", ".join(CACHE_MODES)
            raise UsageError(f"cache mode must be one of {modes}, got {self.cache!r}")
