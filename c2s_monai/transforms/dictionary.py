"""Dictionary transforms (the layout of ``monai.transforms.*.dictionary``), with MONAI's ``D``/``Dict`` aliases.

Each wraps its array form (:mod:`c2s_monai.transforms.array`) or a function of the module of its
concept: :mod:`c2s_monai.context` (volumetric context), :mod:`c2s_monai.evaluation` (synthetic
noise pairs), :mod:`c2s_monai.vst`, :mod:`c2s_monai.noise`.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type

from c2s_monai import defaults
from c2s_monai.context import AUTO, DEFAULT_CONTEXT_DROPOUT, check_context_slices, check_noise_independence, check_spatial_dims, context_indices, context_stack
from c2s_monai.errors import InputError, input_name
from c2s_monai.noise import add_noise, check_noise_model
from c2s_monai.noise_level import SIGMA_MAP_MODES, check_noise_map, check_sigma_map, resolve_noise_level, stabilise
from c2s_monai.transforms.array import AddNoise, EnsureVolume, MoveSliceAxis, RicianVST, ScaleNoisyImage


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


class ScaleNoisyImaged(MapTransform):
    """Dictionary form of :class:`ScaleNoisyImage`: writes ``sigma_key`` and ``scale_key`` beside each image key."""

    def __init__(
        self,
        keys: KeysCollection,
        sigma_data: float | str = defaults.SIGMA_DATA,
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


class LoadNoiseMapd(MapTransform):
    """Load and check an item's given noise map (:func:`c2s_monai.noise_level.check_noise_map`) against its image.

    After the image is loaded and before the slice axis moves. The key may hold a map file
    (read as the image is, :class:`~c2s_monai.io.readers.LoadVolume`), a loaded map, or a mode
    (``"none"``/``"auto"``, e.g. a MONAI Label request's option), which is left as it is: the
    inferer or :class:`ResolveNoiseLeveld` applies its own mode. The map must be on the image's
    grid, finite and > 0; it becomes float32 ``(1, *spatial)`` with its metadata. An item
    without the key passes.
    """

    def __init__(self, keys: KeysCollection, image_key: str = "image", h5_key: str = defaults.H5_KEY, allow_missing_keys: bool = True) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.h5_key = h5_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from c2s_monai.io.readers import LoadVolume  # the readers import this package

        d = dict(data)
        for key in self.key_iterator(d):
            value, image = d[key], d[self.image_key]
            if value is None or (isinstance(value, str) and value.strip().lower() in SIGMA_MAP_MODES):
                continue  # a mode, for whoever applies it (the inferer's options, a MONAI Label request)
            name = None
            if isinstance(value, (str, os.PathLike)):
                name = str(value)
                value = LoadVolume(h5_key=self.h5_key)(value)
            values = check_noise_map(value, image, input_name(image), name)
            d[key] = convert_to_dst_type(values, value, dtype=torch.float32)[0] if hasattr(value, "meta") else values
        return d


class ResolveNoiseLeveld(MapTransform):
    """After :class:`ScaleNoisyImaged`: decide each image's noise (:func:`c2s_monai.noise_level.resolve_noise_level`), stabilise it, write its level map.

    Reads ``sigma_key``/``scale_key`` (as ``ScaleNoisyImaged`` wrote them) and a given map under
    ``map_key`` (image units, checked by :class:`LoadNoiseMapd`); writes the per-voxel level in
    network units under ``map_key`` (``(1, *spatial)``, constant where uniform, so that training
    patches carry it: :func:`c2s_monai.data.patch_transforms`), the median level under
    ``sigma_key`` and the decision (:meth:`~c2s_monai.noise_level.NoiseLevel.record`) under
    ``noise_key``. Magnitude data leave through their VST (:func:`~c2s_monai.noise_level.stabilise`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        noise_model: str = defaults.NOISE_MODEL,
        num_coils: int | str = defaults.NUM_COILS,
        sigma_map: str = defaults.SIGMA_MAP,
        sigma_key: str = "sigma_data",
        scale_key: str = "intensity_scale",
        map_key: str = "sigma_map",
        noise_key: str = "noise",
        estimated: bool = True,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.noise_model, self.num_coils = noise_model, num_coils
        self.sigma_map = check_sigma_map(sigma_map)
        if self.sigma_map not in SIGMA_MAP_MODES:
            raise ValueError(f"ResolveNoiseLeveld's sigma_map is 'none' or 'auto'; a map file comes with each item (its '{map_key}' key), got {sigma_map!r}.")
        self.sigma_key, self.scale_key, self.map_key, self.noise_key = sigma_key, scale_key, map_key, noise_key
        self.estimated = estimated

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            scale = float(d[self.scale_key])
            given = d.get(self.map_key)
            given = None if given is None or isinstance(given, str) else torch.as_tensor(given).float() / scale
            level = resolve_noise_level(
                image, float(d[self.sigma_key]), "estimated" if self.estimated else "given", self.noise_model, self.num_coils,
                self.sigma_map, given, input_name(image),
            )
            d[key] = stabilise(image, level)
            level_map = level.sigma_map if level.sigma_map is not None else torch.full_like(torch.as_tensor(image[:1]).float(), level.sigma)
            d[self.map_key] = convert_to_dst_type(level_map.reshape(image[:1].shape), image, dtype=torch.float32)[0]
            d[self.sigma_key] = torch.tensor(level.sigma, dtype=torch.float32)
            d[self.noise_key] = level.record(scale)
        return d


class MoveSliceAxisd(MapTransform):
    """Dictionary form of :class:`MoveSliceAxis`."""

    def __init__(self, keys: KeysCollection, slice_axis=defaults.SLICE_AXIS, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.mover = MoveSliceAxis(slice_axis)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.mover(d[key])
        return d


class CheckContextd(MapTransform):
    """Check a ``(C, H, W, D)`` training volume (slice axis last) for the context it is trained with.

    An explicit ``context_slices > 0`` refuses a single 2D image (no neighbour), naming the
    file; ``"auto"`` lets it through (it trains with zero context, as the 2D fallback denoises
    it). A 3D network (``spatial_dims`` 3) refuses a single 2D image too. With ``check_noise``,
    the noise correlation is measured and a warning logged where it is high
    (:func:`check_noise_independence`).
    """

    def __init__(
        self, keys: KeysCollection, context_slices=AUTO, check_noise: bool = True, spatial_dims: int = 2, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.context_slices = check_context_slices(context_slices)
        self.check_noise = check_noise
        self.spatial_dims = check_spatial_dims(spatial_dims)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            image = d[key]
            if self.spatial_dims == 3 and image.shape[-1] == 1:
                raise InputError(f"{input_name(image)}: a single 2D image; a 3D network needs volumes (spatial_dims 2 for 2D images).")
            if self.context_slices not in (AUTO, 0) and image.shape[-1] == 1:
                raise InputError(
                    f"{input_name(image)}: a single 2D image, so there are no neighbouring slices for "
                    f"context_slices={self.context_slices}; train on volumes, or use context_slices 'auto' or 0."
                )
            if self.check_noise and image.shape[-1] > 1:
                check_noise_independence(image[0], input_name(image), slice_axis=2)
        return d


class RandContextSliced(RandomizableTransform, MapTransform):
    """Pick a random target slice of a ``(C, H, W, D)`` column and stack its context into channels ``(C (2K + 1), H, W)``.

    Used after ``RandSpatialCropSamplesd`` with a full-depth ROI: each training patch then
    has a uniformly drawn target slice with its :func:`context_indices` neighbours.
    """

    def __init__(self, keys: KeysCollection, context_slices: int, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        self.context_slices = int(context_slices)
        self._slice = 0

    def randomize(self, depth: int) -> None:
        self._slice = int(self.R.randint(depth))

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        depth = d[keys[0]].shape[-1]
        self.randomize(depth)
        rows = context_indices(depth, self.context_slices)[self._slice : self._slice + 1]
        for key in keys:
            d[key] = context_stack(d[key], rows, self.context_slices)[0]
        return d


class RandDropContextd(RandomizableTransform, MapTransform):
    """With probability ``prob``, zero the context channels of a ``(C (2K + 1), H, W)`` patch (context dropout).

    The target slice of every contrast is kept. A network trained so also denoises a lone 2D
    image, whose context channels are zero (:func:`context_stack`, the 2D fallback).
    """

    def __init__(self, keys: KeysCollection, context_slices: int, prob: float = DEFAULT_CONTEXT_DROPOUT, allow_missing_keys: bool = False) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=prob)
        self.context_slices = int(context_slices)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform or self.context_slices == 0:
            return d
        block = 2 * self.context_slices + 1
        for key in self.key_iterator(d):
            image = d[key].clone()
            contrasts = image.shape[0] // block
            view = image.reshape(contrasts, block, *image.shape[1:])
            view[:, 1:] = 0
            d[key] = image
        return d


class RicianVSTd(MapTransform):
    """Dictionary form of :class:`RicianVST`, after :class:`~c2s_monai.transforms.ScaleNoisyImaged`.

    Reads the noise level from ``sigma_key`` (network units, as ``ScaleNoisyImaged`` wrote it):
    the VST is scale equivariant, so it can run in network units.
    """

    def __init__(self, keys: KeysCollection, sigma_key: str = "sigma_data", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.sigma_key = sigma_key
        self.transform = RicianVST()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], float(d[self.sigma_key]))
        return d


class AddNoised(RandomizableTransform, MapTransform):
    """Dictionary wrapper of :class:`AddNoise`; the same noise draw is not shared between keys."""

    backend = AddNoise.backend

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float,
        noise_model: str = "gaussian",
        prob: float = 1.0,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        self.adder = AddNoise(sigma=sigma, noise_model=noise_model, prob=1.0)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> AddNoised:
        super().set_random_state(seed, state)
        self.adder.set_random_state(seed, state)
        return self

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        self.randomize(None)
        for key in self.key_iterator(d):
            d[key] = self.adder(d[key], randomize=True) if self._do_transform else d[key]
        return d


class SimulateNoisyd(MapTransform):
    """Turn a clean reference under ``keys`` into a synthetic-noise pair (see the module docstring).

    Args:
        keys: key of the clean reference; it receives the noisy image.
        sigma: noise std as a fraction of the reference's maximum (> 0).
        noise_model: ``"gaussian"`` or ``"rician"``.
        seed: base seed; each volume's noise is seeded by ``seed`` and its file name.
        reference_key: key that receives the reference scaled to a peak of 1.
    """

    def __init__(
        self,
        keys: KeysCollection,
        sigma: float,
        noise_model: str = "gaussian",
        seed: int = 0,
        reference_key: str = "label",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not np.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"sigma (synthetic_sigma) must be a number > 0 (fraction of the reference's max), got {sigma!r}.")
        self.sigma = float(sigma)
        self.noise_model = check_noise_model(noise_model)
        self.seed = int(seed)
        self.reference_key = reference_key

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            clean = d[key]
            peak = float(clean.max())
            if not peak > 0:
                raise ValueError(f"{getattr(clean, 'meta', {}).get('filename_or_obj', key)}: the reference has no positive voxel.")
            reference = clean.float() / peak
            name = str(getattr(clean, "meta", {}).get("filename_or_obj", key))
            generator = torch.Generator().manual_seed(self.seed + (zlib.crc32(name.encode()) & 0x7FFFFFFF))
            noisy = add_noise(torch.as_tensor(reference).cpu(), self.sigma, self.noise_model, generator)
            d[self.reference_key] = reference
            d[key] = convert_to_dst_type(noisy, reference)[0]
        return d


EnsureVolumeD = EnsureVolumeDict = EnsureVolumed
ScaleNoisyImageD = ScaleNoisyImageDict = ScaleNoisyImaged
MoveSliceAxisD = MoveSliceAxisDict = MoveSliceAxisd
CheckContextD = CheckContextDict = CheckContextd
RandContextSliceD = RandContextSliceDict = RandContextSliced
RandDropContextD = RandDropContextDict = RandDropContextd
RicianVSTD = RicianVSTDict = RicianVSTd
LoadNoiseMapD = LoadNoiseMapDict = LoadNoiseMapd
ResolveNoiseLevelD = ResolveNoiseLevelDict = ResolveNoiseLeveld
AddNoiseD = AddNoiseDict = AddNoised
SimulateNoisyD = SimulateNoisyDict = SimulateNoisyd
