"""Test set-up: exports go to a cache of this test session, never the user's; the fixtures
several test modules share (plain helpers are in tests/helpers.py)."""

import os
import tempfile

import pytest

_CACHE = tempfile.mkdtemp(prefix="mnv2prof-test-cache-")
os.environ.setdefault("MNV2PROF_CACHE", _CACHE)


@pytest.fixture
def run_cli(capsys):
    """Run `mnv2prof ARGS...` in-process; return (exit code, stdout, stderr)."""
    from mnv2prof.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def nothing_runs(monkeypatch):
    """Any export or timing fails the test: a refusal must come before the work."""
    from mnv2prof.artifacts import export
    from mnv2prof.run import pipeline

    def must_not_run(*args, **kwargs):
        raise AssertionError("nothing may be exported or measured before the checks pass")

    monkeypatch.setattr(pipeline, "prepare", must_not_run)
    monkeypatch.setattr(export, "export_module", must_not_run)


@pytest.fixture(scope="session")
def stored_baseline(tmp_path_factory):
    """`stored_baseline("conv,mbv2")`: a baseline CSV of those variants at the tiny spec
    (tests.helpers.QUICK), taken once per session and shared by every module that gates."""
    from mnv2prof.cli import main
    from tests.helpers import QUICK

    taken = {}

    def take(variants: str):
        if variants not in taken:
            path = tmp_path_factory.mktemp("baseline") / f"{variants.replace(',', '-')}.csv"
            assert main(["baseline", *QUICK, "--variants", variants, "--out", str(path)]) == 0
            taken[variants] = path
        return taken[variants]

    return take

