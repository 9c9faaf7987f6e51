"""Volumetric context: the third dimension of a volume, for the network and for its checks.

C2S denoises a volume slice by slice; *2.5D context* gives the network, beside the target
slice ``z``, the ``K`` slices on each side of it as extra input channels (docs/method.md section 5,
"Volumetric context"). Their noise is independent of the target's (one acquisition, no
interpolation across slices), so they act as guide channels: only the target is
re-corrupted, and GDSM's minimiser is the posterior mean of the clean target given the
re-corrupted target *and* its noisy neighbours, ``E[x0(z) | y(z), y(z-K..z+K)]``; at
inference ``tau = 0`` and it denoises with the whole neighbourhood.

Channel order (per contrast, contrasts in their configured order, the target contrast first)::

    [z, z-K, ..., z-1, z+1, ..., z+K]          (:func:`context_offsets`)

so channel 0 is always the target slice of the target contrast.

Edge handling (:func:`context_indices`): a neighbour beyond the end of the volume is
reflected about the end slice (``-1 -> 1``, ``D -> D - 2``), which keeps every neighbour a
*different* slice from the target, so its noise stays independent; in a volume thinner than
the context, the reflection is repeated and, where it lands on the target itself, the
nearest other slice is used. A single 2D image (one slice) has no neighbour at all: a
context network then denoises it with its context channels set to zero, which it learned
in training (:class:`RandDropContextd`, context dropout), and the run records the fallback.

The slice axis (:func:`resolve_slice_axis`) is, by default, the spatial axis of largest
voxel spacing (a multi-slice scan's slice direction), the last axis when the spacings tie.

The independence of the noise across slices is what the method needs, and interpolated,
resampled or zero-filled data breaks it: :func:`noise_correlation` measures the correlation
of the noise between neighbouring voxels along every axis from the data itself, and
:func:`check_noise_independence` warns above :data:`NOISE_CORRELATION_THRESHOLD`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from c2s_monai import defaults
from c2s_monai.compat import moved
from c2s_monai.errors import InputError, input_name

logger = logging.getLogger(__name__)

# The defaults (c2s_monai.defaults), under the names this module has exported since 0.6.0.
DEFAULT_CONTEXT_SLICES = defaults.AUTO_CONTEXT_SLICES
DEFAULT_CONTEXT_DROPOUT = defaults.CONTEXT_DROPOUT
AUTO = defaults.AUTO
SPATIAL_DIMS = (2, 3)
# Noise correlation between neighbouring voxels above which the guides' noise is taken as
# dependent (interpolated, resampled or zero-filled data): i.i.d. noise measures 0.01-0.05.
NOISE_CORRELATION_THRESHOLD = 0.2


def check_context_slices(value) -> int | str:
    """Validate a ``context_slices`` setting: ``"auto"`` or an integer ``K >= 0`` (0: slice by slice, 2D)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        number = None if isinstance(value, bool) else int(value)
        valid = number is not None and number == float(value) and number >= 0
    except (TypeError, ValueError):
        valid = False
    if not valid or number is None:
        raise InputError(f"context_slices must be 'auto' or an integer >= 0 (slices on each side of the target), got {value!r}.")
    return number


def context_count(value) -> int:
    """``K`` of a ``context_slices`` setting (``"auto"``: :data:`DEFAULT_CONTEXT_SLICES`)."""
    value = check_context_slices(value)
    return DEFAULT_CONTEXT_SLICES if value == AUTO else int(value)


def check_spatial_dims(value) -> int:
    """Validate ``spatial_dims``: 2 (slices, optionally with context) or 3 (native 3D)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number not in SPATIAL_DIMS or isinstance(value, bool):
        raise InputError(f"spatial_dims must be 2 (slice by slice, with context_slices) or 3 (native 3D), got {value!r}.")
    return number


def model_context_slices(spatial_dims, context_slices) -> int:
    """The ``K`` a network is built with: ``context_slices`` for a 2D network, 0 for a 3D one.

    A 3D network sees the whole neighbourhood through its 3D convolutions; an explicit
    ``context_slices > 0`` with ``spatial_dims=3`` is refused, ``"auto"`` means 0 there.
    """
    if check_spatial_dims(spatial_dims) == 3:
        value = check_context_slices(context_slices)
        if value not in (AUTO, 0):
            raise InputError(f"context_slices={value} is for 2D networks (spatial_dims 2); a 3D network sees its neighbours natively.")
        return 0
    return context_count(context_slices)


def context_offsets(context_slices: int) -> list[int]:
    """Slice offsets of the context channels, target first: ``[0, -K, ..., -1, 1, ..., K]``."""
    k = int(context_slices)
    return [0, *range(-k, 0), *range(1, k + 1)]


def context_indices(depth: int, context_slices: int) -> torch.Tensor:
    """``(depth, 2K + 1)`` slice indices of each slice's context (see the module docstring for the edges).

    Row ``z`` is ``z + context_offsets(K)`` with out-of-range indices reflected about the end
    slices (repeatedly, for a volume thinner than the context) and any neighbour that lands
    on ``z`` itself moved to the nearest other slice, so that for ``depth >= 2`` no neighbour
    is the target. For ``depth == 1`` every entry is 0 (the caller falls back to 2D).
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}.")
    offsets = torch.tensor(context_offsets(context_slices), dtype=torch.long)
    z = torch.arange(depth, dtype=torch.long)[:, None]
    index = z + offsets[None, :]
    if depth == 1:
        return torch.zeros_like(index)
    period = 2 * (depth - 1)
    index = index % period
    index = torch.where(index >= depth, period - index, index)
    nearest_other = torch.where(z + 1 < depth, z + 1, z - 1).expand_as(index)
    same = index == z
    same[:, 0] = False
    return torch.where(same, nearest_other, index)


