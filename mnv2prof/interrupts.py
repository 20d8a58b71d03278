"""Signals deferred to safe points (after uvicorn's `handle_exit`, which sets `should_exit`).

SIGINT (Ctrl-C) and SIGTERM (`kill`) only set a flag while a command runs (`deferred()`); the work
checks it between steps (`check()`: between rounds of timing, exports, rows, grid points) and stops
there with `errors.Interrupted` (exit code 130). Nothing is raised inside torch, onnxruntime or
onnxscript, which may swallow or mangle an exception raised in the middle of their code (an export
interrupted so ended as "ONNX export failed ... module 'torch._dynamo' has no attribute 'exc'", or
not at all). A step already running (one export, about 0.5 s for a block) finishes first, so its
output is whole or absent, never half written.

A second signal while the first waits for a safe point raises `KeyboardInterrupt` at once: the
user insists, and the atomic writers still remove their temporary files.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

from mnv2prof.errors import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_received: list[int] = []  # signal numbers received while deferred, in order


def check() -> None:
    """Raise `Interrupted` if a signal arrived: call it between steps, never inside a library."""
    if _received:
        name = signal.Signals(_received[0]).name
        raise Interrupted(f"interrupted ({name})")


def _handler(signum: int, frame) -> None:
    _received.append(signum)
    if len(_received) > 1:
        raise KeyboardInterrupt  # the second signal: stop now


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Defer SIGINT and SIGTERM to `check()` for the duration; restore the handlers after.

    Outside the main thread (signals cannot be handled there) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _handler) for sig in _SIGNALS}
    _received.clear()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _received.clear()
