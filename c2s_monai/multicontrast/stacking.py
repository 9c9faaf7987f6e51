"""Stacking a subject's contrasts into input channels, target first, on the target's voxel grid.

See :mod:`c2s_monai.multicontrast` (grids, missing guides).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms import MapTransform, ResampleToMatch, Transform

from c2s_monai.errors import InputError, input_name
from c2s_monai.multicontrast.channels import check_contrasts, rotate_target
from c2s_monai.settings import parse_flag

logger = logging.getLogger(__name__)

def _affine(image) -> np.ndarray:
    affine = getattr(image, "affine", None)
    array = np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)
    return array if array.shape == (4, 4) else to_affine_nd(3, array)


def _mm(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def grid_difference(target: torch.Tensor, guide: torch.Tensor, tolerance: float = 1e-3) -> str | None:
    """How the voxel grid of ``guide`` differs from the target's, or ``None`` when they match.

    Both are channel-first ``(1, H, W, D)`` images with MONAI meta (``affine``). Checked in
    turn: the shape, the voxel size (column norms of the affine, mm) and the position: the
    largest distance (mm) between the scanner positions the two affines give the same corner
    voxel. Sizes and positions match when they differ by at most ``tolerance`` mm.
    """
    target_shape, guide_shape = tuple(target.shape[1:]), tuple(guide.shape[1:])
    if target_shape != guide_shape:
        return f"shape {guide_shape} vs {target_shape} voxels"
    target_affine, guide_affine = _affine(target), _affine(guide)
    target_spacing = np.linalg.norm(target_affine[:3, :3], axis=0)
    guide_spacing = np.linalg.norm(guide_affine[:3, :3], axis=0)
    if np.max(np.abs(target_spacing - guide_spacing)) > tolerance:
        return f"voxel size {_mm(guide_spacing)} vs {_mm(target_spacing)} mm"
    corners = np.array(np.meshgrid(*[[0, max(0, n - 1)] for n in target_shape[:3]], indexing="ij")).reshape(3, -1)
    corners = np.vstack([corners, np.ones(corners.shape[1])])
    distance = float(np.max(np.linalg.norm(((guide_affine - target_affine) @ corners)[:3], axis=0)))
    if distance > tolerance:
        return (
            f"the same voxel lies up to {distance:.3g} mm apart in the two (origin {_mm(guide_affine[:3, 3])} vs "
            f"{_mm(target_affine[:3, 3])} mm)"
        )
    return None


class StackContrasts(Transform):
    """Stack co-registered volumes ``(1, H, W, D)`` into one ``(C, H, W, D)`` image, the target first.

    ``images[0]`` is the target contrast, the rest its guides, named by ``names`` in the same
    order. Each guide must be on the target's voxel grid (:func:`grid_difference`); a guide
    that is not raises :class:`~c2s_monai.errors.InputError` naming both files and the
    difference, unless ``resample`` is set: it is then resampled onto the target's grid with
    MONAI's ``ResampleToMatch`` (trilinear; zero outside its field of view), which needs the
    two aligned in scanner coordinates. A resampled guide that covers less than
    ``min_coverage`` of the target's field of view is refused (another subject or session?).

    The result keeps the target's meta (its file, affine: outputs are written on its grid)
    and records ``contrasts`` (the channel names), ``target_contrast`` and ``contrast_files``.

    Args:
        resample: resample guides on another grid instead of refusing them.
        tolerance: largest difference of voxel size or position (mm) taken as the same grid.
        min_coverage: smallest fraction of the target's voxels a resampled guide must cover.
    """

    def __init__(self, resample: bool = False, tolerance: float = 1e-3, min_coverage: float = 0.5) -> None:
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0 (mm), got {tolerance!r}.")
        if not 0 <= min_coverage <= 1:
            raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage!r}.")
        self.resample = parse_flag(resample, "resample_guides")
        self.tolerance = float(tolerance)
        self.min_coverage = float(min_coverage)
        # MONAI annotates dtype as a numpy dtype; it takes torch dtypes too (get_equivalent_dtype)
        self.resampler = ResampleToMatch(mode="bilinear", padding_mode="zeros", dtype=torch.float32)  # type: ignore[arg-type]

    def __call__(self, images: Sequence[torch.Tensor], names: Sequence[str]) -> MetaTensor:  # type: ignore[override]  # images and their names, not one data item
        if len(images) != len(names) or not images:
            raise ValueError(f"StackContrasts needs one name per image, got {len(images)} images and names {list(names)}.")
        target = images[0]
        channels = []
        for image, name in zip(images, names):
            if image.ndim != 4 or image.shape[0] != 1:
                raise ValueError(f"{input_name(image)} ({name}): expected one (1, H, W, D) volume, got shape {tuple(image.shape)}.")
            if image is not target:
                image = self._on_target_grid(image, name, target, names[0])
            channels.append(torch.as_tensor(image).float())
        meta = copy.deepcopy(dict(getattr(target, "meta", {}) or {}))
        meta["contrasts"] = list(names)
        meta["target_contrast"] = names[0]
        meta["contrast_files"] = [input_name(image) for image in images]
        return MetaTensor(torch.cat(channels), meta=meta)

    def _on_target_grid(self, guide: torch.Tensor, name: str, target: torch.Tensor, target_name: str) -> torch.Tensor:
        difference = grid_difference(target, guide, self.tolerance)
        if difference is None:
            return guide
        guide_file, target_file = input_name(guide), input_name(target)
        if not self.resample:
            raise InputError(
                f"{guide_file} ({name}) is not on the voxel grid of {target_file} ({target_name}): {difference}. The "
                "contrasts of a subject must share one grid: resample the guides onto the target's grid (bundle key "
                "`resample_guides true`, Python `resample_guides=True`; the images must be aligned in scanner "
                "coordinates), or give co-registered files on one grid."
            )
        if not isinstance(guide, MetaTensor) or not isinstance(target, MetaTensor):
            raise TypeError("resampling a guide needs MetaTensor images with their affines (load them with LoadVolumed).")
        both = torch.cat([guide, torch.ones_like(guide)])
        resampled = self.resampler(both, target)
        coverage = float((resampled[1] > 0.5).float().mean())
        if coverage < self.min_coverage:
            raise InputError(
                f"{guide_file} ({name}) covers only {coverage:.0%} of the field of view of {target_file} ({target_name}) "
                f"once resampled onto its grid ({difference}): are both from the same subject and session? Register "
                "the guide to the target first, or give co-registered files on one grid."
            )
        logger.info(
            "%s (%s) resampled onto the grid of %s (%s): %s; it covers %.0f%% of that field of view.",
            guide_file, name, target_file, target_name, difference, 100 * coverage,
        )
        return resampled[:1].as_tensor()  # type: ignore[attr-defined]  # a MetaTensor: MONAI annotates ResampleToMatch's result as a Tensor


def subject_label(data: Mapping, contrasts: Sequence[str], subject_key: str = "subject") -> str:
    """How messages name a subject: ``subject <id>``, or ``the subject of <one of its files>``."""
    subject = data.get(subject_key)
    if subject:
        return f"subject {subject}"
    files = [input_name(data[n]) if isinstance(data[n], torch.Tensor) else str(data[n]) for n in contrasts if data.get(n) is not None]
    return f"the subject of {files[0]}" if files else "a subject"


def require_contrasts(data: Mapping, channels: Sequence[str], label: str) -> None:
    """Raise :class:`~c2s_monai.errors.InputError` if ``data`` lacks the target ``channels[0]`` or one of its guides."""
    target = channels[0]
    for name in channels:
        if data.get(name) is not None:
            continue
        if name == target:
            raise InputError(f"{label}: no {name!r} image to denoise; add the subject's {name} file to the datalist.")
        raise InputError(
            f"{label}: no {name!r} image, a guide of the {target!r} network (input channels {list(channels)}); add the "
            f"subject's {name} file to the datalist, or denoise its {target} image alone with a single-contrast model "
            "(docs/multicontrast.md, 'Missing guides')."
        )


class StackContrastsd(MapTransform):
    """Dictionary form of :class:`StackContrasts`: ``data[output_key] = stack([data[c] for c in channel order])``.

    ``keys`` are the contrast names in the configured order. The target is ``target``, or
    else ``data[target_key]``, or else the first key; the channel order is
    :func:`rotate_target` ``(keys, target)``. A subject lacking the target or one of its guides
    (key absent or ``None``) raises :class:`~c2s_monai.errors.InputError` naming the subject
    (``data[subject_key]``, or one of its files) and the contrast. The single-contrast keys
    are removed and ``data[target_key]`` is set to the target.

    Args:
        keys: contrast names, in the configured order.
        target: the target contrast of every item (``None``: per item, ``data[target_key]``).
        target_key, output_key, subject_key: item keys of the target's name, the stacked image, the subject id.
        resample, tolerance, min_coverage: see :class:`StackContrasts`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        target: str | None = None,
        target_key: str = "target_contrast",
        output_key: str = "image",
        subject_key: str = "subject",
        resample: bool = False,
        tolerance: float = 1e-3,
        min_coverage: float = 0.5,
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.contrasts = check_contrasts([str(k) for k in self.keys])
        if target is not None:
            rotate_target(self.contrasts, target)
        if output_key in self.contrasts:
            raise ValueError(f"output_key {output_key!r} is also a contrast name; choose another.")
        self.target = target
        self.target_key = target_key
        self.output_key = output_key
        self.subject_key = subject_key
        self.stacker = StackContrasts(resample, tolerance, min_coverage)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        target = self.target or d.get(self.target_key) or self.contrasts[0]
        channels = rotate_target(self.contrasts, str(target))
        require_contrasts(d, channels, subject_label(d, self.contrasts, self.subject_key))
        d[self.output_key] = self.stacker([d[name] for name in channels], channels)
        for name in self.contrasts:
            d.pop(name, None)
        d[self.target_key] = str(target)
        return d
