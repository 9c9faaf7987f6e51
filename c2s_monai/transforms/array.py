"""Array transforms (one image in, one out; the layout of ``monai.transforms.*.array``).

The math they apply lives in the module of its concept, cited in each docstring:
:mod:`c2s_monai.intensity` (scaling and the noise level), :mod:`c2s_monai.context` (the slice
axis), :mod:`c2s_monai.vst` (the Rician VST), :mod:`c2s_monai.noise` (the observation model).
"""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import RandomizableTransform, Transform
from monai.utils import convert_to_tensor

from c2s_monai import defaults
from c2s_monai.context import check_slice_axis, image_affine, resolve_slice_axis, voxel_spacing
from c2s_monai.errors import InputError, input_name
from c2s_monai.estimation import estimate_sigma, has_noise_background
from c2s_monai.intensity import CHANNEL_SCALINGS, MIN_SIGMA, check_sigma_data, intensity_scale
from c2s_monai.noise import add_noise, check_noise_model
from c2s_monai.vst import rician_vst

# The smallest in-plane size worth denoising: the wavelet noise estimators and the network's
# four poolings need a few voxels per side.
MIN_IN_PLANE = 8


class EnsureVolume(Transform):
    """Check a channel-first image and return it as float32 ``(C, H, W, D)``.

    A 2D image ``(C, H, W)`` gets ``D = 1``. Raises :class:`~c2s_monai.errors.InputError`
    naming the file for an empty, non-numeric, non-finite or constant image, one smaller
    than ``MIN_IN_PLANE`` in-plane, one that is not 2D/3D, or one with another number of
    channels than ``num_channels`` (a 4D series loads as one channel per volume).

    Args:
        num_channels: the number of channels expected (``None``: any).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        self.num_channels = num_channels

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        source = input_name(image)
        shape = tuple(image.shape)
        if image.numel() == 0:
            raise InputError(f"{source}: the image is empty (shape {shape}, no voxel); export the scan again.")
        if image.dtype == torch.bool or torch.is_complex(image):
            raise InputError(
                f"{source}: voxel type {image.dtype} is not a real number; save the magnitude image as an "
                "integer or float type (e.g. abs() of complex data)."
            )
        if self.num_channels is not None and image.shape[0] != self.num_channels:
            if self.num_channels == 1:
                raise InputError(
                    f"{source}: a 4D series of {image.shape[0]} volumes (channel-first shape {shape}), expected one 2D "
                    f"or 3D volume; denoise each volume with `c2s-monai denoise {source} --model MODEL --each_volume "
                    "true` (docs/bad-inputs.md), or split the series into 3D files."
                )
            raise InputError(
                f"{source}: {image.shape[0]} channels (channel-first shape {shape}), expected {self.num_channels}; "
                "give volumes with the channels the network was trained with."
            )
        if image.ndim == 3:
            image = image.unsqueeze(-1)
        if image.ndim != 4:
            raise InputError(
                f"{source}: expected a 2D or 3D image, got channel-first shape {shape}; "
                "save each 2D or 3D volume as its own file."
            )
        if min(image.shape[1:3]) < MIN_IN_PLANE:
            raise InputError(
                f"{source}: slices of {image.shape[1]} x {image.shape[2]} voxels are too small to denoise (at least "
                f"{MIN_IN_PLANE} x {MIN_IN_PLANE}); check that the file holds an image and that its axes are in order."
            )
        image = image.float()
        finite = torch.isfinite(image)
        if not bool(finite.all()):
            count = int((~finite).sum())
            raise InputError(
                f"{source}: {count} voxel(s) are NaN or Inf; replace them (e.g. numpy.nan_to_num) or export the "
                "scan again, then denoise the fixed file."
            )
        if float(image[0].max() - image[0].min()) == 0.0:
            raise InputError(
                f"{source}: the image is constant (every voxel is {float(image[0, 0, 0, 0]):g}); there is nothing to "
                "denoise: check that the right series was exported."
            )
        return image


class ScaleNoisyImage(Transform):
    """Return ``(image / scale, sigma_data / scale, scale)`` for a channel-first image.

    >>> import torch
    >>> image = torch.linspace(0, 200, 1000).reshape(1, 10, 10, 10)
    >>> scaled, sigma, scale = ScaleNoisyImage(sigma_data=5.0, percentile=100)(image)
    >>> scale, sigma, float(scaled.max())
    (200.0, 0.025, 1.0)

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

    def __init__(self, sigma_data: float | str = defaults.SIGMA_DATA, percentile: float = defaults.INTENSITY_PERCENTILE, channel_scaling: str = "per_channel") -> None:
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


class MoveSliceAxis(Transform):
    """Move the slice axis of a channel-first volume ``(C, x, y, z)`` last (see :func:`resolve_slice_axis`)."""

    def __init__(self, slice_axis="auto") -> None:
        self.slice_axis = check_slice_axis(slice_axis)

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.ndim != 4:
            return image
        axis = resolve_slice_axis(self.slice_axis, voxel_spacing(image_affine(image)), image.shape[1:])
        return image if axis == 2 else torch.movedim(image, 1 + axis, -1)


class RicianVST(Transform):
    """``image -> image`` with channel 0 (the target) replaced by :func:`rician_vst` at ``sigma``.

    Guide channels (multi-contrast) are left as they are: only the target's noise level is
    known, and only the target is re-corrupted and predicted.
    """

    def __call__(self, image, sigma: float):  # type: ignore[override]  # an image and its noise level, not one data item
        out = image.clone() if isinstance(image, torch.Tensor) else np.array(image, copy=True)
        out[0] = rician_vst(image[0], float(sigma))
        return out


class AddNoise(RandomizableTransform):
    """Simulate a noisy acquisition: add Gaussian or Rician noise of a fixed std ``sigma``.

    Unlike MONAI's ``RandGaussianNoise``/``RandRicianNoise`` the std is fixed (not sampled),
    which is what a synthetic-noise benchmark with a known ``sigma_data`` needs.

    Args:
        sigma: noise std, in the image's units; must be > 0.
        noise_model: ``"gaussian"`` or ``"rician"``.
        prob: probability of corrupting.
    """

    def __init__(self, sigma: float, noise_model: str = "gaussian", prob: float = 1.0) -> None:
        RandomizableTransform.__init__(self, prob)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}.")
        self.sigma = float(sigma)
        self.noise_model = check_noise_model(noise_model)
        self._seed = 0

    def randomize(self, data=None) -> None:
        super().randomize(None)
        self._seed = int(self.R.randint(0, 2**31 - 1))

    def __call__(self, img, randomize: bool = True):
        img = convert_to_tensor(img, track_meta=True, dtype=torch.float32)
        if randomize:
            self.randomize()
        if not self._do_transform:
            return img
        generator = torch.Generator(device="cpu").manual_seed(self._seed)
        noisy = add_noise(img.float().cpu(), self.sigma, self.noise_model, generator)
        return noisy.to(img.device)