def voxel_spacing(affine) -> list[float] | None:
    """Voxel spacing of the three spatial axes from a ``(4, 4)`` affine (``None`` if missing or degenerate)."""
    if affine is None:
        return None
    matrix = np.asarray(torch.as_tensor(affine).detach().cpu().double())
    if matrix.shape != (4, 4):
        return None
    spacing = np.linalg.norm(matrix[:3, :3], axis=0)
    return [float(s) for s in spacing] if np.all(np.isfinite(spacing)) and np.all(spacing > 0) else None


def image_affine(image):
    """The affine of a MONAI image (``MetaTensor.affine`` or ``meta["affine"]``), ``None`` if it has none."""
    meta = getattr(image, "meta", None) or {}
    affine = meta.get("affine")
    return affine if affine is not None else None


def check_slice_axis(setting) -> int | str:
    """Validate a ``slice_axis`` setting: ``"auto"`` or a spatial axis 0, 1, 2 (-1 for the last)."""
    if isinstance(setting, str) and setting.strip().lower() == AUTO:
        return AUTO
    try:
        axis = None if isinstance(setting, bool) else int(setting)
        valid = axis in (-1, 0, 1, 2) and axis == float(setting)
    except (TypeError, ValueError):
        valid = False
    if not valid or axis is None:
        raise InputError(f"slice_axis must be 'auto' (the axis of largest voxel spacing) or a spatial axis 0, 1 or 2, got {setting!r}.")
    return axis % 3


def resolve_slice_axis(setting, spacing: Sequence[float] | None = None, shape: Sequence[int] | None = None) -> int:
    """The spatial axis (0, 1 or 2) the slices are stacked along.

    ``setting`` is ``"auto"`` or an axis 0, 1, 2 (also -1). ``"auto"``: an axis of size 1 when
    ``shape`` (the three spatial sizes) has one (a single 2D image: its one slice), else the axis
    of largest voxel spacing, the last axis when the largest spacing is shared or unknown.
    """
    setting = check_slice_axis(setting)
    if setting != AUTO:
        return int(setting)
    if shape is not None and 1 in [int(n) for n in shape][:3]:
        return max(axis for axis, n in enumerate(list(shape)[:3]) if int(n) == 1)
    if spacing is None:
        return 2
    spacing = [float(s) for s in spacing][:3]
    largest = max(spacing)
    return max(axis for axis, s in enumerate(spacing) if s >= largest * (1 - 1e-3))


def context_stack(volume: torch.Tensor, rows: torch.Tensor, context_slices: int) -> torch.Tensor:
    """Gather ``(N, C (2K + 1), H, W)`` network inputs from ``volume`` ``(C, H, W, D)`` for ``rows`` of :func:`context_indices`.

    Each contrast contributes its ``2K + 1`` slices in :func:`context_offsets` order; a
    single-slice volume (``D == 1``) gets zero context channels (the 2D fallback).
    """
    channels, height, width, depth = volume.shape
    gathered = volume[..., rows.reshape(-1)].reshape(channels, height, width, rows.shape[0], rows.shape[1])
    if depth == 1 and context_slices > 0:
        gathered = gathered.clone()
        gathered[..., 1:] = 0
    # (C, H, W, N, 2K+1) -> (N, C, 2K+1, H, W) -> (N, C (2K+1), H, W)
    return gathered.permute(3, 0, 4, 1, 2).reshape(rows.shape[0], channels * rows.shape[1], height, width)












def _robust_correlation(u: np.ndarray, v: np.ndarray) -> float:
    """Gnanadesikan-Kettenring correlation with MAD scales: robust to the sparse edges of an image."""

    def mad(x: np.ndarray) -> float:
        return float(np.median(np.abs(x - np.median(x))))

    plus, minus = mad(u + v) ** 2, mad(u - v) ** 2
    return 0.0 if plus + minus == 0 else (plus - minus) / (plus + minus)


