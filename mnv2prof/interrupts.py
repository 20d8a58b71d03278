"""Signals deferred to safe points (after uvicorn's `handle_exit`, which sets `should_exit`).

SIGINT (Ctrl-C), SIGTERM (`kill`) and SIGHUP (a closed terminal, a dropped SSH session) only set a
flag while a command runs (`deferred()`); the work
checks it between steps (`check()`: between rounds of timing, exports, rows, grid points) and stops
there with `errors.Interrupted` (exit code 130). Nothing is raised inside torch, onnxruntime or
onnxscript, which may swallow or mangle an exception raised in the middle of their code (an export
interrupted so ended as "ONNX export failed ... module 'torch._dynamo' has no attribute 'exc'", or
not at all). A step already running (one export, about 0.5 s for a block) finishes first, so its
output is whole or absent, never half written.

A second signal while the first waits for a safe point raises `KeyboardInterrupt` at once: the
user insists, and the atomic writers still remove their temporary files.

Outside the command (issue 25): the entry point (`mnv2prof/__main__.py`) calls `install()` as its
first statement, before typer, rich and the command groups are imported, and ends with `exit()`.
A signal before the command starts (nothing is done yet) or after it ended (everything it wrote
is whole) ends the process at once with 130 and one line, since there is nothing to save; once
an outcome is decided (`settling()`), a late signal ends the process with that outcome's code,
so stderr never carries two verdicts. The signals are blocked while that outcome's line is
written: a signal in between would end the process with the code and without the line (two
SIGINTs at once gave exit 130 and an empty stderr, about once in 30 runs under load); it is
delivered once the line is out. `exit()` leaves out the interpreter's
teardown (atexit's functions run, the streams are flushed): Python runs a handler only between
bytecodes, and a signal in the teardown's C code would go unanswered or kill the process (143)
with no line. Without `install()` (the Python API, tests calling `cli.main` in-process)
`deferred()` restores the handlers it found, as before.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn

from mnv2prof.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # each handled alike
_INTERRUPTED = 130  # errors.ExitCode.INTERRUPTED, without importing the enum machinery here
_PREFIX = "mnv2prof: error: "  # as cli.app.error writes it (uncoloured: rich may not be loaded)
_received: list[int] = []  # signal numbers received while deferred, in order
_state = {"phase": "start", "deferring": False, "settled": None}


@dataclass
class Window:
    """What `deferred()` saw: the signals received in it, readable after it closed."""

    received: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return signal.Signals(self.received[0]).name if self.received else ""


def check() -> None:
    """Raise `Interrupted` if a signal arrived: call it between steps, never inside a library."""
    if _received:
        raise Interrupted(f"interrupted ({signal.Signals(_received[0]).name})")


def check_ended() -> None:
    """`check()` once the command has returned: its output is written and whole."""
    if _received:
        name = signal.Signals(_received[0]).name
        raise Interrupted(f"interrupted ({name}) as the command ended: what it wrote is complete")


def _handler(signum: int, frame) -> None:
    if not _state["deferring"]:
        _exit_now(signum)
    _received.append(signum)
    if len(_received) > 1:
        raise KeyboardInterrupt  # the second signal: stop now


def _exit_now(signum: int) -> NoReturn:
    """A signal outside a command: one line and 130 now (or the settled outcome's code)."""
    settled = _state["settled"]
    if settled is not None:
        _flush()
        os._exit(settled)  # its line is out: it stands
    when = ("during start-up: nothing was done" if _state["phase"] == "start"
            else "as the command ended: what it wrote is complete")
    _flush()
    line = f"{_PREFIX}interrupted ({signal.Signals(signum).name}) {when}\n"
    with contextlib.suppress(OSError):
        os.write(2, line.encode())
    os._exit(_INTERRUPTED)


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or broken pipe: nothing more to say
            if stream is not None:
                stream.flush()


def install() -> None:
    """The entry point's first statement: from here to `exit()`, every signal of `SIGNALS` is
    handled (deferred inside a command, one line and 130 outside it)."""
    if threading.current_thread() is not threading.main_thread():
        return
    _state.update(phase="start", deferring=False, settled=None)
    for sig in SIGNALS:
        signal.signal(sig, _handler)


def settle(code: int) -> None:
    """The outcome is decided: a later signal ends the process with `code` at once (after
    `install()`). Its line, if any, is written inside `settling()`."""
    _state["settled"] = int(code)


@contextlib.contextmanager
def settling(code: int) -> Iterator[None]:
    """`settle(code)`, with the signals blocked while the body writes the outcome's line: a
    signal that comes meanwhile is delivered when the body ends, the line being out, and ends
    the process with `code` (after `install()`)."""
    settle(code)
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
        _flush()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def exit(code: int) -> NoReturn:  # noqa: A001 - the entry point's last call, as sys.exit
    """End the process with `code`: atexit's functions, the streams flushed, then `os._exit`,
    so no signal falls in an interpreter teardown that cannot answer it."""
    _state["phase"] = "end"
    atexit._run_exitfuncs()
    _flush()
    os._exit(int(code))


@contextlib.contextmanager
def deferred() -> Iterator[Window]:
    """Defer the `SIGNALS` to `check()` for the duration; restore the handlers after.
    The `Window` it yields keeps the signals received, for the caller to act on after.

    Outside the main thread (signals cannot be handled there) it does nothing.
    """
    window = Window()
    if threading.current_thread() is not threading.main_thread():
        yield window
        return
    outer = _state["deferring"]  # a window inside another keeps deferring when it closes
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    _received.clear()
    _state.update(phase="command", deferring=True, settled=None)
    try:
        yield window
    finally:
        window.received = tuple(_received)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _state.update(phase="command" if outer else "end", deferring=outer)
        _received.clear()
