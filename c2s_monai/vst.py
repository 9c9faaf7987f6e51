"""Variance-stabilising transform (VST) for Rician magnitude data, with its exact unbiased inverse.

The third way to handle Rician data (``docs/method.md`` section 2; Foi 2011, "Noise
estimation and removal in MR imaging: the variance-stabilization approach", ISBI): map the
magnitude ``z = |nu + sigma (n_r + i n_i)|`` to ``f(z)`` whose noise is close to Gaussian with
std ``sigma`` at every signal level ``nu``, denoise that as Gaussian data, and map the
estimate back with the exact unbiased inverse.

Everything is computed in units of ``sigma`` (the Rician family is scale invariant) on a grid
of ``nu``. The Rician moments (Koay & Basser 2006) are

    E[z | nu]   = sqrt(pi / 2) * L_{1/2}(-nu^2 / 2),
    L_{1/2}(-t) = exp(-t / 2) * ((1 + t) I0(t / 2) + t I1(t / 2)),
    Var[z | nu] = 2 + nu^2 - E[z | nu]^2,

so ``Var`` falls from ``1`` (high SNR) to ``2 - pi / 2`` (Rayleigh, ``nu = 0``).

- Forward: the delta-method VST ``f'(E[z | nu]) = 1 / std[z | nu]`` integrated over the
  grid, offset so that ``f(z) = z`` at high SNR (where the noise already is Gaussian with
  std ``sigma``); below the Rayleigh mean it continues with the slope at ``nu = 0``. This is
  Foi's construction before his numerical optimisation of ``f`` at very low SNR.
- Inverse: a denoiser of ``f(z)`` estimates ``E[f(z) | nu]``, not ``f(nu)``; the exact unbiased
  inverse (Makitalo & Foi 2011) maps an estimate ``D`` to the ``nu`` with
  ``E[f(z) | nu] = D``, the expectation computed by quadrature over the Rician density.

In the package: :class:`RicianVSTd` stabilises the training volumes (``rician_vst`` of
:func:`c2s_monai.data.training_loader` and :func:`c2s_monai.train`, the bundle's
``rician_vst``), and :class:`~c2s_monai.inferers.C2SInferer` with ``rician_vst=True``
stabilises its input and maps the network's output back. Training and denoising must agree:
:func:`c2s_monai.train` records the setting beside the weights and :func:`c2s_monai.denoise`
follows it. Measured in docs/benchmarks.md (full benchmark, Rician 6%).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from scipy.special import i0e, i1e

from c2s_monai.compat import moved

NU_MAX = 48.0  # in units of sigma: above it the Rician is Gaussian to 1e-3 and f(z) = z
_NU_STEP = 1 / 32
_Z_STEP = 1 / 64


def rician_mean_std(nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E[z | nu]`` and ``std[z | nu]`` of the Rician magnitude with ``sigma = 1`` (module docstring)."""
    nu = np.asarray(nu, dtype=np.float64)
    t = nu**2 / 2
    # exponentially scaled Bessel functions: i0e(x) = exp(-x) I0(x), so exp(-t/2) I0(t/2) = i0e(t/2)
    mean = np.sqrt(np.pi / 2) * ((1 + t) * i0e(t / 2) + t * i1e(t / 2))
    variance = np.maximum(2 + nu**2 - mean**2, 0.0)
    return mean, np.sqrt(variance)


@lru_cache(maxsize=1)
def _tables() -> dict[str, np.ndarray]:
    """The forward map on a grid of means and ``E[f(z) | nu]`` on a grid of ``nu`` (``sigma = 1``)."""
    nu = np.arange(0.0, NU_MAX + _NU_STEP / 2, _NU_STEP)
    mean, std = rician_mean_std(nu)
    inverse_std = 1 / std
    forward = np.concatenate([[0.0], np.cumsum(np.diff(mean) * (inverse_std[1:] + inverse_std[:-1]) / 2)])
    forward += mean[-1] - forward[-1]  # f(z) = z at high SNR
    tables = {"mean": mean, "forward": forward, "slope_at_zero": np.array(inverse_std[0])}
    z = np.arange(_Z_STEP / 2, NU_MAX + 12, _Z_STEP)
    f_of_z = _forward_unit(z, tables)
    # Rician density with sigma = 1: z exp(-(z^2 + nu^2) / 2) I0(z nu) = z exp(-(z - nu)^2 / 2) i0e(z nu)
    density = z[None, :] * np.exp(-((z[None, :] - nu[:, None]) ** 2) / 2) * i0e(z[None, :] * nu[:, None])
    density /= density.sum(axis=1, keepdims=True)
    tables["nu"] = nu
    tables["expected_forward"] = density @ f_of_z
    return tables


def _forward_unit(z: np.ndarray, tables: dict[str, np.ndarray]) -> np.ndarray:
    mean, forward = tables["mean"], tables["forward"]
    inside = np.interp(z, mean, forward)
    below = forward[0] + tables["slope_at_zero"] * (z - mean[0])
    return np.where(z < mean[0], below, np.where(z > mean[-1], z, inside))  # f(z) = z above the grid


def _apply(function, image, sigma: float):
    if sigma <= 0:
        raise ValueError(f"the Rician VST needs sigma > 0, got {sigma!r}.")
    if isinstance(image, torch.Tensor):
        result = function(image.detach().cpu().double().numpy() / sigma) * sigma
        return torch.as_tensor(result, dtype=image.dtype, device=image.device)
    image = np.asarray(image)
    result = function(image.astype(np.float64) / sigma) * sigma
    return result.astype(image.dtype) if np.issubdtype(image.dtype, np.floating) else result


def rician_vst(image, sigma: float):
    """``sigma * f(image / sigma)``: Rician magnitude data -> data with noise close to Gaussian of std ``sigma``.

    ``image`` is a numpy array or torch tensor of magnitudes (``>= 0``) in any shape; the result
    has the same type, shape and dtype.
    """
    return _apply(lambda z: _forward_unit(z, _tables()), image, sigma)


def rician_vst_inverse(estimate, sigma: float):
    """Exact unbiased inverse: the signal ``nu >= 0`` whose ``E[sigma f(z / sigma) | nu]`` equals ``estimate``."""
    tables = _tables()
    expected, nu = tables["expected_forward"], tables["nu"]

    def inverse(d: np.ndarray) -> np.ndarray:
        inside = np.interp(d, expected, nu)
        # above the grid f(z) = z and E[z | nu] = nu + O(1 / nu): continue with slope 1
        return np.where(d > expected[-1], d - expected[-1] + nu[-1], inside)

    return _apply(inverse, estimate, sigma)


# moved to c2s_monai.transforms in 0.7; the old path answers for a release
__getattr__ = moved(__name__, ('RicianVST', 'RicianVSTd'), "c2s_monai.transforms")
