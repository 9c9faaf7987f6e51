"""Whole-image C2S inference (docs/method.md section 8): shapes, padding, windows, flips, scaling, sigma."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from c2s_monai.inferers import C2SInferer, denoising_record
from c2s_monai.intensity import intensity_scale
from c2s_monai.networks import NoiseConditionedUNet


class Identity(nn.Module):
    """Obeys the network contract and returns the (re-scaled) target channel unchanged; records inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return x[:, :1].clone()


class ColumnRamp(nn.Module):
    """Not flip-equivariant: adds ``w / (W - 1)`` (the column position) to the target channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        width = x.shape[-1]
        ramp = torch.arange(width, dtype=x.dtype) / (width - 1)
        return x[:, :1] + ramp


@pytest.fixture(scope="module")
def tiny_network():
    torch.manual_seed(0)
    return NoiseConditionedUNet(features=(8, 8, 16, 32, 64, 8), conditioning="map+film").eval()


def noisy_batch(shape, seed=0, offset=100.0, scale=50.0):
    """Positive images in arbitrary 'scanner' units (not [0, 1])."""
    generator = torch.Generator().manual_seed(seed)
    return offset + scale * torch.rand(shape, generator=generator)


def test_2d_batch_shape_and_finite(tiny_network):
    inputs = noisy_batch((2, 1, 37, 45))
    out = C2SInferer(sigma_data=2.0, flips=2)(inputs, tiny_network)
    assert out.shape == (2, 1, 37, 45)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # in the input's units, not network units
    assert 0.5 * float(inputs.mean()) < float(out.mean()) < 2.0 * float(inputs.mean())


def test_3d_volume_shape_and_finite(tiny_network):
    inputs = noisy_batch((1, 1, 35, 41, 5))
    out = C2SInferer(sigma_data=2.0, flips=1, slice_batch=2)(inputs, tiny_network)
    assert out.shape == (1, 1, 35, 41, 5)
    assert torch.isfinite(out).all()


def test_guides_are_accepted(tiny_network):
    torch.manual_seed(0)
    network = NoiseConditionedUNet(in_channels=2, features=(8, 8, 16, 32, 64, 8)).eval()
    out = C2SInferer(sigma_data=1.0, flips=1)(noisy_batch((1, 2, 33, 34, 2)), network)
    assert out.shape == (1, 1, 33, 34, 2)


@pytest.mark.parametrize("flips", [1, 2, 4])
@pytest.mark.parametrize("shape", [(3, 1, 37, 45), (2, 1, 35, 41, 5), (1, 1, 32, 48)])
def test_identity_network_returns_the_input(flips, shape):
    """Scaling, padding, slicing and flipping are all undone exactly."""
    inputs = noisy_batch(shape)
    out = C2SInferer(sigma_data=1.0, flips=flips, slice_batch=3)(inputs, Identity())
    assert out.shape == inputs.shape
    torch.testing.assert_close(out, inputs, rtol=1e-6, atol=0)


def test_padding_to_multiple_of_16_and_slice_batches():
    network = Identity()
    C2SInferer(sigma_data=1.0, flips=1, slice_batch=2)(noisy_batch((1, 1, 37, 45, 5)), network)
    shapes = [tuple(x.shape) for x in network.inputs]
    assert shapes == [(2, 2, 48, 48), (2, 2, 48, 48), (1, 2, 48, 48)]  # 5 slices, 2 at a time, padded


def test_sliding_window_path_identity():
    """48x40 with roi (32, 32): MONAI's sliding window runs the network on 32x32 windows."""
    network = Identity()
    inputs = noisy_batch((2, 1, 48, 40))
    inferer = C2SInferer(sigma_data=1.0, flips=2, roi_size=(32, 32), slice_batch=4)
    out = inferer(inputs, network)
    assert {tuple(x.shape[-2:]) for x in network.inputs} == {(32, 32)}
    torch.testing.assert_close(out, inputs, rtol=1e-5, atol=0)


def test_sliding_window_on_volume_with_real_network(tiny_network):
    inputs = noisy_batch((1, 1, 48, 40, 2))
    out = C2SInferer(sigma_data=2.0, flips=1, roi_size=(32, 32))(inputs, tiny_network)
    assert out.shape == inputs.shape and torch.isfinite(out).all()


