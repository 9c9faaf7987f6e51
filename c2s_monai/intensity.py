"""Put a noisy image into network units, where its noise level is known.

The network is trained and run on images divided by a robust intensity scale
(the ``percentile``-th percentile of ``|image|``, 99.5 by default), so a tissue-bright
voxel is about 1 whatever the scanner's units. The noise level travels with the image:
``sigma_net = sigma_image / scale``, either given in the image's units or estimated
(:mod:`c2s_monai.estimation`) on the scaled image. The denoised output is multiplied by
``scale`` again, so it is returned in the input's units (float32).

Multi-contrast inputs (channel 0 the target, channels 1.. co-registered guides, docs/method.md
section 9) are scaled channel by channel, ``image[c] / scale_c``: each guide by its own
robust scale, since contrasts come in unrelated units. The noise level and the output
scale are the target's (``scale_0``); the guides' noise never enters the loss or the
inferer. ``sigma_data`` may be given per contrast (:func:`contrast_sigma_data`).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from c2s_monai import defaults
from c2s_monai.errors import InputError, input_name
from c2s_monai.estimation import ESTIMATORS, estimate_sigma, has_noise_background

# The smallest noise level (in network units, i.e. relative to the intensity scale) taken as
# noise: below 16-bit quantisation, an estimate means the image holds no measurable noise.
MIN_SIGMA = 1e-5


def intensity_scale(image, percentile: float = defaults.INTENSITY_PERCENTILE) -> float:
    """The robust scale of ``image``: the ``percentile``-th percentile of ``|image|`` (> 0)."""
    values = torch.as_tensor(image).detach().float().abs().flatten()
    scale = float(torch.quantile(values[:: max(1, values.numel() // 2_000_000)], percentile / 100.0))
    if not scale > 0:
        scale = float(values.max())
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(f"{input_name(image)}: the image is all zeros (or not finite): there is nothing to denoise.")
    return scale


def check_sigma_data(sigma_data) -> float | str:
    """Validate a ``sigma_data`` setting: a number > 0 in the image's units (or its text) or ``"auto"``/an estimator name."""
    expected = f"a finite number > 0 in the image's units, or one of {', '.join(repr(e) for e in ESTIMATORS)}"
    advice = "give the noise std measured in the image's units, or 'auto' to estimate it per volume"
    if isinstance(sigma_data, str) and sigma_data.strip().lower() in ESTIMATORS:
        return sigma_data.strip().lower()
    if isinstance(sigma_data, (bool, np.bool_)) or sigma_data is None:
        raise InputError(f"sigma_data must be {expected}; got {sigma_data!r}: {advice}.")
    try:
        value = float(sigma_data)
    except (TypeError, ValueError):
        raise InputError(f"sigma_data must be {expected}; got {sigma_data!r}: {advice}.") from None
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"sigma_data must be {expected}; got {sigma_data!r}: {advice}.")
    return value


def contrast_sigma_data(sigma_data, contrast: str | None) -> float | str:
    """The ``sigma_data`` of ``contrast``: ``sigma_data[contrast]`` for a mapping by contrast name, else ``sigma_data``.

    Each value is checked by :func:`check_sigma_data`. A mapping without ``contrast`` (or a
    mapping and no contrast) raises :class:`~c2s_monai.errors.InputError` naming what is missing.
    """
    if not isinstance(sigma_data, Mapping):
        return check_sigma_data(sigma_data)
    if contrast is None or contrast not in sigma_data:
        which = "no target contrast was named" if contrast is None else f"it has no value for the {contrast!r} contrast"
        raise InputError(
            f"sigma_data is given per contrast ({dict(sigma_data)!r}) but {which}: give a value (image units, or 'auto') "
            "for every contrast that is denoised."
        )
    return check_sigma_data(sigma_data[contrast])


def check_contrast_sigmas(sigma_data) -> float | str | dict[str, float | str]:
    """Validate ``sigma_data``: one setting for every contrast, or a mapping ``{contrast: setting}``."""
    if isinstance(sigma_data, Mapping):
        if not sigma_data:
            raise InputError("sigma_data is an empty mapping: give one value per contrast, e.g. {'t1': 12.5, 't2': 'auto'}.")
        return {str(name): check_sigma_data(value) for name, value in sigma_data.items()}
    return check_sigma_data(sigma_data)


CHANNEL_SCALINGS = ("per_channel", "target")


