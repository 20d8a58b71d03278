"""Test set-up: exports go to a cache of this test session, never the user's."""

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