def test_flips_undo_each_flip():
    """A position-dependent network: averaging over the horizontal flip turns the ramp into its mean 0.5."""
    inputs = noisy_batch((1, 1, 32, 32))
    scale = intensity_scale(inputs[0, 0])
    out1 = C2SInferer(sigma_data=1.0, flips=1)(inputs, ColumnRamp())
    out2 = C2SInferer(sigma_data=1.0, flips=2)(inputs, ColumnRamp())
    out4 = C2SInferer(sigma_data=1.0, flips=4)(inputs, ColumnRamp())
    ramp = torch.arange(32, dtype=torch.float32) / 31
    torch.testing.assert_close(out1, inputs + scale * ramp, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out2, inputs + 0.5 * scale, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(out4, inputs + 0.5 * scale, rtol=1e-5, atol=1e-4)


def test_known_sigma_recorded_and_passed_in_network_units():
    network = Identity()
    inputs = torch.stack([noisy_batch((1, 32, 32), seed=0), 10 * noisy_batch((1, 32, 32), seed=1)])
    inferer = C2SInferer(sigma_data=3.0, flips=1)
    output = inferer(inputs, network)
    assert [denoising_record(output, i)["sigma_data"] for i in range(2)] == pytest.approx([3.0, 3.0], rel=1e-6)
    # the level channel is sigma / scale, per sample
    for sample, seen in zip(inputs, network.inputs):
        level = seen[:, -1]
        assert float(level.std()) < 1e-6
        assert float(level.mean()) == pytest.approx(3.0 / intensity_scale(sample[0]), rel=1e-5)


def test_call_time_sigma_overrides_configured_one():
    inferer = C2SInferer(sigma_data=3.0, flips=1)
    output = inferer(noisy_batch((1, 1, 32, 32)), Identity(), sigma_data=7.0)
    assert denoising_record(output)["sigma_data"] == pytest.approx(7.0)


def test_estimated_sigma_recorded_in_image_units():
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    clean = 500.0 + 200.0 * torch.cos(2 * xx) * torch.sin(2 * yy)
    inputs = (clean + 20.0 * torch.randn(clean.shape, generator=generator))[None, None]
    inferer = C2SInferer(sigma_data="auto", flips=1)
    output = inferer(inputs, Identity())
    assert denoising_record(output)["sigma_data"] == pytest.approx(20.0, rel=0.1)


def test_network_mode_restored():
    network = Identity().train()
    C2SInferer(sigma_data=1.0, flips=1)(noisy_batch((1, 1, 32, 32)), network)
    assert network.training


@pytest.mark.parametrize(
    "kwargs", [{"flips": 3}, {"flips": 8}, {"flips": 0}, {"slice_batch": 0}, {"autocast_dtype": "float16"}, {"sigma_data": -1.0}, {"sigma_data": "guess"}]
)
def test_invalid_arguments_raise(kwargs):
    with pytest.raises(ValueError):
        C2SInferer(**kwargs)


@pytest.mark.parametrize("shape", [(32, 32), (1, 32, 32), (1, 1, 8, 8, 8, 2)])
def test_invalid_input_shape_raises(shape):
    with pytest.raises(ValueError):
        C2SInferer(sigma_data=1.0)(torch.rand(shape), Identity())


def test_all_zero_input_raises():
    with pytest.raises(ValueError):
        C2SInferer(sigma_data=1.0)(torch.zeros(1, 1, 32, 32), Identity())


def test_bfloat16_inference_close_to_float32(tiny_network):
    inputs = noisy_batch((1, 1, 32, 40))
    full = C2SInferer(sigma_data=2.0, flips=1)(inputs, tiny_network)
    half = C2SInferer(sigma_data=2.0, flips=1, autocast_dtype="bfloat16")(inputs, tiny_network)
    assert half.dtype == torch.float32 and half.shape == full.shape
    assert float((half - full).abs().max()) < 0.02 * float(inputs.max())


def test_sigma_source_records_the_estimator_auto_chose():
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    clean = torch.where(xx**2 + yy**2 < 0.4, torch.full_like(xx, 0.7), torch.zeros_like(xx))
    magnitude = torch.sqrt((clean + 0.05 * torch.randn(clean.shape, generator=generator)) ** 2 + (0.05 * torch.randn(clean.shape, generator=generator)) ** 2)
    inferer = C2SInferer(sigma_data="auto", flips=1)
    output = inferer(torch.stack([magnitude, clean + 0.05 * torch.randn(clean.shape, generator=generator)])[:, None], Identity())
    assert [denoising_record(output, i)["sigma_source"] for i in range(2)] == ["estimated (background moments)", "estimated (mad)"]  # magnitude data: the air's moments (docs/method.md section 10)
    assert denoising_record(inferer(magnitude[None, None], Identity(), sigma_data=2.0))["sigma_source"] == "given"


def test_results_travel_with_the_output_and_the_inferer_keeps_no_per_call_state():
    """Per-item results live in the output's metadata (a cached MONAI Label inferer is shared by requests)."""
    from monai.data import MetaTensor, decollate_batch, list_data_collate

    inferer = C2SInferer(sigma_data="auto", check_noise=False)
    state = {name: repr(value) for name, value in vars(inferer).items() if name != "_exported"}
    scaler_state = dict(vars(inferer.scaler))
    items = [{"image": MetaTensor(noisy_batch((1, 1, 32, 32))[0] * level, meta={"filename_or_obj": f"v{level}"})} for level in (1.0, 3.0)]
    batch = list_data_collate(items)["image"]
    output = inferer(batch, Identity())
    assert {name: repr(value) for name, value in vars(inferer).items() if name != "_exported"} == state
    assert vars(inferer.scaler) == scaler_state
    first, second = (item["pred"] for item in decollate_batch({"pred": output}))
    assert first.meta["filename_or_obj"] == "v1.0" and second.meta["filename_or_obj"] == "v3.0"
    assert denoising_record(second)["sigma_data"] == pytest.approx(3.0 * denoising_record(first)["sigma_data"], rel=1e-4)
    assert denoising_record(torch.zeros(1)) == {}
