"""Noise models of magnitude MRI and the GDSM re-corruption.

Three observation models are simulated (``docs/method.md`` section 1 and section 2):

- ``"gaussian"``: ``y = x0 + sigma * n``, ``n ~ N(0, I)``.
- ``"rician"``: ``y = |x0 + sigma * (n_r + i n_i)|``, the magnitude of complex Gaussian
  noise of std ``sigma`` per channel (Gudbjartsson & Patz 1995).
- ``"noncentral_chi"``: the root-sum-of-squares magnitude of ``L`` coils (``num_coils``),
  ``y = sqrt((x0 + sigma n_1)^2 + (sigma n_2)^2 + sum_{c=2..L} sigma^2 (n_{2c-1}^2 + n_{2c}^2))``,
  the signal in one coil channel (the distribution depends only on ``|x0|``; Constantinides,
  Atalar & McVeigh 1997). ``L = 1`` is the Rician model, drawn with the same random numbers.

``sigma`` is a scalar, a per-sample level ``(B,)``, or a per-voxel noise map broadcastable to the
image (spatially varying noise, e.g. a parallel-imaging g-factor).

Only ``"gaussian"`` and ``"rician"`` (:data:`NOISE_MODELS`) can be re-corrupted by the GDSM loss:
noncentral chi is not closed under adding noise to the magnitude (the added complex noise
would have to go into one coil of the unknown complex data), so noncentral-chi data is
denoised through the variance-stabilising transform instead (:func:`c2s_monai.vst.magnitude_vst`
with ``num_coils``, then the Gaussian model). :data:`SIMULATED_NOISE_MODELS` lists what
:func:`add_noise` simulates.

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

NOISE_MODELS = ("gaussian", "rician")  # what the GDSM loss can re-corrupt (recorrupt)
SIMULATED_NOISE_MODELS = (*NOISE_MODELS, "noncentral_chi")  # what add_noise simulates

_NO_RECORRUPTION = (
    "noise_model 'noncentral_chi' can be simulated (add_noise) but not re-corrupted: noncentral chi is not "
    "closed under adding noise to the magnitude. Stabilise the data with c2s_monai.vst.magnitude_vst(image, sigma, "
    "num_coils) and train with the 'gaussian' model instead (docs/method.md section 2)."
)


def check_noise_model(noise_model: str) -> str:
    """Return ``noise_model`` (one the GDSM loss re-corrupts) lower-cased, or raise ``ValueError`` naming the valid choices."""
    name = str(noise_model).lower()
    if name == "noncentral_chi":
        raise ValueError(_NO_RECORRUPTION)
    if name not in NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}.")
    return name


def check_simulated_noise_model(noise_model: str) -> str:
    """Return ``noise_model`` (one :func:`add_noise` simulates) lower-cased, or raise ``ValueError``."""
    name = str(noise_model).lower()
    if name not in SIMULATED_NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {SIMULATED_NOISE_MODELS}, got {noise_model!r}.")
    return name


def _broadcast_level(level: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """Shape a scalar, per-sample level ``(B,)`` or noise map so it broadcasts against ``like`` ``(B, ...)``.

    Only a 1D level with one value per sample is reshaped to ``(B, 1, ...)``; a map with
    ``like``'s number of dimensions (or its trailing dimensions, 2D or more) is used as it is.
    """
    level = torch.as_tensor(level, dtype=like.dtype, device=like.device)
    if level.ndim == 1 and like.ndim > 1 and level.shape[0] in (1, like.shape[0]):
        level = level.reshape(-1, *([1] * (like.ndim - 1)))
    if torch.broadcast_shapes(level.shape, like.shape) != like.shape:
        raise ValueError(f"the noise level of shape {tuple(level.shape)} does not broadcast to the image's shape {tuple(like.shape)}.")
    return level


def add_noise(
    image: torch.Tensor,
    sigma: torch.Tensor | float,
    noise_model: str = "gaussian",
    generator: torch.Generator | None = None,
    num_coils: int = 1,
) -> torch.Tensor:
    """Corrupt ``image`` with noise of std ``sigma`` under ``noise_model`` (one of :data:`SIMULATED_NOISE_MODELS`).

    ``sigma`` is a scalar, a per-sample tensor of shape ``(B,)`` for a batch ``(B, ...)``, or a
    per-voxel noise map broadcastable to ``image`` (e.g. of its shape).
    Gaussian: ``image + sigma * n``. Rician: ``|image + sigma * (n_r + i n_i)|``. Noncentral chi:
    the root-sum-of-squares of ``num_coils`` coils (module docstring); ``num_coils`` applies to
    that model only. Re-corruption is the same operation applied to a noisy image: for the
    Rician model the result is Rician at ``sqrt(sigma_data^2 + sigma^2)`` (see the module docstring).
    """
    noise_model = check_simulated_noise_model(noise_model)
    if isinstance(num_coils, bool) or int(num_coils) != num_coils or int(num_coils) < 1:
        raise ValueError(f"num_coils must be an integer >= 1, got {num_coils!r}.")
    if noise_model != "noncentral_chi" and num_coils != 1:
        raise ValueError(f"num_coils={num_coils} applies to noise_model 'noncentral_chi' only, not {noise_model!r}.")
    sigma = _broadcast_level(sigma, image)
    real = torch.randn(image.shape, generator=generator, dtype=image.dtype, device=image.device)
    if noise_model == "gaussian":
        return image + sigma * real
    imag = torch.randn(image.shape, generator=generator, dtype=image.dtype, device=image.device)
    power = (image + sigma * real) ** 2 + (sigma * imag) ** 2
    for _ in range(1, int(num_coils)):  # the coils without signal: two channels each
        for _channel in range(2):
            power = power + (sigma * torch.randn(image.shape, generator=generator, dtype=image.dtype, device=image.device)) ** 2
    return torch.sqrt(power)


def recorrupt(
    noisy: torch.Tensor,
    tau: torch.Tensor | float,
    noise_model: str = "gaussian",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """GDSM re-corruption ``x_tau = y + tau z`` (Gaussian) or ``|y + tau (z_r + i z_i)|`` (Rician).

    docs/method.md section 3.1; ``tau`` is the std of the *added* noise, scalar or ``(B,)``.
    ``"noncentral_chi"`` is refused (module docstring): stabilise such data with the VST.
    """
    return add_noise(noisy, tau, check_noise_model(noise_model), generator)


# moved to c2s_monai.transforms in 0.7; the old path answers for a release
__getattr__ = moved(__name__, ('AddNoise', 'AddNoised'), "c2s_monai.transforms")
