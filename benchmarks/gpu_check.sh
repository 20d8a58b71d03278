#!/usr/bin/env bash
# The GPU verification of `--device cuda` (issue 9) as ONE command for a machine with a CUDA GPU,
# e.g. the device tool's:  run(command="bash benchmarks/gpu_check.sh", timeout_s=540)
#
# 1. installs mnv2prof from this working tree into the python3 that holds torch (editable, no
#    dependencies fetched: such machines reach no registry; wheels carried in .whl/ are installed
#    first when present; if pip cannot install, the checkout goes on PYTHONPATH instead);
# 2. writes the environment (torch, CUDA, GPU, driver, onnxruntime providers) to $OUT/env.txt;
# 3. runs tests/test_cuda.py (the GPU tests run there instead of being skipped);
# 4. runs `compare --device cuda` at batch 1 and 64 (C=32, 56x56, t=6, the issue's setting),
#    writing the tables to $OUT/compare_bN.txt and the rows to $OUT/compare_bN.csv, and
#    `layers mbv2 --device cuda` at both batches to $OUT/layers_bN.txt (8 files in all: the
#    device tool brings back at most 8, so the layers CSVs stay there; the tables hold them).
# Each step has its own timeout so a hung step cannot eat the device budget; the script goes on
# after a failed step and exits non-zero if any failed.
set -uo pipefail

OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
BUDGET=${BUDGET:-3}         # seconds of interleaved timing per compare (CPU and GPU runners)
STEP_TIMEOUT=${STEP_TIMEOUT:-200}
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MNV2PROF_CACHE=${MNV2PROF_CACHE:-/tmp/mnv2prof-gpu-check-cache}
failed=0

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
if ! "$PY" -m pip install -q --no-deps --no-build-isolation -e . >/tmp/install.log 2>&1; then
    tail -5 /tmp/install.log
    echo "pip install -e . failed: using the checkout on PYTHONPATH"
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

"$PY" - <<'EOF' 2>&1 | tee "$OUT/env.txt"
import subprocess
from importlib.metadata import PackageNotFoundError, version

import torch

print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0))
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv"],
                         capture_output=True, text=True, timeout=10).stdout.strip())
except OSError as exc:
    print("nvidia-smi:", exc)
for name in ("onnx", "onnxscript", "onnxruntime", "typer", "rich", "pandas", "scipy", "numpy"):
    try:
        print(name, version(name))
    except PackageNotFoundError:  # a missing package is reported, the check goes on
        print(name, "MISSING")
import onnxruntime

print("onnxruntime providers", onnxruntime.get_available_providers())
import mnv2prof.cli  # noqa: F401  (fails here, in one place, if a dependency is too old)

print("mnv2prof imports ok")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1

timeout 180 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tee "$OUT/pytest.txt"
[ "${PIPESTATUS[0]}" -eq 0 ] || failed=1

for batch in 1 64; do
    echo "== compare --device cuda --batch $batch =="
    timeout "$STEP_TIMEOUT" "$PY" -m mnv2prof compare --device cuda --batch "$batch" \
        --channels 32 --resolution 56 --expansion 6 --budget "$BUDGET" \
        --csv "$OUT/compare_b$batch.csv" 2>&1 | tee "$OUT/compare_b$batch.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
    echo "== layers mbv2 --device cuda --batch $batch =="
    timeout 120 "$PY" -m mnv2prof layers mbv2 --device cuda --batch "$batch" \
        --channels 32 --resolution 56 --expansion 6 --runs 50 2>&1 | tee "$OUT/layers_b$batch.txt"
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed=1
done
echo "gpu_check: $([ $failed -eq 0 ] && echo ok || echo 'a step failed') (files in $OUT)"
exit $failed
