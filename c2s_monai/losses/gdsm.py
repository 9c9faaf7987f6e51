"""Generalized denoising score matching (GDSM) loss of Corruption2Self.

Tu, Shi & Lam, "Score-based Self-supervised MRI Denoising", ICLR 2025 (arXiv 2505.05631);
``docs/method.md`` section 3.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from c2s_monai import defaults
from c2s_monai.noise import check_noise_model, recorrupt

TAU_SAMPLINGS = ("tau", "sigma", "tau_squared")


def gdsm_coefficients(
    sigma_total: torch.Tensor, sigma_data: torch.Tensor, sigma_target: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(gamma, delta)`` of ``E[y | x_t] = gamma E[x_tgt | x_t] + delta x_t``.

    ``gamma = (s_t^2 - s_d^2) / (s_t^2 - s_tgt^2)``, ``delta = (s_d^2 - s_tgt^2) / (s_t^2 - s_tgt^2)``
    with ``0 <= s_tgt <= s_d < s_t``; ``gamma + delta = 1`` and ``gamma -> 0`` as ``s_t -> s_d``.
    """
    denominator = sigma_total**2 - sigma_target**2
    gamma = (sigma_total**2 - sigma_data**2) / denominator
    delta = (sigma_data**2 - sigma_target**2) / denominator
    return gamma, delta


