"""What each kind of model is exported from: a block's spec (built in or the user's), a
network's, a user's torch model, a guideline probe.

Each is an `export.ExportSource` (a file name, an identity the cache key hashes, a seeded builder,
an input shape), so all of them go through the one `export.export_cached`.
"""

from __future__ import annotations

import dataclasses
import json

from mnv2prof.models.blocks import build_block, seeded
from mnv2prof.models.networks import NetworkSpec, build_network, stage_table
from mnv2prof.models.probes import GUIDELINES_FORMAT, Config
from mnv2prof.models.user_models import ModelSpec, build_model
from mnv2prof.models.variants import BlockSpec
from mnv2prof.artifacts.export import ExportSource


def block_source(spec: BlockSpec) -> ExportSource:
    """The block of `spec`; a user's block is keyed by its file's hash and NAME, not its path."""
    fields = spec.to_dict()
    if spec.builtin:  # the fields as they were before user blocks: cached files stay valid
        del fields["source"], fields["source_hash"]
        if spec.reduction is None:  # ... and before resnet's reduction
            del fields["reduction"]
    else:
        fields = spec.identity()
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
        identity=json.dumps(["model", spec.identity(), *([list(parts)] if parts else [])],
                            sort_keys=True),
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
