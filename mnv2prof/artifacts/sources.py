"""What each kind of model is exported from: a block's spec (built in or the user's), a
network's, a user's torch model, a guideline probe.

Each is an `export.ExportSource` (a file name, an identity the cache key hashes, a seeded builder,
an input shape), so all of them go through the one `export.export_cached`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from mnv2prof.models.blocks import build_block, seeded
from mnv2prof.models.networks import NetworkSpec, build_network, stage_table
from mnv2prof.models.probes import GUIDELINES_FORMAT, Config
from mnv2prof.models.user_models import ModelSpec, build_model
from mnv2prof.models.variants import BlockSpec
from mnv2prof.artifacts.export import ExportSource


MAX_NEIGHBOUR_BYTES = 8 * 2**20  # past this, a folder's other files key by name, size and mtime


def neighbours(source: str) -> dict[str, str]:
    """A user's file's neighbours (the other .py files of its folder, which it may import as
    `python FILE.py` would) as part of its export's cache key: editing a helper module beside
    the file makes a new export, never a stale one. Their names and sizes alone, with mtimes,
    when together they pass MAX_NEIGHBOUR_BYTES (a folder that is a whole repository)."""
    path = Path(source.rpartition(":")[0]) if source else None
    if path is None or path.suffix != ".py" or not path.is_file():
        return {}
    files = sorted(p for p in path.parent.glob("*.py") if p != path and p.is_file())
    digest = hashlib.sha256()
    try:
        total = sum(p.stat().st_size for p in files)
        for p in files:
            stat = p.stat()
            data = p.read_bytes() if total <= MAX_NEIGHBOUR_BYTES else (
                f"{stat.st_size} {stat.st_mtime_ns}".encode())
            digest.update(p.name.encode() + b"\0" + data + b"\0")
    except OSError:
        return {}
    return {"neighbours": digest.hexdigest()[:16]} if files else {}


def block_source(spec: BlockSpec) -> ExportSource:
    """The block of `spec`; a user's block is keyed by its file's hash and NAME, not its path."""
    fields = spec.to_dict()
    if spec.builtin:  # the fields as they were before user blocks: cached files stay valid
        del fields["source"], fields["source_hash"]
        if spec.reduction is None:  # ... and before resnet's reduction
            del fields["reduction"]
    else:
        fields = {**spec.identity(), **neighbours(spec.source)}
    return ExportSource(
        name=spec.name,
        identity=json.dumps(["block", fields], sort_keys=True),
        build=lambda seed: build_block(spec, seed),
        input_shape=spec.input_shape,
    )


def model_source(spec: ModelSpec, parts: tuple[str, ...] = ()) -> ExportSource:
    """A user's torch model (`parts`: module paths whose parameters the file also records, the
    stages of `network PATH.py:NAME`)."""
    return ExportSource(
        name=spec.name,
        identity=json.dumps(["model", {**spec.identity(), **neighbours(spec.source)},
                             *([list(parts)] if parts else [])], sort_keys=True),
        build=lambda seed: build_model(spec, seed),
        input_shape=spec.input_shape,
        folder="models",
        parts=parts,
    )


def network_source(spec: NetworkSpec) -> ExportSource:
    """The network of `spec`; the file also records each stage's parameter count
    (`run.network` reads them back)."""
    return ExportSource(
        name=spec.name,
        identity=json.dumps(["network", dataclasses.asdict(spec)], sort_keys=True),
        build=lambda seed: build_network(spec, seed),
        input_shape=spec.input_shape,
        parts=tuple(stage.key for stage in stage_table(spec)),
    )


def probe_source(key: str, config: Config) -> ExportSource:
    """A guideline's probe, cached apart from the blocks (under guidelines/)."""
    slug = config.label.replace(" ", "-").replace(":", "to").replace(",", "").replace("+", "")
    return ExportSource(
        name=f"{key}-{slug}",
        identity=json.dumps(["probe", key, config.params, GUIDELINES_FORMAT], default=list),
        build=lambda seed: seeded(config.build, seed),
        input_shape=config.input_shape,
        folder="guidelines",
    )


def source_of(subject: BlockSpec | ModelSpec) -> ExportSource:
    """The source of a row's subject: a block's spec (built in or the user's) or a torch
    model's."""
    return block_source(subject) if isinstance(subject, BlockSpec) else model_source(subject)
