"""The exit-code contract and the domain errors. The CLI turns each error into one line on stderr
and its exit code, never a traceback.

One code, one meaning (after pytest's `ExitCode`), so a CI job can tell a slow pull request from
a broken tool:

| code | meaning |
|---|---|
| 0 | ok, or the gate passed |
| 1 | a latency or cost regression (`gate` only) |
| 2 | usage or bad input: a flag, a spec, a path, a file that is not what it should be |
| 3 | the tool or a runtime failed: an export, an execution provider, cluster rows missing |
| 130 | interrupted (Ctrl-C or SIGTERM): finished rows are kept |
"""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    REGRESSION = 1
    USAGE = 2
    TOOL_FAILURE = 3
    INTERRUPTED = 130


class Mnv2profError(Exception):
    """Base class: a failure the user can act on. `exit_code` is what the CLI exits with."""

    exit_code = ExitCode.TOOL_FAILURE


class UsageError(Mnv2profError, ValueError):
    """Bad input from the user: a spec, a flag value, a path (like click's usage errors)."""

    exit_code = ExitCode.USAGE


class ValueRefused(UsageError):
    """A value one rule refuses, by the word the Python API and the command line share
    (`budget`, `threads`, `precision`...): the command line shows it as its flag (`--budget`),
    a profile as its key at its line; `problem` is the rest of the sentence."""

    def __init__(self, word: str, problem: str) -> None:
        super().__init__(f"{word} {problem}")
        self.word = word
        self.problem = problem

    def as_flag(self) -> str:
        """The message as the command line words it: `--budget must be finite, got inf`."""
        return f"--{self.word.replace('_', '-')} {self.problem}"


class SpecError(UsageError):
    """A block spec that cannot be built (unknown variant, bad value, channels groups cannot
    divide)."""


class ModelFileError(UsageError):
    """An ONNX file that is missing, unreadable or fails the checker."""


class WriteError(Mnv2profError):
    """An output the machine would not take: a full disk or device (ENOSPC), an I/O error."""


class ExportError(Mnv2profError):
    """Export to ONNX failed, or the exported model is not numerically equal to the torch
    module."""


class Interrupted(Mnv2profError):
    """Ctrl-C or SIGTERM, acted on at a safe point (interrupts.py)."""

    exit_code = ExitCode.INTERRUPTED


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first line of `exc`'s message (its type's name when it has none), for a one-line
    error; `with_type` leads with the type, for libraries whose messages do not say what failed."""
    text = str(exc).strip()
    if not text:
        return type(exc).__name__
    line = text.splitlines()[0]
    return f"{type(exc).__name__}: {line}" if with_type else line

