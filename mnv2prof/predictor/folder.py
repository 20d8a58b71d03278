"""The predictor folder: what `predictor build` writes and `predict` reads.

    build.json      the build's plan: the space, the fingerprint, the format (first thing written)
    kernels.csv     every kernel timed: key, kind, op, features, kernel_ms (the journal)
    samples.csv     every sample (network, lone block, pattern) whose kernels are in kernels.csv
    networks.csv    the calibration networks: predicted against measured whole
    contexts.csv    each calibration network's kinds: their nodes' time inside it (profiled)
                    against their predictions alone
    predictor.json  the finished predictor: fingerprint, space, per-kind regressor and held-out
                    error, the FLOPs baseline, the harness floor, the calibration
    forests.npz     the regressors that are tree ensembles (forests, boosting), flattened
                    (forest.Forests.arrays): plain arrays, what `predict` reads
    models.joblib   the fitted scikit-learn regressors, by kind (a pickle: unpickled only for a
                    kind whose regressor is not a tree ensemble; load only folders you trust)
    errors.csv      each kind's held-out error, beside the FLOPs baseline's on the same kernels

The CSVs are journals, as `sweep`'s file is (sweeps/sweep.py): each batch of rows is appended in one
`os.write` and fsynced as soon as it is measured, so an interrupt loses at most the batch being
timed, and `--resume` carries on from what is there. The finished predictor's files are written
together at the end (`files.atomic.write_all`): a folder holds all of them or none, and a folder
without `predictor.json` is an unfinished build, which `predict` refuses in one line.
`predictor.json` keeps the sha256 of forests.npz and models.joblib: a damaged or swapped file is
refused in one line when the folder is loaded, before anything is unpickled.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mnv2prof.errors import UsageError
from mnv2prof.files.atomic import path_error, write_all
from mnv2prof.predictor.fingerprint import describe_differences, differences, fingerprint
from mnv2prof.predictor.fitting import FlopsBaseline, context_factor, scale_factor
from mnv2prof.predictor.kinds import FEATURES

FORMAT = 1
BUILD_FILE, PREDICTOR_FILE, MODELS_FILE = "build.json", "predictor.json", "models.joblib"
FORESTS_FILE = "forests.npz"
KERNELS_FILE, SAMPLES_FILE, NETWORKS_FILE, CONTEXTS_FILE, ERRORS_FILE = (
    "kernels.csv", "samples.csv", "networks.csv", "contexts.csv", "errors.csv")
FEATURE_COLUMNS = tuple(sorted({f for names in FEATURES.values() for f in names} - {"macs"}))
KERNEL_COLUMNS = ("key", "kind", "op", "sample", "macs", *FEATURE_COLUMNS, "kernel_ms",
                  "kernel_median_ms", "spread_rel", "rounds", "floor_ms", "probe_ms", "host")
SAMPLE_COLUMNS = ("sample", "recipe", "kernels", "new_kernels", "seconds")
CONTEXT_COLUMNS = ("sample", "kind", "kernels", "inside_ms", "alone_ms")
NETWORK_COLUMNS = ("sample", "recipe", "kernels", "macs", "weight_bytes", "predicted_ms",
                   "flops_ms", "measured_ms", "probe_ms", "seconds")


class Journal:
    """An append-only CSV with a fixed header, each batch of rows one durable write."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = path, tuple(columns)

    def rows(self) -> list[dict[str, str]]:
        """Every whole row (a last line cut off mid-write is left out: its batch is redone)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{self.path}: cannot read it: {exc}") from None
        if not text.strip():
            return []
        lines = text.splitlines(keepends=True)
        if not lines[-1].endswith("\n"):
            lines = lines[:-1]
        reader = csv.reader(lines)
        header = next(reader, [])
        if tuple(header) != self.columns:
            raise UsageError(f"{self.path} has other columns than this version writes: build "
                             "into a new folder")
        return [dict(zip(header, row, strict=True)) for row in reader if len(row) == len(header)]

    def append(self, rows: Sequence[Mapping[str, object]]) -> None:
        if not rows:
            return
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        if fresh:
            writer.writerow(self.columns)
        elif not self.path.read_bytes().endswith(b"\n"):
            text.write("\n")  # a line cut off by a kill: end it, so the new rows stand alone
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in self.columns])
        data = text.getvalue().encode("utf-8")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise path_error(self.path, exc) from None


def open_build(out: Path, resume: bool, plan: Mapping[str, object]) -> None:
    """Check `out` and start (or, with `resume`, continue) a build there: one line and exit 2
    for a folder that cannot be used, before anything is timed."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; name a folder")
    built = out / BUILD_FILE
    if resume:
        if not built.is_file():
            raise UsageError(f"--resume: {out} holds no build to resume ({BUILD_FILE} missing)")
        previous = read_json(built)
        if previous.get("space") != json.loads(json.dumps(plan["space"])):  # tuples as lists
            raise UsageError(f"--resume: {out} was built over another space: resume it with "
                             "its own --profile, or build into a new folder")
        if found := differences(previous.get("fingerprint", {}), plan["fingerprint"]):
            raise UsageError(f"--resume: {out} was timed in another environment "
                             f"({describe_differences(found)}): resume it there")
        return
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {out} exists and is not empty: pass --resume to continue its "
                         "build, or name a new folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise path_error(out, exc) from None
    write_all([(built, json.dumps(plan, indent=1, sort_keys=True) + "\n")])


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a predictor file this version reads ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"{path}: not a predictor file of format {FORMAT}")
    return data


