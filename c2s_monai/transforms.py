"""Shape and sanity checks that turn a loaded image into one channel-first volume."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform

from c2s_monai.errors import InputError, input_name

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


class EnsureVolumed(MapTransform):
    """Dictionary form of :class:`EnsureVolume`."""

    def __init__(self, keys: KeysCollection, num_channels: int | None = None, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = EnsureVolume(num_channels)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d
