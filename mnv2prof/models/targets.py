"""What a measured thing ships as: a precision (fp32, int8) on a runtime (onnxruntime,
ExecuTorch). One type, `Target`, wherever a row, a grid point or a record names them."""

from __future__ import annotations

from dataclasses import dataclass

from mnv2prof.errors import UsageError

PRECISIONS = ("fp32", "int8")
RUNTIMES = ("onnxruntime", "executorch")
DEFAULT_PRECISION, DEFAULT_RUNTIME = "fp32", "onnxruntime"


@dataclass(frozen=True)
class Target:
    precision: str = DEFAULT_PRECISION
    runtime: str = DEFAULT_RUNTIME

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision {self.precision!r}: choose from {', '.join(PRECISIONS)}")
        if self.runtime not in RUNTIMES:
            raise UsageError(f"runtime {self.runtime!r}: choose from {', '.join(RUNTIMES)}")

    @property
    def default(self) -> bool:
        return self.precision == DEFAULT_PRECISION and self.runtime == DEFAULT_RUNTIME

    @property
    def name(self) -> str:
        return f"{self.runtime} {self.precision}"

    def hash_extra(self) -> tuple[str, ...]:
        """What a row's spec_hash adds for this target: nothing for fp32 onnxruntime (files
        written before precisions and runtimes existed keep their hashes)."""
        return () if self.default else (self.precision, self.runtime)

    def fp32(self) -> Target:
        """The fp32 twin on the same runtime (an int8 row's speedup is against it)."""
        return Target(DEFAULT_PRECISION, self.runtime)


def parse_list(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    """`--precision fp32,int8` or `--runtime ...`: known names, each once, in the order given."""
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        shown = ", ".join(unknown) or repr(text)
        raise UsageError(f"{flag} {shown}: choose from {', '.join(allowed)} (comma-separated)")
    return names


def targets(precisions: tuple[str, ...], runtimes: tuple[str, ...]) -> tuple[Target, ...]:
    """Every precision on every runtime, runtime by runtime."""
    return tuple(Target(p, r) for r in runtimes for p in precisions)


def row_hash(subject, threads: int, target: Target = Target()) -> str:
    """A measured row's `spec_hash`: its subject (a block's spec or a model's, whose `digest`
    hashes what it depends on), its threads, and its precision and runtime when they are not
    fp32 onnxruntime."""
    return subject.digest(threads, *target.hash_extra())
