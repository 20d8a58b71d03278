"""Whole networks built from the papers' tables: widths, parameters, bad specs."""

import pytest

from mnv2prof.errors import SpecError
from mnv2prof.models.blocks import count_params
from mnv2prof.models.networks import NetworkSpec, build_network, build_stages


def test_width_multiplier_rounds_to_8_and_keeps_1280():
    stages, _ = build_stages(NetworkSpec("mobilenetv2", width=0.35))
    assert [s.c for s in stages[:9]] == [16, 8, 8, 16, 24, 32, 56, 112, 1280]
    stages, _ = build_stages(NetworkSpec("mobilenetv2", width=1.4))
    assert [s.c for s in stages[:9]] == [48, 24, 32, 48, 88, 136, 224, 448, 1792]


def test_streamed_network_has_the_same_parameters():
    plain = build_network(NetworkSpec("mobilenetv2", resolution=64))
    streamed = build_network(NetworkSpec("mobilenetv2", resolution=64, streamed=True))
    assert count_params(streamed) == count_params(plain)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"arch": "resnet50"}, "unknown network 'resnet50'"),
        ({"arch": "mobilenetv2", "width": 0}, "width must be a positive, finite number"),
        ({"arch": "mobilenetv2", "width": float("inf")}, "width must be a positive, finite"),
        ({"arch": "mobilenetv2", "width": float("nan")}, "width must be a positive, finite"),
        ({"arch": "mobilenetv2", "resolution": 16}, "resolution must be from 32 "),
        ({"arch": "mobilenetv2", "resolution": 8193}, "to 8,192, got 8,193"),
        ({"arch": "mobilenetv1", "streamed": True}, "streamed applies only to mobilenetv2"),
    ],
)
def test_bad_network_specs(kwargs, message):
    with pytest.raises(SpecError, match=message):
        NetworkSpec(**kwargs)
