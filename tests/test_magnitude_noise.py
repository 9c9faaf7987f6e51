"""Multi-coil magnitude noise: the noncentral chi VST, the coil-count and noise-map estimators, model detection.

c2s_monai/vst.py (``chi_mean_std``, ``magnitude_vst``, ``magnitude_vst_inverse``),
c2s_monai/estimation.py (``estimate_num_coils``, ``estimate_noise_map``, ``detect_noise_model``)
and the ``"noncentral_chi"`` simulation of c2s_monai/noise.py (docs/method.md section 1, section 2, section 6).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pytest
import torch
from scipy import integrate, special

from c2s_monai.estimation import NoiseModelChoice, detect_noise_model, estimate_noise_map, estimate_num_coils, has_noise_background
from c2s_monai.io.sample_data import mni152_contrast
from c2s_monai.noise import NOISE_MODELS, SIMULATED_NOISE_MODELS, add_noise, check_noise_model, recorrupt
from c2s_monai.vst import (
    NU_MAX,
    chi_mean_std,
    magnitude_vst,
    magnitude_vst_inverse,
    rician_mean_std,
    rician_vst,
    rician_vst_inverse,
)

SIGMA = 0.05


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def chi(nu_over_sigma: float, num_coils: int, count: int = 200_000, seed: int = 0, sigma: float = SIGMA) -> torch.Tensor:
    signal = torch.full((count,), nu_over_sigma * sigma, dtype=torch.float64)
    return add_noise(signal, sigma, "noncentral_chi", gen(seed), num_coils=num_coils)


def quadrature_moments(nu: float, num_coils: int) -> tuple[float, float]:
    """E[m] and std[m] (sigma = 1) by quadrature of the noncentral chi density (its normalisation included)."""

    def density(m: float) -> float:
        if nu == 0:
            return m ** (2 * num_coils - 1) * math.exp(-(m**2) / 2) / (2 ** (num_coils - 1) * math.gamma(num_coils))
        return m**num_coils * nu ** (1 - num_coils) * math.exp(-((m - nu) ** 2) / 2) * special.ive(num_coils - 1, m * nu)

    upper = nu + 12 + math.sqrt(2 * num_coils)
    points = [nu] if nu > 0 else None
    moments = [integrate.quad(lambda m, k=k: m**k * density(m), 0, upper, points=points, limit=200)[0] for k in range(3)]
    assert moments[0] == pytest.approx(1.0, abs=1e-8)
    return moments[1], math.sqrt(moments[2] - moments[1] ** 2)


# ---------------------------------------------------------------------------- moments


def test_chi_moments_with_one_coil_are_the_rician_ones():
    nu = np.array([0.0, 0.5, 2.0, 10.0, 47.9])
    for ours, rician in zip(chi_mean_std(nu, 1), rician_mean_std(nu)):
        np.testing.assert_allclose(ours, rician, rtol=1e-12)
    assert chi_mean_std(0.0, 1)[0] == pytest.approx(math.sqrt(math.pi / 2))


@pytest.mark.parametrize("num_coils", [1, 2, 4, 8, 32])
@pytest.mark.parametrize("nu", [0.0, 0.7, 3.0, 12.0])
def test_chi_moments_match_quadrature_of_the_density(num_coils, nu):
    mean, std = chi_mean_std(nu, num_coils)
    expected_mean, expected_std = quadrature_moments(nu, num_coils)
    assert float(mean) == pytest.approx(expected_mean, rel=1e-7)
    assert float(std) == pytest.approx(expected_std, rel=1e-5)


@pytest.mark.parametrize("num_coils", [1, 4, 32])
def test_chi_moments_limits(num_coils):
    # background: central chi with 2L degrees of freedom
    mean0, std0 = chi_mean_std(0.0, num_coils)
    assert float(mean0) == pytest.approx(math.sqrt(2) * math.exp(special.gammaln(num_coils + 0.5) - special.gammaln(num_coils)), rel=1e-12)
    assert float(mean0**2 + std0**2) == pytest.approx(2 * num_coils)
    # high SNR: E[m] -> sqrt(nu^2 + 2L - 1) (to O(nu^-3)), std -> 1; numerically safe up to NU_MAX and past it
    for nu in (30.0, NU_MAX, 59.0, 61.0, 200.0):
        mean, std = chi_mean_std(nu, num_coils)
        assert float(mean) == pytest.approx(math.sqrt(nu**2 + 2 * num_coils - 1), abs=(2 * num_coils) ** 2 / nu**3)
        assert float(std) == pytest.approx(1.0, abs=(2 * num_coils) / nu**2) and np.isfinite(std)
    # continuous across the switch to the asymptotic series at nu = 60
    below, above = chi_mean_std(np.array([60.0 - 1e-9, 60.0 + 1e-9]), num_coils)[0]
    assert above - below == pytest.approx(2e-9, abs=1e-10)  # the slope dE/dnu ~ 1


def test_simulated_noncentral_chi_has_the_closed_form_moments():
    mean, std = chi_mean_std(2.0, 4)
    samples = chi(2.0, 4).numpy() / SIGMA
    assert samples.mean() == pytest.approx(float(mean), abs=0.01)
    assert samples.std() == pytest.approx(float(std), abs=0.01)
    assert np.mean(samples**2) == pytest.approx(2 * 4 + 2.0**2, rel=0.01)


# ---------------------------------------------------------------------------- VST


@pytest.mark.parametrize("nu_over_sigma", [0.0, 1.0, 2.0, 5.0, 20.0])
def test_chi_vst_stabilises_the_noise_std_near_sigma(nu_over_sigma):
    noisy = chi(nu_over_sigma, 4)
    stabilised = magnitude_vst(noisy, SIGMA, num_coils=4)
    assert float(stabilised.std()) / SIGMA == pytest.approx(1.0, abs=0.1)  # measured 0.94 (air) .. 1.02
    raw_background = float(chi(0.0, 4).std()) / SIGMA
    assert raw_background == pytest.approx(float(chi_mean_std(0.0, 4)[1]), abs=0.01)  # unstable without the VST: 0.70


@pytest.mark.parametrize("num_coils", [1, 4, 8])
def test_chi_vst_is_the_identity_at_high_snr(num_coils):
    high = np.array([60.0, 100.0, 500.0], dtype=np.float32) * SIGMA
    out = magnitude_vst(high, SIGMA, num_coils)
    assert out == pytest.approx(high, rel=1e-3) and out.dtype == np.float32
    near_top = np.array([40.0, 47.0]) * SIGMA  # inside the table: f(z) ~ z, the chi bias shrinking as 1/nu
    assert magnitude_vst(near_top, SIGMA, num_coils) == pytest.approx(near_top, abs=0.02 * SIGMA * num_coils)


@pytest.mark.parametrize("num_coils", [1, 4])
def test_exact_unbiased_inverse_recovers_nu_from_the_mean_of_the_transform(num_coils):
    errors = []
    for nu in (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 12.0, 20.0):
        samples = chi(nu, num_coils, count=400_000, seed=int(10 * nu))
        mean_of_transform = float(magnitude_vst(samples, SIGMA, num_coils).mean())
        estimate = float(magnitude_vst_inverse(torch.tensor(mean_of_transform, dtype=torch.float64), SIGMA, num_coils))
        errors.append(abs(estimate - nu * SIGMA) / SIGMA)
    # 400k samples: the Monte Carlo error of the mean is ~0.0016 sigma; in the air the inverse's slope is large
    assert max(errors[1:]) < 0.02, errors
    assert errors[0] < 0.1, errors


@pytest.mark.parametrize("num_coils", [1, 4, 16])
def test_inverse_of_the_expected_transform_is_nu_on_and_beyond_the_grid(num_coils):
    from c2s_monai.vst import _tables

    tables = _tables(num_coils)
    nu = np.array([0.3, 1.0, 7.0, 30.0])
    expected = np.interp(nu, tables["nu"], tables["expected_forward"])
    assert magnitude_vst_inverse(expected, 1.0, num_coils) == pytest.approx(nu, abs=1e-3)
    beyond = np.array([NU_MAX + 5, 80.0, 300.0])  # E[f(z) | nu] ~ E[z | nu] there
    assert magnitude_vst_inverse(chi_mean_std(beyond, num_coils)[0], 1.0, num_coils) == pytest.approx(beyond, abs=0.01)


def test_rician_functions_are_the_one_coil_forms():
    image = np.random.default_rng(0).random((5, 6)) * 4 * SIGMA
    np.testing.assert_array_equal(rician_vst(image, SIGMA), magnitude_vst(image, SIGMA, 1))
    np.testing.assert_array_equal(rician_vst_inverse(image, SIGMA), magnitude_vst_inverse(image, SIGMA, 1))
    assert not np.allclose(magnitude_vst(image, SIGMA, 4), magnitude_vst(image, SIGMA, 1))


@pytest.mark.parametrize("as_tensor", [False, True])
def test_per_voxel_sigma_map_equals_per_voxel_scalar_calls(as_tensor):
    rng = np.random.default_rng(1)
    image = rng.random((4, 5)) * 0.5
    sigma_map = 0.02 + 0.08 * rng.random((4, 5))
    if as_tensor:
        image_in, sigma_in = torch.from_numpy(image).float(), torch.from_numpy(sigma_map)
    else:
        image_in, sigma_in = image, sigma_map
    forward = magnitude_vst(image_in, sigma_in, num_coils=4)
    inverse = magnitude_vst_inverse(forward, sigma_in, num_coils=4)
    assert type(forward) is type(image_in) and forward.shape == image.shape and forward.dtype == image_in.dtype
    for i, j in np.ndindex(image.shape):
        one = magnitude_vst(np.array([image[i, j]]), float(sigma_map[i, j]), num_coils=4)[0]
        assert float(forward[i, j]) == pytest.approx(one, rel=1e-6)
        back = magnitude_vst_inverse(np.array([float(forward[i, j])]), float(sigma_map[i, j]), num_coils=4)[0]
        assert float(inverse[i, j]) == pytest.approx(back, rel=1e-5, abs=1e-7)
    # a map that broadcasts (one value per column) is the same as its expansion
    column = sigma_map[:1]
    np.testing.assert_allclose(magnitude_vst(image, column, 2), magnitude_vst(image, np.broadcast_to(column, image.shape), 2))


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf"), np.array([[0.1, 0.0]]), torch.tensor([0.1, float("nan")])])
def test_bad_sigma_raises(bad):
    with pytest.raises(ValueError, match="sigma > 0"):
        magnitude_vst(np.ones((3, 2)), bad, num_coils=2)
    with pytest.raises(ValueError, match="sigma > 0"):
        magnitude_vst_inverse(torch.ones(3, 2), bad)


def test_bad_shapes_and_coils_raise():
    with pytest.raises(ValueError, match="broadcast"):
        magnitude_vst(np.ones((3, 2)), np.full((3, 3), 0.1))
    for coils in (0, 1.5, True):
        with pytest.raises(ValueError, match="num_coils"):
            magnitude_vst(np.ones(3), 0.1, num_coils=coils)


# ---------------------------------------------------------------------------- simulation


def test_noncentral_chi_simulation_and_refused_recorruption():
    assert "noncentral_chi" in SIMULATED_NOISE_MODELS and "noncentral_chi" not in NOISE_MODELS
    image = torch.rand(6, 7, dtype=torch.float64)
    rician = add_noise(image, 0.1, "rician", gen(3))
    assert torch.equal(add_noise(image, 0.1, "noncentral_chi", gen(3), num_coils=1), rician)  # L = 1 draws the same
    with pytest.raises(ValueError, match="re-corrupted"):
        recorrupt(image, 0.1, "noncentral_chi")
    with pytest.raises(ValueError, match="re-corrupted"):
        check_noise_model("noncentral_chi")
    with pytest.raises(ValueError, match="num_coils"):
        add_noise(image, 0.1, "rician", num_coils=4)


def test_per_voxel_sigma_map_in_add_noise():
    image = torch.zeros(2, 1, 300, 300, dtype=torch.float64)
    sigma_map = torch.ones_like(image) * 0.1
    sigma_map[..., 150:] = 0.4  # the right half noisier
    noisy = add_noise(image, sigma_map, "gaussian", gen(0))
    assert float(noisy[..., :150].std()) == pytest.approx(0.1, rel=0.02)
    assert float(noisy[..., 150:].std()) == pytest.approx(0.4, rel=0.02)
    chi8 = add_noise(image[0, 0], sigma_map[0, 0], "noncentral_chi", gen(1), num_coils=8)
    expected = float(chi_mean_std(0.0, 8)[0])
    assert float(chi8[:, 150:].mean()) / 0.4 == pytest.approx(expected, rel=0.01)
    assert add_noise(image, torch.tensor([0.1, 0.2]), "gaussian", gen(2)).shape == image.shape  # per sample still works


# ---------------------------------------------------------------------------- number of coils


def air_phantom(shape=(96, 96, 6)) -> np.ndarray:
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape[:2]], indexing="ij")
    phantom = np.where(grids[0] ** 2 + grids[1] ** 2 < 0.45, 0.6 + 0.3 * grids[0], 0.0)
    return np.repeat(phantom[..., None], shape[2], axis=-1)


@pytest.mark.parametrize("num_coils", [1, 4, 8])
@pytest.mark.parametrize("seed", [0, 1])
def test_estimate_num_coils_recovers_coils_and_sigma(num_coils, seed):
    noisy = add_noise(torch.from_numpy(air_phantom()), SIGMA, "noncentral_chi", gen(seed), num_coils=num_coils).numpy()
    coils, sigma = estimate_num_coils(noisy)
    assert coils == num_coils
    assert sigma == pytest.approx(SIGMA, rel=0.03)
    mask = air_phantom() == 0
    coils_masked, sigma_masked = estimate_num_coils(torch.from_numpy(noisy), mask=mask)  # a tensor and a given air mask
    assert coils_masked == num_coils and sigma_masked == pytest.approx(SIGMA, rel=0.03)


# ---------------------------------------------------------------------------- noise map


@pytest.fixture(scope="module")
def mni_slab() -> np.ndarray:
    """A slab of 12 axial MNI T1 slices in [0, 1], (197, 233, 12), slices last."""
    return np.ascontiguousarray(mni152_contrast("t1")[:, :, 72:84], dtype=np.float64)


def g_factor(shape) -> np.ndarray:
    """A smooth map from 1x to 3x, as a parallel-imaging g-factor."""
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    return np.repeat((1 + 2 * np.exp(-((yy - 0.7) ** 2 + (xx - 0.4) ** 2) / 0.15))[..., None], shape[2], axis=-1)


@pytest.mark.parametrize(
    ("case", "noise_model", "num_coils", "base"),
    [("uniform", "gaussian", 1, 0.05), ("map", "gaussian", 1, 0.03), ("map", "rician", 1, 0.03), ("map", "noncentral_chi", 8, 0.03)],
)
def test_noise_map_on_mni(mni_slab, case, noise_model, num_coils, base):
    truth = base * (g_factor(mni_slab.shape) if case == "map" else np.ones(mni_slab.shape))
    noisy = add_noise(torch.from_numpy(mni_slab), torch.from_numpy(truth), noise_model, gen(7), num_coils=num_coils).numpy()
    estimate = estimate_noise_map(noisy, num_coils=num_coils)
    assert estimate.shape == noisy.shape and np.all(np.isfinite(estimate)) and np.all(estimate > 0)
    head = mni_slab > 0.1 * mni_slab.max()
    error = float(np.median(np.abs(estimate[head] / truth[head] - 1)))
    print(f"{case} {noise_model} L={num_coils}: median relative error {error:.3f}")
    assert error < 0.1


def test_noise_map_2d_tensor_shape_and_positivity(mni_slab):
    clean = mni_slab[:, :, 5]
    noisy = add_noise(torch.from_numpy(clean)[None], 0.04, "rician", gen(2))  # (1, H, W): squeezed to 2D
    estimate = estimate_noise_map(noisy)
    assert estimate.shape == clean.shape and np.all(np.isfinite(estimate)) and np.all(estimate > 0)
    head = clean > 0.1
    assert float(np.median(estimate[head])) == pytest.approx(0.04, rel=0.1)
    masked = estimate_noise_map(noisy, mask=head[None])
    assert masked.shape == clean.shape and np.all(masked > 0)
    with pytest.raises(ValueError):
        estimate_noise_map(np.zeros((32, 32)))


def test_noise_map_is_fast():
    volume = np.random.default_rng(0).random((200, 230, 40)).astype(np.float32)
    start = time.perf_counter()
    estimate = estimate_noise_map(volume)
    elapsed = time.perf_counter() - start
    assert estimate.shape == volume.shape
    assert elapsed < 4.0  # ~0.5 s on one core; headroom for a loaded machine


# ---------------------------------------------------------------------------- model detection


def test_detect_noise_model(mni_slab):
    rng = np.random.default_rng(0)
    signed = mni_slab + 0.03 * rng.standard_normal(mni_slab.shape)
    choice = detect_noise_model(signed)
    assert isinstance(choice, NoiseModelChoice) and choice.noise_model == "gaussian" and choice.num_coils == 1
    assert choice.reason.startswith("gaussian: signed values")

    rician = add_noise(torch.from_numpy(mni_slab), 0.03, "rician", gen(1)).numpy()
    choice = detect_noise_model(rician)
    assert (choice.noise_model, choice.num_coils) == ("rician", 1), choice.reason
    assert "L = 1" in choice.reason and "%" in choice.reason

    chi8 = add_noise(torch.from_numpy(mni_slab), 0.02, "noncentral_chi", gen(2), num_coils=8).numpy()
    choice = detect_noise_model(chi8)
    assert (choice.noise_model, choice.num_coils) == ("noncentral_chi", 8), choice.reason
    assert has_noise_background(chi8, max_coils=32)

    no_air = 0.5 + 0.2 * mni_slab + 0.01 * rng.random(mni_slab.shape)  # non-negative, no noisy air
    choice = detect_noise_model(no_air)
    assert choice.noise_model == "gaussian" and "no noisy background" in choice.reason
    with pytest.raises(dataclasses.FrozenInstanceError):
        choice.num_coils = 3  # type: ignore[misc]
