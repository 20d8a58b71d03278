"""What a measured thing ships as: a precision (fp32, int8) on a runtime (onnxruntime,
ExecuTorch), and for int8 how it is calibrated. One type, `Target`, wherever a row, a grid point or
a record names them, and one table of the names each may take (`PRECISIONS`, `RUNTIMES`,
`CALIBRATIONS`), checked by `parse_targets` for the command line, the Python API and a profile."""

from __future__ import annotations

from dataclasses import dataclass

from collections.abc import Sequence

from mnv2prof.errors import ValueRefused

PRECISIONS = ("fp32", "int8")
RUNTIMES = ("onnxruntime", "executorch")
# int8 calibration: our name -> onnxruntime's CalibrationMethod (artifacts.quantize)
CALIBRATIONS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
DEFAULT_PRECISION, DEFAULT_RUNTIME, DEFAULT_CALIBRATION = "fp32", "onnxruntime", "minmax"


@dataclass(frozen=True)
class Target:
    precision: str = DEFAULT_PRECISION
    runtime: str = DEFAULT_RUNTIME

    def __post_init__(self) -> None:
        check_name(self.precision, PRECISIONS, "precision")
        check_name(self.runtime, RUNTIMES, "runtime")

    @property
    def default(self) -> bool:
        return self.precision == DEFAULT_PRECISION and self.runtime == DEFAULT_RUNTIME

    def hash_extra(self) -> tuple[str, ...]:
        """What a row's spec_hash adds for this target: nothing for fp32 onnxruntime (files
        written before precisions and runtimes existed keep their hashes)."""
        return () if self.default else (self.precision, self.runtime)

    def fp32(self) -> Target:
        """The fp32 twin on the same runtime (an int8 row's speedup is against it)."""
        return Target(DEFAULT_PRECISION, self.runtime)


def check_name(value: object, allowed: Sequence[str], word: str) -> str:
    """One name of `allowed`, or `ValueRefused` naming the choices."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueRefused(word, f"{value!r}: choose from {', '.join(allowed)}")
    return value


def parse_list(value: str | Sequence[str], allowed: Sequence[str], word: str) -> tuple[str, ...]:
    """`fp32,int8` (or a list of names): known names, each once, in the order given."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(n, str) for n in items):
        raise ValueRefused(word, f"{value!r}: choose from {', '.join(allowed)} (comma-separated)")
    names = tuple(dict.fromkeys(n.strip() for n in items if n.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        shown = ", ".join(unknown) or repr(value)
        raise ValueRefused(word, f"{shown}: choose from {', '.join(allowed)} (comma-separated)")
    return names


def parse_targets(precision: str | Sequence[str], runtime: str | Sequence[str],
                  calibration: str = DEFAULT_CALIBRATION) -> tuple[tuple[Target, ...], str]:
    """The targets `precision` x `runtime` name (comma-separated or lists), checked, and the
    calibration method: the rule every entry point reaches."""
    precisions = parse_list(precision, PRECISIONS, "precision")
    runtimes = parse_list(runtime, RUNTIMES, "runtime")
    check_name(calibration, tuple(CALIBRATIONS), "calibration")
    return targets(precisions, runtimes), calibration


def targets(precisions: tuple[str, ...], runtimes: tuple[str, ...]) -> tuple[Target, ...]:
    """Every precision on every runtime, runtime by runtime."""
    return tuple(Target(p, r) for r in runtimes for p in precisions)


def row_hash(subject, threads: int, target: Target = Target()) -> str:
    """A measured row's `spec_hash`: its subject (a block's spec or a model's, whose `digest`
    hashes what it depends on), its threads, and its precision and runtime when they are not
    fp32 onnxruntime."""
    return subject.digest(threads, *target.hash_extra())
