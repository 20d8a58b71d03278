import pytest

from mnv2prof.errors import UsageError
from mnv2prof.profiles.shipped import available_profiles, load_profile
from mnv2prof.sweeps.shard import parse_shard, select_shard, shard_of


@pytest.mark.parametrize(("text", "expected"), [
    ("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4)), ("01/10", (1, 10)),
])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("0/2", "--shard 0/2: K must be between 1 and N (2), counted from 1"),
    ("3/2", "--shard 3/2: K must be between 1 and N (2), counted from 1"),
    ("1/0", "--shard 1/0: N must be at least 1"),
    ("0/0", "--shard 0/0: N must be at least 1"),
    ("a/b", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got 'a/b'"),
    ("-1/2", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got '-1/2'"),
    ("1/2/3", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got '1/2/3'"),
    ("2", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got '2'"),
    ("", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got ''"),
    (" 3 / 5 ", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got ' 3 / 5 '"),
    ("\uff11/2", "--shard must be K/N with whole numbers 1 <= K <= N (e.g. 2/4), got '\uff11/2'"),
])
def test_parse_shard_refuses_with_one_line(text, message):
    with pytest.raises(UsageError) as caught:
        parse_shard(text)
    assert str(caught.value) == message


def test_shard_of_is_the_hash_as_a_number_modulo_n_counted_from_one():
    assert [shard_of("0000000000000000", 4), shard_of("0000000000000007", 4)] == [1, 4]
    assert shard_of("ffffffffffffffff", 3) == 0xFFFFFFFFFFFFFFFF % 3 + 1 == 1
    assert {shard_of("9f2c0a1b3d4e5f60", 1)} == {1}
    with pytest.raises(UsageError, match="not hexadecimal"):
        shard_of("xyz", 2)


SHIPPED = [load_profile(path) for path in available_profiles()]


def rows_of(points):
    return [(p.label, s.digest(p.threads)) for p in points for s in p.subjects]


@pytest.mark.parametrize("by", ["spec", "point"])
@pytest.mark.parametrize("profile", SHIPPED, ids=lambda p: p.name)
def test_every_row_lands_in_exactly_one_shard(profile, by):
    points = profile.points()
    every = rows_of(points)
    assert len(set(every)) == len(every) == profile.rows
    for n in range(1, 6):
        parts = [select_shard(points, k, n, by=by) for k in range(1, n + 1)]
        seen = [(p.label, s.digest(p.threads)) for part in parts for p, specs in part
                for s in specs]
        assert sorted(seen) == sorted(every), f"N={n}"  # each row once, none left out
        for k, part in enumerate(parts, 1):
            assert all(specs for _, specs in part)  # a point with no row here is left out
            for point, specs in part:
                hashes = [s.digest(point.threads) for s in specs]
                if by == "spec":
                    assert {shard_of(h, n) for h in hashes} == {k}
                else:  # kept whole, by its smallest spec_hash
                    assert list(specs) == list(point.subjects) and shard_of(min(hashes), n) == k
            # grid order is kept within a shard
            order = [points.index(p) for p, _ in part]
            assert order == sorted(order)
    assert select_shard(points, 1, 1, by=by) == [(p, list(p.subjects)) for p in points]


def test_a_rows_shard_does_not_depend_on_the_other_points():
    profile = next(p for p in SHIPPED if p.name == "expansion-sweep")
    points = profile.points()
    whole = {s.digest(p.threads) for p, specs in select_shard(points, 2, 3) for s in specs}
    half = {s.digest(p.threads) for p, specs in select_shard(points[::2], 2, 3) for s in specs}
    assert half == whole & {s.digest(p.threads) for p in points[::2] for s in p.subjects}


def test_select_shard_refuses_k_outside_n():
    with pytest.raises(UsageError, match="K must be between 1 and N"):
        select_shard([], 3, 2)
    with pytest.raises(ValueError, match="by must be one of"):
        select_shard([], 1, 2, by="host")
