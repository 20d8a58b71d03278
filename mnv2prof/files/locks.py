"""A file that one writer at a time may append to (a sweep's journal), by `fcntl.flock`.

Two `sweep --resume` on one journal at once each read the rows already there, then each measured
and appended the rest: 14 rows for an 8-row grid. `hold` takes an exclusive lock on the file
without waiting, and a second writer is refused in one line naming the process that holds it
(read from /proc/locks where there is one). The lock goes with the process: a killed writer
leaves no stale lock behind, and nothing is written beside the file. Within one process the
newest holder of a file takes the lock over (`Held.release` of the one before): a process does
not race itself.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import weakref
from pathlib import Path

from mnv2prof.errors import UsageError

_HOLDERS: weakref.WeakValueDictionary[tuple[int, int], Held] = weakref.WeakValueDictionary()


class Held:
    """An open, locked file descriptor (`fd`, opened for appending); released by `release` or
    when the object is collected."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing the descriptor releases its flock
            self.fd = None

    def __del__(self) -> None:
        self.release()


def holder_pid(fd: int) -> int | None:
    """The process holding a flock on the file of `fd`, from /proc/locks (Linux); None when it
    cannot be told."""
    status = os.fstat(fd)
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "FLOCK" in fields and "->" not in fields and device in fields:
            pid = fields[fields.index(device) - 1]
            return int(pid) if pid.isdigit() else None
    return None


def hold(path: Path, flag: str) -> Held:
    """Open `path` for appending (made when missing) and lock it for this process alone, or
    refuse in one line naming the process that holds it. A file system without flock (ENOLCK)
    is written unlocked, as before."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)  # the umask decides
    except OSError as exc:
        from mnv2prof.files.atomic import path_error

        raise path_error(path, exc) from None
    status = os.fstat(fd)
    inode = (status.st_dev, status.st_ino)
    if (previous := _HOLDERS.get(inode)) is not None:
        previous.release()  # this process's own earlier writer: the newest one writes
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            return Held(fd)  # ENOLCK and friends: no locks here
        pid = holder_pid(fd)
        os.close(fd)
        who = f"process {pid}" if pid is not None else "another process"
        raise UsageError(f"{flag} {path} is being written by {who}: one writer at a time, or "
                         "rows would be written twice; wait for it to end, or write to another "
                         "file") from None
    held = Held(fd)
    _HOLDERS[inode] = held
    return held
