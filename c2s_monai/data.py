"""Training data: random patches of noisy volumes, in network units.

Each dataset item is one volume; its deterministic part (load and check as the bundle does,
with :class:`~c2s_monai.io.readers.LoadVolumed` and :class:`~c2s_monai.transforms.EnsureVolumed`:
NIfTI, DICOM series folders, HDF5; move the slice axis last, scale to network units with its
noise level) is cached by MONAI's ``CacheDataset``, and every draw crops
``patches_per_volume`` random patches (:func:`patch_transforms`): 2D in-plane patches from random slices, with the ``K`` neighbouring slices on each side as
extra channels for 2.5D context (:mod:`c2s_monai.context`), or 3D patches for a 3D
network; with flips and 90-degree rotations. A sampler with replacement sets the epoch length in iterations,
independent of the number of volumes; in distributed training :class:`EpochDataset` gives a
``DistributedSampler`` that many items per process.

Multi-contrast training (:mod:`c2s_monai.multicontrast`) uses one item per subject: its
contrasts are loaded, checked, stacked into one image with the target first
(:func:`multicontrast_volume_transforms`) and cropped together, so the guides' patches lie
on the target's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from monai.data import CacheDataset, DataLoader
from monai.transforms import (
    Compose,
    RandFlipd,
    RandRotate90d,
    RandSpatialCropSamplesd,
    SpatialPadd,
    SqueezeDimd,
)

from c2s_monai import defaults
from c2s_monai.context import AUTO, model_context_slices
from c2s_monai.errors import InputError, root_cause
from c2s_monai.io.readers import LoadVolumed
from c2s_monai.multicontrast import StackContrastsd, target_items
from c2s_monai.noise_level import legacy_noise_model, map_file
from c2s_monai.transforms import (
    CheckContextd,
    EnsureVolumed,
    LoadNoiseMapd,
    MoveSliceAxisd,
    RandContextSliced,
    RandDropContextd,
    ResolveNoiseLeveld,
    ScaleNoisyImaged,
)

# The key of each item's per-voxel noise level: a given map file, then the level map in network units.
MAP_KEY = "sigma_map"


def volume_transforms(
    keys: str = "image",
    sigma_data: float | str = defaults.SIGMA_DATA,
    percentile: float = defaults.INTENSITY_PERCENTILE,
    channel_scaling: str = "per_channel",
    rician_vst: bool = False,
    slice_axis: int | str = AUTO,
    context_slices: int | str = 0,
    spatial_dims: int = 2,
    h5_key: str = defaults.H5_KEY,
    num_channels: int | None = None,
    noise_model: str = defaults.NOISE_MODEL,
    num_coils: int | str = defaults.NUM_COILS,
    sigma_map: str = defaults.SIGMA_MAP,
) -> Compose:
    """Load, check, move the slice axis last and scale one volume to network units, adding ``sigma_data``, ``intensity_scale``, ``sigma_map`` and ``noise`` keys.

    Loading and checking are the bundle's (``load_transforms`` of ``configs/train.json``):
    :class:`~c2s_monai.io.readers.LoadVolumed` (NIfTI, a DICOM series folder or file, HDF5
    dataset ``h5_key``) then :class:`~c2s_monai.transforms.EnsureVolumed` (``num_channels``:
    the channels expected, ``None`` any), with their error messages.

    ``channel_scaling``: see :class:`c2s_monai.transforms.ScaleNoisyImage`. ``noise_model``,
    ``num_coils``, ``sigma_map``: the noise (:mod:`c2s_monai.noise_level`; magnitude data leave
    stabilised, :class:`c2s_monai.transforms.ResolveNoiseLeveld`); an item's given map file is
    its ``sigma_map`` key, checked against the image (:class:`c2s_monai.transforms.LoadNoiseMapd`).
    ``rician_vst``: the 0.6 flag for ``noise_model="rician"``. ``slice_axis``, ``context_slices``:
    :func:`c2s_monai.context.resolve_slice_axis`, :class:`c2s_monai.transforms.CheckContextd`.
    """
    noise_model = legacy_noise_model(noise_model, rician_vst)
    return Compose(
        [
            LoadVolumed(keys, h5_key=h5_key),
            EnsureVolumed(keys, num_channels=num_channels),
            LoadNoiseMapd(MAP_KEY, image_key=keys, h5_key=h5_key),
            MoveSliceAxisd([keys, MAP_KEY], slice_axis, allow_missing_keys=True),
            CheckContextd(keys, context_slices, spatial_dims=spatial_dims),
            ScaleNoisyImaged(keys, sigma_data=sigma_data, percentile=percentile, channel_scaling=channel_scaling),
            ResolveNoiseLeveld(keys, noise_model, num_coils, sigma_map, map_key=MAP_KEY, estimated=isinstance(sigma_data, str)),
        ]
    )


def multicontrast_volume_transforms(
    contrasts: Sequence[str],
    sigma_data: float | str = defaults.SIGMA_DATA,
    percentile: float = defaults.INTENSITY_PERCENTILE,
    resample_guides: bool = False,
    tolerance: float = 1e-3,
    slice_axis: int | str = AUTO,
    context_slices: int | str = 0,
    spatial_dims: int = 2,
    h5_key: str = defaults.H5_KEY,
    noise_model: str = defaults.NOISE_MODEL,
    num_coils: int | str = defaults.NUM_COILS,
    sigma_map: str = defaults.SIGMA_MAP,
) -> Compose:
    """Load a subject's contrasts, check each, stack them into ``image`` (the item's ``target_contrast`` first), move the slice axis last, scale.

    ``sigma_data`` is the target's (:func:`c2s_monai.intensity.contrast_sigma_data`); so are the
    noise settings and a given map (the subject's ``sigma_map`` key), which must lie on the target's grid.
    """
    contrasts = list(contrasts)
    return Compose(
        [
            LoadVolumed(contrasts, h5_key=h5_key, allow_missing_keys=True),
            EnsureVolumed(contrasts, num_channels=1, allow_missing_keys=True),
            StackContrastsd(contrasts, output_key="image", resample=resample_guides, tolerance=tolerance),
            LoadNoiseMapd(MAP_KEY, image_key="image", h5_key=h5_key),
            MoveSliceAxisd(["image", MAP_KEY], slice_axis, allow_missing_keys=True),
            CheckContextd("image", context_slices, spatial_dims=spatial_dims),
            ScaleNoisyImaged("image", sigma_data=sigma_data, percentile=percentile),
            ResolveNoiseLeveld("image", noise_model, num_coils, sigma_map, map_key=MAP_KEY, estimated=isinstance(sigma_data, str)),
        ]
    )


def patch_transforms(
    keys: str = "image",
    patch_size: int = defaults.PATCH_SIZE,
    patches_per_volume: int = defaults.BATCH_SIZE,
    context_slices: int = 0,
    spatial_dims: int = 2,
    context_dropout: float = defaults.CONTEXT_DROPOUT,
    map_key: str | None = MAP_KEY,
) -> Compose:
    """Random training patches of a ``(C, H, W, D)`` volume whose slice axis is last, flipped and rotated.

    - ``spatial_dims=2``, ``context_slices=0``: ``patch_size``-square patches ``(C, P, P)`` of random slices;
    - ``context_slices=K > 0``: the same, with the ``K`` neighbouring slices on each side of the
      patch's slice as channels ``(C (2K + 1), P, P)`` (:class:`c2s_monai.transforms.RandContextSliced`;
      ends reflected), and with probability ``context_dropout`` the context zeroed
      (:class:`c2s_monai.transforms.RandDropContextd`, so the network also denoises a lone image);
    - ``spatial_dims=3``: ``patch_size``-cube patches ``(C, P, P, P)``.

    The item's level map (``map_key``, :class:`~c2s_monai.transforms.ResolveNoiseLeveld`) is
    cropped, flipped and rotated with the image (its context channels ride along; the loss takes
    the target's, channel 0).
    """
    image_key = keys
    keys = [image_key, map_key] if map_key else [image_key]  # type: ignore[assignment]
    if spatial_dims == 3:
        size = (patch_size,) * 3
        return Compose(
            [
                # numpy's symmetric padding repeats as often as needed: volumes thinner than a patch train too
                SpatialPadd(keys, spatial_size=size, mode="symmetric", allow_missing_keys=True),
                RandSpatialCropSamplesd(keys, roi_size=size, num_samples=patches_per_volume, random_size=False, allow_missing_keys=True),
                RandFlipd(keys, prob=0.5, spatial_axis=0, allow_missing_keys=True),
                RandFlipd(keys, prob=0.5, spatial_axis=1, allow_missing_keys=True),
                RandFlipd(keys, prob=0.5, spatial_axis=2, allow_missing_keys=True),
                RandRotate90d(keys, prob=0.75, max_k=3, spatial_axes=(0, 1), allow_missing_keys=True),
            ]
        )
    if context_slices:
        # a full-depth column per patch, then its random target slice with the neighbours as channels
        return Compose(
            [
                SpatialPadd(keys, spatial_size=(patch_size, patch_size, -1), mode="symmetric", allow_missing_keys=True),
                RandSpatialCropSamplesd(keys, roi_size=(patch_size, patch_size, -1), num_samples=patches_per_volume, random_size=False, allow_missing_keys=True),
                RandContextSliced(keys, context_slices, allow_missing_keys=True),
                RandFlipd(keys, prob=0.5, spatial_axis=0, allow_missing_keys=True),
                RandFlipd(keys, prob=0.5, spatial_axis=1, allow_missing_keys=True),
                RandRotate90d(keys, prob=0.75, max_k=3, allow_missing_keys=True),
                RandDropContextd(image_key, context_slices, prob=context_dropout),
            ]
        )
    return Compose(
        [
            SpatialPadd(keys, spatial_size=(patch_size, patch_size, 1), mode="reflect", allow_missing_keys=True),
            RandSpatialCropSamplesd(keys, roi_size=(patch_size, patch_size, 1), num_samples=patches_per_volume, random_size=False, allow_missing_keys=True),
            # patches are network inputs: their 2D affine is never used (and would be ill-posed for a
            # sagittal or coronal volume, whose slice axis is not the world's z)
            SqueezeDimd(keys, dim=-1, update_meta=False, allow_missing_keys=True),
            RandFlipd(keys, prob=0.5, spatial_axis=0, allow_missing_keys=True),
            RandFlipd(keys, prob=0.5, spatial_axis=1, allow_missing_keys=True),
            RandRotate90d(keys, prob=0.75, max_k=3, allow_missing_keys=True),
        ]
    )


def training_loader(
    files: Sequence[str] | Sequence[Mapping[str, str]],
    sigma_data: float | str = defaults.SIGMA_DATA,
    patch_size: int = 96,
    batch_size: int = 8,
    iterations_per_epoch: int = 100,
    seed: int = 0,
    num_workers: int = 0,
    channels: Sequence[str] | None = None,
    resample_guides: bool = False,
    channel_scaling: str = "per_channel",
    rician_vst: bool = False,
    context_slices: int | str = 0,
    spatial_dims: int = 2,
    slice_axis: int | str = AUTO,
    context_dropout: float = defaults.CONTEXT_DROPOUT,
    h5_key: str = defaults.H5_KEY,
    num_channels: int | None = None,
    noise_model: str = defaults.NOISE_MODEL,
    num_coils: int | str = defaults.NUM_COILS,
    sigma_map: str | Sequence[str] = defaults.SIGMA_MAP,
) -> DataLoader:
    """A ``DataLoader`` of ``batch_size`` patches per step, ``iterations_per_epoch`` steps per epoch.

    ``files`` are volumes, or, with ``channels`` (multi-contrast: the target, then the guides),
    subjects ``{contrast: file}`` as :func:`c2s_monai.multicontrast.load_datalist` reads them.
    ``channel_scaling`` (files of several channels): ``"target"`` scales every channel by the
    first one's scale (:class:`c2s_monai.transforms.ScaleNoisyImage`). ``rician_vst``: train on
    the variance-stabilised target (:mod:`c2s_monai.vst`). ``context_slices``, ``spatial_dims``,
    ``context_dropout``: the patches, :func:`patch_transforms` (``context_slices`` also
    ``"auto"``: :data:`c2s_monai.context.DEFAULT_CONTEXT_SLICES`, single 2D images allowed);
    ``slice_axis``: :func:`c2s_monai.context.resolve_slice_axis`. ``noise_model``, ``num_coils``:
    the data's noise (:mod:`c2s_monai.noise_level`; ``rician_vst`` is the 0.6 flag for
    ``noise_model="rician"``); ``sigma_map``: ``"none"``, ``"auto"`` (a map estimated per volume)
    or one given map file per training file: the patches then carry the per-voxel level and the
    loss re-corrupts in proportion to it (:class:`c2s_monai.losses.GDSMLoss`).

    Every file is loaded and checked as the bundle does (:func:`volume_transforms`; ``h5_key``:
    the HDF5 dataset, ``num_channels``: the channels a single-contrast file must have, ``None``
    any) before the loader is returned: a bad one raises its reader's or checker's own error
    (an :class:`~c2s_monai.errors.InputError` naming it, ``FileNotFoundError`` for a missing
    one), not MONAI's ``RuntimeError("applying transform ...")`` wrapper.
    """
    if not files:
        raise ValueError("no training files were given.")
    if spatial_dims == 3 and (patch_size < 32 or patch_size % 16):
        raise ValueError(f"3D patches must be a multiple of 16 and at least 32 voxels a side (BasicUNet's four poolings), got {patch_size}.")
    noise_model = legacy_noise_model(noise_model, rician_vst)
    if isinstance(sigma_map, (str, os.PathLike)) and map_file(sigma_map) is not None:
        sigma_map = [str(sigma_map)]  # one map file: of the one training file
    map_files = None if isinstance(sigma_map, str) or sigma_map is None else [str(m) for m in sigma_map]
    if map_files is not None and len(map_files) != len(files):
        raise ValueError(f"sigma_map gives {len(map_files)} map files for {len(files)} training files; give one per file, or 'auto'/'none'.")
    map_mode = "none" if map_files is not None else str(sigma_map or "none")
    noise: dict[str, Any] = {"noise_model": noise_model, "num_coils": num_coils, "sigma_map": map_mode}
    if channels is None:
        data = [{"image": str(f), **({MAP_KEY: map_files[i]} if map_files else {})} for i, f in enumerate(files)]
        head = volume_transforms(
            "image", sigma_data, channel_scaling=channel_scaling, slice_axis=slice_axis, context_slices=context_slices,
            spatial_dims=spatial_dims, h5_key=h5_key, num_channels=num_channels, **noise,
        )
    else:
        data = target_items(cast(Sequence[Mapping[str, str]], files), [channels[0]])  # with channels, files are subjects
        if map_files:
            data = [{**item, MAP_KEY: map_files[i]} for i, item in enumerate(data)]
        head = multicontrast_volume_transforms(
            channels, sigma_data, resample_guides=resample_guides, slice_axis=slice_axis, context_slices=context_slices,
            spatial_dims=spatial_dims, h5_key=h5_key, **noise,
        )
    patches = patch_transforms("image", patch_size, batch_size, model_context_slices(spatial_dims, context_slices), spatial_dims, context_dropout)
    # flat, so that CacheDataset caches the deterministic head (a nested Compose counts as random)
    transform = Compose([head, patches]).flatten()
    transform.set_random_state(seed=seed)
    try:
        dataset = CacheDataset(data, transform=transform, progress=False, num_workers=None)
    except Exception as error:
        cause = root_cause(error)
        if isinstance(cause, (InputError, FileNotFoundError)):
            raise cause from None  # the bundle's message, without MONAI's wrapper
        raise
    generator = torch.Generator().manual_seed(seed)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=iterations_per_epoch, generator=generator)
    return DataLoader(dataset, batch_size=1, sampler=sampler, num_workers=num_workers)


class EpochDataset(torch.utils.data.Dataset):
    """``length`` items that cycle through ``dataset``: item ``i`` is ``dataset[i % len(dataset)]``.

    An epoch of C2S training is a number of iterations, not a pass over the volumes. Under a
    ``DistributedSampler`` (``configs/multi_gpu_train.json``) an ``EpochDataset`` of
    ``iterations_per_epoch x world size`` items gives every process ``iterations_per_epoch``
    items per epoch, the volumes evenly mixed, in an order that changes with the epoch.
    """

    def __init__(self, dataset, length: int) -> None:
        if len(dataset) == 0:
            raise ValueError("EpochDataset needs a non-empty dataset.")
        if length < 1:
            raise ValueError(f"EpochDataset length must be >= 1, got {length!r}.")
        self.dataset = dataset
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return self.dataset[index % len(self.dataset)]
