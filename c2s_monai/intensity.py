"""Put a noisy image into network units, where its noise level is known.

The network is trained and run on images divided by a robust intensity scale
(the ``percentile``-th percentile of ``|image|``, 99.5 by default), so a tissue-bright
voxel is about 1 whatever the scanner's units. The noise level travels with the image:
``sigma_net = sigma_image / scale``, either given in the image's units or estimated
(:mod:`c2s_monai.estimation`) on the scaled image. The denoised output is multiplied by
``scale`` again, so it is returned in the input's units (float32).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from c2s_monai.errors import InputError, input_name
from c2s_monai.estimation import ESTIMATORS, estimate_sigma, has_noise_background

# The smallest noise level (in network units, i.e. relative to the intensity scale) taken as
# noise: below 16-bit quantisation, an estimate means the image holds no measurable noise.
MIN_SIGMA = 1e-5


def intensity_scale(image, percentile: float = 99.5) -> float:
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


class ScaleNoisyImage(Transform):
    """Return ``(image / scale, sigma_data / scale, scale)`` for a channel-first image.

    After each call, ``sigma_source`` says where the level came from: ``"given"`` or
    ``"estimated (<estimator>)"``, with ``"auto"`` resolved to the estimator it chose.

    Args:
        sigma_data: noise std in the image's units, or ``"auto"``, ``"mad"`` or
            ``"background"`` to estimate it on the target (channel 0), see
            :func:`c2s_monai.estimation.estimate_sigma`.
        percentile: percentile of ``|image|`` used as the scale.
    """

    def __init__(self, sigma_data: float | str = "auto", percentile: float = 99.5) -> None:
        self.sigma_data = check_sigma_data(sigma_data)
        self.percentile = percentile
        self.sigma_source = "given"

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, float, float]:
        source = input_name(image)
        scale = intensity_scale(image[0], self.percentile)
        scaled = image / scale
        if not bool(torch.isfinite(scaled).all()):
            raise InputError(
                f"{source}: the intensities span too wide a range (the {self.percentile}th percentile of |intensity| is "
                f"{scale:.3g}, the maximum {float(image[0].abs().max()):.3g}); check the file's scaling (scl_slope, "
                "RescaleSlope) or clip the outliers."
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
            self.sigma_source = f"estimated ({method})"
        else:
            sigma = self.sigma_data / scale
            self.sigma_source = "given"
        return scaled, float(sigma), scale


class ScaleNoisyImaged(MapTransform):
    """Dictionary form of :class:`ScaleNoisyImage`: writes ``sigma_key`` and ``scale_key`` beside each image key."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma_data: float | str = "auto",
        percentile: float = 99.5,
        sigma_key: str = "sigma_data",
        scale_key: str = "intensity_scale",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.scaler = ScaleNoisyImage(sigma_data, percentile)
        self.sigma_key = sigma_key
        self.scale_key = scale_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key], sigma, scale = self.scaler(d[key])
            d[self.sigma_key] = torch.tensor(sigma, dtype=torch.float32)
            d[self.scale_key] = torch.tensor(scale, dtype=torch.float32)
        return d
