"""Noise-level estimation for magnitude MRI (docs/method.md section 6).

Two global estimators, both returning sigma in the image's own units, on 2D or 3D arrays:

- :func:`estimate_sigma_mad`: wavelet median absolute deviation (Donoho & Johnstone 1994),
  ``sigma = median(|HH|) / 0.6745`` on the finest diagonal detail sub-band, via
  scikit-image's ``estimate_sigma`` (the estimator the C2S paper used). Suited to Gaussian
  noise and to the tissue of magnitude images.
- :func:`estimate_sigma_background`: the Rayleigh background estimator for magnitude
  images: in air the magnitude is Rayleigh with scale sigma, whose median is
  ``sigma * sqrt(2 ln 2)``. Background voxels are found automatically (iteratively, below
  ``cutoff * sigma``) unless a mask is given, and the median is corrected for that
  truncation.

:func:`estimate_sigma` dispatches by name. ``"auto"`` (what ``sigma_data="auto"`` calls) uses
the background estimator when the image looks like a magnitude image with air around the
object (non-negative, a background level below a tenth of the bright tissue, at least 5% of
the voxels in it), and the wavelet MAD otherwise. The MAD alone under-estimates magnitude
images with much air: there the noise is Rayleigh, whose spread is ``0.66 sigma`` (on dipy's
real ``S0_10slices`` scan: MAD 10.1, background 14.6, dipy's PIESNO 14.0).

Multi-coil magnitude and spatially varying noise (docs/method.md section 2 and section 6):

- :func:`estimate_num_coils`: the number of coils ``L`` of a root-sum-of-squares magnitude
  image and its sigma, from the method of moments in the air. There ``m / sigma`` is central
  chi with ``2L`` degrees of freedom (``m^2 / (2 sigma^2) ~ Gamma(L, 1)``), so
  ``E[m]^2 / E[m^2] = Gamma(L + 1/2)^2 / (L Gamma(L)^2)`` depends on ``L`` alone (``pi / 4``
  for Rayleigh, ``-> 1 - 1 / (8L)``); the integer ``L`` nearest to the measured ratio is kept
  and ``sigma = sqrt(E[m^2] / (2L))`` (Aja-Fernandez, Tristan-Vega & Hoge 2011, "Statistical
  noise analysis in GRAPPA using a parametrized noncentral chi approximation model"). The
  background is found as above (iterated, below the 99% quantile of the chi), with both
  moments corrected for that truncation in closed form (regularised incomplete gamma).
- :func:`estimate_noise_map`: a local noise std for spatially varying noise (parallel-imaging
  g-factor, coil sensitivities): the wavelet MAD of :func:`estimate_sigma_mad` made local. The
  finest in-plane diagonal detail of an undecimated orthonormal Haar transform,
  ``d = (x[i, j] - x[i+1, j] - x[i, j+1] + x[i+1, j+1]) / 2``, has std ``sigma`` for white noise
  while smooth anatomy cancels (a second mixed difference); ``median(|d|) / 0.6745`` in blocks
  (8 x 8 in-plane x 4 slices) is the robust local scale, kept in blocks of tissue with an SNR
  above 4 (there magnitude noise is Gaussian to a few per cent: Rician std 0.98 sigma at
  ``nu = 4 sigma``) and, for signed data, in every block. The kept block values become a smooth
  map by normalised convolution (Knutsson & Westin 1993: smooth value x certainty and the
  certainty with the same Gaussian, divide; widened where the certainty is low, so it
  extrapolates into the air), upsampled linearly to the voxel grid. Median absolute
  deviations rather than the local std: edges and texture inflate a few ``d`` per block, which
  the median ignores.
- :func:`detect_noise_model`: ``"gaussian"`` for signed data or data without a noisy air
  background, else ``"rician"`` (``L = 1``) or ``"noncentral_chi"`` from :func:`estimate_num_coils`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from scipy.special import gammainc, gammaincinv, gammaln
from skimage.filters import threshold_otsu
from skimage.restoration import estimate_sigma as _skimage_estimate_sigma

ESTIMATORS = ("auto", "mad", "background")


def _as_numpy(image) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().float().numpy()
    array = np.asarray(image, dtype=np.float64)
    array = np.squeeze(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"noise estimation needs a 2D or 3D image, got shape {np.shape(image)}.")
    if not np.all(np.isfinite(array)):
        raise ValueError("noise estimation needs finite voxels; the image holds NaN or Inf.")
    return array


def estimate_sigma_mad(image) -> float:
    """Wavelet-MAD noise std of a 2D image or 3D volume (scikit-image ``estimate_sigma``).

    For a 3D volume the estimate is the median of the per-slice estimates along the last
    axis, which is robust to slices that hold only air or only edges.
    """
    array = _as_numpy(image)
    if np.ptp(array) <= 0:
        raise ValueError("noise estimation needs a non-constant image.")
    if array.ndim == 2:
        return float(_skimage_estimate_sigma(array, channel_axis=None))
    per_slice = [
        _skimage_estimate_sigma(array[..., k], channel_axis=None)
        for k in range(array.shape[-1])
        if np.ptp(array[..., k]) > 0
    ]
    return float(np.median(per_slice))


def _truncated_rayleigh_median_factor(cutoff: float) -> float:
    """Median of a Rayleigh(1) variable truncated to ``[0, cutoff]``.

    Solves ``1 - exp(-m^2/2) = 0.5 * (1 - exp(-cutoff^2/2))`` for ``m``; ``cutoff -> inf`` gives
    ``sqrt(2 ln 2)``.
    """
    return math.sqrt(-2.0 * math.log(1.0 - 0.5 * (1.0 - math.exp(-(cutoff**2) / 2.0))))


def estimate_sigma_background(image, mask=None, cutoff: float = 3.0, iterations: int = 10) -> float:
    """Rayleigh background estimate ``sigma = median(bg) / sqrt(2 ln 2)`` of a magnitude image.

    Args:
        image: 2D or 3D magnitude image (non-negative).
        mask: optional boolean background mask of the same shape. Without it the background
            is the set of voxels below ``cutoff * sigma``, found by fixed-point iteration
            from the voxels below the Otsu threshold, with the median corrected for the
            truncation at ``cutoff * sigma``.
        cutoff: truncation in units of sigma (3 keeps 98.9% of a Rayleigh background).
        iterations: fixed-point iterations.
    """
    array = _as_numpy(image)
    if mask is not None:
        background = array[np.asarray(mask, dtype=bool).reshape(array.shape)]
        if background.size == 0:
            raise ValueError("the background mask selects no voxel.")
        return float(np.median(background) / math.sqrt(2.0 * math.log(2.0)))
    if np.ptp(array) <= 0:
        raise ValueError("noise estimation needs a non-constant image.")
    factor = _truncated_rayleigh_median_factor(cutoff)
    background = array[array < threshold_otsu(array.ravel())]
    sigma = float(np.median(background) / math.sqrt(2.0 * math.log(2.0)))
    for _ in range(iterations):
        background = array[array < cutoff * sigma]
        if background.size == 0:
            break
        sigma = float(np.median(background) / factor)
    if not sigma > 0:
        raise ValueError(
            "the background estimator found no noisy background (median 0): the image may be "
            "masked or not magnitude data; use the 'mad' estimator or give sigma_data."
        )
    return sigma


def has_noise_background(image, min_fraction: float = 0.05, max_coils: int = 1) -> bool:
    """Whether ``image`` is non-negative with a Rayleigh-like air background (see the module docstring).

    With ``max_coils > 1`` a central chi background of up to that many coils also counts
    (multi-coil magnitude: its level relative to sigma is higher than Rayleigh's, so the
    Rayleigh test can fail): ``L`` and ``sigma`` from :func:`estimate_num_coils` with
    ``sigma < 0.1 x`` the bright tissue, at least ``min_fraction`` of the voxels in it, and its
    voxel-to-voxel spread (the wavelet MAD inside it) that of white chi noise within 25%, so that
    a dark but smooth tissue class does not pass for air. The default (1) is the Rayleigh test
    alone, what ``estimate_sigma("auto")`` uses. A larger volume is judged on evenly spaced
    slices (:func:`sample_slices`).
    """
    array = sample_slices(_as_numpy(image))
    if array.min() < 0 or np.ptp(array) <= 0:
        return False
    bright = np.percentile(array, 99)
    try:
        sigma = estimate_sigma_background(array)
    except ValueError:
        sigma = math.inf
    if sigma < 0.1 * bright and np.mean(array < 3.0 * sigma) >= min_fraction:
        return True
    if max_coils <= 1:
        return False
    try:
        coils, sigma, background = _chi_background(array, max_coils=max_coils)
    except ValueError:
        return False
    if not (sigma < 0.1 * bright and np.mean(background) >= min_fraction):
        return False
    return _white_chi_spread(array, background, coils, sigma)


def _white_chi_spread(array: np.ndarray, background: np.ndarray, coils: int, sigma: float, tolerance: float = 0.25) -> bool:
    """Whether the background varies from voxel to voxel as white chi noise of ``coils`` coils at ``sigma``."""
    from c2s_monai.vst import chi_mean_std

    volume, inside = (array[..., None], background[..., None]) if array.ndim == 2 else (array, background)
    detail = (volume[:-1, :-1] - volume[1:, :-1] - volume[:-1, 1:] + volume[1:, 1:]) / 2
    whole = inside[:-1, :-1] & inside[1:, :-1] & inside[:-1, 1:] & inside[1:, 1:]
    if np.count_nonzero(whole) < 100:
        return False
    spread = float(np.median(np.abs(detail[whole]))) / MAD_TO_STD
    expected = sigma * float(chi_mean_std(0.0, coils)[1])
    return abs(spread / expected - 1) <= tolerance


def estimate_sigma(image, method: str = "auto") -> float:
    """Estimate the noise std of ``image`` with ``method`` in :data:`ESTIMATORS`."""
    if method == "auto":
        method = "background" if has_noise_background(image) else "mad"
    if method == "mad":
        return estimate_sigma_mad(image)
    if method == "background":
        return estimate_sigma_background(image)
    raise ValueError(f"noise estimator must be one of {ESTIMATORS}, got {method!r}.")


# ---------------------------------------------------------------------------- number of coils

BACKGROUND_QUANTILE = 0.99  # the background is truncated at this quantile of the central chi


def _chi_ratio(num_coils: np.ndarray) -> np.ndarray:
    """``E[m]^2 / E[m^2] = Gamma(L + 1/2)^2 / (L Gamma(L)^2)`` of the central chi with ``2L`` degrees of freedom."""
    return np.exp(2 * (gammaln(num_coils + 0.5) - gammaln(num_coils))) / num_coils


def _truncated_chi_moments(num_coils: np.ndarray, quantile: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cutoff ``c`` (the chi's ``quantile``, sigma = 1) and ``E[m | m < c]``, ``E[m^2 | m < c]``.

    ``m^2 / 2 ~ Gamma(L, 1)``, so ``E[m^k 1(m < c)] = 2^(k/2) Gamma(L + k/2) / Gamma(L) P(L + k/2, c^2 / 2)``.
    """
    half_square = gammaincinv(num_coils, quantile)
    first = math.sqrt(2) * np.exp(gammaln(num_coils + 0.5) - gammaln(num_coils)) * gammainc(num_coils + 0.5, half_square) / quantile
    second = 2 * num_coils * gammainc(num_coils + 1, half_square) / quantile
    return np.sqrt(2 * half_square), first, second


