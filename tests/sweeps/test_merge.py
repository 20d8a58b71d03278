import pytest

from mnv2prof.errors import UsageError
from mnv2prof.sweeps.merge import merge_files, merge_text
from mnv2prof.sweeps.sweep import CsvJournal


def row(spec_hash, host="a", cache_mode="warm", **extra):
    return {"variant": "mbv2", "spec_hash": spec_hash, "host": host, "cache_mode": cache_mode,
            "latency_median_ms": "1.20", "note": 'a, "quoted" cell', "empty": None, **extra}


def journal(path, *rows):
    out = CsvJournal(path, resume=False, force=False)
    for r in rows:
        out.append(r)
    return path


def body(path):
    return path.read_bytes().split(b"\n", 1)[1]


def one_line(paths):
    with pytest.raises(UsageError) as caught:
        merge_files(paths)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_merge_joins_the_parts_byte_for_byte_in_file_order(tmp_path):
    a = journal(tmp_path / "a.csv", row("01"), row("02"))
    b = journal(tmp_path / "b.csv", row("03"))
    c = journal(tmp_path / "c.csv", row("04"), row("00"))
    frame = merge_files([a, b, c])
    assert frame["spec_hash"].tolist() == ["01", "02", "03", "04", "00"]
    assert frame["latency_median_ms"].tolist() == ["1.20"] * 5  # text, as written
    merged = merge_text(frame).encode()
    header = a.read_bytes().split(b"\n", 1)[0] + b"\n"
    assert merged == header + body(a) + body(b) + body(c)


def test_one_file_is_merged_as_it_is_and_none_is_refused(tmp_path):
    a = journal(tmp_path / "a.csv", row("01"), row("02"))
    assert merge_text(merge_files([a])).encode() == a.read_bytes()
    assert one_line([]) == "merge needs at least one CSV file to read"


def test_a_file_given_twice_is_refused(tmp_path):
    a = journal(tmp_path / "a.csv", row("01"))
    assert one_line([a, tmp_path / "." / "a.csv"]) == (
        f"merge: {tmp_path / '.' / 'a.csv'} is given twice (as {a} and "
        f"{tmp_path / '.' / 'a.csv'})"
    )


def test_other_columns_are_refused_naming_the_file_and_the_columns(tmp_path):
    a = journal(tmp_path / "a.csv", row("01"))
    b = journal(tmp_path / "b.csv", {**row("02"), "extra_col": 1} | {"note": None})
    other = dict(row("03"))
    del other["note"]
    c = journal(tmp_path / "c.csv", other | {"x": 1, "y": 2})
    assert one_line([a, b]) == (
        f"merge: {b} has other columns than {a} (missing: none; extra: extra_col): files "
        "written by different versions are not merged"
    )
    assert one_line([a, c]) == (
        f"merge: {c} has other columns than {a} (missing: note; extra: x, y): files written "
        "by different versions are not merged"
    )
    reordered = journal(tmp_path / "d.csv", dict(reversed(list(row("04").items()))))
    assert one_line([a, reordered]) == (
        f"merge: {reordered} has the columns of {a} in another order: files written by "
        "different versions are not merged"
    )


def test_a_row_twice_is_refused_naming_it_and_both_files(tmp_path):
    a = journal(tmp_path / "a.csv", row("01"), row("02"))
    b = journal(tmp_path / "b.csv", row("03"), row("02"))
    assert one_line([a, b]) == (
        f"merge: spec_hash 02 on host a is in {a} (row 2) and {b} (row 2): a row is merged once"
    )
    twice = journal(tmp_path / "twice.csv", row("05"), row("06"), row("05"))
    assert one_line([a, twice]) == (
        f"merge input {twice}: spec_hash 05 on host a is twice (rows 1 and 3): a row is in a "
        "results file once"
    )


def test_the_same_spec_on_two_hosts_is_two_measurements(tmp_path):
    a = journal(tmp_path / "a.csv", row("01", host="ci-1"), row("02", host="ci-1"))
    b = journal(tmp_path / "b.csv", row("01", host="ci-2"))
    frame = merge_files([a, b])
    assert list(zip(frame["spec_hash"], frame["host"])) == [
        ("01", "ci-1"), ("02", "ci-1"), ("01", "ci-2")
    ]


def test_without_a_host_column_the_spec_hash_alone_is_the_key(tmp_path):
    def hostless(spec_hash):
        r = row(spec_hash)
        del r["host"]
        return r

    a = journal(tmp_path / "a.csv", hostless("01"))
    b = journal(tmp_path / "b.csv", hostless("01"))
    assert one_line([a, b]) == (
        f"merge: spec_hash 01 is in {a} (row 1) and {b} (row 1): a row is merged once"
    )


def test_cache_modes_are_never_mixed(tmp_path):
    a = journal(tmp_path / "a.csv", row("01"))
    b = journal(tmp_path / "b.csv", row("02", cache_mode="cold"))
    assert one_line([a, b]) == (
        f"merge: {a} was timed with cache mode warm and {b} with cold: cache modes are never "
        "mixed in one file"
    )
    mixed = journal(tmp_path / "mixed.csv", row("03"), row("04", cache_mode="cold"))
    assert one_line([mixed]) == (  # what every reader of results refuses (readers)
        f"merge input {mixed} mixes cache modes (warm and cold): cache modes are never mixed in "
        "one file"
    )


def test_unreadable_inputs_are_one_line_from_the_readers(tmp_path):
    a = journal(tmp_path / "a.csv", row("01"))
    cut = tmp_path / "cut.csv"
    cut.write_bytes(a.read_bytes() + b"mbv2,02,a")
    assert one_line([a, cut]).startswith(f"merge input {cut}, row 2: 3 fields where the header")
    assert one_line([a, tmp_path / "absent.csv"]) == (
        f"merge input {tmp_path / 'absent.csv'} does not exist"
    )
    no_hash = tmp_path / "no_hash.csv"
    no_hash.write_text("variant,x\nmbv2,1\n")
    assert one_line([no_hash]) == f"merge input {no_hash} lacks the column(s) spec_hash"


def test_a_column_named_twice_is_refused_not_renamed(tmp_path):
    a = journal(tmp_path / "a.csv", row("01", macs=36864))
    twice = tmp_path / "twice.csv"
    header, rest = a.read_text().split("\n", 1)
    twice.write_text(header + ",macs\n" + rest.replace("\n", ",36864\n"))
    assert one_line([a, twice]) == (  # pandas read it as `macs.1`, and merge wrote that
        f"merge input {twice}: the header names the column macs twice"
    )


@pytest.mark.parametrize("cell", ["1_0", "\u0661\u0662", "1 0", "0x10", "\uff11"])
def test_a_number_is_written_in_ascii_digits(tmp_path, cell):
    a = journal(tmp_path / "a.csv", row("01", macs=cell))
    assert one_line([a]) == (
        f"merge input {a}, row 1, column macs: {cell!r} is not a whole number >= 0"
    )
