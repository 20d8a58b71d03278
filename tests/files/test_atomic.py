import pytest

from mnv2prof.errors import UsageError
from mnv2prof.files.atomic import atomic_target, write_atomic


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
