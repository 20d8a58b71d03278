"""The environment a predictor was built in (after pyperf's `_CHECKED_METADATA`, as
measure/env.py): kernel times belong to a CPU, its instruction set, the thread count and the
onnxruntime that chose the kernels, and a predictor is refused elsewhere unless asked
(`--force`). Read as measure/env.py reads its fields, with the ISA flags the CPU offers
(onnxruntime's MLAS picks its kernels by them: AVX2 or AVX-512 blocks NCHWc by 8 or 16)."""

from __future__ import annotations

import os
import platform
import re

# the flags that choose MLAS's kernels (x86: /proc/cpuinfo "flags"; Arm: "Features")
_ISA = re.compile(r"^(avx\w*|fma\w*|f16c|amx\w*|sse4_[12]|asimd\w*|sve\w*|i8mm|bf16|fphp|"
                  r"dotprod|neon)$")
COMPARED = ("cpu_model", "machine", "isa", "threads", "onnxruntime")


def isa_flags() -> str:
    """The CPU's ISA flags that matter to onnxruntime, sorted, space-separated ("" unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("flags", "features"):
                    return " ".join(sorted({f for f in value.split() if _ISA.match(f)}))
    except OSError:
        pass
    return ""


def fingerprint(threads: int) -> dict[str, object]:
    """This machine's fingerprint for a predictor timed at `threads` intra-op threads: the
    fields of `measure.env.Environment` that concern it, read the way env.py reads them (its
    `cpu_model`), without importing torch, which a prediction never needs."""
    import onnxruntime

    from mnv2prof.measure.machine import cpu_model

    return {"cpu_model": cpu_model(), "machine": platform.machine(), "isa": isa_flags(),
            "threads": threads, "onnxruntime": onnxruntime.__version__,
            "cpu_cores": os.cpu_count() or 0, "python": platform.python_version(),
            "platform": platform.platform()}


def differences(built: dict[str, object], here: dict[str, object]) -> dict[str, tuple]:
    """The `COMPARED` fields that differ: field -> (the predictor's, this machine's)."""
    return {k: (built.get(k), here.get(k)) for k in COMPARED if str(built.get(k)) != str(here.get(k))}


def describe_differences(found: dict[str, tuple]) -> str:
    """`cpu_model: X there, Y here; isa: ...`, for a one-line refusal."""
    return "; ".join(f"{k}: {a or 'none'} there, {b or 'none'} here" for k, (a, b) in found.items())
