"""The noise the network is told about: the data's observation model and its level, uniform or per voxel.

docs/method.md section 10. Three settings decide it, the same in the bundle, the API, the CLI and the
MONAI Label task (their defaults in :mod:`c2s_monai.defaults`):

- ``noise_model``: the observation model of the data.

  * ``"gaussian"``: ``y = x0 + sigma n`` (signed data: complex-valued reconstructions' real
    part, phase-corrected data, simulations). The network denoises ``y`` directly.
  * ``"rician"``: the magnitude of one complex channel, ``|x0 + sigma (n_r + i n_i)|``.
  * ``"noncentral_chi"``: the root-sum-of-squares magnitude of ``num_coils`` = L coils, noncentral
    chi with 2L degrees of freedom (Constantinides et al. 1997).
  * ``"auto"`` (the default): decided per volume from the data
    (:func:`c2s_monai.estimation.detect_noise_model`): non-negative data with a Rayleigh-like
    (or chi-like) background of air is magnitude data; anything else is Gaussian.

  Magnitude data go through the variance-stabilising transform of their model
  (:func:`c2s_monai.vst.magnitude_vst`; Foi 2011): the network sees data with Gaussian noise of
  std ``sigma``, and its output is mapped back with the exact unbiased inverse (Makitalo & Foi
  2011), which takes the magnitude bias out of dark tissue and most of it out of the background.
- ``num_coils``: L of the noncentral chi; ``"auto"`` estimates it from the background's moments
  (:func:`c2s_monai.estimation.estimate_num_coils`).
- ``sigma_map``: the spatial layout of the level. ``"none"``: one level per volume (``sigma_data``,
  given or estimated). ``"auto"``: a per-voxel map estimated from the data
  (:func:`c2s_monai.estimation.estimate_noise_map`: a local wavelet MAD fitted as a smooth map).
  Given: a NIfTI/DICOM map on the image grid, in the image's units (a noise scan's std, or
  g-factor x sigma), checked by :func:`check_noise_map`. The map drives the network's level
  channel, the GDSM re-corruption (``tau`` proportional to the local sigma, docs/method.md
  section 10) and the VST.

>>> import torch
>>> level = resolve_noise_level(torch.rand(1, 32, 32, 4) - 0.5, 0.05, "given", noise_model="auto")
>>> level.noise_model, level.map_source
('gaussian', 'none (uniform)')
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from c2s_monai import defaults
from c2s_monai.errors import InputError
from c2s_monai.estimation import detect_noise_model, estimate_noise_map, estimate_num_coils
from c2s_monai.intensity import MIN_SIGMA
from c2s_monai.vst import magnitude_vst, magnitude_vst_inverse

NOISE_MODELS = ("auto", "gaussian", "rician", "noncentral_chi")
MAGNITUDE_MODELS = ("rician", "noncentral_chi")
SIGMA_MAP_MODES = ("none", "auto")
MAP_ESTIMATOR = "local wavelet MAD, smooth fit"
# Relative tolerance of a given map's affine against the image's (voxel units).
AFFINE_TOLERANCE = 1e-3


def check_noise_model(noise_model) -> str:
    """``noise_model`` lower-cased, or one ``ValueError`` naming the choices."""
    name = str(noise_model).strip().lower()
    if name not in NOISE_MODELS:
        raise ValueError(f"noise_model must be one of {NOISE_MODELS}, got {noise_model!r}.")
    return name


def check_num_coils(num_coils) -> int | str:
    """``"auto"`` or an integer >= 1 (the coils of a root-sum-of-squares magnitude)."""
    if isinstance(num_coils, str) and num_coils.strip().lower() == defaults.AUTO:
        return defaults.AUTO
    try:
        value = int(num_coils)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or (isinstance(num_coils, float) and not float(num_coils).is_integer()):
        raise ValueError(f"num_coils must be 'auto' or an integer >= 1, got {num_coils!r}.")
    return value


def check_sigma_map(sigma_map) -> str:
    """``"none"``, ``"auto"``, or a map file's path; ``None`` means ``"none"`` (a loaded map is passed as data, not as this setting)."""
    if sigma_map is None:
        return "none"
    if isinstance(sigma_map, str) and sigma_map.strip().lower() in SIGMA_MAP_MODES:
        return sigma_map.strip().lower()
    if isinstance(sigma_map, str) or hasattr(sigma_map, "__fspath__"):
        return str(sigma_map)
    raise ValueError(f"sigma_map must be 'none', 'auto' or a map file on the image grid, got {sigma_map!r}.")


