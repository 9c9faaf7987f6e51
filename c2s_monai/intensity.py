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

from collections.abc import Mapping

import numpy as np
import torch

from c2s_monai import defaults
from c2s_monai.compat import moved
from c2s_monai.errors import InputError, input_name
from c2s_monai.estimation import ESTIMATORS

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


# moved to c2s_monai.transforms in 0.7; the old path answers for a release
__getattr__ = moved(__name__, ('ScaleNoisyImage', 'ScaleNoisyImaged'), "c2s_monai.transforms")
