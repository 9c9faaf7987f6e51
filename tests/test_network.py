"""The noise-conditioned, preconditioned U-Net ``D(x, s)`` of C2S."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.networks.nets import FiLM

CONDITIONINGS = ("map", "film", "map+film")


def make(conditioning="map", tiny=(8, 8, 16, 32, 64, 8), **kwargs) -> NoiseConditionedUNet:
    torch.manual_seed(0)
    return NoiseConditionedUNet(features=tiny, conditioning=conditioning, **kwargs).eval()


def with_level(image: torch.Tensor, level: float) -> torch.Tensor:
    return torch.cat([image, torch.full_like(image[:, :1], level)], dim=1)


def randomise_film(network: nn.Module) -> None:
    """Give every FiLM layer non-zero weights (they start at zero, i.e. as the identity)."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, FiLM) and module.enabled:
                module.linear.weight.copy_(0.5 * torch.randn(module.linear.weight.shape, generator=generator))
                module.linear.bias.copy_(0.5 * torch.randn(module.linear.bias.shape, generator=generator))


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
@pytest.mark.parametrize("shape", [(2, 32, 32), (1, 48, 64)])
def test_output_shape_2d(conditioning, shape):
    network = make(conditioning)
    batch, h, w = shape
    with torch.no_grad():
        out = network(with_level(torch.rand(batch, 1, h, w), 0.1))
    assert out.shape == (batch, 1, h, w)
    assert torch.isfinite(out).all()


def test_output_shape_3d():
    network = make("map+film", spatial_dims=3)
    with torch.no_grad():
        out = network(with_level(torch.rand(1, 1, 32, 32, 32), 0.1))
    assert out.shape == (1, 1, 32, 32, 32)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_torchscript_gives_identical_output(conditioning):
    network = make(conditioning)
    randomise_film(network)
    x = with_level(torch.rand(2, 1, 32, 32), 0.07)
    scripted = torch.jit.script(network)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network(x), rtol=0, atol=1e-6)


def test_conditioning_parameters():
    counts = {c: sum(p.numel() for p in make(c).parameters()) for c in CONDITIONINGS}
    film_names = {c: [n for n, _ in make(c).named_parameters() if "film_" in n or n.startswith("embedding")] for c in CONDITIONINGS}
    assert film_names["map"] == []  # "map": no FiLM or embedding parameter at all
    assert film_names["film"] and film_names["map+film"]
    assert counts["map"] < counts["film"] < counts["map+film"]
    # "map" and "map+film" have one more backbone input channel than "film"
    conv = {c: make(c).backbone.conv_0.conv_0.conv.weight.shape[1] for c in CONDITIONINGS}
    assert conv == {"map": 2, "film": 1, "map+film": 2}


@pytest.mark.parametrize("conditioning", ["film", "map+film"])
def test_film_starts_as_identity(conditioning):
    """Zero-initialised FiLM: the backbone ignores the level embedding until trained."""
    network = make(conditioning)
    features = torch.rand(2, network.backbone.conv_0.conv_0.conv.weight.shape[1], 32, 32)
    e1, e2 = torch.randn(2, 64), 3 * torch.randn(2, 64)
    with torch.no_grad():
        assert torch.equal(network.backbone(features, e1), network.backbone(features, e2))
        randomise_film(network)
        assert not torch.allclose(network.backbone(features, e1), network.backbone(features, e2))


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_output_depends_on_the_level(conditioning):
    network = make(conditioning)
    randomise_film(network)
    image = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(network(with_level(image, 0.05)), network(with_level(image, 0.2)))


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_preconditioning_limit_small_level_is_identity(conditioning):
    """c_skip -> 1 and c_out -> 0 as s -> 0: D(x, s) -> x."""
    network = make(conditioning)
    randomise_film(network)
    image = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        errors = [float((network(with_level(image, level)) - image).abs().max()) for level in (1e-1, 1e-3, 1e-6)]
    assert errors[-1] < 1e-4
    assert errors[0] > 10 * errors[-1]  # at a real noise level the network does change the image


class ConstantBackbone(nn.Module):
    """Stands in for ``F``: returns a constant residual ``value``."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return torch.full_like(x[:, :1], self.value)


@pytest.mark.parametrize("level", [0.01, 0.2, 1.0])
@pytest.mark.parametrize("value", [0.0, 1.0])
def test_preconditioning_coefficients(level, value):
    """D = c_skip x + c_out F(c_in x, log(s)/4), EDM coefficients with data scale S."""
    data_scale = 0.5
    network = make("map", data_scale=data_scale)
    network.backbone = ConstantBackbone(value)
    image = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    out = network(with_level(image, level))
    c_skip = data_scale**2 / (level**2 + data_scale**2)
    c_out = level * data_scale / (level**2 + data_scale**2) ** 0.5
    c_in = 1 / (level**2 + data_scale**2) ** 0.5
    torch.testing.assert_close(out, c_skip * image + c_out * value)
    (seen,) = network.backbone.seen
    torch.testing.assert_close(seen[:, :1], c_in * image)
    torch.testing.assert_close(seen[:, 1:], torch.full_like(image, torch.log(torch.tensor(level, dtype=torch.float64)) / 4))


def test_zero_level_is_clamped_not_nan():
    network = make("map+film")
    image = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        out = network(with_level(image, 0.0))
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, image, atol=1e-5, rtol=0)


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_multi_channel_guides(conditioning):
    network = make(conditioning, in_channels=2)
    randomise_film(network)
    target, guide = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    x = torch.cat([target, guide, torch.full_like(target, 0.1)], dim=1)  # in_channels + 1 = 3
    with torch.no_grad():
        out = network(x)
        other = network(torch.cat([target, 1 - guide, torch.full_like(target, 0.1)], dim=1))
    assert out.shape == (2, 1, 32, 32)
    assert not torch.allclose(out, other)  # the guide contrast is used


def test_spatially_varying_level_map():
    network = make("map")
    image = torch.rand(1, 1, 32, 32)
    level = torch.full_like(image, 0.1)
    level[..., 16:] = 0.3
    with torch.no_grad():
        out = network(torch.cat([image, level], dim=1))
    assert out.shape == image.shape and torch.isfinite(out).all()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"conditioning": "attention"},
        {"conditioning": "MAP"},
        {"in_channels": 0},
        {"features": (8, 8, 16, 32, 64)},
    ],
)
def test_bad_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        NoiseConditionedUNet(**{"features": (8, 8, 16, 32, 64, 8), **kwargs})


def test_backward_reaches_all_parameters():
    network = make("map+film").train()
    randomise_film(network)
    out = network(with_level(torch.rand(2, 1, 32, 32), 0.1))
    out.square().mean().backward()
    missing = [n for n, p in network.named_parameters() if p.grad is None]
    assert missing == []