def sigma_map_mode(sigma_map) -> str:
    """What the inferer does itself for a ``sigma_map`` setting: ``"auto"``, or ``"none"`` (also for a map file, which comes with the item)."""
    mode = check_sigma_map(sigma_map)
    return mode if mode in SIGMA_MAP_MODES else "none"


def map_file(sigma_map) -> str | None:
    """The map file a ``sigma_map`` setting names, or ``None`` for ``"none"``/``"auto"``."""
    mode = check_sigma_map(sigma_map)
    return mode if mode not in SIGMA_MAP_MODES else None


def legacy_noise_model(noise_model, rician_vst) -> str:
    """The ``noise_model`` setting, with the 0.6 ``rician_vst`` flag read as ``noise_model="rician"``."""
    noise_model = check_noise_model(noise_model)
    if rician_vst:
        if noise_model not in ("auto", "rician"):
            raise ValueError(f"rician_vst is noise_model 'rician'; it contradicts noise_model {noise_model!r} (give one of them).")
        return "rician"
    return noise_model


@dataclass(frozen=True)
class NoiseLevel:
    """What one volume's noise was taken to be (network units), and why.

    ``sigma``: the uniform level, or the median of the map; ``sigma_map``: ``(1, *spatial)`` per-voxel
    levels, ``None`` where uniform; ``reason``: why ``noise_model`` was chosen (a sentence).
    """

    sigma: float
    noise_model: str
    num_coils: int
    reason: str
    map_source: str
    sigma_map: torch.Tensor | None = field(default=None, repr=False)
    sigma_source: str = "given"

    @property
    def level(self) -> float | torch.Tensor:
        """The level per voxel: the map, or the uniform ``sigma``."""
        return self.sigma if self.sigma_map is None else self.sigma_map

    def record(self, scale: float = 1.0) -> dict:
        """The report's ``noise`` entry, levels in image units (``scale``: network unit -> image units)."""
        entry = {
            "noise_model": self.noise_model,
            "num_coils": self.num_coils,
            "reason": self.reason,
            "sigma_map": self.map_source,
            "vst": self.noise_model in MAGNITUDE_MODELS,
        }
        if self.sigma_map is not None:
            values = self.sigma_map.float() * scale
            entry.update(
                sigma_map_median=float(values.median()), sigma_map_min=float(values.min()), sigma_map_max=float(values.max())
            )
        return entry

    def map_in_image_units(self, scale: float, like: torch.Tensor) -> torch.Tensor:
        """The level per voxel in image units, shaped as ``like`` ``(1, *spatial)`` (a constant map where uniform)."""
        if self.sigma_map is None:
            return torch.full_like(like, self.sigma * scale, dtype=torch.float32)
        return (self.sigma_map.float() * scale).reshape(like.shape)


def check_noise_map(sigma_map: torch.Tensor, image: torch.Tensor, source: str, map_source: str | None = None) -> torch.Tensor:
    """A given map as float32 ``(1, *spatial)`` of ``image`` ``(C, *spatial)``, or one :class:`InputError`.

    Refused: another grid (shape, or an affine that differs where both are known), NaN/Inf,
    zero or negative values. ``map_source`` names the map's file in the message.
    """
    name = map_source or str(getattr(sigma_map, "meta", {}).get("filename_or_obj", "the noise map"))
    values = torch.as_tensor(sigma_map).float()
    if values.ndim == image.ndim - 1:
        values = values.unsqueeze(0)
    if tuple(values.shape[1:]) != tuple(image.shape[1:]) or values.shape[0] != 1:
        raise InputError(
            f"{name}: the noise map (shape {tuple(values.shape[1:])}) is not on the grid of {source} (shape "
            f"{tuple(image.shape[1:])}); resample it to the image's grid, or use sigma_map 'auto'."
        )
    affine_map, affine_image = _affine(sigma_map), _affine(image)
    if affine_map is not None and affine_image is not None and not torch.allclose(affine_map, affine_image, atol=AFFINE_TOLERANCE, rtol=AFFINE_TOLERANCE):
        raise InputError(
            f"{name}: the noise map's affine differs from the one of {source}: it is on another grid; resample it "
            "to the image's grid, or use sigma_map 'auto'."
        )
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        raise InputError(
            f"{name}: {int((~finite).sum())} voxel(s) of the noise map of {source} are NaN or Inf; a noise map needs a finite std everywhere."
        )
    if not bool((values > 0).all()):
        raise InputError(
            f"{name}: {int((values <= 0).sum())} voxel(s) of the noise map of {source} are zero or negative (min {float(values.min()):.3g}); "
            "a noise std is > 0 everywhere (fill the air with its level, e.g. the scan's std there)."
        )
    return values.as_tensor() if hasattr(values, "as_tensor") else values


