import os
import signal
import stat
import threading
import time

import pytest

from mnv2prof import interrupts
from mnv2prof.errors import Interrupted, UsageError
from mnv2prof.files import atomic
from mnv2prof.files.atomic import (
    TEMP_PREFIX,
    atomic_target,
    check_folder_outputs,
    temp_suffix,
    write_atomic,
)


def test_write_atomic_replaces_whole_file(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    write_atomic(target, "a,b\n1,2\n")
    assert target.read_text() == "a,b\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_failure_inside_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_target(target, suffix=".png") as tmp:
            assert tmp.parent == tmp_path and tmp.suffix == ".png"
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_missing_folder_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="folder .* does not exist"):
        write_atomic(tmp_path / "nope" / "x.csv", "x")


# --- issue 31.2: a temporary name never past NAME_MAX, removed on every exit path -------------

@pytest.mark.parametrize("length", [242, 255])
def test_a_name_of_up_to_255_bytes_is_written(tmp_path, length):
    target = tmp_path / ("o." + "c" * (length - 2))
    assert len(target.name.encode()) == length
    write_atomic(target, "a,b\n1,2\n")  # the temporary name was prefix + name + .tmp: past 255
    assert target.read_text() == "a,b\n1,2\n"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_temporary_name_is_short_and_keeps_a_short_suffix(tmp_path):
    with atomic_target(tmp_path / ("fig" + "x" * 200 + ".png"), suffix=".png") as tmp:
        assert tmp.name.startswith(TEMP_PREFIX) and tmp.suffix == ".png"
        assert len(tmp.name) == len(TEMP_PREFIX) + 8 + len(".png")
    assert temp_suffix("." + "c" * 240 + ".tmp") == ".tmp"


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Interrupted, OSError])
def test_every_exit_path_removes_the_temporary_file(tmp_path, raised):
    target = tmp_path / "out.onnx"
    with pytest.raises(raised), atomic_target(target, suffix=".onnx.tmp") as tmp:
        tmp.write_bytes(b"half")
        raise raised("stop")
    assert list(tmp_path.iterdir()) == []


# --- issue 31.7: a FIFO is opened without blocking forever ----------------------------------

@pytest.fixture
def fifo(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "FIFO_WAIT_S", 0.3)
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def test_a_fifo_without_a_reader_is_refused_after_a_bounded_wait(fifo):
    started = time.monotonic()
    with pytest.raises(UsageError) as caught:
        write_atomic(fifo, "a,b\n")
    assert str(caught.value) == (f"cannot write {fifo}: a FIFO that no process read for 0.3 s; "
                                 "start its reader first")
    assert 0.3 <= time.monotonic() - started < 5


def test_a_fifo_with_a_reader_gets_the_bytes(fifo):
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_atomic(fifo, "a,b\n1,2\n" * 10_000)  # more than a pipe holds: written while read
    reader.join(10)
    assert received == ["a,b\n1,2\n" * 10_000]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_signal_ends_the_wait_for_a_fifos_reader(fifo, monkeypatch):
    monkeypatch.setattr(atomic, "FIFO_WAIT_S", 60.0)
    timer = threading.Timer(0.2, lambda: interrupts._received.append(signal.SIGINT))
    started = time.monotonic()
    timer.start()
    try:
        with pytest.raises(Interrupted, match=r"interrupted \(SIGINT\)"):
            write_atomic(fifo, "a,b\n")
    finally:
        interrupts._received.clear()
    assert time.monotonic() - started < 5


# --- issue 31.6: an output folder's files are checked against the inputs -------------------

def test_a_folder_file_linked_to_an_input_is_refused(tmp_path):
    source = tmp_path / "blocks.py"
    source.write_text("class Wide: ...\n")
    out = tmp_path / "d"
    out.mkdir()
    (out / "Wide.onnx").symlink_to(source)
    with pytest.raises(UsageError) as caught:
        check_folder_outputs(out, ["conv.onnx", "Wide.onnx"], "--out",
                             {"source of Wide": source})
    assert str(caught.value) == (f"--out {out / 'Wide.onnx'} is the input source of Wide "
                                 f"({source}): an output never replaces an input; write it to "
                                 "another file")
    assert source.read_text() == "class Wide: ...\n"


def test_two_folder_files_that_are_one_file_are_refused(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "a.onnx").write_bytes(b"x")
    (out / "b.onnx").symlink_to(out / "a.onnx")
    with pytest.raises(UsageError, match="a.onnx and b.onnx name one file"):
        check_folder_outputs(out, ["a.onnx", "b.onnx"], "--out", {})


def test_a_folder_not_made_yet_has_nothing_to_check(tmp_path):
    targets = check_folder_outputs(tmp_path / "new", ["a.onnx"], "--out", {"x": tmp_path / "x"})
    assert targets == [tmp_path / "new" / "a.onnx"] and not (tmp_path / "new").exists()
