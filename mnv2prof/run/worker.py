"""The user's code in a process of its own: the tool never imports it, and nothing it does
(`sys.exit`, `os._exit`, a segfault, a hang, a signal handler, a print to stdout) can end or
take over the tool's process.

**A zygote, then one grandchild per job.** The first job of a process starts a zygote, a
process that only waits for jobs and never runs a torch op: for each job it forks a grandchild
that runs the job (a function of run.user_code: vetting, export, eager timing, lowering) and
exits. A plain `os.fork()` of the tool at the moment of a job is not safe: once torch has run a
parallel op, its OpenMP pool (libgomp) exists, and a forked child's first parallel op waits
forever for the pool's threads, which were not forked. So the zygote is a fork of the tool made
while that cannot be the case (run.zygote.fork_safe: one thread; or, on x86-64 with GNU OpenMP,
no thread waiting in an OpenMP runtime: Python's own threads and OpenBLAS's pool, which shuts
itself down around a fork, do not count), which holds when `Plan.check()` runs in the command
line; otherwise (a notebook that already ran torch) it is a fresh interpreter (`python -m
mnv2prof.run.zygote`, about 2 s once per process, torch imported once there).

**The grandchild** (run.zygote) is in its own process group (a terminal's Ctrl-C reaches the
tool alone, which ends the job), with the default signal handlers; its stdout and stderr are
capture files: a byte the user's code writes to stdout is an error (the tool's stdout carries
`--csv -`), and stderr (the exporter's logs, warnings) is dropped on success and its last line
quoted on a failure. It reports the phase it is in (`PHASES`), then its result or one error
(an exit code and a line, never an exception object) through a pipe, each message a length
and a pickle. The parent unpickles only the tool's own classes (`_Unpickler`).

**The parent** waits in steps of `STEP_S`, calling `interrupts.check()` between them (Ctrl-C
kills the job's process group and ends with `Interrupted`), and stops a job that reports
nothing for `timeout_s()` seconds (`MNV2PROF_WORKER_TIMEOUT`, default 300). However the job
ends, it is one error line naming the user's file (PATH.py:NAME) and what happened, exit 2; a
crash during the export itself (phase `export`) is the exporter's failure, exit 3.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

from mnv2prof import interrupts
from mnv2prof.errors import ExportError, Mnv2profError, UsageError
from mnv2prof.run.zygote import FRAME, NEWS, PHASES, USER_PHASES, fork_safe

TIMEOUT_ENV = "MNV2PROF_WORKER_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0
STEP_S = 0.05  # how often the wait looks for a signal


@dataclass(frozen=True)
class Job:
    """One call `function(*args)` in a grandchild, in the caller's folder, import path and
    environment (`run`'s `root`: a folder put first on the path and made the folder the job
    runs in: another revision's checkout). The function is pickled by its name: a function of
    a module (run.user_code's jobs)."""

    function: Callable[..., object]
    args: tuple
    cwd: str
    sys_path: tuple[str, ...]
    env: dict = field(default_factory=dict, hash=False)


def timeout_s() -> float:
    """`MNV2PROF_WORKER_TIMEOUT` (seconds without a sign of progress), else the default."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise UsageError(f"${TIMEOUT_ENV} must be a number of seconds > 0, got {text!r}")
    return value


class _Zygote:
    """The process jobs are forked from, and the socket that reaches it."""

    def __init__(self, sock: socket.socket, pid: int, process=None, log=None) -> None:
        self.sock, self.pid, self.process, self.log = sock, pid, process, log
        self.ended: dict[int, int] = {}  # grandchild pid -> wait status, as the zygote told

    def alive(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        try:
            return os.waitpid(self.pid, os.WNOHANG) == (0, 0)
        except ChildProcessError:
            return False

    def news(self, timeout: float) -> tuple[bytes, int, int] | None:
        """The zygote's next message (None: none within `timeout`); `ExportError` when it is
        gone (the next job starts another)."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return None
        data = _read_exactly(self.sock, NEWS.size)
        if data is None:
            _ZYGOTES.clear()
            raise ExportError("mnv2prof's worker process ended unexpectedly: run again")
        kind, pid, status = NEWS.unpack(data)
        if kind == b"E":
            self.ended[pid] = status
        return kind, pid, status


def _read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


_ZYGOTES: list[_Zygote] = []  # at most one: this process's
_LOCK = [threading.Lock()]  # one job at a time: threads of a caller share the zygote's socket


def _forget() -> None:
    """In a forked child (our zygote, its jobs, a user's own fork): the parent's zygote is not
    this process's to use, nor its lock (held, maybe, by a thread that is not there)."""
    _ZYGOTES.clear()
    _LOCK[0] = threading.Lock()


os.register_at_fork(after_in_child=_forget)


def zygote() -> _Zygote:
    """This process's zygote, started on first use (or again when it is gone)."""
    if _ZYGOTES and _ZYGOTES[0].alive():
        return _ZYGOTES[0]
    _ZYGOTES.clear()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        made = _fork_zygote(ours, theirs) if fork_safe() else _spawn_zygote(ours, theirs)
    finally:
        theirs.close()
    try:
        _wait_ready(made)
    except BaseException:
        _stop(made)
        raise
    _ZYGOTES.append(made)
    return made


def _fork_zygote(ours: socket.socket, theirs: socket.socket) -> _Zygote:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # nothing of ours may be written twice
            stream.flush()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: see fork_safe
        pid = os.fork()
    if pid == 0:  # the zygote: it never returns here
        try:
            from mnv2prof.run import zygote as server

            ours.close()
            server.forked(theirs)
        finally:
            os._exit(0)
    return _Zygote(ours, pid)


def _spawn_zygote(ours: socket.socket, theirs: socket.socket) -> _Zygote:
    log = tempfile.TemporaryFile()
    path = os.pathsep.join(p for p in sys.path if p)
    env = {**os.environ, "PYTHONPATH": path}
    fd = theirs.fileno()
    process = subprocess.Popen([sys.executable, "-m", "mnv2prof.run.zygote", str(fd)],
                               pass_fds=[fd], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=log, env=env,
                               start_new_session=True)
    return _Zygote(ours, process.pid, process, log)


def _wait_ready(made: _Zygote) -> None:
    """Wait for the zygote's first byte (a fresh interpreter imports torch first: ~2 s)."""
    deadline = time.monotonic() + timeout_s()
    while time.monotonic() < deadline:
        interrupts.check()
        ready, _, _ = select.select([made.sock], [], [], STEP_S)
        if ready:
            if made.sock.recv(1) == b"R":
                return
            break
    why = _last_line(made.log.fileno()) if made.log is not None else ""
    raise ExportError("mnv2prof's worker process for the user's code did not start"
                      + (f": {why}" if why else ""))


def _stop(made: _Zygote) -> None:
    made.sock.close()
    with contextlib.suppress(OSError):
        os.kill(made.pid, signal.SIGKILL)
    if made.process is not None:
        made.process.wait()
    else:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(made.pid, 0)


# --- a job ----------------------------------------------------------------------------------


@dataclass
class _State:
    """What the parent knows of a running job: its phase, whose code, how it ended."""

    label: str  # the user's code the job is on: PATH.py:NAME
    phase: str = "start"
    outcome: tuple | None = None  # ("result", value) or ("error", exit code, line)


def run(function: Callable[..., object], args: tuple, label: str, root: str | None = None,
        on_progress: Callable[[float], None] | None = None) -> object:
    """`function(*args)` in a grandchild of the zygote (see the module docstring): its result,
    or its one error (`PluginError`, exit 2; `ExportError`, exit 3). `label`: the user's code
    it runs, until the job names it; `on_progress`: called with the fractions of its timing
    the job reports."""
    job = Job(function, args, root or os.getcwd(),
              tuple(([root] if root else []) + sys.path), dict(os.environ))
    with _LOCK[0]:
        state = _run(job, label, on_progress)
    if state.outcome[0] == "result":
        return state.outcome[1]
    _, code, line = state.outcome
    raise _error_class(code)(line)


def _run(job: Job, label: str, on_progress) -> _State:
    """Send `job` to the zygote and follow it to its outcome (or raise how it ended)."""
    made = zygote()
    with _Files(job) as files:
        try:
            socket.send_fds(made.sock, [b"J"], list(files.theirs()))
        except OSError:
            _ZYGOTES.clear()
            raise ExportError("mnv2prof's worker process ended unexpectedly: run again") from None
        files.close_theirs()
        pid = _started(made)
        state = _State(label)
        try:
            _follow(state, files, on_progress)
        finally:
            _kill(pid)  # its group: what the user's code started, and it on an interrupt
        if state.outcome is None:
            raise _failure(state, _status(made, pid), files.err)
    return state


class _Files:
    """A job's files: the job itself, the pipe its messages come back on, its stdout and its
    stderr (nameless temporary files, gone when closed)."""

    def __init__(self, job: Job) -> None:
        self.job = tempfile.TemporaryFile()
        pickle.dump(job, self.job)
        self.job.flush()
        self.job.seek(0)
        self.read_fd, self.write_fd = os.pipe()
        self.out_file, self.err_file = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.err = self.err_file.fileno()

    def theirs(self) -> tuple[int, int, int, int]:
        return self.job.fileno(), self.write_fd, self.out_file.fileno(), self.err

    def close_theirs(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
            self.write_fd = -1

    def __enter__(self) -> _Files:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_theirs()
        os.close(self.read_fd)
        for file in (self.job, self.out_file, self.err_file):
            file.close()


def _started(made: _Zygote) -> int:
    """The pid of the grandchild the zygote forked for the job just sent."""
    deadline = time.monotonic() + timeout_s()
    while time.monotonic() < deadline:  # at once: the zygote forks and answers (no signal check:
        news = made.news(STEP_S)        # the pid is what an interrupt needs to end the job)
        if news is not None and news[0] == b"S":
            return news[1]
    raise ExportError("mnv2prof's worker process did not answer: run again")


def _follow(state: _State, files: _Files, on_progress) -> None:
    """Read the job's messages until its outcome or the end of its pipe, a signal arrives
    (`Interrupted`) or it reports nothing for `timeout_s()` (one line naming its phase)."""
    limit = timeout_s()
    buffer = bytearray()
    last = time.monotonic()
    while state.outcome is None:
        interrupts.check()
        ready, _, _ = select.select([files.read_fd], [], [], STEP_S)
        if not ready:
            if time.monotonic() - last > limit:
                doing = PHASES.get(state.phase, state.phase)
                raise _ended_class(state.phase)(
                    f"{state.label} was still {doing} after {limit:g} s: stopped (the limit is "
                    f"${TIMEOUT_ENV}, {DEFAULT_TIMEOUT_S:g} s unless set)")
            continue
        chunk = os.read(files.read_fd, 1 << 16)
        if not chunk:
            return
        buffer += chunk
        last = time.monotonic()
        for message in _frames(buffer):
            _apply(state, message, on_progress)


def _apply(state: _State, message: tuple, on_progress) -> None:
    kind = message[0]
    if kind == "phase":
        state.phase, state.label = message[1], message[2] or state.label
    elif kind == "progress":
        if on_progress is not None:
            on_progress(message[1])
    else:
        state.outcome = message


_TRUSTED = ("mnv2prof", "builtins", "pathlib", "collections", "copyreg", "numpy", "_codecs")


class _Unpickler(pickle.Unpickler):
    """The tool's own classes only: a result never imports the user's code here."""

    def find_class(self, module: str, name: str):
        if module.partition(".")[0] in _TRUSTED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a class of mnv2prof's results")


def _frames(buffer: bytearray):
    """The whole messages at the head of `buffer` (removed from it), unpickled."""
    while len(buffer) >= FRAME.size:
        (size,) = FRAME.unpack_from(buffer)
        if len(buffer) < FRAME.size + size:
            return
        data = bytes(buffer[FRAME.size:FRAME.size + size])
        del buffer[:FRAME.size + size]
        try:
            yield _Unpickler(io.BytesIO(data)).load()
        except Exception as exc:  # noqa: BLE001 - any failure to read it is the same to a user
            raise ExportError(f"mnv2prof's worker sent a message it cannot read: {exc}") from None


def _status(made: _Zygote, pid: int) -> int:
    """The wait status of grandchild `pid`, as the zygote reaped it."""
    deadline = time.monotonic() + 10
    while pid not in made.ended and time.monotonic() < deadline:
        made.news(STEP_S)
    return made.ended.pop(pid, 0)


def _kill(pid: int) -> None:
    """The job's whole process group (the zygote made it a group before saying its pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _error_class(code: int) -> type[Mnv2profError]:
    """What a job's reported error is here: bad input (exit 2) or the tool's failure (3)."""
    from mnv2prof.models.plugins import PluginError

    return PluginError if code == 2 else ExportError


def _ended_class(phase: str) -> type[Mnv2profError]:
    """A job that crashed, exited or hung: the user's code (exit 2), but in the export or the
    lowering itself, or before the user's code ran, the tool's failure (exit 3)."""
    return _error_class(2) if phase in USER_PHASES else ExportError


def _failure(state: _State, status: int, err_fd: int) -> Mnv2profError:
    """A job that ended without a word: its exit code or signal, one line."""
    code = os.waitstatus_to_exitcode(status)
    what = (f"crashed its process ({signal.Signals(-code).name})" if code < 0
            else f"ended its process with exit code {code}")
    line = _last_line(err_fd)
    text = f"{state.label} {what} while {PHASES.get(state.phase, state.phase)}"
    return _ended_class(state.phase)(text + (f" (its last line on stderr: {line})"
                                                if line else ""))


def _last_line(fd: int, limit: int = 200) -> str:
    """The last line written to the file `fd`, cut at `limit` characters."""
    size = os.fstat(fd).st_size
    tail = os.pread(fd, 4096, max(0, size - 4096)).decode("utf-8", "replace")
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if len(lines[-1]) <= limit else lines[-1][:limit - 3] + "..."
