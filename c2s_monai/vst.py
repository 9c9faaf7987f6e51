"""Variance-stabilising transform (VST) for magnitude MRI, Rician and noncentral chi, with its exact unbiased inverse.

The third way to handle magnitude data (``docs/method.md`` section 2; Foi 2011, "Noise
estimation and removal in MR imaging: the variance-stabilization approach", ISBI): map the
magnitude ``z`` to ``f(z)`` whose noise is close to Gaussian with std ``sigma`` at every signal
level ``nu``, denoise that as Gaussian data, and map the estimate back with the exact unbiased
inverse.

The magnitude model is the root-sum-of-squares of ``L`` coils (``num_coils``; ``2L`` degrees of
freedom, the signal in one channel): ``z = sqrt((nu + sigma n_1)^2 + sigma^2 (n_2^2 + ... +
n_{2L}^2))``, noncentral chi; ``L = 1`` is the Rician magnitude ``|nu + sigma (n_r + i n_i)|``.
Everything is computed in units of ``sigma`` (the family is scale invariant) on a grid of ``nu``.
The moments (Koay & Basser 2006; Aja-Fernandez, Tristan-Vega & Hoge 2011) are

    E[z | nu]   = sqrt(pi / 2) * beta_L * 1F1(-1/2; L; -nu^2 / 2),
    beta_L      = (2L - 1)!! / (2^(L - 1) (L - 1)!),
    E[z^2 | nu] = 2L + nu^2,   Var[z | nu] = 2L + nu^2 - E[z | nu]^2,

(for ``L = 1``: ``1F1(-1/2; 1; -t) = L_{1/2}(-t) = exp(-t / 2) ((1 + t) I0(t / 2) + t I1(t / 2))``),
so ``Var`` falls from ``1`` (high SNR, where ``E[z | nu] -> sqrt(nu^2 + 2L - 1)``) to
``2L - E[z | 0]^2`` in the background, whose mean is ``E[z | 0] = sqrt(2) Gamma(L + 1/2) / Gamma(L)``
(central chi; Rayleigh ``sqrt(pi / 2)`` for ``L = 1``, larger for ``L > 1``). The density is

    p(z | nu) = z^L nu^(1 - L) exp(-(z^2 + nu^2) / 2) I_{L-1}(z nu),   p(z | 0) ∝ z^(2L-1) exp(-z^2 / 2).

- Forward: the delta-method VST ``f'(E[z | nu]) = 1 / std[z | nu]`` integrated over the
  grid, offset so that ``f(z) = z`` at high SNR (where the noise already is Gaussian with
  std ``sigma``); below the background mean it continues with the slope at ``nu = 0``. This is
  Foi's construction before his numerical optimisation of ``f`` at very low SNR.
- Inverse: a denoiser of ``f(z)`` estimates ``E[f(z) | nu]``, not ``f(nu)``; the exact unbiased
  inverse (Makitalo & Foi 2011) maps an estimate ``D`` to the ``nu`` with
  ``E[f(z) | nu] = D``, the expectation computed by quadrature over the density above. Beyond
  the grid (``nu > NU_MAX``) it uses ``E[f(z) | nu] ~ E[z | nu] ~ sqrt(nu^2 + 2L - 1)``.
  ``E[f(z) | nu]`` is smallest at ``nu = 0`` and flat there (it grows with ``nu^2``): an estimate
  ``D`` below ``E[f(z) | 0]`` gives ``nu = 0``, so the output is a magnitude, never negative. The
  price is a small positive level in the air, where ``D`` scatters about ``E[f(z) | 0]`` (about
  ``0.6 sqrt(s)`` sigma for a residual spread ``s``; measured in docs/benchmarks.md, "Magnitude
  data with the default settings"). Mirroring the inverse below ``E[f(z) | 0]`` would remove that
  level where sigma is right, but turns a sigma too large in the air (a map or a level taken from
  the tissue, an air masked to zero) into a strongly negative background (-1.8 to -2.0 sigma in
  the parallel-imaging benchmark), so the inverse stays the standard one.

The tables are built once per ``L`` (cached). ``sigma`` may be a scalar or a per-voxel noise map
broadcastable to the image (spatially varying noise: parallel imaging, coil sensitivities, see
:func:`c2s_monai.estimation.estimate_noise_map`); the transform is ``sigma * f(z / sigma)``
voxel by voxel. ``L`` and the map come from :mod:`c2s_monai.estimation` (``estimate_num_coils``,
``detect_noise_model``; docs/method.md section 6).

In the package: :func:`c2s_monai.noise_level.stabilise` and ``unstabilise`` apply them for the
magnitude ``noise_model`` s (``"auto"`` on magnitude data, ``"rician"``, ``"noncentral_chi"``) in
training (:class:`~c2s_monai.transforms.ResolveNoiseLeveld`) and in :class:`~c2s_monai.inferers.C2SInferer`. Training and denoising must agree:
:func:`c2s_monai.train` records the setting beside the weights and :func:`c2s_monai.denoise`
follows it. Measured in docs/benchmarks.md (full benchmark, Rician 6%).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from scipy.special import gammaln, hyp1f1, i0e, i1e, ive

from c2s_monai.compat import moved

NU_MAX = 48.0  # in units of sigma: above it the magnitude is Gaussian to 1e-3 and f(z) = z
_NU_STEP = 1 / 32
_Z_STEP = 1 / 64
_ASYMPTOTIC_NU = 60.0  # above it E[z | nu] from the asymptotic series of 1F1 (its terms fall as (k / nu)^2)


def _check_num_coils(num_coils) -> int:
    if isinstance(num_coils, bool) or int(num_coils) != num_coils or int(num_coils) < 1:
        raise ValueError(f"num_coils must be an integer >= 1 (1 = Rician), got {num_coils!r}.")
    return int(num_coils)


def _log_beta(num_coils: int) -> float:
    """``log beta_L = log(2 Gamma(L + 1/2) / (sqrt(pi) Gamma(L)))``, the closed form of ``(2L-1)!! / (2^(L-1) (L-1)!)``."""
    return math.log(2.0) + float(gammaln(num_coils + 0.5) - gammaln(num_coils)) - 0.5 * math.log(math.pi)


def _asymptotic_mean(nu: np.ndarray, num_coils: int, terms: int = 8) -> np.ndarray:
    """``E[z | nu] = nu * sum_k (-1/2)_k (1/2 - L)_k / k! (nu^2 / 2)^-k`` (large-argument series of 1F1)."""
    x = nu**2 / 2
    term = np.ones_like(nu)
    total = np.ones_like(nu)
    for k in range(terms):
        term = term * (-0.5 + k) * (0.5 - num_coils + k) / ((k + 1) * x)
        total = total + term
    return nu * total


def chi_mean_std(nu, num_coils: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``E[z | nu]`` and ``std[z | nu]`` of the noncentral chi magnitude of ``num_coils`` coils with ``sigma = 1``.

    The closed forms of the module docstring; ``num_coils = 1`` is the Rician
    (:func:`rician_mean_std`). Above ``nu = 60`` the mean comes from the asymptotic series of
    ``1F1`` (scipy's ``hyp1f1`` is accurate to ~1e-15 below it).
    """
    num_coils = _check_num_coils(num_coils)
    nu = np.abs(np.asarray(nu, dtype=np.float64))
    large = nu > _ASYMPTOTIC_NU
    with np.errstate(all="ignore"):
        closed = math.sqrt(math.pi / 2) * math.exp(_log_beta(num_coils)) * hyp1f1(-0.5, num_coils, -(np.where(large, 0.0, nu) ** 2) / 2)
        asymptotic = _asymptotic_mean(np.where(large, nu, _ASYMPTOTIC_NU), num_coils)
    mean = np.where(large | ~np.isfinite(closed), asymptotic, closed)
    variance = np.maximum(2 * num_coils + nu**2 - mean**2, 0.0)
    return mean, np.sqrt(variance)


