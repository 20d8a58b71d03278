"""A tiny predictor, built once per test session in seconds: a small space (32-48 px, one block
a stage), 10 ms of timing per kernel, one calibration network."""

import pytest

TINY_SPACE = """
[space]
resolution = [32, 48]
width = [0.35, 0.5]
depth = [1, 1]
kernel_size = [3]
exp_ratio = [3]
lone_blocks = 0.5

[build]
networks = 1
kernel_budget_s = 0.01
"""
TINY_BUDGET_S = 8.0


@pytest.fixture(scope="session")
def tiny_space(tmp_path_factory):
    path = tmp_path_factory.mktemp("space") / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory, tiny_space):
    """(BuildResult, folder) of a predictor built over the tiny space."""
    from mnv2prof.predictor.build import BuildPlan, build
    from mnv2prof.predictor.space import load_space

    out = tmp_path_factory.mktemp("predictor") / "tiny"
    result = build(BuildPlan(out, load_space(tiny_space), TINY_BUDGET_S))
    return result, out
