"""No output ever destroys an input, a device or a link (issue 25, parts 1, 2 and 5): an output
that names an input is refused before any work; a device or a FIFO is written through, never
replaced; a link keeps being a link; and bad input is one line with the right exit code."""

import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

from tests.helpers import QUICK as SMALL
from tests.helpers import SPEC8, refused, results_csv

TINY = SPEC8
PROFILE = """name = "tiny"
description = "one conv at C=8, 8x8"
variants = ["conv"]

[base]
in_chs = 8
resolution = 8

[measure]
budget_s = 0.05
"""


def tiny_profile(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(PROFILE)
    return path


def unchanged(path, before: bytes) -> None:
    assert path.read_bytes() == before, f"{path} was changed"


# --- 1. an output that names an input is refused, before any work -------------------------

def test_merge_out_onto_its_input_is_refused(run_cli, tmp_path, nothing_runs):
    a = results_csv(tmp_path)
    before = a.read_bytes()
    line = refused(run_cli("merge", a, "--out", a))
    assert f"--out {a} is the input CSV" in line
    unchanged(a, before)


def test_report_out_onto_its_results_is_refused(run_cli, tmp_path):
    results = results_csv(tmp_path)
    before = results.read_bytes()
    refused(run_cli("report", results, "--out", results, "--format", "csv"), "is the input CSV")
    unchanged(results, before)


def test_gate_junit_onto_its_baseline_is_refused(run_cli, tmp_path, nothing_runs):
    baseline = tmp_path / "b.csv"
    baseline.write_text("variant,spec_hash\nconv,a\n")
    before = baseline.read_bytes()
    refused(run_cli("gate", *SMALL, "--variants", "conv", "--baseline", baseline,
                    "--junit", baseline), "--junit", "is the input --baseline")
    unchanged(baseline, before)


def test_baseline_out_onto_its_profile_is_refused(run_cli, tmp_path, nothing_runs):
    profile = tiny_profile(tmp_path)
    refused(run_cli("baseline", "--profile", profile, "--out", profile), "is the input --profile")
    unchanged(profile, PROFILE.encode())


def test_profile_csv_onto_its_model_is_refused(run_cli, tmp_path, nothing_runs):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read: the outputs are checked first")
    before = model.read_bytes()
    refused(run_cli("profile", model, "--csv", model), "--csv", "is the input MODEL")
    unchanged(model, before)


def test_sweep_force_out_onto_its_profile_is_refused(run_cli, tmp_path, nothing_runs):
    profile = tiny_profile(tmp_path)
    refused(run_cli("sweep", profile, "--force", "--out", profile), "is the input PROFILE")
    unchanged(profile, PROFILE.encode())


def test_an_output_linked_to_an_input_is_refused(run_cli, tmp_path, nothing_runs):
    a = results_csv(tmp_path)
    before = a.read_bytes()
    hard = tmp_path / "hard.csv"
    os.link(a, hard)
    soft = tmp_path / "soft.csv"
    soft.symlink_to(a)
    refused(run_cli("merge", a, "--out", hard), f"--out {hard} is the input CSV ({a})")
    refused(run_cli("report", a, "--out", soft, "--format", "csv"), "is the input CSV")
    refused(run_cli("merge", a, "--out", tmp_path / "." / "results.csv"), "is the input CSV")
    unchanged(a, before)
    assert soft.is_symlink()


def test_merge_replaces_an_existing_out_only_with_force(run_cli, tmp_path):
    a = results_csv(tmp_path)
    out = tmp_path / "merged.csv"
    out.write_text("mine\n")
    refused(run_cli("merge", a, "--out", out), f"{out} exists: pass --force to replace it")
    assert out.read_text() == "mine\n"
    code, _, err = run_cli("merge", a, "--out", out, "--force")
    assert code == 0, err
    assert out.read_bytes() == a.read_bytes()


# --- 2. a device, a FIFO or a link is written through, never replaced ---------------------

def _device(tmp_path, name: str, minor: int):
    """A character device like /dev/NAME (major 1, `minor`). Where /dev can be written (root, as
    CI runs), a node of its own in tmp_path: a regression would otherwise replace the machine's
    own; elsewhere /dev/NAME itself, which cannot be replaced."""
    if not os.access("/dev", os.W_OK):
        return f"/dev/{name}"
    node = tmp_path / name
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except (PermissionError, OSError):
        pytest.skip("cannot make a device node here")
    return node


@pytest.fixture
def full_device(tmp_path):
    """A character device that refuses every write (ENOSPC), as /dev/full."""
    return _device(tmp_path, "full", 7)


@pytest.fixture
def null_device(tmp_path):
    """A character device that takes every write, as /dev/null."""
    return _device(tmp_path, "null", 3)


def still_a_device(path) -> None:
    assert stat.S_ISCHR(os.stat(path).st_mode), f"{path} is no longer a character device"


def test_a_full_device_is_exit_3_in_one_line_and_stays_a_device(run_cli, tmp_path, full_device):
    results = results_csv(tmp_path)
    for args in (("report", results, "--format", "csv", "--out", full_device),
                 ("merge", results, "--out", full_device)):
        code, out, err = run_cli(*args)
        assert code == 3, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("mnv2prof: error:"), err
        assert f"cannot write {full_device}: No space left on device" in lines[0]
        still_a_device(full_device)


def test_a_device_that_takes_the_bytes_is_written_through(run_cli, tmp_path, null_device):
    results = results_csv(tmp_path)
    code, _, err = run_cli("report", results, "--format", "csv", "--out", null_device)
    assert code == 0, err
    assert f"wrote the csv table to {null_device}" in err
    still_a_device(null_device)
    code, _, err = run_cli("merge", results, "--out", null_device)  # no --force: nothing to lose
    assert code == 0, err
    still_a_device(null_device)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["null", "results.csv"])