def rician_mean_std(nu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``E[z | nu]`` and ``std[z | nu]`` of the Rician magnitude with ``sigma = 1``: :func:`chi_mean_std` with one coil."""
    return chi_mean_std(nu, 1)


def chi_log_density(z: np.ndarray, nu: np.ndarray, num_coils: int = 1) -> np.ndarray:
    """``log p(z | nu)`` up to a constant per ``nu`` (``sigma = 1``), broadcast over ``z`` and ``nu``.

    ``z^L exp(-(z - nu)^2 / 2) ive(L - 1, z nu)`` (``ive(v, x) = exp(-x) I_v(x)``; the factor
    ``nu^(1 - L) exp(...)`` constant in ``z`` is dropped), and the central chi
    ``z^(2L - 1) exp(-z^2 / 2)`` at ``nu = 0``. Normalise over ``z`` before use.
    """
    num_coils = _check_num_coils(num_coils)
    z, nu = np.broadcast_arrays(np.asarray(z, dtype=np.float64), np.asarray(nu, dtype=np.float64))
    with np.errstate(divide="ignore"):
        bessel = {1: i0e, 2: i1e}.get(num_coils, lambda x: ive(num_coils - 1, x))(z * nu)  # scipy's ive is ~10x slower
        noncentral = num_coils * np.log(z) - (z - nu) ** 2 / 2 + np.log(bessel)
        central = (2 * num_coils - 1) * np.log(z) - z**2 / 2
    return np.where(nu > 0, noncentral, central)


@lru_cache(maxsize=8)
def _tables(num_coils: int = 1) -> dict[str, np.ndarray]:
    """The forward map on a grid of means and ``E[f(z) | nu]`` on a grid of ``nu`` (``sigma = 1``)."""
    nu = np.arange(0.0, NU_MAX + _NU_STEP / 2, _NU_STEP)
    mean, std = chi_mean_std(nu, num_coils)
    inverse_std = 1 / std
    forward = np.concatenate([[0.0], np.cumsum(np.diff(mean) * (inverse_std[1:] + inverse_std[:-1]) / 2)])
    forward += mean[-1] - forward[-1]  # f(z) = z at high SNR
    tables = {"mean": mean, "forward": forward, "slope_at_zero": np.array(inverse_std[0]), "num_coils": np.array(num_coils)}
    # z reaches past NU_MAX by the spread of the chi: its mean shift (2L - 1) / (2 NU_MAX) and 12 stds
    z = np.arange(_Z_STEP / 2, NU_MAX + 12 + math.sqrt(2 * num_coils), _Z_STEP)
    f_of_z = _forward_unit(z, tables)
    # quadrature over a band of z around each nu (the density is below 1e-30 of its peak outside it)
    low = np.searchsorted(z, nu - 12.0)
    width = int(math.ceil((24.0 + math.sqrt(2 * num_coils)) / _Z_STEP))
    index = low[:, None] + np.arange(width)[None, :]
    inside = index < z.size
    index = np.minimum(index, z.size - 1)
    log_density = chi_log_density(z[index], nu[:, None], num_coils)
    density = np.where(inside, np.exp(log_density - log_density.max(axis=1, keepdims=True)), 0.0)
    density /= density.sum(axis=1, keepdims=True)
    tables["nu"] = nu
    tables["expected_forward"] = np.sum(density * f_of_z[index], axis=1)
    return tables


def _forward_unit(z: np.ndarray, tables: dict[str, np.ndarray]) -> np.ndarray:
    mean, forward = tables["mean"], tables["forward"]
    inside = np.interp(z, mean, forward)
    below = forward[0] + tables["slope_at_zero"] * (z - mean[0])
    return np.where(z < mean[0], below, np.where(z > mean[-1], z, inside))  # f(z) = z above the grid


def _inverse_unit(d: np.ndarray, tables: dict[str, np.ndarray]) -> np.ndarray:
    expected, nu = tables["expected_forward"], tables["nu"]
    d = np.asarray(d, dtype=np.float64)
    result = np.asarray(np.interp(d, expected, nu))
    # above the grid f(z) = z and E[z | nu] ~ sqrt(nu^2 + 2L - 1): invert that, continuous at the grid's end
    high = d > expected[-1]
    if high.any():
        shift = 2 * float(tables["num_coils"]) - 1
        result[high] = np.sqrt(np.maximum(d[high] ** 2 - shift, 0.0)) + nu[-1] - math.sqrt(expected[-1] ** 2 - shift)
    # below E[f | 0] np.interp gives nu = 0: a magnitude estimate is never negative (module docstring)
    return result


def _sigma_array(sigma, shape: tuple[int, ...]) -> np.ndarray:
    """``sigma`` as float64 numpy, checked: finite, ``> 0`` everywhere, broadcastable to ``shape``."""
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.detach().cpu().double().numpy()
    array = np.asarray(sigma, dtype=np.float64)
    if array.size == 0:
        raise ValueError("the magnitude VST needs sigma > 0, got an empty sigma.")
    if not np.all(np.isfinite(array)) or not np.all(array > 0):
        bad = int(np.sum(~(np.isfinite(array) & (array > 0))))
        shown = repr(float(array)) if array.ndim == 0 else f"{bad} of {array.size} values that are not (NaN, Inf, <= 0)"
        raise ValueError(f"the magnitude VST needs sigma > 0 and finite everywhere, got {shown}.")
    try:
        if np.broadcast_shapes(shape, array.shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"sigma of shape {array.shape} does not broadcast to the image's shape {tuple(shape)}.") from None
    return array


def _apply(function, image, sigma):
    if isinstance(image, torch.Tensor):
        scale = _sigma_array(sigma, tuple(image.shape))
        result = function(image.detach().cpu().double().numpy() / scale) * scale
        return torch.as_tensor(result, dtype=image.dtype, device=image.device)
    image = np.asarray(image)
    scale = _sigma_array(sigma, image.shape)
    result = function(image.astype(np.float64) / scale) * scale
    return result.astype(image.dtype) if np.issubdtype(image.dtype, np.floating) else result


def magnitude_vst(image, sigma, num_coils: int = 1):
    """``sigma * f(image / sigma)``: noncentral chi magnitude of ``num_coils`` coils -> noise close to Gaussian of std ``sigma``.

    ``image`` is a numpy array or torch tensor of magnitudes (``>= 0``) in any shape; the result
    has the same type, shape, dtype (and device). ``sigma`` is the per-channel noise std: a scalar
    or a per-voxel map (array or tensor broadcastable to ``image``), finite and ``> 0``.
    """
    tables = _tables(_check_num_coils(num_coils))
    return _apply(lambda z: _forward_unit(z, tables), image, sigma)


def magnitude_vst_inverse(estimate, sigma, num_coils: int = 1):
    """Exact unbiased inverse: the signal ``nu >= 0`` whose ``E[sigma f(z / sigma) | nu]`` equals ``estimate``.

    Same types and ``sigma`` (scalar or per-voxel map) as :func:`magnitude_vst`.
    """
    tables = _tables(_check_num_coils(num_coils))
    return _apply(lambda d: _inverse_unit(d, tables), estimate, sigma)


def expected_forward_at_zero(num_coils: int = 1) -> float:
    """``E[f(m) | nu = 0]`` in units of sigma: what a perfect denoiser of the stabilised image gives in air (the inverse maps it to 0)."""
    return float(_tables(_check_num_coils(num_coils))["expected_forward"][0])


def rician_vst(image, sigma):
    """``sigma * f(image / sigma)`` for Rician magnitude data: :func:`magnitude_vst` with one coil."""
    return magnitude_vst(image, sigma, 1)


def rician_vst_inverse(estimate, sigma):
    """Exact unbiased inverse of :func:`rician_vst`: :func:`magnitude_vst_inverse` with one coil."""
    return magnitude_vst_inverse(estimate, sigma, 1)


# moved to c2s_monai.transforms in 0.7; the old path answers for a release
__getattr__ = moved(__name__, ('RicianVST', 'RicianVSTd'), "c2s_monai.transforms")