def _affine(image) -> torch.Tensor | None:
    affine = getattr(image, "meta", {}).get("affine") if hasattr(image, "meta") else None
    return None if affine is None else torch.as_tensor(affine, dtype=torch.float64)


def resolve_noise_level(
    scaled: torch.Tensor,
    sigma: float,
    sigma_source: str,
    noise_model: str = defaults.NOISE_MODEL,
    num_coils: int | str = defaults.NUM_COILS,
    sigma_map="none",
    given_map: torch.Tensor | None = None,
    source: str = "the input image",
) -> NoiseLevel:
    """The :class:`NoiseLevel` of one scaled image ``(C, *spatial)`` (network units; channel 0 the target).

    ``sigma``/``sigma_source``: the uniform level from :class:`~c2s_monai.transforms.ScaleNoisyImage`.
    ``given_map``: a map in network units, already checked (:func:`check_noise_map`); it wins
    over the ``sigma_map`` mode. For a noncentral-chi volume whose sigma was estimated, the level
    is the chi background's (the Rayleigh estimator assumes one coil).
    """
    noise_model = check_noise_model(noise_model)
    num_coils = check_num_coils(num_coils)
    mode = check_sigma_map(sigma_map)
    target = scaled[0]
    measured: tuple[int, float] | None = None  # (L, sigma) of the air's chi background, once measured
    if noise_model == defaults.AUTO:
        choice = detect_noise_model(target)
        noise_model, detected_coils, reason = choice.noise_model, choice.num_coils, choice.reason
        measured = (choice.num_coils, choice.sigma) if choice.sigma > 0 else None
    else:
        detected_coils, reason = 1, f"{noise_model}: set by the noise_model setting"
    coils = 1
    if noise_model == "noncentral_chi":
        coils = int(num_coils) if num_coils != defaults.AUTO else (detected_coils if detected_coils > 1 else estimate_num_coils(target)[0])
    if noise_model in MAGNITUDE_MODELS and sigma_source.startswith("estimated"):
        # magnitude data: the level of the air's chi (Rayleigh for one coil) background, E[m^2] = 2 L sigma^2
        try:
            found_coils, found_sigma = measured if measured is not None else estimate_num_coils(target)
        except ValueError:
            found_coils, found_sigma = 0, 0.0
        if found_sigma > 0:
            sigma, sigma_source = float(found_sigma * math.sqrt(found_coils / coils)), "estimated (background moments)"
    level_map: torch.Tensor | None = None
    if given_map is not None:
        level_map, map_source = torch.as_tensor(given_map).float().reshape(1, *target.shape), "given"
    elif mode == "auto":
        values = target.detach().cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
        try:
            estimate = estimate_noise_map(values, magnitude=noise_model in MAGNITUDE_MODELS, num_coils=coils)
        except ValueError as error:
            raise InputError(f"{source}: {error}") from error
        level_map = torch.as_tensor(np.asarray(estimate, dtype=np.float32)).reshape(1, *target.shape)
        map_source = f"estimated ({MAP_ESTIMATOR})"
    else:
        map_source = "none (uniform)"
    if level_map is not None:
        level_map = level_map.clamp_min(MIN_SIGMA)
        sigma = float(level_map.median())
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"{source}: no usable noise level ({sigma!r}); give sigma_data in the image's units.")
    return NoiseLevel(float(sigma), noise_model, int(coils), reason, map_source, level_map, sigma_source)


def stabilise(image: torch.Tensor, level: NoiseLevel) -> torch.Tensor:
    """``image`` ``(C, *spatial)`` with its target channel through the VST of ``level``'s magnitude model (else unchanged)."""
    if level.noise_model not in MAGNITUDE_MODELS:
        return image
    out = image.clone()
    local = level.level if isinstance(level.level, float) else level.level[0].to(image.device)
    out[0] = magnitude_vst(image[0], local, level.num_coils)
    return out


def unstabilise(estimate: torch.Tensor, level: NoiseLevel, sigma_map: torch.Tensor | None = None) -> torch.Tensor:
    """The exact unbiased inverse of :func:`stabilise` for a network output; ``sigma_map`` laid out as ``estimate``."""
    if level.noise_model not in MAGNITUDE_MODELS:
        return estimate
    local = level.sigma if sigma_map is None else sigma_map
    return magnitude_vst_inverse(estimate, local, level.num_coils)
