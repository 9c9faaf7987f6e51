"""Noise-level estimators (docs/method.md section 6): within 10% on synthetic data with a known sigma."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from c2s_monai.estimation import (
    estimate_sigma,
    estimate_sigma_background,
    estimate_sigma_mad,
    has_noise_background,
)
from c2s_monai.io.sample_data import mni152_t1_slices
from c2s_monai.noise import add_noise


@pytest.fixture(scope="module")
def mni_slices():
    """Four axial MNI T1 slices in [0, 1], (4, 197, 233), near noise-free."""
    return mni152_t1_slices(first=60, last=100, step=10).astype(np.float64)


def smooth_phantom(shape) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij")
    return 0.5 + 0.3 * np.cos(2.0 * grids[0]) * np.sin(1.5 * grids[1] + 0.3) + 0.1 * sum(grids)


def rician(image: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return add_noise(torch.from_numpy(image), sigma, "rician", torch.Generator().manual_seed(seed)).numpy()


# ---------------------------------------------------------------------------- wavelet MAD


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_mad_on_mni_slice_2d(mni_slices, rng, sigma):
    noisy = mni_slices[1] + sigma * rng.standard_normal(mni_slices[1].shape)
    assert estimate_sigma_mad(noisy) == pytest.approx(sigma, rel=0.1)


@pytest.mark.parametrize("sigma", [0.02, 0.1])
def test_mad_on_mni_volume_3d(mni_slices, rng, sigma):
    volume = np.moveaxis(mni_slices, 0, -1)  # (H, W, D), slices along the last axis
    noisy = volume + sigma * rng.standard_normal(volume.shape)
    assert estimate_sigma_mad(noisy) == pytest.approx(sigma, rel=0.1)


@pytest.mark.parametrize("shape", [(128, 128), (64, 64, 8)])
@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.2])
def test_mad_on_smooth_phantom(rng, shape, sigma):
    noisy = smooth_phantom(shape) + sigma * rng.standard_normal(shape)
    assert estimate_sigma_mad(noisy) == pytest.approx(sigma, rel=0.1)


def test_mad_accepts_tensor_and_channel_dim(rng):
    noisy = smooth_phantom((96, 96)) + 0.05 * rng.standard_normal((96, 96))
    as_numpy = estimate_sigma_mad(noisy)
    assert estimate_sigma_mad(torch.from_numpy(noisy).float()[None]) == pytest.approx(as_numpy, rel=1e-4)
    assert estimate_sigma(noisy, "mad") == pytest.approx(as_numpy)


def test_mad_3d_skips_constant_slices(rng):
    volume = smooth_phantom((64, 64, 6)) + 0.05 * rng.standard_normal((64, 64, 6))
    volume[..., :2] = 0.0  # empty (zero-filled) slices
    assert estimate_sigma_mad(volume) == pytest.approx(0.05, rel=0.1)


def test_mad_scales_with_the_image(rng):
    noisy = smooth_phantom((96, 96)) + 0.05 * rng.standard_normal((96, 96))
    assert estimate_sigma_mad(1000.0 * noisy) == pytest.approx(1000.0 * estimate_sigma_mad(noisy), rel=1e-6)


# ---------------------------------------------------------------------------- background (Rayleigh)


@pytest.mark.parametrize("shape", [(128, 128), (64, 64, 16)])
@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_background_on_rician_phantom(make_phantom, shape, sigma):
    noisy = rician(make_phantom(shape), sigma)
    assert noisy.min() >= 0
    assert estimate_sigma_background(noisy) == pytest.approx(sigma, rel=0.1)
    assert estimate_sigma(noisy, "background") == pytest.approx(sigma, rel=0.1)


@pytest.mark.parametrize("shape", [(128, 128), (64, 64, 16)])
@pytest.mark.parametrize("sigma", [0.03, 0.1])
def test_background_with_explicit_mask(make_phantom, shape, sigma):
    phantom = make_phantom(shape)
    noisy = rician(phantom, sigma, seed=1)
    mask = phantom == 0
    assert estimate_sigma_background(noisy, mask=mask) == pytest.approx(sigma, rel=0.1)
    # a mask inside the tissue gives a very different (wrong) value: the mask is really used
    assert estimate_sigma_background(noisy, mask=~mask) > 3 * sigma


def test_background_on_mni_slice(mni_slices):
    """The MNI template's air is exactly 0; Rician noise makes it Rayleigh."""
    sigma = 0.03
    noisy = rician(np.ascontiguousarray(mni_slices[1]), sigma, seed=2)
    assert estimate_sigma_background(noisy) == pytest.approx(sigma, rel=0.1)


