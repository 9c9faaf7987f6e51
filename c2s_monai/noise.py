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

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_tensor

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


class AddNoise(RandomizableTransform):
    """Simulate a noisy acquisition: add Gaussian or Rician noise of a fixed std ``sigma``.

    Unlike MONAI's ``RandGaussianNoise``/``RandRicianNoise`` the std is fixed (not sampled),
    which is what a synthetic-noise benchmark with a known ``sigma_data`` needs.

    Args:
        sigma: noise std, in the image's units; must be > 0.
        noise_model: ``"gaussian"`` or ``"rician"``.
        prob: probability of corrupting.
    """

    def __init__(self, sigma: float, noise_model: str = "gaussian", prob: float = 1.0) -> None:
        RandomizableTransform.__init__(self, prob)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}.")
        self.sigma = float(sigma)
        self.noise_model = check_noise_model(noise_model)
        self._seed = 0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, img, randomize: bool = True):
        img = convert_to_tensor(img, track_meta=True, dtype=torch.float32)
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        generator = torch.Generator(device="cpu").manual_seed(self._seed)
        noisy = add_noise(img.float().cpu(), self.sigma, self.noise_model, generator)
        return noisy.to(img.device)


class AddNoised(RandomizableTransform, MapTransform):
    """Dictionary wrapper of :class:`AddNoise`; the same noise draw is not shared between keys."""

    backend = AddNoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float,
        noise_model: str = "gaussian",
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.adder = AddNoise(sigma=sigma, noise_model=noise_model, prob=1.0)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> AddNoised:
        super().set_random_state(seed, state)
        self.adder.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            d[key] = self.adder(d[key], randomize=True) if self._do_transform else d[key]
        return d