def _chi_background(array: np.ndarray, mask=None, max_coils: int = 32, iterations: int = 20) -> tuple[int, float, np.ndarray]:
    """``(L, sigma, background mask)`` of a magnitude image (see :func:`estimate_num_coils`)."""
    if int(max_coils) < 1:
        raise ValueError(f"max_coils must be >= 1, got {max_coils!r}.")
    candidates = np.arange(1, int(max_coils) + 1, dtype=np.float64)
    if mask is not None:
        background = np.asarray(mask, dtype=bool).reshape(array.shape)
        values = array[background]
        if values.size < 2 or not np.mean(values**2) > 0:
            raise ValueError("the background mask selects fewer than two voxels or only zeros.")
        ratio = np.mean(values) ** 2 / np.mean(values**2)
        coils = int(candidates[np.argmin(np.abs(_chi_ratio(candidates) - ratio))])
        return coils, float(np.sqrt(np.mean(values**2) / (2 * coils))), background
    if np.ptp(array) <= 0:
        raise ValueError("noise estimation needs a non-constant image.")
    cutoffs, first, second = _truncated_chi_moments(candidates, BACKGROUND_QUANTILE)
    truncated_ratio = first**2 / second
    # Edge voxels (partial volume: a little signal) inflate the spread and lower the ratio; keeping
    # only voxels whose in-plane neighbours are background too removes them without biasing the
    # noise of the kept voxels (independent of the neighbours' noise).
    structure = np.ones((3, 3) + (1,) * (array.ndim - 2), dtype=bool)
    threshold = float(threshold_otsu(array.ravel()))
    coils, sigma, background = 1, 0.0, array < threshold
    for _ in range(iterations):
        core = ndimage.binary_erosion(background, structure) if np.count_nonzero(background) > 0 else background
        values = array[core] if np.count_nonzero(core) >= 100 else array[background]
        if values.size < 2 or not np.mean(values**2) > 0:
            raise ValueError(
                "found no noisy background (air) to estimate the number of coils from: the image may be masked or not magnitude data."
            )
        ratio = np.mean(values) ** 2 / np.mean(values**2)
        index = int(np.argmin(np.abs(truncated_ratio - ratio)))
        new_coils, new_sigma = index + 1, float(np.sqrt(np.mean(values**2) / second[index]))
        new_background = array < cutoffs[index] * new_sigma
        converged = new_coils == coils and abs(new_sigma - sigma) <= 1e-6 * new_sigma
        coils, sigma, background = new_coils, new_sigma, new_background
        if converged:
            break
    return coils, sigma, background


