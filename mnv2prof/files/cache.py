"""The cache root and what vouches for a cached file.

The cache folder (`$MNV2PROF_CACHE`, else `$XDG_CACHE_HOME/mnv2prof`, else `~/.cache/mnv2prof`)
holds every artefact (onnx/, int8/, pte/, stage files), the harness's identity model, this
machine's calibration and its history of fastest calls. It is the tool's own: a cached file that
does not load as the tool wrote it is removed and made again. It is checked once, when first
used: one line naming it when it is a file or cannot be created or written (exit 2).

A cached export is vouched for by its counts' sidecar (`SIDECAR_SUFFIX`, written by
count.cost.count_cached), which names the sha256 of the bytes it counted: the file is then whole
without importing onnx to parse it (0.6 s); otherwise `cached_file_ok` parses it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
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


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sidecar_vouches(path: Path) -> bool:
    """Whether the sidecar written after `path` was counted names these very bytes (its
    `sha256`): the file is then whole, without importing onnx to parse it (0.6 s)."""
    try:
        entry = json.loads(Path(str(path) + SIDECAR_SUFFIX).read_text(encoding="utf-8"))
        return isinstance(entry, dict) and entry.get("sha256") == file_sha256(path)
    except (OSError, ValueError):
        return False


def cached_file_ok(path: Path, metadata_key: str | None = None) -> bool:
    """Whether the cached ONNX file at `path` loads whole: it parses, has a graph with nodes and
    outputs, and (`metadata_key`) the metadata entry its writer put last, which a file cut short
    lost. A few milliseconds for a block, beside the export's 0.5 s."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf's DecodeError and friends, an unreadable file
        return False
    if not model.graph.node or not model.graph.output:
        return False
    return metadata_key is None or any(e.key == metadata_key for e in model.metadata_props)
