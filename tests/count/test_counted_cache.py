"""Counts of a cached export are cached beside it, only for the same bytes and counting code,
so a warm compare never imports onnx (issue 24: 0.6 s of its overhead)."""

import json
import os
import subprocess
import sys

import pytest

from mnv2prof.artifacts.export import export_cached
from mnv2prof.artifacts.sources import block_source
from mnv2prof.count import cost
from mnv2prof.models.variants import BlockSpec


@pytest.fixture
def exported(tmp_path):
    return export_cached(block_source(BlockSpec("dwsep", in_chs=8, resolution=8)),
                         directory=tmp_path).path


def test_the_count_is_kept_beside_the_export_and_read_back(exported, monkeypatch):
    counted = cost.count_cached(exported)
    assert counted == cost.count_model(exported)
    entry = json.loads((exported.parent / (exported.name + cost.COUNTED_SUFFIX)).read_text())
    assert entry["sha256"] == cost.file_sha256(exported)
    assert entry["counting"] == cost.counting_fingerprint()
    monkeypatch.setattr(cost, "count_model", lambda *a: pytest.fail("counted again"))
    assert cost.count_cached(exported) == counted


def test_a_count_of_other_bytes_or_other_counting_code_is_not_used(exported, monkeypatch):
    counted = cost.count_cached(exported)
    sidecar = exported.parent / (exported.name + cost.COUNTED_SUFFIX)
    entry = json.loads(sidecar.read_text())
    entry["cost"]["macs"] = 1  # a stale count...
    sidecar.write_text(json.dumps(entry))
    assert cost.read_counted(exported).macs == 1  # (read as it is while it matches)
    monkeypatch.setattr(cost, "counting_fingerprint", lambda: "other code")
    assert cost.read_counted(exported) is None  # ...of other counting code is never used
    assert cost.count_cached(exported) == counted  # counted again and written anew
    exported.write_bytes(exported.read_bytes() + b"\0")  # other bytes: the sha256 differs
    assert cost.read_counted(exported) is None
    sidecar.write_text("{ not json")
    assert cost.read_counted(exported) is None


def test_a_warm_compare_imports_no_onnx(tmp_path):
    code = ("import sys\nfrom mnv2prof.cli import main\n"
            "args = ['compare', '--variants', 'dwsep', '--channels', '8', '--resolution', '8',"
            " '--budget', '0.05', '--no-eager']\n"
            "assert main(args) == 0\nassert main(args) == 0\n")  # the first fills the cache
    first = subprocess.run([sys.executable, "-c", code + "print('onnx' in sys.modules)"],
                           capture_output=True, text=True, env={**os.environ, "MNV2PROF_CACHE": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    warm = subprocess.run([sys.executable, "-c", code.replace("assert main(args) == 0\n", "", 1)
                           + "print('onnx' in sys.modules)"], capture_output=True, text=True,
                          env={**os.environ, "MNV2PROF_CACHE": str(tmp_path)})
    assert warm.returncode == 0, warm.stderr
    assert warm.stdout.strip().splitlines()[-1] == "False"
