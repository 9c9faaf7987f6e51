"""The parallel-imaging benchmark's simulation (benchmarks/parallel_imaging.py) on a small phantom, and its report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sigpy  # noqa: F401  the simulation library (the test extra installs it)

from benchmarks.parallel_imaging import acquire, coil_maps, noise_covariance, pseudo_replica_map, sense
from benchmarks.parallel_imaging_report import END, START, write_report

SIGMA0 = 0.01


@pytest.fixture(scope="module")
def phantom() -> np.ndarray:
    """48x36 (phase-encode axis first, divisible by 2 and 3): an ellipse of 1 holding a smaller one of 0.5, air around."""
    y, x = np.mgrid[:48, :36]
    image = np.zeros((48, 36))
    image[((y - 24) / 18) ** 2 + ((x - 18) / 13) ** 2 < 1] = 1.0
    image[((y - 20) / 6) ** 2 + ((x - 15) / 4) ** 2 < 1] = 0.5
    return image


@pytest.fixture(scope="module")
def operators(phantom):
    maps, psi = coil_maps(phantom.shape), noise_covariance()
    return {R: sense(maps, psi, R) for R in (2, 3)}


def test_noise_covariance_is_a_correlated_covariance():
    psi = noise_covariance()
    assert psi.shape == (8, 8) and np.allclose(psi, psi.T) and np.linalg.eigvalsh(psi).min() > 0
    correlation = psi / np.sqrt(np.outer(np.diag(psi), np.diag(psi)))
    assert np.allclose(np.diag(correlation, 1), 0.25) and 0.8 <= np.diag(psi).min() and np.diag(psi).max() <= 1.2


@pytest.mark.parametrize("R", [2, 3])
def test_noise_free_reconstruction_is_the_object(phantom, operators, R):
    reconstruction = acquire(phantom, operators[R], SIGMA0, None)
    np.testing.assert_allclose(reconstruction, phantom, atol=1e-10)


def test_g_factor_is_at_least_one_and_grows_with_R(operators):
    for operator in operators.values():
        assert operator.g.min() >= 1 - 1e-9
    assert operators[3].g.mean() > operators[2].g.mean() > 1.0


@pytest.mark.parametrize("R", [2, 3])
def test_analytic_noise_map_matches_pseudo_replicas(phantom, operators, R):
    operator = operators[R]
    replicas = pseudo_replica_map(phantom, operator, SIGMA0, replicas=200, seed=R)
    relative = np.abs(replicas / (SIGMA0 * operator.sigma) - 1)
    assert np.median(relative) < 0.10
    assert replicas.max() / replicas.min() > 1.2  # the noise does vary in space


@pytest.mark.parametrize("R", [2, 3])
def test_magnitude_noise_is_rician_at_the_map_level(phantom, operators, R):
    """At high SNR (sigma ~ 1-4% of the object), the magnitude's error over the map is a unit normal inside the object."""
    operator, rng = operators[R], np.random.default_rng(10 + R)
    noisy = np.stack([np.abs(acquire(phantom, operator, SIGMA0, rng)) for _ in range(20)])
    inside = phantom > 0.4
    standardised = ((noisy - phantom) / (SIGMA0 * operator.sigma))[:, inside]
    assert abs(standardised.std() - 1) < 0.05 and abs(standardised.mean()) < 0.1
    outside = phantom == 0  # Rayleigh in the air: mean sqrt(pi/2) sigma
    assert abs(((noisy / (SIGMA0 * operator.sigma))[:, outside]).mean() - np.sqrt(np.pi / 2)) < 0.05


def test_report_states_the_targets(tmp_path):
    folder = tmp_path / "results"
    (folder / "r3").mkdir(parents=True)
    simulation = {"acceleration": 3, "shape": [180, 204, 36], "coils": 8, "sigma0": 0.0095, "sigma_median_head": 0.05,
                  "sigma_range_head": [0.03, 0.08], "g_range_head": [1.6, 3.7], "g_mean_head": 2.6, "air_voxels_scored": 100, "sigma_median_air": 0.03}

    def metrics(psnr: float, bias: float) -> dict:
        return {"psnr_mask": psnr, "psnr_image": psnr - 1, "ssim_mask": 0.9, "background_bias_sigma": bias}

    def learned(name: str, label: str, psnr: float, bias: float, **extra) -> None:
        result = {"method": name, "label": label, "metrics": metrics(psnr, bias), "metrics_flips4": metrics(psnr + 0.2, bias),
                  "iterations": 600, "train_seconds": 200.0, "inference_seconds_slab": 3.0, "simulation": simulation, "commit": "abc", **extra}
        (folder / "r3" / f"{name}.json").write_text(json.dumps(result))

    (folder / "r3" / "bm4d.json").write_text(json.dumps({"method": "bm4d", "metrics": metrics(32.0, 1.2), "seconds": 90.0, "commit": "abc"}))
    learned("c2s_uniform", "C2S uniform", 31.5, 0.3)
    learned("c2s_estimated_map", "C2S estimated", 32.6, -0.05, map_estimation={"median_relative_error": 0.08, "median_ratio": 1.02})
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nkept\n")
    write_report(folder, page)
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nkept") and text.count(START) == 1 and text.count(END) == 1
    assert "| C2S estimated | 32.60 | 0.900 | 31.60 | -0.05 | 32.80 |" in text
    assert "32.60 against 31.50 dB, +1.10 dB, **met**" in text and "32.60 against 32.00 dB, +0.60 dB, **met**" in text
    assert "8.0% (median ratio estimated / true 1.020), **met**" in text
    assert "C2S estimated: -0.050 sigma, **met**" in text and "C2S uniform: +0.300 sigma, **not met**" in text
    assert "| 0.0095 | 0.0500 (0.0300..0.0800) | 0.0300 | 2.60 (1.60..3.70) |" in text
    assert "BM4D with the global sigma: +1.200 sigma." in text  # no noisy row saved: not quoted
    write_report(folder, page)
    assert page.read_text() == text