def test_compare_csv_and_json_to_devices(run_cli, tmp_path, null_device, full_device):
    code, _, err = run_cli("compare", *SMALL, "--variants", "conv", "--no-eager", "--no-chart",
                           "--csv", null_device, "--json", full_device)
    assert code == 3, err
    assert err.strip().splitlines()[-1].startswith("mnv2prof: error: cannot write")
    assert "wrote" not in err  # the device is written before any file is renamed
    still_a_device(null_device)
    still_a_device(full_device)


def test_sweep_out_to_a_full_device_is_exit_3(run_cli, tmp_path, full_device):
    code, _, err = run_cli("sweep", tiny_profile(tmp_path), "--out", full_device)
    assert code == 3, err
    assert f"cannot write {full_device}: No space left on device" in err.strip().splitlines()[-1]
    still_a_device(full_device)


def test_a_fifo_is_written_through(run_cli, tmp_path):
    results = results_csv(tmp_path)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    code, _, err = run_cli("report", results, "--format", "csv", "--out", fifo)
    reader.join(timeout=30)
    assert code == 0, err
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert received and b"variant" in received[0]


def test_a_link_keeps_being_a_link_and_its_target_is_replaced(run_cli, tmp_path):
    results = results_csv(tmp_path)
    target = tmp_path / "data" / "table.csv"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "table.csv"
    link.symlink_to(target)
    code, _, err = run_cli("report", results, "--format", "csv", "--out", link)
    assert code == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "variant" in target.read_text()
    dangling = tmp_path / "later.csv"
    dangling.symlink_to(tmp_path / "data" / "later.csv")
    code, _, err = run_cli("merge", results, "--out", dangling)
    assert code == 0, err
    assert dangling.is_symlink() and (tmp_path / "data" / "later.csv").read_bytes() == (
        results.read_bytes())
    assert sorted(p.name for p in target.parent.iterdir()) == ["later.csv", "table.csv"]


# --- 5. bad input accepted, or the wrong code ----------------------------------------------

