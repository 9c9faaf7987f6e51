"""Shape and sanity checks that turn a loaded image into one channel-first volume."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform


def _source(image) -> str:
    meta = getattr(image, "meta", None) or {}
    return str(meta.get("filename_or_obj", "the input image"))


class EnsureVolume(Transform):
    """Check a channel-first image and return it as float32 ``(C, H, W, D)``.

    A 2D image ``(C, H, W)`` gets ``D = 1``. Raises ``ValueError`` naming the file for an
    empty, non-numeric, non-finite or constant image, or one that is not 2D/3D.
    """

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        source = _source(image)
        if image.dtype == torch.bool or torch.is_complex(image):
            raise ValueError(f"{source}: voxel type {image.dtype} is not a real number; convert it to a numeric image.")
        if image.ndim == 3:
            image = image.unsqueeze(-1)
        if image.ndim != 4:
            raise ValueError(
                f"{source}: expected a 2D or 3D image, got channel-first shape {tuple(image.shape)}; "
                "split a 4D series into 3D volumes first."
            )
        if image.numel() == 0:
            raise ValueError(f"{source}: the image is empty.")
        image = image.float()
        if not bool(torch.isfinite(image).all()):
            raise ValueError(f"{source}: the image holds NaN or Inf voxels; fix or mask them first.")
        if float(image[0].max() - image[0].min()) == 0.0:
            raise ValueError(f"{source}: the image is constant; there is nothing to denoise.")
        return image


class EnsureVolumed(MapTransform):
    """Dictionary form of :class:`EnsureVolume`."""

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = EnsureVolume()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d
