"""Domain errors. The CLI turns each into one line on stderr and its exit code, never a traceback."""


class Mnv2profError(Exception):
    """Base class: a failure the user can act on. `exit_code` is what the CLI exits with."""

    exit_code = 1


class UsageError(Mnv2profError, ValueError):
    """Bad input from the user: a spec, a flag value, a path (exit code 2, like click's usage errors)."""

    exit_code = 2


class SpecError(UsageError):
    """A block spec that cannot be built (unknown variant, bad value, channels groups cannot divide)."""


class ModelFileError(UsageError):
    """An ONNX file that is missing, unreadable or fails the checker."""


class ExportError(Mnv2profError):
    """Export to ONNX failed, or the exported model is not numerically equal to the torch module."""
