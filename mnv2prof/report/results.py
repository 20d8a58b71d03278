"""What each command shows, made from its result (mnv2prof.commands): titles from the plan that
was measured, and the tables and notes of report/ in the command's order."""

from __future__ import annotations

from collections.abc import Sequence


def block_title(spec) -> str:
    """A block's spec as a title: C=32 56x56 t=6 k=3 s=1 N=1."""
    r = spec.resolution
    return (f"C={spec.in_chs} {r}x{r} t={spec.exp_ratio} k={spec.kernel_size} s={spec.stride} "
            f"N={spec.batch}")


def subjects_title(subjects: Sequence[object]) -> str:
    """The blocks' spec and each model by name and input shape (report.console.subjects_title)."""
    from mnv2prof.models.variants import BlockSpec
    from mnv2prof.report.console import subjects_title as titled

    blocks = [s for s in subjects if isinstance(s, BlockSpec)]
    return titled(block_title(blocks[0]) if blocks else "", subjects)


def timing_title(plan) -> str:
    """The runtimes, the threads and the cache state every latency of `plan` was taken in."""
    runtimes = " and ".join(dict.fromkeys(t.runtime for t in plan.targets))
    return f"{runtimes} CPU, {plan.timing.threads} thread(s), cache {plan.timing.cache}"


def compare_view(result, show: frozenset[str] = frozenset(), chart: bool = True) -> list:
    """What `compare` prints (report.console.compare_report), from a commands.compare.Compared."""
    from mnv2prof.report.console import compare_report
    from mnv2prof.report.notes import run_notes, slow_state_note

    plan = result.plan
    title = f"{subjects_title(plan.subjects)}, {timing_title(plan)}"
    slow = slow_state_note(result.slow_state) if result.slow_state else None
    notes = [*run_notes(result.measured), *([slow] if slow else [])]
    return compare_report(result.frame, title, plan.baseline, result.measured.harness_floor,
                          notes, result.machine, plan.timing.threads, plan.device, show,
                          chart=chart, budget_s=plan.timing.budget_s)


def profile_view(result, show: frozenset[str] = frozenset()) -> list:
    """What `profile` prints (report.console.model_report), from a commands.profile.Profiled."""
    from mnv2prof.report.console import model_report

    plan = result.plan
    _, shown = model_report(result.spec, result.records, plan.timing.threads, result.notes,
                            result.layers if result.layer_runs else None, result.layer_runs,
                            result.opset, show)
    return shown


def baseline_view(result) -> list:
    """A table per group of a commands.gates.Baseline: the spec words' rows, or each grid
    point of a profile."""
    from mnv2prof.report.console import baseline_report

    plan = result.plan
    if plan.profile is not None:
        groups = [(f"baseline {plan.profile.name}: {g.point.label}, {g.point.threads} "
                   "thread(s)", g.records) for g in result.groups]
    else:
        title = (f"baseline {subjects_title(plan.subjects)}, {plan.timing.threads} thread(s), "
                 f"cache {plan.timing.cache}")
        groups = [(title, g.records) for g in result.groups]
    return baseline_report(groups, plan.timing.budget_s)[1]


def compare_notes(result) -> list[str]:
    """The sentences `compare` prints under its tables (the API's `frame.attrs["notes"]`)."""
    return [item for item in compare_view(result, chart=False) if isinstance(item, str)]


def profile_notes(result) -> list[str]:
    """The sentences `profile` prints under its table (the API's `frame.attrs["notes"]`)."""
    return [item for item in profile_view(result) if isinstance(item, str)]


def cross_cpu_warning(differences, relative_to: str | None) -> str | None:
    """A relative gate against a baseline from another CPU model: ratios between blocks depend
    on the CPU's vector units and caches, so the relative mode does not cancel the machine."""
    cpus = [(before, now) for key, before, now in differences if key == "cpu_model"]
    if relative_to is None or not cpus:
        return None
    before, now = cpus[0]
    return (f"mnv2prof: warning: the baseline's CPU ({before}) is not this one ({now}): ratios "
            "between blocks depend on the CPU (dwsep / conv read 0.233 on an AMD EPYC and 0.30 "
            "on an Intel Xeon with AVX-512), so --relative-to does not cancel the change of "
            "machine; time the base beside the change with --against REV instead")
