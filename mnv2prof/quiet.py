"""Python-level silence for libraries that talk to their developers, not to our users.

The exporter (torch.onnx, onnxscript) prints progress lines and warnings; ExecuTorch's lowering
stack (torchao, torch.export, executorch) logs through the root logger too. `silenced` raises
the named loggers to ERROR, drops warnings and swallows stdout for the duration, then puts every
level back. Output written straight to file descriptor 2 by C++ code (Kineto's profiler lines,
Ray's gcs_client.cc retries) is another matter: `quiet_stderr`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import warnings
from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def silenced(logger_names: Sequence[str], root: bool = False) -> Iterator[None]:
    """Loggers `logger_names` (and the root logger if `root`) at ERROR, no warnings, no stdout.

    With `root` and no handler on the root logger yet, a NullHandler stands in for the duration,
    so a library's `logging.warning(...)` does not call `basicConfig` behind our back.
    """
    loggers = [logging.getLogger(n) for n in logger_names]
    root_logger = logging.getLogger()
    null = None
    if root:
        loggers.append(root_logger)
        null = logging.NullHandler() if not root_logger.handlers else None
    levels = [lg.level for lg in loggers]
    if null is not None:
        root_logger.addHandler(null)
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if null is not None:
            root_logger.removeHandler(null)


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the duration: what C++ code writes there straight."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()  # what Python wrote in the window goes where it went
        os.dup2(saved, 2)
        os.close(saved)