# Background statistics of a larger volume are measured on evenly spaced slices of it (they need
# many voxels, not all of them): the same moments, a fraction of the time.
SAMPLED_VOXELS = 2**20


def sample_slices(array: np.ndarray, max_voxels: int = SAMPLED_VOXELS) -> np.ndarray:
    """``array`` (2D, or 3D with slices last), or evenly spaced slices of it holding about ``max_voxels`` voxels."""
    if array.ndim != 3 or array.size <= max_voxels:
        return array
    count = max(1, max_voxels // (array.shape[0] * array.shape[1]))
    return array[..., np.unique(np.linspace(0, array.shape[-1] - 1, count).round().astype(int))]


def estimate_num_coils(image, mask=None, max_coils: int = 32) -> tuple[int, float]:
    """Number of coils ``L`` and noise std ``sigma`` of a root-sum-of-squares magnitude image, from its air.

    Method of moments on the background (module docstring): ``E[m]^2 / E[m^2]`` picks the integer
    ``L`` in ``[1, max_coils]``, then ``sigma = sqrt(E[m^2] / (2L))``. Without ``mask`` the
    background is found by fixed-point iteration from the voxels below the Otsu threshold: those
    below the 99% quantile of the chi (``L``, ``sigma``), eroded by one voxel in-plane, with both
    moments corrected for the truncation; a volume of more than :data:`SAMPLED_VOXELS` voxels is
    measured on evenly spaced slices (:func:`sample_slices`). A given boolean ``mask`` (the air) is used as it is,
    untruncated. ``L = 1`` is Rician data; GRAPPA-like reconstructions give an effective ``L``.
    """
    array = _as_numpy(image)
    coils, sigma, _ = _chi_background(array if mask is not None else sample_slices(array), mask, max_coils)
    return coils, sigma


# ---------------------------------------------------------------------------- local noise map

MAD_TO_STD = 0.6745  # median(|n|) of a standard normal
# A magnitude block is air when its median is within this factor of white chi noise's median for its spread.
AIR_MARGIN = 1.3


def _block_starts(size: int, block: int) -> np.ndarray:
    """Starts of blocks of ``block`` covering ``range(size)``; the last one ends at ``size`` (it may overlap)."""
    if size <= block:
        return np.zeros(1, dtype=int)
    starts = np.arange(0, size - block + 1, block)
    return starts if starts[-1] + block == size else np.append(starts, size - block)


def _block_median(values: np.ndarray, starts: tuple[np.ndarray, ...], sizes: tuple[int, ...]) -> np.ndarray:
    """Median of ``values`` over each block ``starts[a][k] : starts[a][k] + sizes[a]`` on every axis."""
    gathered = values
    for axis, (start, size) in enumerate(zip(starts, sizes)):
        index = (start[:, None] + np.arange(size)[None, :]).ravel()
        gathered = np.take(gathered, index, axis=2 * axis)
        gathered = gathered.reshape(gathered.shape[: 2 * axis] + (start.size, size) + gathered.shape[2 * axis + 1 :])
    # axes are now (n0, s0, n1, s1, n2, s2): bring the block sizes last
    gathered = gathered.transpose(0, 2, 4, 1, 3, 5).reshape(starts[0].size, starts[1].size, starts[2].size, -1)
    return np.median(gathered, axis=-1)


def _upsample_axis(grid: np.ndarray, centres: np.ndarray, size: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``grid`` (values at ``centres`` along ``axis``) onto ``0 .. size - 1``, constant outside."""
    if centres.size == 1:
        return np.repeat(grid, size, axis=axis)
    position = np.interp(np.arange(size), centres, np.arange(centres.size))
    low = np.minimum(np.floor(position).astype(int), centres.size - 2)
    weight = (position - low).reshape((-1,) + (1,) * (grid.ndim - axis - 1))
    return np.take(grid, low, axis=axis) * (1 - weight) + np.take(grid, low + 1, axis=axis) * weight


def _magnitude_spread_correction(level: np.ndarray, scale: np.ndarray, num_coils: int) -> np.ndarray:
    """``sigma`` of blocks of magnitude data whose std is ``scale`` and mean ``level``: ``scale / (std[m | nu] / sigma)``.

    ``nu / sigma`` from ``level / scale = E[m | nu] / std[m | nu]`` (increasing in ``nu``).
    """
    from c2s_monai.vst import chi_mean_std

    nu = np.linspace(0.0, 60.0, 2401)
    mean, std = chi_mean_std(nu, num_coils)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(scale > 0, level / scale, np.inf)
    relative_std = np.interp(snr, mean / std, std, left=std[0], right=1.0)
    return scale / relative_std


def _normalised_convolution(values: np.ndarray, certainty: np.ndarray, width: float, min_certainty: float = 0.5) -> np.ndarray:
    """Knutsson & Westin's normalised convolution, widened by factors of two where the certainty is low.

    ``G * (values certainty) / G * certainty`` with a Gaussian of std ``width`` (block units; not
    along axes of one block); where ``G * certainty`` falls below ``min_certainty`` of what a
    full certainty gives there (less at the borders), the result blends into the same at twice
    the width, down to the certainty-weighted mean of all values.
    """
    fallback = float(np.sum(values * certainty) / np.sum(certainty))
    scales = []
    scale = width
    while scale < 2 * max(values.shape):
        scales.append(scale)
        scale *= 2
    result = np.full(values.shape, fallback)
    ones = np.ones_like(certainty)
    for scale in reversed(scales):  # coarse to fine
        widths = [scale if n > 1 else 0.0 for n in values.shape]
        weight = ndimage.gaussian_filter(certainty, widths, mode="constant")
        smooth = ndimage.gaussian_filter(values * certainty, widths, mode="constant") / np.maximum(weight, 1e-12)
        attainable = ndimage.gaussian_filter(ones, widths, mode="constant")
        alpha = np.clip(weight / (min_certainty * attainable), 0.0, 1.0)
        result = alpha * smooth + (1 - alpha) * result
    return result


def estimate_noise_map(
    image,
    mask=None,
    magnitude: bool | None = None,
    block: tuple[int, int] = (8, 4),
    min_snr: float = 4.0,
    smoothing: float = 1.5,
    num_coils: int = 1,
) -> np.ndarray:
    """A smooth per-voxel noise std of a 2D image or 3D volume (slices along the last axis).

    The local wavelet MAD fitted as a smooth map (module docstring): per block of
    ``block[0] x block[0]`` in-plane voxels x ``block[1]`` slices, ``median(|HH|) / 0.6745``;
    blocks kept where the image is tissue (block median above ``min_snr`` times the block's
    scale) when ``magnitude`` (default: the image is non-negative), every block for signed data;
    and, with ``mask`` (boolean, the image's shape), only blocks at least half inside it. The
    magnitude block values are corrected for the magnitude's smaller spread at finite SNR:
    ``scale = sigma std[m | nu] / sigma`` of the noncentral chi of ``num_coils`` coils, ``nu`` from
    the block's ``median / scale`` (at most 2% for Rician data at the SNR of 4). The
    kept values are smoothed by normalised convolution (a Gaussian of ``smoothing`` blocks,
    wider where few blocks were kept, which fills the air) and interpolated to the voxels.

    Returns a float64 array of the squeezed image's shape, finite and ``> 0`` everywhere, in the
    image's units. Raises ``ValueError`` for an image without noise (all details zero).
    """
    array = _as_numpy(image)
    squeezed_shape = array.shape
    volume = array[..., None] if array.ndim == 2 else array
    height, width, depth = volume.shape
    if height < 3 or width < 3:
        raise ValueError(f"the noise map needs at least 3 x 3 voxels in-plane, got shape {squeezed_shape}.")
    in_plane, through = int(block[0]), int(block[1])
    detail = np.abs(volume[:-1, :-1] - volume[1:, :-1] - volume[:-1, 1:] + volume[1:, 1:]) / 2
    sizes = (min(in_plane, height - 1), min(in_plane, width - 1), min(through, depth))
    starts = tuple(_block_starts(n, s) for n, s in zip(detail.shape, sizes))
    scale = _block_median(detail, starts, sizes) / MAD_TO_STD
    level = _block_median(volume[:-1, :-1], starts, sizes)
    if magnitude is None:
        magnitude = bool(array.min() >= 0)
    keep = scale > 0
    air = np.zeros_like(keep)
    if magnitude:
        tissue = keep & (level > min_snr * scale)
        # air: blocks whose median is what white chi noise alone gives for their spread (Rayleigh: median / std = 1.8);
        # there sigma comes from the magnitude itself, median(m^2) = 2 sigma^2 P^-1(L, 1/2), not from the tissue around
        from c2s_monai.vst import chi_mean_std

        air_ratio = math.sqrt(2 * gammaincinv(num_coils, 0.5)) / float(chi_mean_std(0.0, num_coils)[1])
        air = keep & (level < AIR_MARGIN * air_ratio * scale)
        air_sigma = np.sqrt(_block_median(volume[:-1, :-1] ** 2, starts, sizes) / (2 * gammaincinv(num_coils, 0.5)))
        keep = (tissue | air) if np.count_nonzero(tissue) >= 4 else keep  # no tissue at that SNR: use every block
    if mask is not None:
        inside = np.asarray(mask, dtype=np.float64).reshape(squeezed_shape)
        inside = inside[..., None] if inside.ndim == 2 else inside
        keep &= _block_median(inside[:-1, :-1], starts, sizes) >= 0.5
    if magnitude:
        corrected = _magnitude_spread_correction(level, scale, num_coils)
        scale = np.where(keep & air, air_sigma, np.where(keep, corrected, scale))
    if not np.any(keep):
        raise ValueError("the noise map found no block with noise (all wavelet details zero, or none in the mask).")
    smooth = _normalised_convolution(np.where(keep, scale, 0.0), keep.astype(np.float64), smoothing)
    # block centres in voxel coordinates: d[i] sits between voxels i and i + 1
    noise_map = smooth
    for axis, (start, size, n) in enumerate(zip(starts, sizes, (height, width, depth))):
        centre = start + (size / 2 if axis < 2 else (size - 1) / 2)
        noise_map = _upsample_axis(noise_map, centre.astype(np.float64), n, axis)
    floor = 1e-3 * float(np.median(scale[keep]))
    return np.maximum(noise_map, floor).reshape(squeezed_shape)


# ---------------------------------------------------------------------------- noise model


@dataclass(frozen=True)
class NoiseModelChoice:
    """What :func:`detect_noise_model` found: the model, its number of coils and why (a sentence for the report)."""

    noise_model: str  # "gaussian", "rician" or "noncentral_chi"
    num_coils: int
    reason: str
    sigma: float = 0.0  # the background's level (magnitude models), in the image's units; 0 where none was measured


def detect_noise_model(image) -> NoiseModelChoice:
    """Gaussian, Rician or noncentral chi from the image alone (module docstring).

    Signed values -> ``"gaussian"``; a non-negative image without a noisy air background
    (:func:`has_noise_background`) -> ``"gaussian"`` (the Gaussian approximation,
    docs/method.md section 2); otherwise ``L`` from :func:`estimate_num_coils`:
    ``"rician"`` for ``L = 1``, ``"noncentral_chi"`` above.
    """
    array = sample_slices(_as_numpy(image))
    if array.min() < 0:
        return NoiseModelChoice("gaussian", 1, f"gaussian: signed values (min {array.min():.3g})")
    if not has_noise_background(array, max_coils=32):
        return NoiseModelChoice("gaussian", 1, "gaussian: no noisy background found (non-negative data, Gaussian approximation)")
    try:
        coils, sigma, background = _chi_background(array)
    except ValueError:
        return NoiseModelChoice("gaussian", 1, "gaussian: no noisy background found (its moments could not be measured)")
    share = float(np.mean(background))
    if coils == 1:
        return NoiseModelChoice(
            "rician", 1, f"rician: non-negative magnitude with a Rayleigh-like background (L = 1 estimated from its moments, {share:.0%} of voxels)",
            sigma,
        )
    return NoiseModelChoice(
        "noncentral_chi",
        coils,
        f"noncentral_chi: non-negative magnitude with a central-chi background (L = {coils} coils estimated from its moments, {share:.0%} of voxels)",
        sigma,
    )
