"""The cache root and what vouches for a cached file.

The cache folder (`$MNV2PROF_CACHE`, else `$XDG_CACHE_HOME/mnv2prof`, else `~/.cache/mnv2prof`)
holds every artefact (onnx/, int8/, pte/, stage files), the harness's identity model, this
machine's calibration and its history of fastest calls. It is the tool's own: a cached file that
does not load as the tool wrote it is removed and made again. It is checked once, when first
used: one line naming it when it is a file or cannot be created or written (exit 2).

A cached artefact (an export, its int8 twin, a `.pte`) proves what it is by its record
(`ENTRY_SUFFIX`, written by `vouch` before the file is renamed into place): the cache key it was
built from and the sha256 of its bytes. `vouched` uses it only when the record names the key
asked for and the bytes on disk: another block's file, record or link swapped in is never
measured under this name (conv's row read 26,656 MACs, dwsep's, where conv has 112,896), and a
file cut short is never handed on, without importing onnx to parse it (0.6 s). An entry that
cannot be used (a folder where the file should be, a sidecar that is a folder, garbage, JSON
nested past the limit) is set aside and made again (`set_aside`): it never fails a run.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import secrets
import stat
from pathlib import Path

from mnv2prof.errors import UsageError


def cache_dir() -> Path:
    """`$MNV2PROF_CACHE`, else `$XDG_CACHE_HOME/mnv2prof`, else `~/.cache/mnv2prof`: a folder
    that exists (made here) and can be written, or a `UsageError` naming the variable."""
    if env := os.environ.get("MNV2PROF_CACHE"):
        return _usable_cache(env, "MNV2PROF_CACHE")
    if xdg := os.environ.get("XDG_CACHE_HOME"):
        return _usable_cache(str(Path(xdg) / "mnv2prof"), "XDG_CACHE_HOME")
    return _usable_cache(str(Path.home() / ".cache" / "mnv2prof"), "")


@functools.cache
def _usable_cache(folder: str, variable: str) -> Path:
    path = Path(folder)
    where = f"${variable} ({folder})" if variable else f"the cache folder {folder}"
    fix = f"; set {variable or 'MNV2PROF_CACHE'} to a folder that can be written"
    try:
        if path.exists() and not path.is_dir():
            raise UsageError(f"{where} is not a folder{fix}")
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{where} cannot be created: {exc.strerror or exc}{fix}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{where} cannot be written{fix}")
    return path


SIDECAR_SUFFIX = ".counted.json"  # beside a cached export: its counts (count.cost.count_cached)
ENTRY_SUFFIX = ".entry.json"  # beside every cached artefact: what it is (`vouch`)
SET_ASIDE = ".set-aside"  # the end of the name an unusable entry is moved to, when not removed


def file_sha256(path: Path) -> str:
    """The sha256 of the bytes at `path`, remembered for as long as the file's inode, size and
    times are the same (a warm run asks for it twice: here and for its counts)."""
    path = Path(path)
    status = path.stat()
    stamp = (str(path), status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns,
             status.st_ctime_ns)
    digest = _DIGESTS.get(stamp)
    if digest is None:
        if len(_DIGESTS) > 4096:
            _DIGESTS.clear()
        digest = _DIGESTS[stamp] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


_DIGESTS: dict[tuple, str] = {}


def _regular(path: Path) -> bool:
    """Whether `path` is a regular file itself (not a link, a folder, a device...)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def set_aside(path: Path) -> None:
    """Take an entry that cannot be used out of the cache's way: a file or a link is removed
    (the cache is the tool's own); anything else, a folder above all, is renamed beside it
    (`SET_ASIDE`), never deleted with what it holds."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(mode):
            os.replace(path, path.with_name(f".{path.name[:64]}.{secrets.token_hex(4)}{SET_ASIDE}"))
        else:
            path.unlink()


def _sidecars(path: Path) -> tuple[Path, Path]:
    return Path(str(path) + ENTRY_SUFFIX), Path(str(path) + SIDECAR_SUFFIX)


def vouch(staged: Path, path: Path, key: str) -> None:
    """Record what the artefact about to be renamed onto `path` is: its cache `key` (what it was
    built from) and the sha256 of its bytes, staged at `staged`. Written before the rename, so a
    file in the cache always has its record; a record without its file vouches for nothing."""
    from mnv2prof.files.atomic import write_atomic

    entry, counted = _sidecars(path)
    for sidecar in (entry, counted):
        if not _regular(sidecar):
            set_aside(sidecar)
    record = {"key": key, "sha256": hashlib.sha256(Path(staged).read_bytes()).hexdigest()}
    write_atomic(entry, json.dumps(record) + "\n")


def vouched(path: Path, key: str) -> bool:
    """Whether the cached artefact at `path` is the one asked for: a regular file whose record
    (`vouch`) names `key` and the sha256 of its bytes, and whose sidecars can be read. Anything
    else (no record, another artefact's file, record or link swapped in, a folder, garbage, JSON
    nested past the limit) is set aside with its sidecars, to be made again: an unusable entry
    never fails a run, and never stands in for another."""
    from mnv2prof.files.nesting import load_json

    if not os.path.lexists(path):
        return False  # not made yet (a record alone may be a writer's, about to rename its file)
    entry, counted = _sidecars(path)
    try:
        record = load_json(entry.read_text(encoding="utf-8")) if _regular(entry) else None
        ok = (_regular(path) and isinstance(record, dict) and record.get("key") == key
              and record.get("sha256") == file_sha256(path))
        if ok and os.path.lexists(counted):
            ok = _regular(counted) and isinstance(
                load_json(counted.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        ok = False
    if not ok:
        for unusable in (path, entry, counted):
            set_aside(unusable)
    return ok
