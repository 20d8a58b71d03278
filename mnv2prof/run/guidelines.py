"""ShuffleNet V2's guidelines measured on this machine: each guideline's probes (models.probes)
exported, counted and timed in onnxruntime, their bursts rotating round by round, and each
probe's latency paired round by round with the reference's (stats.paired_ratio), so drift of the
machine cancels. A claim *holds* when the contrast probe is slower than the reference by more
than `MIN_EFFECT` with 95% confidence, *does not hold* when the CI excludes such a slowdown, and
is *inconclusive* otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mnv2prof.count.cost import count_model
from mnv2prof.measure.latency import OrtRunner, measure
from mnv2prof.measure.timing import TimingSpec
from mnv2prof.measure.stats import Ratio, paired_ratio
from mnv2prof.models.probes import MIN_EFFECT, Config, Guideline
from mnv2prof.artifacts.export import export_cached
from mnv2prof.artifacts.sources import probe_source


def verdict(ratio: Ratio, min_effect: float = MIN_EFFECT) -> str:
    """'holds' when the contrast is slower by more than `min_effect` with 95% confidence,
    'does not hold' when the CI excludes that, 'inconclusive' otherwise (or without a CI)."""
    if np.isnan(ratio.ci_low) or np.isnan(ratio.ci_high):
        return "inconclusive"
    if ratio.ci_low > 1 + min_effect:
        return "holds"
    if ratio.ci_high < 1 + min_effect:
        return "does not hold"
    return "inconclusive"


@dataclass(frozen=True)
class ConfigResult:
    config: Config
    macs: int  # counted from the exported graph
    params: int  # the probe module's learnable scalars (count.cost's rule)
    bytes_moved: int
    nodes: int
    median_ms: float
    ratio: Ratio  # this config / the reference


@dataclass(frozen=True)
class GuidelineResult:
    guideline: Guideline
    rows: tuple[ConfigResult, ...]

    @property
    def ratio(self) -> Ratio:
        return next(r.ratio for r in self.rows if r.config.label == self.guideline.contrast)

    @property
    def verdict(self) -> str:
        return verdict(self.ratio)


def run_guideline(guideline: Guideline, threads: int, budget_s: float,
                  seed: int = 0) -> GuidelineResult:
    """Export and count every config, time them (bursts rotating round by round), pair each
    with the reference round by round."""
    paths = {}
    for config in guideline.configs:
        paths[config.label] = export_cached(probe_source(guideline.key, config), seed).path
    costs = {label: count_model(path) for label, path in paths.items()}
    runners = {label: OrtRunner(path, threads, seed) for label, path in paths.items()}
    measured = measure(runners, TimingSpec(threads=threads, budget_s=budget_s))
    reference = np.asarray(measured[guideline.reference].samples_ms)
    rows = tuple(
        ConfigResult(c, costs[c.label].macs, costs[c.label].params, costs[c.label].bytes_moved,
                     costs[c.label].nodes,
                     measured[c.label].median_ms,
                     paired_ratio(np.asarray(measured[c.label].samples_ms), reference))
        for c in guideline.configs
    )
    return GuidelineResult(guideline, rows)
