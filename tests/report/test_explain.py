import numpy as np
import pandas as pd
import pytest

from mnv2prof.errors import UsageError
from mnv2prof.report.explain import explain
from mnv2prof.report.paper import REQUIRED_COLUMNS


def _frame(n=12, seed=0, nodes=True):
    rng = np.random.default_rng(seed)
    macs = rng.integers(10**6, 10**8, n)
    bytes_moved = rng.integers(10**5, 10**7, n)
    count = rng.integers(2, 30, n)
    # 0.02 ns/MAC, 0.05 ns/byte, 30 us/node, intercept 100 us, in ms
    latency = 0.1 + 2e-8 * macs + 5e-8 * bytes_moved + 0.03 * count
    frame = pd.DataFrame({c: 1 for c in REQUIRED_COLUMNS} | {
        "variant": "v", "spec": "s", "macs": macs, "bytes_moved": bytes_moved,
        "latency_median_ms": latency,
    })
    if nodes:
        frame["nodes"] = count
    return frame


def test_full_model_recovers_known_coefficients_in_reader_units():
    macs_only, with_bytes, full = explain(_frame())
    assert full.coefficients["macs"] == pytest.approx(0.02, rel=1e-9)
    assert full.coefficients["bytes"] == pytest.approx(0.05, rel=1e-9)
    assert full.coefficients["nodes"] == pytest.approx(30.0, rel=1e-9)
    assert full.intercept_us == pytest.approx(100.0, rel=1e-9)
    assert full.r2 == pytest.approx(1.0) and full.mape == pytest.approx(0.0, abs=1e-12)
    assert full.identifiable
    assert macs_only.r2 < with_bytes.r2 < 1.0
    assert full.coefficient_text() == "0.02 ns/MAC, 0.05 ns/byte, 30 us/node, intercept 100 us"


def test_macs_only_latency_is_explained_by_the_first_model():
    frame = _frame()
    frame["latency_median_ms"] = 0.05 + 1e-8 * frame["macs"]
    first = explain(frame)[0]
    assert first.coefficients["macs"] == pytest.approx(0.01, rel=1e-9)
    assert first.intercept_us == pytest.approx(50.0, rel=1e-9)
    assert first.r2 == pytest.approx(1.0)


def test_r2_and_mape_closed_form():
    frame = _frame(n=6)
    frame["macs"] = [0, 1, 2, 3, 4, 5]
    frame["latency_median_ms"] = [1.0, 1.0, 3.0, 3.0, 5.0, 5.0]
    fit = explain(frame)[0]
    predicted = np.polyval(np.polyfit(frame["macs"], frame["latency_median_ms"], 1), frame["macs"])
    y = frame["latency_median_ms"].to_numpy()
    assert fit.r2 == pytest.approx(1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2))
    assert fit.mape == pytest.approx(np.mean(np.abs(predicted - y) / y))


def test_constant_node_count_is_flagged_not_identifiable():
    frame = _frame()
    frame["nodes"] = 7
    assert not explain(frame)[2].identifiable


def test_without_nodes_column_third_fit_says_why():
    fits = explain(_frame(nodes=False))
    assert fits[2].missing.startswith("not fitted: the CSV has no nodes column")


@pytest.mark.parametrize("change, message", [
    (lambda f: f.head(4), "has 4 rows; the fits need at least 5"),
    (lambda f: f.assign(latency_median_ms=0.0), "must be positive in every row"),
    (lambda f: f.assign(bytes_moved="x"), "column bytes_moved is not numeric"),
])
def test_bad_frames_are_usage_errors(change, message):
    with pytest.raises(UsageError, match=message):
        explain(change(_frame()))


def test_explain_command(run_cli, tmp_path):
    csv = tmp_path / "rows.csv"
    _frame().to_csv(csv, index=False)
    code, out, err = run_cli("explain", csv)
    assert code == 0, err
    words = " ".join(out.split())
    for text in ("MACs + bytes + nodes", "R^2", "error = the mean absolute error",
                 "MACs alone explain R^2 ="):
        assert text in words
    from mnv2prof.report.explain import explain, explain_report

    view = explain_report(explain(_frame()), csv)[0]
    assert view.headers == ["model", "R^2", "error\n(%)", "MACs\n(ns/MAC)", "bytes\n(ns/byte)",
                            "nodes\n(us/node)", "intercept\n(us)"]
    row = next(line.split() for line in out.splitlines() if line.startswith("MACs + bytes + "))
    assert row[-4:] == ["0.02", "0.05", "30", "100"]  # ns/MAC, ns/byte, us/node, intercept us


def test_explain_command_bad_csv_one_line_exit_2(run_cli, tmp_path):
    code, _, err = run_cli("explain", tmp_path / "none.csv")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "does not exist" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    code, _, err = run_cli("explain", bad)
    assert code == 2 and "not a CSV written by mnv2prof compare or sweep" in err
