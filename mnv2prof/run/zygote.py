"""The worker's other side (run.worker has the whole story): the zygote, which only waits for
jobs and forks a grandchild for each, and the grandchild, which runs one job on the user's code
and exits.

The zygote is forked from the tool (`forked`) or started as `python -m mnv2prof.run.zygote FD`
(`main`, which imports torch first, so that no job pays for it). It is in a process group of its
own, ignores SIGINT (a terminal's Ctrl-C is the tool's to act on), keeps no file of the tool's
open, and ends when the tool's end of its socket closes, killing the jobs still running. For
each job it receives four files (the job, the pipe to answer on, stdout, stderr), forks, makes
the grandchild a process group and says its pid (`S`); it reaps every grandchild and says how
each ended (`E` and the wait status).

The grandchild (`_run_job`): its own process group, the default signal handlers, stdout and
stderr on the capture files, the caller's folder, import path and environment; it calls the
job's function (run.user_code's jobs), which tells the phases it goes through
(`channel().mark`) and its timing's progress, then sends its result or one error (an exit code
and a line), and exits with `os._exit`.
"""

from __future__ import annotations

import io
import os
import pickle
import platform
import select
import signal
import socket
import struct
import sys
import threading
import time
from typing import NoReturn

# what a job is doing, in the words its errors use (run.worker); a failure in `USER_PHASES` is
# the user's code's, in `export` or `lower` the exporter's or the lowering stack's
PHASES = {"start": "starting", "import": "being imported", "build": "being built",
          "forward": "running forward", "export": "being exported", "lower": "being lowered",
          "time": "being timed"}
USER_PHASES = ("import", "build", "forward", "time")
_OPENMP = ("libgomp", "libiomp", "libomp")  # OpenMP runtimes whose pools do not survive a fork
FRAME = struct.Struct("!I")  # a message's length
NEWS = struct.Struct("!cii")  # b"S" pid 0: job started; b"E" pid status: it ended


def fork_safe() -> bool:
    """Whether a fork of this process can run torch's parallel ops (run.worker's docstring):
    one thread; or every other thread Python's own or blocked in a call outside any OpenMP
    runtime (x86-64, GNU OpenMP, whose pool threads wait in libgomp's own futex calls)."""
    try:
        if len(os.listdir("/proc/self/task")) == 1:
            return True
        if platform.machine() != "x86_64":
            return False
        libraries = _openmp_text()
        if any("libgomp" not in name for _, _, name in libraries):
            return False  # another OpenMP runtime waits in libc: its threads cannot be told apart
        for _ in range(20):  # a thread caught running (not in a call) is looked at again
            verdict = _threads_verdict(libraries)
            if verdict is not None:
                return verdict
            time.sleep(0.005)
    except (OSError, ValueError):
        pass
    return False


def _openmp_text() -> list[tuple[int, int, str]]:
    """The code of every OpenMP runtime mapped in this process: (start, end, file name)."""
    found = []
    with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
        for line in maps:
            parts = line.split()
            name = os.path.basename(parts[5]) if len(parts) > 5 else ""
            if "x" in parts[1] and name.startswith(_OPENMP):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                found.append((start, end, name))
    return found


def _threads_verdict(libraries: list[tuple[int, int, str]]) -> bool | None:
    """False: a thread waits inside an OpenMP runtime; True: none does; None: a thread was
    running, look again."""
    own = {t.native_id for t in threading.enumerate()} | {threading.get_native_id()}
    running = False
    for tid in os.listdir("/proc/self/task"):
        if int(tid) in own:
            continue
        try:
            with open(f"/proc/self/task/{tid}/syscall", encoding="ascii") as fh:
                fields = fh.read().split()
        except FileNotFoundError:
            continue  # it ended
        if not fields or fields[0] == "running":
            running = True
            continue
        pc = int(fields[-1], 16)
        if any(start <= pc < end for start, end, _ in libraries):
            return False
    return None if running else True


def forked(sock: socket.socket) -> NoReturn:
    """The zygote, in a child just forked from the tool."""
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        keep = sock.fileno()
        os.closerange(3, keep)
        os.closerange(keep + 1, _max_fd())
        serve(sock)
    finally:
        os._exit(0)


def _max_fd() -> int:
    try:
        return max(os.sysconf("SC_OPEN_MAX"), 256)
    except (ValueError, OSError):
        return 65536


_PRELOADED = ("torch", "mnv2prof.run.user_code", "mnv2prof.models.blocks", "mnv2prof.models.sizes",
              "mnv2prof.models.networks", "mnv2prof.measure.eager", "mnv2prof.measure.latency")


def main(argv: list[str]) -> NoReturn:
    """The zygote as a fresh interpreter (the tool could not fork safely)."""
    sock = socket.socket(fileno=int(argv[1]))
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        import importlib

        for name in _PRELOADED:  # imported once here (no op run), so that no job pays for them
            importlib.import_module(name)
        serve(sock)
    finally:
        os._exit(0)