class GDSMLoss(nn.Module):
    r"""GDSM loss: train a noise-conditioned denoiser from noisy images only.

    For a noisy batch ``y = x0 + s_d n`` (channel 0 is the target contrast, further channels
    are co-registered guide contrasts, docs/method.md section 9), draw per sample

    .. math::

        \tau \sim U(0, T],\quad T = \text{tau\_max}\cdot s_d,\quad
        x_\tau = y + \tau z,\quad s_t^2 = s_d^2 + \tau^2

    (``tau_sampling="tau"``, the paper's reparameterisation; ``"sigma"`` draws ``s_t``
    uniformly in ``(s_d, \sqrt{s_d^2 + T^2}]`` instead, for ablations; ``"tau_squared"``
    draws ``tau = T u^2``, density ``\propto \tau^{-1/2}``, importance sampling toward the
    small ``tau`` that inference at ``s_d`` needs: every ``tau`` has the same minimiser, so
    this changes the weighting, not the fixed point) and minimise

    .. math::

        L = \mathbb{E}\, w \,\lVert \gamma\, D(x_\tau, s_t) + \delta\, x_\tau - y \rVert^2,\qquad
        w = (s_t^2)^{\alpha}\,\min(1/\gamma^2,\ \text{max\_weight})

    with ``gamma, delta`` from :func:`gdsm_coefficients`. Its minimiser is
    ``D*(x_t, s_t) = E[x_tgt | x_t]`` with ``s_tgt = sigma_target_ratio * s_d`` (detail
    refinement when > 0), so inference is ``D(y, s_d)``. ``max_weight = 1`` gives the plain
    weight ``(s_t^2)^alpha``; larger values up-weight small ``tau`` (where ``gamma -> 0``),
    bounded so the variance stays finite. For Rician data ``noise_model="rician"`` builds
    ``x_tau = |y + tau (z_r + i z_i)|``, exactly Rician at ``s_t``.

    ``network`` takes one tensor ``(B, C + 1, *spatial)``: the image channels (target
    re-corrupted, guides as given) and a last channel holding ``s_t``, and returns the
    denoised target ``(B, 1, *spatial)`` (see :class:`c2s_monai.networks.NoiseConditionedUNet`).

    Args:
        tau_max: ``T`` in units of ``s_d`` (> 0).
        sigma_target_ratio: ``s_tgt / s_d`` in ``[0, 1)``.
        weight_exponent: ``alpha``.
        max_weight: cap of ``1/gamma^2`` (>= 1).
        noise_model: ``"gaussian"`` or ``"rician"``.
        tau_sampling: ``"tau"`` (uniform added level) or ``"sigma"`` (uniform total level).

    >>> import torch
    >>> from c2s_monai import GDSMLoss, NoiseConditionedUNet
    >>> network = NoiseConditionedUNet(features=(8, 8, 16, 32, 64, 8))
    >>> noisy = torch.rand(2, 1, 32, 32)  # a batch of noisy patches in network units
    >>> loss = GDSMLoss()(network, noisy, sigma_data=0.05, generator=torch.Generator().manual_seed(0))
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """

    def __init__(
        self,
        tau_max: float = defaults.TAU_MAX,
        sigma_target_ratio: float = defaults.SIGMA_TARGET_RATIO,
        weight_exponent: float = defaults.WEIGHT_EXPONENT,
        max_weight: float = defaults.MAX_WEIGHT,
        noise_model: str = defaults.RECORRUPTION,
        tau_sampling: str = defaults.TAU_SAMPLING,
    ) -> None:
        super().__init__()
        if not tau_max > 0:
            raise ValueError(f"tau_max must be > 0, got {tau_max!r}.")
        if not 0 <= sigma_target_ratio < 1:
            raise ValueError(f"sigma_target_ratio must be in [0, 1), got {sigma_target_ratio!r}.")
        if not max_weight >= 1:
            raise ValueError(f"max_weight must be >= 1, got {max_weight!r}.")
        if tau_sampling not in TAU_SAMPLINGS:
            raise ValueError(f"tau_sampling must be one of {TAU_SAMPLINGS}, got {tau_sampling!r}.")
        self.tau_max = float(tau_max)
        self.sigma_target_ratio = float(sigma_target_ratio)
        self.weight_exponent = float(weight_exponent)
        self.max_weight = float(max_weight)
        self.noise_model = check_noise_model(noise_model)
        self.tau_sampling = tau_sampling

    def sample_tau_ratio(self, batch: int, generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> torch.Tensor:
        """Draw ``tau / s_d`` per sample ``(batch,)``: every sampling is proportional to the level (see the class docstring)."""
        u = (1.0 - torch.rand((batch,), generator=generator, dtype=dtype)).to(device)
        if self.tau_sampling == "tau":
            return u * self.tau_max
        if self.tau_sampling == "tau_squared":
            return u**2 * self.tau_max
        total_ratio = 1 + u * (math.sqrt(1 + self.tau_max**2) - 1)
        return torch.sqrt(total_ratio**2 - 1)

    def sample_tau(self, sigma_data: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw the added level ``tau`` per sample for levels ``sigma_data`` ``(B,)`` (see the class docstring)."""
        return self.sample_tau_ratio(sigma_data.shape[0], generator, sigma_data.dtype, sigma_data.device) * sigma_data

    def forward(
        self,
        network: nn.Module,
        noisy: torch.Tensor,
        sigma_data: torch.Tensor | float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Return the mean weighted loss for ``noisy`` ``(B, C, *spatial)`` at ``sigma_data``.

        ``sigma_data``: a scalar, one level per sample ``(B,)``, or a per-voxel map ``(B, 1, *spatial)``
        (spatially varying noise, docs/method.md section 10): ``tau`` is then the sample's ratio
        times the local level, so ``gamma`` and ``delta`` stay one number per sample.
        """
        batch = noisy.shape[0]
        level_shape = (batch, 1, *([1] * (noisy.ndim - 2)))
        sigma_data = torch.as_tensor(sigma_data, dtype=noisy.dtype, device=noisy.device)
        if sigma_data.ndim == noisy.ndim:
            if sigma_data.shape[0] != batch or sigma_data.shape[1] != 1 or sigma_data.shape[2:] != noisy.shape[2:]:
                raise ValueError(f"a sigma_data map must have shape {(batch, 1, *noisy.shape[2:])}, got {tuple(sigma_data.shape)}.")
        else:
            sigma_data = sigma_data.reshape(-1)
            sigma_data = sigma_data.expand(batch) if sigma_data.numel() == 1 else sigma_data
            if sigma_data.numel() != batch:
                raise ValueError(f"sigma_data must be one value, one per sample or a map; got {sigma_data.tolist()}.")
            sigma_data = sigma_data.reshape(level_shape)
        if not bool(torch.all(sigma_data > 0)):
            raise ValueError(f"sigma_data must be > 0; its minimum is {float(sigma_data.min())}.")
        ratio = self.sample_tau_ratio(batch, generator, sigma_data.dtype, sigma_data.device).reshape(level_shape)
        tau = ratio * sigma_data
        sigma_total = torch.sqrt(sigma_data**2 + tau**2)
        gamma, delta = gdsm_coefficients(sigma_total, sigma_data, self.sigma_target_ratio * sigma_data)
        weight = sigma_total ** (2 * self.weight_exponent) * torch.clamp(gamma**-2, max=self.max_weight)

        target = noisy[:, :1]
        x_tau = recorrupt(target, tau if tau.numel() > batch else tau.reshape(-1), self.noise_model, generator)
        level_map = sigma_total.expand_as(target)
        denoised = network(torch.cat([x_tau, noisy[:, 1:], level_map], dim=1))

        residual = gamma * denoised.float() + delta * x_tau - target
        return (weight * residual**2).mean()
