"""Noise models and GDSM re-corruption (docs/method.md section 1, section 2 and section 3.1), and the AddNoise transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import special, stats

from c2s_monai.noise import AddNoise, AddNoised, add_noise, check_noise_model, recorrupt

N = 400_000


def rician_mean(amplitude: float, sigma: float) -> float:
    """E|A + sigma (n_r + i n_i)| = sigma sqrt(pi/2) L_{1/2}(-A^2 / (2 sigma^2)) (scaled Bessel functions)."""
    x = -(amplitude**2) / (2 * sigma**2)
    k = -x / 2
    laguerre = (1 - x) * special.i0e(k) - x * special.i1e(k)
    return sigma * math.sqrt(math.pi / 2) * laguerre


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------- Gaussian


@pytest.mark.parametrize("sigma", [0.01, 0.3, 2.0])
def test_gaussian_add_noise_moments(sigma):
    image = torch.full((N,), 0.7, dtype=torch.float64)
    noisy = add_noise(image, sigma, "gaussian", gen(0))
    residual = (noisy - image).numpy()
    assert residual.mean() == pytest.approx(0.0, abs=5 * sigma / math.sqrt(N))
    assert residual.std() == pytest.approx(sigma, rel=0.01)
    assert abs(stats.skew(residual)) < 0.02 and abs(stats.kurtosis(residual)) < 0.05


def test_gaussian_recorruption_total_level():
    """y = x0 + s_d n, x_tau = y + tau z: x_tau - x0 has std sqrt(s_d^2 + tau^2)."""
    s_d, tau = 0.1, 0.25
    x0 = torch.linspace(0, 1, N, dtype=torch.float64)
    y = add_noise(x0, s_d, generator=gen(1))
    x_tau = recorrupt(y, tau, generator=gen(2))
    assert float((x_tau - y).std()) == pytest.approx(tau, rel=0.01)
    assert float((x_tau - x0).std()) == pytest.approx(math.hypot(s_d, tau), rel=0.01)
    assert float((x_tau - x0).mean()) == pytest.approx(0.0, abs=0.003)


def test_per_sample_sigma_broadcast():
    image = torch.zeros(3, 1, 200, 200, dtype=torch.float64)
    sigma = torch.tensor([0.1, 1.0, 0.0])
    noisy = add_noise(image, sigma, "gaussian", gen(0))
    assert noisy.shape == image.shape
    assert float(noisy[0].std()) == pytest.approx(0.1, rel=0.02)
    assert float(noisy[1].std()) == pytest.approx(1.0, rel=0.02)
    assert float(noisy[2].abs().max()) == 0.0


def test_generator_reproducibility():
    image = torch.rand(4, 4)
    assert torch.equal(add_noise(image, 0.1, "rician", gen(5)), add_noise(image, 0.1, "rician", gen(5)))
    assert not torch.equal(add_noise(image, 0.1, "rician", gen(5)), add_noise(image, 0.1, "rician", gen(6)))


def test_check_noise_model():
    assert check_noise_model("Gaussian") == "gaussian"
    with pytest.raises(ValueError, match="noise_model"):
        check_noise_model("poisson")
    with pytest.raises(ValueError):
        add_noise(torch.zeros(3), 0.1, "speckle")


# ---------------------------------------------------------------------------- Rician


@pytest.mark.parametrize("amplitude", [0.0, 0.1, 0.5, 2.0])
def test_rician_add_noise_moments(amplitude):
    sigma = 0.2
    r = add_noise(torch.full((N,), amplitude, dtype=torch.float64), sigma, "rician", gen(3)).numpy()
    assert r.min() >= 0.0
    assert r.mean() == pytest.approx(rician_mean(amplitude, sigma), rel=0.005)
    assert np.mean(r**2) == pytest.approx(amplitude**2 + 2 * sigma**2, rel=0.01)


@pytest.mark.parametrize("amplitude", [0.0, 0.05, 0.2, 1.0, 5.0])
def test_rician_recorruption_is_rician_at_the_total_level(amplitude):
    """|y + tau (z_r + i z_i)| with y Rician(A, s_d) is Rician(A, s_t), s_t = sqrt(s_d^2 + tau^2)."""
    s_d, tau = 0.1, 0.15
    s_t = math.hypot(s_d, tau)
    x0 = torch.full((N,), amplitude, dtype=torch.float64)
    y = add_noise(x0, s_d, "rician", gen(10))
    x_tau = recorrupt(y, tau, "rician", gen(11)).numpy()
    assert x_tau.min() >= 0.0
    # first, second and fourth raw moments of Rician(A, s_t)
    assert x_tau.mean() == pytest.approx(rician_mean(amplitude, s_t), rel=0.005)
    assert np.mean(x_tau**2) == pytest.approx(amplitude**2 + 2 * s_t**2, rel=0.01)
    fourth = amplitude**4 + 8 * amplitude**2 * s_t**2 + 8 * s_t**4
    assert np.mean(x_tau**4) == pytest.approx(fourth, rel=0.03)
    # and the whole distribution: same as a directly simulated Rician at s_t
    direct = add_noise(x0, s_t, "rician", gen(12)).numpy()
    assert stats.ks_2samp(x_tau[:100_000], direct[:100_000]).statistic < 0.01
    if amplitude <= 0.2:
        # a Gaussian (real-only) re-corruption of the magnitude would be measurably wrong here
        naive = np.abs(y.numpy() + tau * np.random.default_rng(0).standard_normal(N))
        assert stats.ks_2samp(naive[:100_000], direct[:100_000]).statistic > 0.02


def test_rician_high_snr_is_nearly_gaussian():
    """At high SNR the Rician re-corruption behaves like the Gaussian one (mean ~ A, std ~ s_t)."""
    s_d, tau, amplitude = 0.02, 0.03, 1.0
    y = add_noise(torch.full((N,), amplitude, dtype=torch.float64), s_d, "rician", gen(0))
    x_tau = recorrupt(y, tau, "rician", gen(1))
    assert float(x_tau.mean()) == pytest.approx(amplitude, rel=1e-3)
    assert float(x_tau.std()) == pytest.approx(math.hypot(s_d, tau), rel=0.01)


# ---------------------------------------------------------------------------- transforms


def test_add_noise_transform_seeded():
    image = torch.rand(1, 16, 16)
    a = AddNoise(0.1).set_random_state(seed=3)(image)
    b = AddNoise(0.1).set_random_state(seed=3)(image)
    c = AddNoise(0.1).set_random_state(seed=4)(image)
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    assert not torch.equal(torch.as_tensor(a), torch.as_tensor(c))
    assert a.dtype == torch.float32 and a.shape == image.shape


def test_add_noise_transform_successive_calls_differ_and_level_is_right():
    transform = AddNoise(0.2).set_random_state(seed=0)
    image = torch.zeros(1, 128, 128)
    first, second = transform(image), transform(image)
    assert not torch.equal(torch.as_tensor(first), torch.as_tensor(second))
    assert float(torch.as_tensor(first).std()) == pytest.approx(0.2, rel=0.03)


def test_add_noise_transform_accepts_numpy_and_keeps_metadata():
    affine = torch.diag(torch.tensor([2.0, 3.0, 4.0, 1.0]))
    image = MetaTensor(torch.rand(1, 8, 8, 2), affine=affine)
    noisy = AddNoise(0.1).set_random_state(seed=0)(image)
    assert isinstance(noisy, MetaTensor)
    torch.testing.assert_close(noisy.affine.float(), affine)
    out = AddNoise(0.1).set_random_state(seed=0)(np.random.rand(1, 8, 8))
    assert out.shape == (1, 8, 8) and torch.isfinite(torch.as_tensor(out)).all()


def test_add_noise_transform_rician_non_negative():
    image = torch.zeros(1, 64, 64)
    noisy = torch.as_tensor(AddNoise(0.5, noise_model="rician").set_random_state(seed=0)(image))
    assert float(noisy.min()) >= 0.0
    # Rayleigh: E[R^2] = 2 sigma^2
    assert float((noisy**2).mean()) == pytest.approx(2 * 0.25, rel=0.05)


@pytest.mark.parametrize("sigma", [0.0, -0.1, float("nan"), float("inf")])
def test_add_noise_transform_rejects_bad_sigma(sigma):
    with pytest.raises(ValueError):
        AddNoise(sigma)
    with pytest.raises(ValueError):
        AddNoised("image", sigma)


def test_add_noise_transform_rejects_bad_model():
    with pytest.raises(ValueError):
        AddNoise(0.1, noise_model="poisson")


def test_add_noise_transform_prob_zero_is_identity():
    image = torch.rand(1, 8, 8)
    out = AddNoise(0.1, prob=0.0).set_random_state(seed=0)(image)
    assert torch.equal(torch.as_tensor(out), image)


def test_add_noised_applies_to_keys_only():
    image = torch.rand(1, 32, 32)
    data = {"image": image.clone(), "guide": image.clone(), "label": image.clone()}
    out = AddNoised(["image", "guide"], 0.1).set_random_state(seed=0)(data)
    assert torch.equal(torch.as_tensor(out["label"]), image)
    for key in ("image", "guide"):
        assert not torch.equal(torch.as_tensor(out[key]), image)
        assert float((torch.as_tensor(out[key]) - image).std()) == pytest.approx(0.1, rel=0.1)
    # independent draws per key
    assert not torch.equal(torch.as_tensor(out["image"]), torch.as_tensor(out["guide"]))
    # the input dictionary is not modified in place
    assert torch.equal(data["image"], image)


def test_add_noised_seeded():
    data = {"image": torch.rand(1, 16, 16)}
    a = AddNoised("image", 0.1).set_random_state(seed=1)(data)["image"]
    b = AddNoised("image", 0.1).set_random_state(seed=1)(data)["image"]
    c = AddNoised("image", 0.1).set_random_state(seed=2)(data)["image"]
    assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    assert not torch.equal(torch.as_tensor(a), torch.as_tensor(c))


def test_add_noised_rician_and_prob():
    data = {"image": torch.zeros(1, 16, 16)}
    out = AddNoised("image", 0.3, noise_model="rician").set_random_state(seed=0)(data)
    assert float(torch.as_tensor(out["image"]).min()) >= 0.0 and float(torch.as_tensor(out["image"]).max()) > 0.0
    untouched = AddNoised("image", 0.3, prob=0.0).set_random_state(seed=0)(data)
    assert torch.equal(torch.as_tensor(untouched["image"]), data["image"])


def test_add_noised_missing_key():
    with pytest.raises(KeyError):
        AddNoised("image", 0.1)({"other": torch.zeros(1, 4, 4)})
    out = AddNoised("image", 0.1, allow_missing_keys=True)({"other": torch.zeros(1, 4, 4)})
    assert set(out) == {"other"}
