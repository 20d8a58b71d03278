"""Issue 31, part 2: the cache proves what a file is, and heals.

A cached artefact is used only when its record names the key asked for and the bytes on disk;
another block's file, record or link swapped in is made again under its own name, and an entry
that cannot be read (a folder, garbage, JSON nested past the limit) is set aside and made again,
never a failure of the run."""

import json
import os
import shutil

import pytest

from mnv2prof.artifacts.export import export_cached
from mnv2prof.artifacts.sources import block_source
from mnv2prof.count.cost import count_cached
from mnv2prof.files.cache import (
    ENTRY_SUFFIX,
    SET_ASIDE,
    SIDECAR_SUFFIX,
    file_sha256,
    set_aside,
    vouch,
    vouched,
)
from mnv2prof.models.variants import BlockSpec

CONV = BlockSpec("conv", in_chs=8, resolution=8)
DWSEP = BlockSpec("dwsep", in_chs=8, resolution=8)
CONV_MACS = 8 * 8 * 3 * 3 * 8 * 8  # a 3x3 conv, 8 -> 8 channels, 8x8 output


def sidecar(path, suffix=ENTRY_SUFFIX):
    return path.parent / (path.name + suffix)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """conv's and dwsep's exports, each with its counts, made once for the module."""
    folder = tmp_path_factory.mktemp("onnx")
    for spec in (CONV, DWSEP):
        count_cached(export_cached(block_source(spec), directory=folder).path)
    return folder


@pytest.fixture
def cache(folder, tmp_path):
    """A copy of the module's cache folder, for one test to damage."""
    copy = tmp_path / "onnx"
    shutil.copytree(folder, copy)
    return copy


def paths(cache):
    conv = next(cache.glob("conv_*.onnx"))
    return conv, next(cache.glob("dwsep_*.onnx"))


def conv_again(cache):
    """conv exported through the damaged cache: (the result, the MACs its row would read)."""
    result = export_cached(block_source(CONV), directory=cache)
    return result, count_cached(result.path).macs


def test_an_entry_is_used_only_for_its_key_and_its_bytes(cache):
    conv, _ = paths(cache)
    key = json.loads(sidecar(conv).read_text())["key"]
    assert json.loads(sidecar(conv).read_text())["sha256"] == file_sha256(conv)
    assert vouched(conv, key) and conv.exists()
    assert not vouched(conv, "0" * 16)  # another key: set aside, record and counts too
    assert not conv.exists() and not sidecar(conv).exists()
    assert not sidecar(conv, SIDECAR_SUFFIX).exists()


def test_a_warm_entry_is_used_as_it_is(cache):
    conv, _ = paths(cache)
    before = conv.stat().st_mtime_ns
    result, macs = conv_again(cache)
    assert result.cached and result.path == conv and conv.stat().st_mtime_ns == before
    assert macs == CONV_MACS


@pytest.mark.slow  # exports conv again (0.5 s)
@pytest.mark.parametrize("swap", ["file", "file and sidecars", "symlink"])
def test_another_blocks_export_swapped_in_is_never_measured_under_this_name(cache, swap):
    conv, dwsep = paths(cache)
    conv_bytes = conv.read_bytes()
    dwsep_macs = count_cached(dwsep).macs
    assert dwsep_macs != CONV_MACS
    if swap == "symlink":
        conv.unlink()
        conv.symlink_to(dwsep)
    else:
        shutil.copyfile(dwsep, conv)
    if swap == "file and sidecars":
        for suffix in (ENTRY_SUFFIX, SIDECAR_SUFFIX):
            shutil.copyfile(sidecar(dwsep, suffix), sidecar(conv, suffix))
    result, macs = conv_again(cache)
    assert not result.cached and macs == CONV_MACS  # dwsep's 26,656-like count before
    assert conv.read_bytes() == conv_bytes and not conv.is_symlink()
    assert count_cached(dwsep).macs == dwsep_macs  # the link's target was left alone


@pytest.mark.slow  # exports conv again (0.5 s)
@pytest.mark.parametrize("damage", [
    "export is a folder", "record is a folder", "counts are a folder", "record is garbage",
    "record nested 100,000 deep", "counts nested 100,000 deep", "export cut short",
    "record missing",
])
def test_an_entry_that_cannot_be_read_is_set_aside_and_made_again(cache, damage):
    conv, _ = paths(cache)
    conv_bytes = conv.read_bytes()
    target = {"export": conv, "record": sidecar(conv),
              "counts": sidecar(conv, SIDECAR_SUFFIX)}[damage.split()[0]]
    if damage.endswith("a folder"):
        target.unlink()
        (target / "inside").mkdir(parents=True)
    elif damage == "record is garbage":
        target.write_bytes(b"\x00\xff{ not json")
    elif "nested" in damage:
        target.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "export cut short":
        target.write_bytes(conv_bytes[: len(conv_bytes) // 2])
    else:
        target.unlink()
    result, macs = conv_again(cache)
    assert not result.cached and macs == CONV_MACS
    assert conv.read_bytes() == conv_bytes
    again, _ = conv_again(cache)
    assert again.cached  # healed: the next run uses it
    if damage.endswith("a folder"):  # renamed beside, with what it held, never deleted
        [aside] = cache.glob(f"*{SET_ASIDE}")
        assert (aside / "inside").is_dir()


def test_set_aside_removes_a_link_not_its_target(tmp_path):
    target = tmp_path / "theirs.py"
    target.write_text("keep me\n")
    link = tmp_path / "entry.onnx"
    link.symlink_to(target)
    set_aside(link)
    assert not os.path.lexists(link) and target.read_text() == "keep me\n"
    set_aside(tmp_path / "missing.onnx")  # nothing there: nothing to do


def test_a_record_is_written_before_its_file_and_vouches_for_it(tmp_path):
    staged, path = tmp_path / "staged", tmp_path / "entry.onnx"
    staged.write_bytes(b"model bytes")
    vouch(staged, path, "k1")
    assert not vouched(path, "k1")  # a record alone vouches for nothing...
    assert sidecar(path).exists()  # ...and is kept: its writer is about to rename its file
    os.replace(staged, path)
    assert vouched(path, "k1")
    assert not vouched(path, "k2") and not path.exists()


@pytest.mark.slow  # quantizes conv three times (0.1 s each)
def test_an_int8_file_swapped_for_another_methods_is_made_again(folder, tmp_path):
    from mnv2prof.artifacts.quantize import quantize_cached

    conv = next(folder.glob("conv_*.onnx"))
    int8 = tmp_path / "int8"
    minmax = quantize_cached(conv, directory=int8, method="minmax").path
    entropy = quantize_cached(conv, directory=int8, method="entropy").path
    entropy_bytes = entropy.read_bytes()
    for suffix in ("", ENTRY_SUFFIX):  # the file and its record: minmax's under entropy's name
        shutil.copyfile(str(minmax) + suffix, str(entropy) + suffix)
    again = quantize_cached(conv, directory=int8, method="entropy")
    assert not again.cached and again.path == entropy
    assert entropy.read_bytes() == entropy_bytes
