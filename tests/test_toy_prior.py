"""The key estimator-correctness test of C2S: on a Gaussian toy prior the GDSM minimiser is known.

Prior ``x0 ~ N(mu, s^2)`` per pixel, data ``y = x0 + s_d n``. For a total level ``s_t`` and a
target level ``s_tgt`` (nested Gaussian corruptions, docs/method.md section 3.2 and section 3.5)

    E[x_tgt | x_t] = mu + (s^2 + s_tgt^2) / (s^2 + s_t^2) * (x_t - mu),

so at inference (``s_t = s_d``) the denoiser must be the posterior mean ``E[x0 | y]``
(``s_tgt = 0``) or ``E[x_tgt | y]`` (detail refinement). We train a denoiser that is linear in
``x`` with level-dependent coefficients, ``D(x, s) = a(s) x + b(s)``, on *noisy samples only*
with :class:`c2s_monai.losses.GDSMLoss`, and compare ``a``, ``b`` with the closed form.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from c2s_monai.losses import GDSMLoss

MU, S, SIGMA_DATA = 0.5, 0.2, 0.15
TAU_MAX = 2.0
S_MAX = SIGMA_DATA * math.sqrt(1 + TAU_MAX**2)


def optimal_slope(s_t: float, s_tgt: float) -> float:
    return (S**2 + s_tgt**2) / (S**2 + s_t**2)


class LevelLinearDenoiser(nn.Module):
    """``D(x, s) = a(s) x + b(s)``, ``a`` and ``b`` cubic polynomials of ``s`` rescaled to [-1, 1].

    Obeys the network contract: input ``(B, 2, H, W)`` (channel 0 the image, last channel the
    total level map), output ``(B, 1, H, W)``.
    """

    degree = 3

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(self.degree + 1))
        self.b = nn.Parameter(torch.zeros(self.degree + 1))
        with torch.no_grad():
            self.a[0] = 1.0  # start as the identity

    def coefficients(self, level: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = 2.0 * (level - SIGMA_DATA) / (S_MAX - SIGMA_DATA) - 1.0
        powers = torch.stack([u**k for k in range(self.degree + 1)], dim=-1)
        return powers @ self.a, powers @ self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # GDSMLoss feeds one level per sample (a constant map): evaluate a, b once per sample
        a, b = self.coefficients(x[:, -1:].mean(dim=(-2, -1), keepdim=True))
        return a * x[:, :1] + b


def fit(sigma_target_ratio: float, steps: int = 600, batch: int = 64, size: int = 16, seed: int = 0) -> LevelLinearDenoiser:
    """Minimise the GDSM loss on noisy toy images only; return the trained denoiser."""
    generator = torch.Generator().manual_seed(seed)
    model = LevelLinearDenoiser()
    loss = GDSMLoss(tau_max=TAU_MAX, sigma_target_ratio=sigma_target_ratio)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=1e-4)
    for _ in range(steps):
        clean = MU + S * torch.randn(batch, 1, size, size, generator=generator)
        noisy = clean + SIGMA_DATA * torch.randn(clean.shape, generator=generator)  # all the loss sees
        optimizer.zero_grad()
        value = loss(model, noisy, SIGMA_DATA, generator=generator)
        value.backward()
        optimizer.step()
        scheduler.step()
    return model.eval()


@pytest.fixture(scope="module")
def fitted():
    return {ratio: fit(ratio) for ratio in (0.0, 0.5)}


@pytest.mark.parametrize("sigma_target_ratio", [0.0, 0.5])
def test_denoiser_at_data_level_is_the_posterior_mean(fitted, sigma_target_ratio):
    model = fitted[sigma_target_ratio]
    s_tgt = sigma_target_ratio * SIGMA_DATA
    with torch.no_grad():
        a, b = model.coefficients(torch.tensor(SIGMA_DATA))
    slope = optimal_slope(SIGMA_DATA, s_tgt)  # 0.64 for s_tgt = 0, 0.73 for s_tgt = s_d / 2
    print(f"ratio {sigma_target_ratio}: a(s_d) = {float(a):.4f} (expected {slope:.4f}), b(s_d) = {float(b):.4f} (expected {MU * (1 - slope):.4f})")
    assert float(a) == pytest.approx(slope, abs=0.03)
    assert float(b) == pytest.approx(MU * (1.0 - slope), abs=0.03)
    # the whole denoiser, on fresh data: within 0.03 of E[x_tgt | y] over the bulk of y
    y = torch.linspace(MU - 2 * math.sqrt(S**2 + SIGMA_DATA**2), MU + 2 * math.sqrt(S**2 + SIGMA_DATA**2), 41)
    inputs = torch.stack([y, torch.full_like(y, SIGMA_DATA)]).reshape(1, 2, 1, -1)
    with torch.no_grad():
        denoised = model(inputs).flatten()
    expected = MU + slope * (y - MU)
    assert float((denoised - expected).abs().max()) < 0.03


@pytest.mark.parametrize("sigma_target_ratio", [0.0, 0.5])
def test_denoiser_at_higher_levels(fitted, sigma_target_ratio):
    """Inside the training range the fit is E[x_tgt | x_t] at every level (tighter tolerance)."""
    model = fitted[sigma_target_ratio]
    s_tgt = sigma_target_ratio * SIGMA_DATA
    for tau_over_sd in (0.5, 1.0, 1.5):
        s_t = SIGMA_DATA * math.sqrt(1 + tau_over_sd**2)
        with torch.no_grad():
            a, b = model.coefficients(torch.tensor(s_t))
        slope = optimal_slope(s_t, s_tgt)
        assert float(a) == pytest.approx(slope, abs=0.02), s_t
        assert float(b) == pytest.approx(MU * (1.0 - slope), abs=0.02), s_t


def test_detail_refinement_moves_the_estimate_towards_the_data(fitted):
    """s_tgt > 0 keeps part of the noise: the slope rises from s^2/(s^2+s_d^2) towards 1 by the predicted amount."""
    with torch.no_grad():
        a_clean, _ = fitted[0.0].coefficients(torch.tensor(SIGMA_DATA))
        a_refined, _ = fitted[0.5].coefficients(torch.tensor(SIGMA_DATA))
    predicted = optimal_slope(SIGMA_DATA, 0.5 * SIGMA_DATA) - optimal_slope(SIGMA_DATA, 0.0)  # 0.09
    assert float(a_refined - a_clean) == pytest.approx(predicted, abs=0.03)


def test_plain_dsm_on_noisy_data_does_not_recover_the_clean_posterior():
    """Negative control: the naive DSM of Noisier2Noise-style training on y (gamma = 1 for every tau,
    i.e. treating y as clean) learns E[y | x_t], whose slope at s_d is 1, not the posterior mean.
    This checks the toy set-up can tell the GDSM estimator from a wrong one."""

    generator = torch.Generator().manual_seed(0)
    model = LevelLinearDenoiser()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        clean = MU + S * torch.randn(32, 1, 16, 16, generator=generator)
        noisy = clean + SIGMA_DATA * torch.randn(clean.shape, generator=generator)
        tau = TAU_MAX * SIGMA_DATA * torch.rand(32, 1, 1, 1, generator=generator)
        x_tau = noisy + tau * torch.randn(noisy.shape, generator=generator)
        level = torch.sqrt(SIGMA_DATA**2 + tau**2).expand_as(x_tau)
        optimizer.zero_grad()
        value = ((model(torch.cat([x_tau, level], dim=1)) - noisy) ** 2).mean()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        a, _ = model.coefficients(torch.tensor(SIGMA_DATA))
    assert abs(float(a) - optimal_slope(SIGMA_DATA, 0.0)) > 0.1
