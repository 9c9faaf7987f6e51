"""The Rician variance-stabilising transform and its exact unbiased inverse (c2s_monai/vst.py)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from c2s_monai.api import denoise, train, trained_with_rician_vst
from c2s_monai.inferers import C2SInferer
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.noise import add_noise
from c2s_monai.transforms import RicianVSTd, ScaleNoisyImage
from c2s_monai.vst import rician_mean_std, rician_vst, rician_vst_inverse

SIGMA = 0.05


def _rician(nu_over_sigma: float, count: int = 200_000, seed: int = 0) -> torch.Tensor:
    signal = torch.full((count,), nu_over_sigma * SIGMA, dtype=torch.float64)
    return add_noise(signal, SIGMA, "rician", torch.Generator().manual_seed(seed))


def test_rician_moments_match_the_closed_forms_and_a_simulation():
    mean, std = rician_mean_std(np.array([0.0, 2.0, 40.0]))
    assert mean[0] == pytest.approx(np.sqrt(np.pi / 2))  # Rayleigh
    assert std[0] == pytest.approx(np.sqrt(2 - np.pi / 2))
    assert mean[2] == pytest.approx(np.sqrt(40.0**2 + 1), abs=1e-3) and std[2] == pytest.approx(1.0, abs=1e-3)
    samples = _rician(2.0) / SIGMA
    assert float(samples.mean()) == pytest.approx(mean[1], abs=0.01)
    assert float(samples.std()) == pytest.approx(std[1], abs=0.01)


@pytest.mark.parametrize("nu_over_sigma", [0.0, 1.0, 2.0, 5.0, 20.0])
def test_forward_transform_stabilises_the_noise_std_near_sigma(nu_over_sigma):
    noisy = _rician(nu_over_sigma)
    stabilised = rician_vst(noisy, SIGMA)
    assert float(stabilised.std()) / SIGMA == pytest.approx(1.0, abs=0.12)


def test_raw_rayleigh_noise_is_not_stable_so_the_test_above_can_fail():
    assert float(_rician(0.0).std()) / SIGMA == pytest.approx(np.sqrt(2 - np.pi / 2), abs=0.01)


@pytest.mark.parametrize("nu_over_sigma", [0.5, 1.0, 3.0, 10.0, 60.0])
def test_exact_unbiased_inverse_recovers_the_signal_from_the_mean_of_the_transform(nu_over_sigma):
    mean_of_transform = rician_vst(_rician(nu_over_sigma), SIGMA).mean()
    assert float(rician_vst_inverse(mean_of_transform, SIGMA)) / SIGMA == pytest.approx(nu_over_sigma, abs=0.05)


def test_the_naive_mean_is_biased_where_the_inverse_is_not():
    assert float(_rician(1.0).mean()) / SIGMA > 1.5  # the Rician bias the inverse removes


def test_identity_at_high_snr_and_types_kept():
    high = np.array([100.0, 500.0], dtype=np.float32) * SIGMA
    assert rician_vst(high, SIGMA) == pytest.approx(high, rel=1e-3)
    assert rician_vst(high, SIGMA).dtype == np.float32
    tensor = torch.rand(2, 3, 4)
    out = rician_vst_inverse(rician_vst(tensor, SIGMA), SIGMA)
    assert isinstance(out, torch.Tensor) and out.shape == tensor.shape and out.dtype == tensor.dtype


def test_the_inverse_is_a_magnitude_and_flat_at_the_background_level():
    """Below E[f | 0] the inverse gives 0 (never negative); just above it, it rises as sqrt (E[f | nu] grows with nu^2)."""
    from c2s_monai.vst import expected_forward_at_zero

    floor = expected_forward_at_zero() * SIGMA
    deltas = np.array([0.01, 0.04, 0.5]) * SIGMA
    above, below = rician_vst_inverse(floor + deltas, SIGMA), rician_vst_inverse(floor - deltas, SIGMA)
    assert np.all(below == 0) and np.all(above > 0)
    assert above[1] / above[0] == pytest.approx(2.0, rel=0.1)  # 4x the offset, 2x the level


def test_sigma_must_be_positive():
    with pytest.raises(ValueError, match="sigma > 0"):
        rician_vst(np.ones(3), 0.0)


# ------------------------------------------------------------------ in the package


def test_dictionary_transform_stabilises_the_target_channel_only():
    image = torch.rand(2, 8, 8, 3) + 0.5
    out = RicianVSTd("image")({"image": image, "sigma_data": torch.tensor(SIGMA)})["image"]
    assert torch.allclose(out[0], rician_vst(image[0], SIGMA))
    assert not torch.allclose(out[0], image[0])
    assert torch.equal(out[1], image[1])  # the guide is untouched


class _TargetChannel(nn.Module):
    """An 'identity denoiser': returns the (stabilised, scaled) target channel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1].clone()


def test_inferer_stabilises_then_applies_the_exact_unbiased_inverse():
    volume = 1 + 10 * torch.rand(1, 1, 16, 16, 2, generator=torch.Generator().manual_seed(0))
    sigma_image_units = 0.5
    plain = C2SInferer(sigma_data=sigma_image_units, flips=1)(volume, _TargetChannel())
    stabilised = C2SInferer(sigma_data=sigma_image_units, flips=1, rician_vst=True)(volume, _TargetChannel())
    scaled, sigma, scale = ScaleNoisyImage(sigma_image_units)(volume[0])
    expected = rician_vst_inverse(rician_vst(scaled, sigma), sigma) * scale
    assert torch.allclose(plain, volume, atol=1e-5)
    assert torch.allclose(stabilised[0], expected, atol=1e-5)
    assert not torch.allclose(stabilised, plain, atol=1e-3)


def test_train_refuses_the_old_vst_flag_against_another_noise_model(tmp_path):
    with pytest.raises(ValueError, match="contradicts noise_model 'gaussian'"):
        train(["unused.nii.gz"], tmp_path, noise_model="gaussian", rician_vst=True)
    assert not (tmp_path / "checkpoints").exists()


def test_denoise_follows_the_setting_recorded_beside_the_weights(tmp_path):
    features = [8, 8, 16, 32, 64, 8]
    torch.manual_seed(0)
    network = NoiseConditionedUNet(features=features)
    model = tmp_path / "model" / "model.pt"
    model.parent.mkdir()
    torch.save(network.state_dict(), model)
    config = {"network": {"spatial_dims": 2, "in_channels": 1, "features": features}, "training": {"rician_vst": True}}
    (model.parent / "model_config.json").write_text(json.dumps(config))
    image = np.abs(1 + 0.1 * np.random.default_rng(0).standard_normal((24, 24, 2))).astype(np.float32)
    source = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(source))
    assert trained_with_rician_vst(model) and not trained_with_rician_vst(network)
    followed = nib.load(str(denoise(source, model, tmp_path / "followed.nii.gz", sigma_data=0.1))).get_fdata()
    forced_off = nib.load(str(denoise(source, model, tmp_path / "off.nii.gz", sigma_data=0.1, noise_model="gaussian"))).get_fdata()
    forced_on = nib.load(str(denoise(source, model, tmp_path / "on.nii.gz", sigma_data=0.1, rician_vst="true"))).get_fdata()
    assert np.allclose(followed, forced_on) and not np.allclose(followed, forced_off, atol=1e-4)