def write_predictor(out: Path, meta: dict, models: Mapping[str, object],
                    errors: Sequence[Mapping[str, object]]) -> None:
    """The finished predictor's files, all together (write_all), their digests in
    predictor.json."""
    import joblib
    import numpy as np

    from mnv2prof.predictor.forest import Forests

    buffer = io.BytesIO()
    joblib.dump(dict(models), buffer, compress=3)
    flat = io.BytesIO()
    np.savez(flat, **Forests(models).arrays())
    blobs = {MODELS_FILE: buffer.getvalue(), FORESTS_FILE: flat.getvalue()}
    meta = meta | {"files": {name: hashlib.sha256(blob).hexdigest()
                             for name, blob in blobs.items()}}
    text = io.StringIO()
    if errors:
        writer = csv.DictWriter(text, fieldnames=list(errors[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(errors)
    write_all([*((out / name, blob) for name, blob in blobs.items()),
               (out / ERRORS_FILE, text.getvalue()),
               (out / PREDICTOR_FILE, json.dumps(meta, indent=1, sort_keys=True) + "\n")])


class SavedModels(Mapping):
    """A folder's scikit-learn regressors by kind, unpickled on the first look at one: a
    predictor whose kinds are all tree ensembles (forests.npz) never unpickles them."""

    def __init__(self, path: Path, kinds: Sequence[str], blob: bytes | None = None) -> None:
        self.path, self.kinds, self._blob = path, tuple(kinds), blob
        self._models: dict[str, object] | None = None

    def __contains__(self, kind: object) -> bool:
        return kind in self.kinds

    def __iter__(self) -> Iterator[str]:
        return iter(self.kinds)

    def __len__(self) -> int:
        return len(self.kinds)

    def __getitem__(self, kind: str) -> object:
        if kind not in self.kinds:
            raise KeyError(kind)
        if self._models is None:
            self._models = _unpickle(self.path, self._blob)
        return self._models[kind]


def _unpickle(path: Path, blob: bytes | None) -> dict[str, object]:
    import joblib

    try:
        models = joblib.load(io.BytesIO(blob) if blob is not None else path)
    except Exception as exc:  # noqa: BLE001 - pickle, zlib, EOF: a damaged file, one line
        raise UsageError(f"{path}: cannot be loaded ({type(exc).__name__}): build the "
                         "predictor again") from None
    if not isinstance(models, dict):
        raise UsageError(f"{path}: not a predictor's models")
    return models


@dataclass
class Predictor:
    """A finished predictor folder, loaded."""

    folder: Path
    meta: dict
    models: Mapping[str, object]  # kind -> fitted regressor (SavedModels: unpickled if needed)
    flat: object | None = None  # forest.Forests read from forests.npz, else made from `models`

    @property
    def threads(self) -> int:
        return int(self.meta["fingerprint"]["threads"])

    @property
    def floor_ms(self) -> float:
        return float(self.meta["floor_ms"])

    def scale(self, weight_bytes: float | None = None) -> float:
        """The calibration networks' measured over summed kernels, for a model of
        `weight_bytes` (calibration.fit_scale; None: the middle size; 1: no calibration)."""
        calibration = self.meta.get("calibration", {})
        if fit := calibration.get("scale_fit"):
            return scale_factor(fit, weight_bytes)
        return float(calibration.get("scale", 1.0))

    @property
    def dispatch_ms(self) -> float:
        """onnxruntime's cost of dispatching one more node (0: not measured)."""
        return float(self.meta.get("calibration", {}).get("dispatch_ms", 0.0))

    def context(self, kind: str | None, weight_bytes: float | None = None) -> float:
        """A kind's time inside a model with `weight_bytes` of weights over its time alone
        (calibration.context_factor; 1 without calibration)."""
        fit = self.meta.get("calibration", {}).get("context", {}).get(kind)
        return context_factor(fit, weight_bytes) if fit else 1.0

    @cached_property
    def forests(self):
        """The models, their forests flattened to be walked at once (forest.Forests)."""
        from mnv2prof.predictor.forest import Forests

        return self.flat if self.flat is not None else Forests(self.models)

    @cached_property
    def baseline(self) -> FlopsBaseline:
        return FlopsBaseline(**self.meta["flops_baseline"]["fit"])

    def interval(self) -> tuple[float, float]:
        """Relative bounds of a network's latency around its prediction (0.95 and 1.05 mean
        -5% and +5%), from the calibration networks, else the kinds' held-out errors."""
        bounds = self.meta.get("calibration", {}).get("interval")
        return tuple(bounds) if bounds else (1.0, 1.0)


def load_predictor(folder: str | Path, force: bool = False) -> Predictor:
    """The predictor in `folder`; one line (exit 2) for a missing, unfinished or damaged one,
    and for one built in another environment unless `force`."""
    folder = Path(folder)
    if not folder.is_dir():
        state = "is not a folder" if folder.exists() else "not found"
        raise UsageError(f"--predictor {folder}: {state}")
    meta_path = folder / PREDICTOR_FILE
    if not meta_path.is_file():
        if (folder / BUILD_FILE).is_file():
            raise UsageError(f"--predictor {folder} is an unfinished build: run `mnv2prof "
                             f"predictor build --out {folder} --resume`")
        raise UsageError(f"--predictor {folder} holds no predictor ({PREDICTOR_FILE} missing)")
    meta = read_json(meta_path)
    if not force and (found := differences(meta.get("fingerprint", {}),
                                           fingerprint(int(meta["fingerprint"]["threads"])))):
        raise UsageError(f"--predictor {folder} was built in another environment "
                         f"({describe_differences(found)}): build one here, or pass --force")
    digests = meta.get("files", {})
    blobs = {name: _read_checked(folder / name, digests.get(name))
             for name in (MODELS_FILE, FORESTS_FILE) if name in digests}
    if FORESTS_FILE not in blobs:  # a folder from before forests.npz
        return Predictor(folder, meta, _unpickle(folder / MODELS_FILE, blobs.get(MODELS_FILE)))
    models = SavedModels(folder / MODELS_FILE, list(meta.get("kinds", {})), blobs[MODELS_FILE])
    return Predictor(folder, meta, models, _forests(folder / FORESTS_FILE, blobs[FORESTS_FILE],
                                                    models))


def _read_checked(path: Path, digest: str | None) -> bytes:
    """`path`'s bytes, refused in one line unless their sha256 is `digest`."""
    try:
        blob = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc}): build the predictor "
                         "again") from None
    if hashlib.sha256(blob).hexdigest() != digest:
        raise UsageError(f"{path}: cannot be loaded (not the file the build wrote: damaged or "
                         "replaced): build the predictor again")
    return blob


def _forests(path: Path, blob: bytes, models: Mapping[str, object]):
    import numpy as np

    from mnv2prof.predictor.forest import Forests

    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
            return Forests.from_arrays(dict(arrays), models)
    except (ValueError, KeyError, OSError) as exc:
        raise UsageError(f"{path}: cannot be loaded ({exc}): build the predictor again") from None