def test_background_scales_with_the_image(make_phantom):
    noisy = rician(make_phantom((96, 96)), 0.05, seed=3)
    assert estimate_sigma_background(250.0 * noisy) == pytest.approx(250.0 * estimate_sigma_background(noisy), rel=1e-6)


def test_background_without_noisy_background_raises(make_phantom, rng):
    phantom = make_phantom((64, 64))
    noisy = np.where(phantom > 0, phantom + 0.05 * rng.standard_normal(phantom.shape), 0.0)  # masked: air is exactly 0
    with pytest.raises(ValueError, match="background"):
        estimate_sigma_background(noisy)


def test_background_empty_mask_raises(make_phantom):
    noisy = rician(make_phantom((32, 32)), 0.05)
    with pytest.raises(ValueError, match="mask"):
        estimate_sigma_background(noisy, mask=np.zeros((32, 32), dtype=bool))


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("estimator", [estimate_sigma_mad, estimate_sigma_background])
@pytest.mark.parametrize("shape", [(32, 32), (16, 16, 4)])
def test_constant_image_raises(estimator, shape):
    """A constant image has no noise to measure: both estimators must refuse it, in 2D and 3D."""
    with pytest.raises(ValueError, match="constant"):
        estimator(np.full(shape, 0.5))


@pytest.mark.parametrize("estimator", [estimate_sigma_mad, estimate_sigma_background])
def test_non_finite_image_raises(estimator, rng):
    image = rng.random((32, 32))
    image[3, 4] = np.nan
    with pytest.raises(ValueError, match="finite"):
        estimator(image)


@pytest.mark.parametrize("shape", [(64,), (4, 8, 8, 8)])
def test_wrong_dimensionality_raises(shape, rng):
    with pytest.raises(ValueError, match="2D or 3D"):
        estimate_sigma_mad(rng.random(shape))


@pytest.mark.parametrize("method", ["wavelet", "", "MAD"])
def test_unknown_method_raises(method, rng):
    with pytest.raises(ValueError, match="estimator"):
        estimate_sigma(rng.random((32, 32)), method)


def test_auto_uses_the_background_for_magnitude_images_with_air():
    """Rician data with air: the MAD under-estimates (Rayleigh spread), ``auto`` picks the background."""
    generator = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 96), torch.linspace(-1, 1, 96), indexing="ij")
    clean = torch.where(xx**2 + yy**2 < 0.4, 0.6 + 0.2 * xx, torch.zeros_like(xx))
    noisy = add_noise(clean.expand(8, 96, 96).permute(1, 2, 0).contiguous(), 0.05, "rician", generator)
    assert has_noise_background(noisy)
    assert estimate_sigma(noisy, "auto") == pytest.approx(0.05, rel=0.1)
    assert estimate_sigma(noisy, "auto") == estimate_sigma_background(noisy)


def test_auto_falls_back_to_mad_without_background():
    generator = torch.Generator().manual_seed(1)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 64), torch.linspace(-1, 1, 64), indexing="ij")
    gaussian = 0.5 + 0.2 * torch.cos(2 * xx) + 0.05 * torch.randn(64, 64, generator=generator) - 0.45
    bright = 500.0 + 200.0 * torch.cos(2 * xx) * torch.sin(2 * yy) + 20.0 * torch.randn(64, 64, generator=generator)
    for image in (gaussian, bright):  # negative values; no dark background
        assert not has_noise_background(image)
        assert estimate_sigma(image, "auto") == estimate_sigma_mad(image)