def serve(sock: socket.socket) -> None:
    """Fork a grandchild per job until the tool's end of `sock` closes."""
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # a wake-up: reap at once
    children: set[int] = set()
    sock.sendall(b"R")
    try:
        while True:
            ready, _, _ = select.select([sock, wake_read], [], [], 1.0)
            if wake_read in ready:
                while _drained(wake_read):
                    pass
            _reap(children, sock)
            if sock in ready:
                message, fds, _, _ = socket.recv_fds(sock, 1, 4)
                if not message:
                    return
                pid = os.fork()
                if pid == 0:
                    _run_job(fds, (sock.fileno(), wake_read, wake_write))
                _forked_job(pid, fds, children, sock)
    finally:
        for pid in children:
            _kill_group(pid)


def _drained(fd: int) -> bool:
    try:
        return bool(os.read(fd, 512))
    except BlockingIOError:
        return False


def _forked_job(pid: int, fds: list[int], children: set[int], sock: socket.socket) -> None:
    try:
        os.setpgid(pid, pid)  # the grandchild does too: whichever runs first, it is a group
    except OSError:
        pass  # it has already ended or set it
    for fd in fds:
        os.close(fd)
    children.add(pid)
    sock.sendall(NEWS.pack(b"S", pid, 0))


def _reap(children: set[int], sock: socket.socket) -> None:
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            children.discard(pid)
            sock.sendall(NEWS.pack(b"E", pid, status))


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# --- the grandchild ---------------------------------------------------------------------------


def _run_job(fds: list[int], closing: tuple[int, ...]) -> NoReturn:
    """Run the job in `fds` (job, answer pipe, stdout, stderr) and exit; never returns."""
    channel = None
    try:
        os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        job_fd, answer_fd, out_fd, err_fd = fds
        channel = Channel(answer_fd, out_fd, err_fd)
        with os.fdopen(job_fd, "rb") as file:
            job = pickle.load(file)  # imports the module of its function (run.user_code)
        _CHANNEL[:] = [channel]
        os.chdir(job.cwd)
        os.environ.clear()
        os.environ.update(job.env)
        sys.path[:] = list(job.sys_path)
        result = job.function(*job.args)
        channel.check_stdout()
        channel.send(("result", result))
    except BaseException as exc:  # noqa: BLE001 - every way a job ends is one message
        if channel is not None:
            channel.send(("error", *channel.describe(exc)))
    finally:
        os._exit(0)


_CHANNEL: list[Channel] = []  # the job's, in a grandchild


def channel() -> Channel | None:
    """The running job's channel to the parent (None outside a grandchild)."""
    return _CHANNEL[0] if _CHANNEL else None


class Channel:
    """The grandchild's side of a job: its answer pipe, and what it knows of stdout."""

    def __init__(self, answer_fd: int, out_fd: int, err_fd: int) -> None:
        self.fd = answer_fd
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        # fresh streams on the capture files: the tool's own may hold a lock or a buffer
        self.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), "utf-8", "replace")
        sys.stdout = sys.__stdout__ = self.stdout
        sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.FileIO(2, "w", closefd=False),
                                                       "utf-8", "replace", line_buffering=True)
        self.phase, self.label, self.written = "start", "", 0

    def send(self, message: tuple) -> None:
        data = pickle.dumps(message)
        view = memoryview(FRAME.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fd, view):]

    def mark(self, phase: str, label: str = "") -> None:
        """Entering `phase` on the user's code `label` (PATH.py:NAME)."""
        self.check_stdout()
        self.phase, self.label = phase, label or self.label
        self.send(("phase", phase, self.label))

    def progress(self, fraction: float) -> None:
        self.send(("progress", fraction))

    def check_stdout(self) -> None:
        """A `PluginError` when the user's code closed sys.stdout or wrote to stdout in the
        phase now ending (the exporter's own lines, in `export` or `lower`, are not the user's)."""
        from mnv2prof.models.plugins import PluginError

        doing = PHASES.get(self.phase, self.phase)
        if self.stdout.closed:
            raise PluginError(f"{self.label} closed sys.stdout while {doing}: mnv2prof's stdout "
                              "carries its results (--csv -)")
        self.stdout.flush()
        size = os.fstat(1).st_size
        written, self.written = size - self.written, size
        if written and self.phase in USER_PHASES:
            first = os.pread(1, 200, size - written).decode("utf-8", "replace")
            first = first.splitlines()[0] if first.strip() else first
            raise PluginError(f"{self.label} wrote to stdout while {doing} ({first[:60]!r}): "
                              "mnv2prof's stdout carries its results (--csv -); write to "
                              "stderr instead")

    def describe(self, exc: BaseException) -> tuple[int, str]:
        """The exit code and the one line of a job that raised `exc`."""
        from mnv2prof.errors import Mnv2profError, first_line

        if isinstance(exc, Mnv2profError):
            return int(exc.exit_code), first_line(exc)
        doing = PHASES.get(self.phase, self.phase)
        code = 2 if self.phase in USER_PHASES else 3  # in the exporter, or the job's own set-up
        return code, f"{self.label} raised {first_line(exc, with_type=True)} while {doing}"


if __name__ == "__main__":
    # run as the package's module, not as __main__: a job's `channel()` (user_code.mark, the
    # timing's progress) reads mnv2prof.run.zygote's _CHANNEL, which __main__'s copy would not set
    from mnv2prof.run import zygote as _package_module

    _package_module.main(sys.argv)
