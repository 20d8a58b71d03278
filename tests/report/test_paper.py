import json
import shutil
import subprocess

import pytest

from mnv2prof.report.paper import load_results, paper_table, to_latex, to_markdown
from tests.helpers import results_csv, two_hosts_csv


def test_markdown_table_pins_units_and_median_spread(tmp_path):
    text = to_markdown(paper_table(load_results(results_csv(tmp_path))))
    lines = text.splitlines()
    assert lines[0] == ("| exp_ratio | variant | params (k) | MACs (M) | peak act. (KiB) | "
                        "latency (ms), median ± IQR | GMAC/s |")
    assert lines[1] == "| :-- | :-- | --: | --: | --: | --: | --: |"
    # sorted by the varying key (exp_ratio), measured order kept within a group
    assert lines[2] == "| 1 | conv | 0.6 | 0.0369 | 4.0 | 1.200 ± 0.050 | 0.03 |"
    assert lines[3] == "| 1 | mbv2 | 0.5 | 0.0297 | 10.0 | 2.000 ± 0.200 | 0.01 |"
    assert lines[4] == "| 2 | conv | 0.6 | 0.0369 | 4.0 | 1.230 ± 0.040 | 0.03 |"
    assert "on Test CPU, onnxruntime 1.0, 1 thread(s)" in lines[-1]
    assert "median ± IQR over 12-40 rounds (each the median of a burst" in lines[-1]


def test_markdown_renders_to_an_html_table(tmp_path):
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(
        to_markdown(paper_table(load_results(results_csv(tmp_path))))
    )
    assert html.count("<tr>") == 5 and html.count("<th ") == 7
    assert '<td style="text-align:right">1.200 ± 0.050</td>' in html


def test_confidence_interval_columns_replace_the_iqr(tmp_path):
    path = results_csv(tmp_path, latency_ci_low_ms=[1.2, 2.4, 1.1, 1.9],
                       latency_ci_high_ms=[1.26, 2.6, 1.3, 2.1])
    table = paper_table(load_results(path))
    assert table.spread_name == "95% CI half-width"
    assert "| 1 | conv | 0.6 | 0.0369 | 4.0 | 1.200 ± 0.100 | 0.03 |" in to_markdown(table)


def test_latex_is_booktabs_with_escaped_names_and_pm(tmp_path):
    text = to_latex(paper_table(load_results(results_csv(tmp_path))))
    assert "\\begin{tabular}{llrrrrr}" in text
    assert ("exp\\_ratio & variant & params (k) & MACs (M) & peak act. (KiB) & "
            "latency (ms), median $\\pm$ IQR & GMAC/s \\\\") in text
    assert "1 & conv & 0.6 & 0.0369 & 4.0 & 1.200 $\\pm$ 0.050 & 0.03 \\\\" in text
    assert text.count("\\midrule") == 2  # under the header, and between t = 1 and t = 2
    assert text.index("\\toprule") < text.index("\\midrule") < text.index("\\bottomrule")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed")
def test_latex_compiles(tmp_path):
    table = to_latex(paper_table(load_results(results_csv(tmp_path))))
    document = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[utf8]{inputenc}\n"
                f"\\begin{{document}}\n{table}\\end{{document}}\n")
    (tmp_path / "t.tex").write_text(document)
    result = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    assert (tmp_path / "t.pdf").stat().st_size > 1000


def test_group_by_sets_the_key_columns(run_cli, tmp_path):
    code, out, err = run_cli("report", results_csv(tmp_path), "--group-by", "variant,exp_ratio")
    assert code == 0, err
    rows = [line.split(" | ")[:2] for line in out.splitlines()[2:6]]
    assert rows == [["| 1", "conv"], ["| 1", "mbv2"], ["| 2", "conv"], ["| 2", "mbv2"]]
    code, out, _ = run_cli("report", results_csv(tmp_path), "--group-by", "threads")
    assert out.startswith("| threads | variant |")


def test_report_csv_and_json_keep_numbers(run_cli, tmp_path):
    path = results_csv(tmp_path)
    code, out, err = run_cli("report", path, "--format", "json", "--out", tmp_path / "t.json")
    assert code == 0, err
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["spread"] == "IQR"
    assert data["rows"][0] == {
        "exp_ratio": 1, "variant": "conv", "params_k": 0.592, "macs_m": 0.036864,
        "peak_act_kib": 4.0, "latency_median_ms": 1.2, "latency_spread_ms": 0.05,
        "gmacs_per_s": 0.0307,
    }
    code, out, err = run_cli("report", path, "--format", "csv")
    assert code == 0, err
    assert out.splitlines()[0] == ("exp_ratio,variant,params_k,macs_m,peak_act_kib,"
                                   "latency_median_ms,latency_spread_ms,gmacs_per_s")


@pytest.mark.parametrize(
    "make, args, message",
    [
        (lambda p: p / "missing.csv", (), "results file"),
        (lambda p: (p / "bad.csv").write_text("variant,macs\nconv,1\n") and p / "bad.csv", (),
         "lacks the column(s) spec, params, peak_act_bytes"),
        (lambda p: (p / "empty.csv").write_text("") is not None and p / "empty.csv", (),
         "empty.csv is empty"),
        (lambda p: results_csv(p), ("--format", "html"), "--format 'html': choose from md"),
        (lambda p: results_csv(p), ("--group-by", "nope"), "--group-by nope: no such column"),
        (lambda p: results_csv(p), ("--out", "/nonexistent/t.md"), "does not exist"),
    ],
)
def test_bad_report_input_one_line_exit_2(run_cli, tmp_path, make, args, message):
    code, out, err = run_cli("report", make(tmp_path), *args)
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert out == "" and "Traceback" not in err


def test_rows_of_two_hosts_are_grouped_by_host_and_each_host_named(tmp_path):
    table = paper_table(load_results(two_hosts_csv(tmp_path)))
    assert table.keys == ("host", "exp_ratio")
    lines = to_markdown(table).splitlines()
    assert lines[0].startswith("| host | exp_ratio | variant |")
    assert [line.split(" | ")[0] for line in lines[2:10]] == ["| alpha"] * 4 + ["| beta"] * 4
    assert lines[2] == "| alpha | 1 | conv | 0.6 | 0.0369 | 4.0 | 1.200 ± 0.050 | 0.03 |"
    assert lines[6] == "| beta | 1 | conv | 0.6 | 0.0369 | 4.0 | 2.400 ± 0.050 | 0.03 |"
    assert ("on 2 hosts (alpha: Test CPU, onnxruntime 1.0, 1 thread(s); beta: Other CPU, "
            "onnxruntime 1.0, 1 thread(s))") in lines[-1]
    # --group-by another key still keeps the hosts apart, host first
    assert paper_table(load_results(two_hosts_csv(tmp_path)), ["variant"]).keys[0] == "host"
    # one host: no host key, the environment as before
    one = paper_table(load_results(results_csv(tmp_path, host=["alpha"] * 4)))
    assert one.keys == ("exp_ratio",) and one.environment.startswith("Test CPU")


def test_precision_and_runtime_are_keys_when_they_vary(tmp_path):
    path = results_csv(tmp_path, precision=["fp32", "fp32", "int8", "int8"],
                       runtime=["onnxruntime", "executorch"] * 2)
    table = paper_table(load_results(path))
    assert table.keys == ("exp_ratio", "precision", "runtime")
    assert "latency is onnxruntime and executorch CPU" in to_markdown(table)