def noise_correlation(volume, max_voxels: int = 500_000) -> list[float]:
    r"""Correlation of the noise between neighbouring voxels along each axis of ``volume`` ``(x, y[, z])``.

    The signal is removed with a second difference along a *different* axis ``b``,
    ``r = y[b - 1] - 2 y[b] + y[b + 1]``, whose noise terms at two neighbours along axis ``a``
    share no voxel: for i.i.d. noise their correlation is 0, and for noise of correlation
    ``rho_a`` along ``a`` (none along ``b``) it is ``rho_a``. The correlation of ``r`` with its
    neighbour along ``a`` is taken robustly (Gnanadesikan-Kettenring, MAD scales), so the few
    edges that survive the difference do not count, over voxels where ``r`` is not exactly
    zero (masked or zero-filled air). Measured (docs/method.md section 5, Volumetric context): i.i.d.
    noise on the MNI T1 gives 0.01-0.05, the same noise linearly interpolated 2x across
    slices 0.76 along them. A volume larger than ``max_voxels`` is read on evenly spaced
    planes of the third axis (which neither ``a`` nor ``b`` crosses), so the check costs well
    under a second on a 256x256x100 volume. Returns one value per axis of ``volume`` (NaN
    where it cannot tell).
    """
    array = np.asarray(torch.as_tensor(volume).detach().cpu().float().numpy(), dtype=np.float32)
    array = np.squeeze(array) if array.ndim > 3 else array
    result = []
    for axis in range(array.ndim):
        others = [b for b in range(array.ndim) if b != axis and array.shape[b] >= 3]
        if array.shape[axis] < 2 or not others:
            result.append(float("nan"))
            continue
        planes = array
        rest = [c for c in range(array.ndim) if c not in (axis, others[0])]
        if rest and array.size > max_voxels:
            step = -(-array.size // max_voxels)
            planes = np.take(array, range(0, array.shape[rest[0]], step), axis=rest[0])
        residual = np.diff(planes, n=2, axis=others[0])
        u = np.take(residual, range(residual.shape[axis] - 1), axis=axis).ravel()
        v = np.take(residual, range(1, residual.shape[axis]), axis=axis).ravel()
        keep = (u != 0) | (v != 0)
        u, v = u[keep], v[keep]
        result.append(_robust_correlation(u, v) if u.size >= 100 else float("nan"))
    return result


def check_noise_independence(volume, source: str = "", slice_axis: int = 2, threshold: float = NOISE_CORRELATION_THRESHOLD) -> dict:
    """Measure the noise correlation of a ``(x, y, z)`` volume (:func:`noise_correlation`); warn above ``threshold``.

    Returns the record a report keeps: ``{"across_slices": rho along the slice axis,
    "in_plane": [rho, rho], "threshold": ..., "independent": bool}`` (``None`` where the data
    cannot tell, e.g. across the slices of a single image). Two warnings, naming ``source``:
    noise correlated across slices leaks from the context channels into the target
    (interpolated or resampled slices); noise correlated within a slice (zero-filled or
    filtered reconstructions) breaks the white-noise re-corruption, in 2D as well.
    """
    values = noise_correlation(volume)
    values += [float("nan")] * (3 - len(values))

    def rounded(value: float) -> float | None:
        return None if np.isnan(value) else round(float(value), 3)

    across = values[slice_axis]
    in_plane = [values[a] for a in range(3) if a != slice_axis]
    record = {"across_slices": rounded(across), "in_plane": [rounded(v) for v in in_plane], "threshold": threshold}
    name = source or input_name(volume)
    correlated_across = not np.isnan(across) and across > threshold
    correlated_in_plane = any(not np.isnan(v) and v > threshold for v in in_plane)
    if correlated_across:
        logger.warning(
            "%s: the noise of neighbouring slices is correlated (rho %.2f > %.2g): the slices look interpolated or "
            "resampled, so their noise leaks into the target through the context; denoise the original acquisition, or "
            "use context_slices 0 (docs/method.md section 5, Volumetric context).", name, across, threshold,
        )
    if correlated_in_plane:
        logger.warning(
            "%s: the noise is correlated within each slice (rho %s > %.2g), as after zero-filling or filtering in the "
            "reconstruction; C2S assumes white noise, so some of it may remain.", name, record["in_plane"], threshold,
        )
    record["independent"] = not (correlated_across or correlated_in_plane)
    return record


# moved to c2s_monai.transforms in 0.7; the old path answers for a release
__getattr__ = moved(__name__, ('MoveSliceAxis', 'MoveSliceAxisd', 'CheckContextd', 'RandContextSliced', 'RandDropContextd'), "c2s_monai.transforms")
