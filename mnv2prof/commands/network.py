"""`network`: a whole network per stage, counted and (with a budget) timed."""

from __future__ import annotations

from mnv2prof.run.network import NetworkResult, measure_network
from mnv2prof.run.plan import Plan


def network(plan: Plan) -> NetworkResult:
    """Check `plan` (one paper network or torch model) and measure it per stage."""
    plan.check()
    return measure_network(plan.subjects[0], plan.timing, plan.seed, plan.device, plan.targets,
                           plan.calibration)
