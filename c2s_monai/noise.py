"""Noise models of magnitude MRI and the GDSM re-corruption.

Two observation models are supported (``docs/method.md`` section 1 and section 2):

- ``"gaussian"``: ``y = x0 + sigma * n``, ``n ~ N(0, I)``.
- ``"rician"``: ``y = |x0 + sigma * (n_r + i n_i)|``, the magnitude of complex Gaussian
  noise of std ``sigma`` per channel (Gudbjartsson & Patz 1995).

Re-corruption (GDSM, Tu, Shi & Lam, ICLR 2025) adds noise of std ``tau`` to an already
noisy observation. For the Gaussian model ``x_tau = y + tau * z``. For the Rician model
``x_tau = |y + tau * (z_r + i z_i)|`` is *exactly* Rician at the total level
``sqrt(sigma^2 + tau^2)``: complex Gaussian noise is rotation invariant, so adding it to the
magnitude ``y`` (rather than to the unknown complex signal) gives the same distribution.

The functions work on torch tensors (the loss calls them on batches); the transforms follow
MONAI's array/dictionary pair and honour ``set_random_state``.
"""

from __future__ import annotations

import torch

from c2s_monai.compat import moved

NOISE_MODELS = ("gaussian", "rician")


def check_noise_model(noise_model: str) -> str:
    """Return ``noise_model`` lower-cased, or raise ``ValueError`` naming the valid choices."""
    name = str(noise_model).lower()
    if name not in NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}.")
    return name


def _broadcast_level(level: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Shape a scalar or per-sample level ``(B,)`` so it broadcasts against ``like`` ``(B, ...)``."""
    level = torch.as_tensor(level, dtype=like.dtype, device=like.device)
    if level.ndim == 1 and like.ndim > 1:
        level = level.reshape(-1, *([1] * (like.ndim - 1)))
    return level


def add_noise(
    image: torch.Tensor,
    sigma: torch.Tensor | float,
    noise_model: str = "gaussian",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Corrupt ``image`` with noise of std ``sigma`` under ``noise_model``.

    ``sigma`` is a scalar or a per-sample tensor of shape ``(B,)`` for a batch ``(B, ...)``.
    Gaussian: ``image + sigma * n``. Rician: ``|image + sigma * (n_r + i n_i)|``.
    Re-corruption is the same operation applied to a noisy image: for the Rician model
    the result is Rician at ``sqrt(sigma_data^2 + sigma^2)`` (see the module docstring).
    """
    noise_model = check_noise_model(noise_model)
    sigma = _broadcast_level(sigma, image)
    real = torch.randn(image.shape, generator=generator, dtype=image.dtype, device=image.device)
    if noise_model == "gaussian":
        return image + sigma * real
    imag = torch.randn(image.shape, generator=generator, dtype=image.dtype, device=image.device)
    return torch.sqrt((image + sigma * real) ** 2 + (sigma * imag) ** 2)


def recorrupt(
    noisy: torch.Tensor,
    tau: torch.Tensor | float,
    noise_model: str = "gaussian",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """GDSM re-corruption ``x_tau = y + tau z`` (Gaussian) or ``|y + tau (z_r + i z_i)|`` (Rician).

    docs/method.md section 3.1; ``tau`` is the std of the *added* noise, scalar or ``(B,)``.
    """
    return add_noise(noisy, tau, noise_model, generator)


# moved to c2s_monai.transforms in 0.7; the old path answers for a release
__getattr__ = moved(__name__, ('AddNoise', 'AddNoised'), "c2s_monai.transforms")