@pytest.mark.parametrize("args", [
    ("compare", *TINY, "--budget", "1e308"),
    ("baseline", *TINY, "--budget", "1e308", "--out", "b.csv"),
    ("network", "mobilenetv1", "--budget", "1e308"),
    ("calibrate", "--budget", "3601"),
    ("guidelines", "--budget", "1e308"),
])
def test_a_huge_budget_is_refused_at_once(run_cli, tmp_path, nothing_runs, args, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(run_cli(*args), "--budget must be at most 3600 seconds")
    assert list(tmp_path.iterdir()) == []


def test_a_huge_budget_over_a_profile_is_refused(run_cli, tmp_path, nothing_runs):
    refused(run_cli("baseline", "--profile", tiny_profile(tmp_path), "--budget", "1e308",
                    "--out", tmp_path / "b.csv"), "--budget must be at most 3600")


def test_a_file_name_too_long_is_a_usage_error(run_cli, tmp_path, nothing_runs):
    long = tmp_path / ("x" * 300 + ".csv")
    results = results_csv(tmp_path)
    refused(run_cli("report", long), "File name too long")
    refused(run_cli("report", results, "--out", long), "File name too long")
    refused(run_cli("compare", *SMALL, "--variants", "conv", "--csv", long), "File name too long")
    refused(run_cli("export", "--out", tmp_path / ("d" * 300), "--variants", "conv"),
            "File name too long")


def test_a_cache_that_is_a_file_is_named(run_cli, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    monkeypatch.setenv("MNV2PROF_CACHE", str(cache))
    line = refused(run_cli("compare", *SMALL, "--variants", "conv", "--no-eager"))
    assert f"$MNV2PROF_CACHE ({cache}) is not a folder" in line
    monkeypatch.setenv("MNV2PROF_CACHE", str(cache / "sub"))
    line = refused(run_cli("export", "--out", tmp_path / "d", *TINY, "--variants", "conv"))
    assert f"$MNV2PROF_CACHE ({cache / 'sub'}) cannot be created: Not a directory" in line
    assert cache.read_text() == "not a folder"
    assert not (tmp_path / "d").exists()  # the cache is checked before the folder is made


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into any folder")
def test_an_unwritable_cache_is_named(run_cli, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    monkeypatch.setenv("MNV2PROF_CACHE", str(cache))
    try:
        line = refused(run_cli("export", "--out", tmp_path / "d", *TINY, "--variants", "conv"))
    finally:
        cache.chmod(0o700)
    assert f"$MNV2PROF_CACHE ({cache}) cannot be written" in line


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_cached_export_is_made_again(run_cli, tmp_path, monkeypatch, damage):
    import onnx

    monkeypatch.setenv("MNV2PROF_CACHE", str(tmp_path / "cache"))
    code, _, err = run_cli("export", "--out", tmp_path / "a", *TINY, "--variants", "conv")
    assert code == 0, err
    (cached,) = (tmp_path / "cache" / "onnx").glob("*.onnx")
    whole = cached.read_bytes()
    cached.write_bytes({"truncated": whole[: len(whole) // 2], "garbage": b"\x00garbage" * 64,
                        "empty": b""}[damage])
    code, out, err = run_cli("export", "--out", tmp_path / "b", *TINY, "--variants", "conv")
    assert code == 0, err
    assert "max abs diff" in out  # exported again, not "(cached)"
    onnx.checker.check_model(str(cached))
    (written,) = (tmp_path / "b").glob("*.onnx")
    assert written.read_bytes() == cached.read_bytes()


def test_a_damaged_cached_int8_file_is_quantized_again(tmp_path):
    from mnv2prof.artifacts.export import export_cached
    from mnv2prof.artifacts.quantize import quantize_cached
    from mnv2prof.artifacts.sources import block_source
    from mnv2prof.models.variants import BlockSpec

    fp32 = export_cached(block_source(BlockSpec("conv", in_chs=8, resolution=8)),
                         directory=tmp_path / "onnx").path
    first = quantize_cached(fp32, directory=tmp_path / "int8")
    first.path.write_bytes(first.path.read_bytes()[:100])
    again = quantize_cached(fp32, directory=tmp_path / "int8")
    assert not again.cached and again.path == first.path
    assert quantize_cached(fp32, directory=tmp_path / "int8").cached


def test_a_damaged_cached_pte_is_lowered_again(tmp_path):
    from mnv2prof.artifacts import lowering

    if not lowering.available():
        pytest.skip("ExecuTorch is not installed (the mobile extra)")
    from mnv2prof.models.blocks import build_block
    from mnv2prof.models.variants import BlockSpec

    spec = BlockSpec("conv", in_chs=8, resolution=8)
    module = build_block(spec)
    def lower():
        return lowering.lower_cached(module, spec.input_shape, spec.name, "id",
                                       directory=tmp_path)

    first = lower()
    first.path.write_bytes(b"garbage" * 10)
    again = lower()
    assert not again.cached and again.path == first.path
    assert lower().cached


@pytest.mark.slow  # lowers conv three times (seconds each)
def test_a_pte_swapped_for_another_blocks_is_lowered_again(tmp_path):
    import shutil

    from mnv2prof.artifacts import lowering
    from mnv2prof.files.cache import ENTRY_SUFFIX

    if not lowering.available():
        pytest.skip("ExecuTorch is not installed (the mobile extra)")
    from mnv2prof.models.blocks import build_block
    from mnv2prof.models.variants import BlockSpec

    conv, dwsep = (BlockSpec(v, in_chs=8, resolution=8) for v in ("conv", "dwsep"))
    def lower(spec):
        return lowering.lower_cached(build_block(spec), spec.input_shape, spec.name, spec.name,
                                     directory=tmp_path)

    mine, theirs = lower(conv).path, lower(dwsep).path
    mine_bytes = mine.read_bytes()
    for suffix in ("", ENTRY_SUFFIX):  # dwsep's program and its record under conv's name
        shutil.copyfile(str(theirs) + suffix, str(mine) + suffix)
    again = lower(conv)
    assert not again.cached and mine.read_bytes() == mine_bytes


@pytest.mark.parametrize("column, value, words", [
    ("latency_ci_low_ms", [1.2, 2.6, 1.1, 1.9], "row 2, column latency_ci_low_ms: 2.6 is above "
                                                "the median 2.5"),
    ("latency_ci_high_ms", [1.3, 2.6, 1.1, 2.1], "row 3, column latency_ci_high_ms: 1.1 is "
                                                 "below the median 1.2"),
])
def test_report_refuses_a_ci_that_does_not_hold_its_median(run_cli, tmp_path, column, value,
                                                           words):
    other = {"latency_ci_low_ms": "latency_ci_high_ms", "latency_ci_high_ms": "latency_ci_low_ms"}
    around = {"latency_ci_low_ms": [0.1] * 4, "latency_ci_high_ms": [9.0] * 4}
    path = results_csv(tmp_path, **{column: value, other[column]: around[other[column]]})
    refused(run_cli("report", path), words)


@pytest.mark.parametrize("damage, words", [
    ({"macs": ["36864", "lots", "36864", "29696"]}, "row 2, column macs: 'lots' is not a whole "
                                                    "number >= 0"),
    ({"spec_hash": ["a", "b", "a", "d"]}, "spec_hash a is twice (rows 1 and 3)"),
])
def test_resume_report_and_merge_give_one_verdict(run_cli, tmp_path, nothing_runs, damage, words):
    path = results_csv(tmp_path, **damage)
    before = path.read_bytes()
    profile = tiny_profile(tmp_path)
    lines = [
        refused(run_cli("sweep", profile, "--resume", "--out", path), words),
        refused(run_cli("report", path), words),
        refused(run_cli("merge", path, "--out", tmp_path / "m.csv"), words),
    ]
    assert len({line.split(str(path))[1] for line in lines}) == 1, lines  # the same words
    unchanged(path, before)
    assert not (tmp_path / "m.csv").exists()


def test_export_refused_for_size_creates_no_folder(run_cli, tmp_path, nothing_runs):
    folder = tmp_path / "D"
    refused(run_cli("export", "--out", folder, "--channels", "100000", "--variants", "conv"),
            "pass --force")
    assert not folder.exists()


def test_a_csv_with_a_byte_order_mark_is_read(run_cli, tmp_path):
    path = results_csv(tmp_path)
    plain = path.read_bytes()
    with_bom = tmp_path / "bom.csv"
    with_bom.write_bytes(b"\xef\xbb\xbf" + plain)
    code, out, err = run_cli("report", with_bom, "--format", "csv")
    assert code == 0, err
    assert out == run_cli("report", path, "--format", "csv")[1]
    code, _, err = run_cli("merge", with_bom, "--out", tmp_path / "m.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "m.csv").columns[0] == "variant"


# --- issue 31: the cache heals, names fit, outputs in a folder are checked, a FIFO waits a bound

def test_export_never_replaces_the_users_source_through_a_link(run_cli, tmp_path, monkeypatch,
                                                              nothing_runs):
    source = tmp_path / "blocks.py"
    source.write_text("from torch import nn\n\n\ndef Wide(in_chs):\n    return nn.Identity()\n")
    before = source.read_bytes()
    out = tmp_path / "d"
    out.mkdir()
    monkeypatch.chdir(tmp_path)
    spec_name = "Wide_c8_r8_e6_k3_s1_b1"  # the file `export` writes for the user's block
    (out / f"{spec_name}.onnx").symlink_to(source)
    line = refused(run_cli("export", "--out", out, *TINY, "--variants", "conv,blocks.py:Wide"))
    assert f"--out {out / (spec_name + '.onnx')} is the input source of Wide ({source})" in line
    unchanged(source, before)
    assert sorted(p.name for p in out.iterdir()) == [f"{spec_name}.onnx"]


@pytest.mark.slow  # measures conv (a second)
def test_a_csv_name_of_242_bytes_is_written(run_cli, tmp_path):
    out = tmp_path / ("o." + "c" * 240)
    code, _, err = run_cli("compare", *SMALL, "--variants", "conv", "--no-eager", "--no-chart",
                           "--csv", out)
    assert code == 0, err  # "File name too long" after measuring, the rows lost, before
    assert pd.read_csv(out)["variant"].tolist() == ["conv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.slow  # exports conv twice and measures it
@pytest.mark.parametrize("damage", ["export is a folder", "counts are a folder",
                                    "export swapped for dwsep's", "record nested 100,000 deep"])
def test_a_damaged_cache_entry_never_fails_a_run(run_cli, tmp_path, monkeypatch, damage):
    from mnv2prof.files.cache import ENTRY_SUFFIX, SIDECAR_SUFFIX

    monkeypatch.setenv("MNV2PROF_CACHE", str(tmp_path / "cache"))
    first = tmp_path / "first.csv"
    args = ("compare", *SMALL, "--variants", "conv,dwsep", "--no-eager", "--no-chart", "--csv")
    assert run_cli(*args, first)[0] == 0
    onnx = tmp_path / "cache" / "onnx"
    conv, dwsep = (next(onnx.glob(f"{v}_*.onnx")) for v in ("conv", "dwsep"))
    counts, record = (conv.parent / (conv.name + s) for s in (SIDECAR_SUFFIX, ENTRY_SUFFIX))
    if damage == "export is a folder":  # exit 3 on every run, before
        conv.unlink()
        conv.mkdir()
    elif damage == "counts are a folder":  # exit 2 on every run, before
        counts.unlink()
        counts.mkdir()
    elif damage == "export swapped for dwsep's":  # conv's row read dwsep's MACs, before
        for suffix in ("", SIDECAR_SUFFIX, ENTRY_SUFFIX):
            (conv.parent / (conv.name + suffix)).write_bytes(
                (dwsep.parent / (dwsep.name + suffix)).read_bytes())
    else:
        record.write_text("[" * 100_000 + "]" * 100_000)
    second = tmp_path / "second.csv"
    code, _, err = run_cli(*args, second)
    assert code == 0, err
    columns = ["variant", "macs", "params", "spec_hash"]
    assert pd.read_csv(second)[columns].equals(pd.read_csv(first)[columns])
    assert pd.read_csv(second)["macs"].tolist()[0] == 8 * 8 * 8 * 8 * 9


def test_a_fifo_without_a_reader_is_one_line_after_a_bounded_wait(run_cli, tmp_path,
                                                                  monkeypatch):
    from mnv2prof.files import atomic

    monkeypatch.setattr(atomic, "FIFO_WAIT_S", 0.5)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    line = refused(run_cli("merge", results_csv(tmp_path), "--out", fifo))
    assert line == (f"mnv2prof: error: cannot write {fifo}: a FIFO that no process read for "
                    "0.5 s; start its reader first")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_ctrl_c_ends_the_wait_for_a_fifos_reader(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    process = subprocess.Popen([sys.executable, "-m", "mnv2prof", "merge",
                                str(results_csv(tmp_path)), "--out", str(fifo)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # the merge is read and waits for the FIFO's reader (forever, before)
    assert process.poll() is None, process.communicate()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.strip().splitlines() == ["mnv2prof: error: interrupted (SIGINT)"]


ARABIC_INDIC = ["\u0663\u0666\u0668\u0666\u0664", "9728", "36864", "29696"]


@pytest.mark.parametrize("command", ["report", "plot"])
def test_arabic_indic_digits_in_a_number_column_are_bad_input(run_cli, tmp_path, command):
    path = results_csv(tmp_path, macs=ARABIC_INDIC)  # a TypeError, exit 3, before
    extra = ("--out", tmp_path / "fig.png") if command == "plot" else ()
    line = refused(run_cli(command, path, *extra))
    assert line.endswith(f"{path}, row 1, column macs: '{ARABIC_INDIC[0]}' is not a whole "
                         "number >= 0")


def test_a_report_input_nested_past_the_limit_is_bad_input(run_cli, tmp_path):
    path = tmp_path / "rows.json"
    path.write_text("[" * 100_000 + "]" * 100_000)  # RecursionError, exit 3, before
    line = refused(run_cli("report", path))
    assert line.endswith(f"{path} is not JSON the tool reads: nested 100000 deep, past the "
                         "limit of 64")
