"""CI latency gates: a stored baseline read and checked (baseline.py, stored_rows.py) and a
fresh measurement judged against it (decide.py); or a base revision timed beside the change in
the same rounds and judged on the paired ratios (ab.py)."""
