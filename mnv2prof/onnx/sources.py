"""What each kind of model is exported from: a block's spec, a network's, a guideline probe.

Each is an `export.ExportSource` (a file name, an identity the cache key hashes, a seeded builder,
an input shape), so all three go through the one `export.export_cached`.
"""

from __future__ import annotations

import dataclasses
import json

from mnv2prof.models.blocks import build_block, seeded
from mnv2prof.models.networks import NetworkSpec, build_network, stage_table
from mnv2prof.models.probes import GUIDELINES_FORMAT, Config
from mnv2prof.models.variants import BlockSpec
from mnv2prof.onnx.export import ExportSource


def block_source(spec: BlockSpec) -> ExportSource:
    """The block of `spec`."""
    return ExportSource(
        name=spec.name,
        identity=json.dumps(["block", spec.to_dict()], sort_keys=True),
        build=lambda seed: build_block(spec, seed),
        input_shape=spec.input_shape,
    )


def network_source(spec: NetworkSpec) -> ExportSource:
    """The network of `spec`; the file also records each stage's parameter count
    (`run.network_profile` reads them back)."""
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