class ScaleNoisyImage(Transform):
    """Return ``(image / scale, sigma_data / scale, scale)`` for a channel-first image.

    Channel 0 (the target) is divided by its own scale ``scale``; with ``channel_scaling="per_channel"``
    each further channel (a guide contrast) is divided by its own robust scale (kept in
    ``channel_scales`` in :meth:`measure`), so every channel is about [0, 1]; with ``"target"`` every channel is
    divided by the target's scale (channels in the same units, e.g. a clean reference riding
    beside the noisy image). The noise level is the target's, in the target's network units.

    Calling it returns ``(scaled, sigma, scale)``; :meth:`measure` also says where the level
    came from: ``"given"`` or ``"estimated (<estimator>)"``, with ``"auto"`` resolved to the
    estimator it chose. The transform keeps no state between calls.

    Args:
        sigma_data: noise std in the image's units, or ``"auto"``, ``"mad"`` or
            ``"background"`` to estimate it on the target (channel 0), see
            :func:`c2s_monai.estimation.estimate_sigma`.
        percentile: percentile of ``|image|`` used as the scale.
        channel_scaling: ``"per_channel"`` or ``"target"``, see above.
    """

    def __init__(self, sigma_data: float | str = "auto", percentile: float = defaults.INTENSITY_PERCENTILE, channel_scaling: str = "per_channel") -> None:
        if channel_scaling not in CHANNEL_SCALINGS:
            raise ValueError(f"channel_scaling must be one of {CHANNEL_SCALINGS}, got {channel_scaling!r}.")
        self.sigma_data = check_sigma_data(sigma_data)
        self.percentile = percentile
        self.channel_scaling = channel_scaling

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        scaled, sigma, scale, _ = self.measure(image)
        return scaled, sigma, scale

    def measure(self, image: torch.Tensor) -> tuple[torch.Tensor, float, float, str]:
        """``(scaled, sigma, scale, sigma_source)`` of ``image`` (see the class docstring)."""
        source = input_name(image)
        channels = image.shape[0] if self.channel_scaling == "per_channel" else 1
        channel_scales = [intensity_scale(image[c], self.percentile) for c in range(channels)]
        channel_scales += channel_scales[:1] * (image.shape[0] - channels)
        scale = channel_scales[0]
        if len(channel_scales) == 1:
            scaled = image / scale
        else:
            divisors = torch.tensor(channel_scales, dtype=image.dtype, device=image.device)
            scaled = image / divisors.reshape(-1, *([1] * (image.ndim - 1)))
        for channel, channel_scale in enumerate(channel_scales):
            if not bool(torch.isfinite(scaled[channel]).all()):
                where = "" if channel == 0 else f" (guide channel {channel})"
                raise InputError(
                    f"{source}{where}: the intensities span too wide a range (the {self.percentile}th percentile of "
                    f"|intensity| is {channel_scale:.3g}, the maximum {float(image[channel].abs().max()):.3g}); check the "
                    "file's scaling (scl_slope, RescaleSlope) or clip the outliers."
                )
        if isinstance(self.sigma_data, str):
            method = self.sigma_data
            try:
                if method == "auto":
                    method = "background" if has_noise_background(scaled[0]) else "mad"
                sigma = estimate_sigma(scaled[0], method)
            except ValueError as error:
                raise InputError(f"{source}: {error}") from error
            if not sigma >= MIN_SIGMA:
                raise InputError(
                    f"{source}: the {method} estimator finds no noise (sigma {sigma * scale:.3g} in image units, "
                    f"{sigma:.2g} of the intensity scale): the image looks noise-free or synthetic: a noise-free "
                    "image needs no denoising; if it is noisy, give sigma_data in the image's units."
                )
            sigma_source = f"estimated ({method})"
        else:
            sigma = self.sigma_data / scale
            sigma_source = "given"
        return scaled, float(sigma), scale, sigma_source


class ScaleNoisyImaged(MapTransform):
    """Dictionary form of :class:`ScaleNoisyImage`: writes ``sigma_key`` and ``scale_key`` beside each image key."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma_data: float | str = "auto",
        percentile: float = defaults.INTENSITY_PERCENTILE,
        sigma_key: str = "sigma_data",
        scale_key: str = "intensity_scale",
        allow_missing_keys: bool = False,
        channel_scaling: str = "per_channel",
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = ScaleNoisyImage(sigma_data, percentile, channel_scaling)
        self.sigma_key = sigma_key
        self.scale_key = scale_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key], sigma, scale = self.scaler(d[key])
            d[self.sigma_key] = torch.tensor(sigma, dtype=torch.float32)
            d[self.scale_key] = torch.tensor(scale, dtype=torch.float32)
        return d
