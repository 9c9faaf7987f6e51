"""The Rician variance-stabilising transform and its exact unbiased inverse (c2s_monai/vst.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c2s_monai.noise import add_noise
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
    assert bool((out >= 0).all())


def test_sigma_must_be_positive():
    with pytest.raises(ValueError, match="sigma > 0"):
        rician_vst(np.ones(3), 0.0)
