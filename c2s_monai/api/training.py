"""Training from Python: :func:`train` (one contrast) and :func:`train_multicontrast` (one network per target contrast).

``train`` writes ``<output_dir>/model.pt`` (the EMA weights, a plain state dict as in a
MONAI bundle), ``<output_dir>/model_config.json`` (the network's arguments and the
training settings) and, every epoch, a full checkpoint in ``<output_dir>/checkpoints``
(network, EMA, optimiser, scheduler, trainer state, random streams) from which a killed run
resumes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from monai.utils import set_determinism

from c2s_monai import defaults
from c2s_monai.context import (
    check_context_slices,
    check_slice_axis,
    check_spatial_dims,
    model_context_slices,
)
from c2s_monai.data import training_loader
from c2s_monai.engines import create_trainer
from c2s_monai.handlers import load_pretrained
from c2s_monai.intensity import (
    check_contrast_sigmas,
    contrast_sigma_data,
)
from c2s_monai.io import (
    atomic_write,
    check_writable_folder,
    write_text_atomic,
)
from c2s_monai.io.readers import list_inputs
from c2s_monai.losses import GDSMLoss
from c2s_monai.multicontrast import (
    check_contrasts,
    datalist_contrasts,
    load_datalist,
    optional_contrasts,
    record_channel_order,
    rotate_target,
)
from c2s_monai.naming import CONFIG_FILE, MODEL_FILE
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.noise_level import check_num_coils, check_sigma_map, legacy_noise_model, map_file
from c2s_monai.settings import parse_flag

logger = logging.getLogger(__name__)

def train(
    files: Sequence[str | os.PathLike] | Sequence[Mapping[str, str]],
    output_dir: str | os.PathLike,
    sigma_data: float | str = defaults.SIGMA_DATA,
    noise_model: str = defaults.NOISE_MODEL,
    epochs: int = 20,
    iterations_per_epoch: int = 100,
    patch_size: int = defaults.PATCH_SIZE,
    batch_size: int = defaults.BATCH_SIZE,
    learning_rate: float = defaults.LEARNING_RATE,
    warmup_iterations: int = defaults.WARMUP_ITERATIONS,
    ema_momentum: float = defaults.EMA_MOMENTUM,
    features: Sequence[int] = defaults.FEATURES,
    conditioning: str = defaults.CONDITIONING,
    tau_max: float = defaults.TAU_MAX,
    sigma_target_ratio: float = defaults.SIGMA_TARGET_RATIO,
    max_weight: float = defaults.MAX_WEIGHT,
    autocast_dtype: str = defaults.AUTOCAST_DTYPE,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    channels: Sequence[str] | None = None,
    resample_guides: bool = False,
    pretrained: str | os.PathLike | None = None,
    rician_vst: bool = False,
    context_slices: int | str = defaults.CONTEXT_SLICES,
    spatial_dims: int = defaults.SPATIAL_DIMS,
    slice_axis: int | str = defaults.SLICE_AXIS,
    context_dropout: float = defaults.CONTEXT_DROPOUT,
    h5_key: str = defaults.H5_KEY,
    num_coils: int | str = defaults.NUM_COILS,
    sigma_map: str | Sequence[str | os.PathLike] = defaults.SIGMA_MAP,
) -> Path:
    """Train a C2S denoiser on noisy volumes only; return the path of the EMA weights.

    ``files`` are read as the bundle's ``configs/train.json`` reads them
    (:class:`~c2s_monai.io.readers.LoadVolumed`, :class:`~c2s_monai.transforms.EnsureVolumed`):
    NIfTI files, DICOM series (a folder, or one file of it), HDF5 files (dataset ``h5_key``,
    ``(slices, rows, columns)``), and folders of them (expanded by
    :func:`~c2s_monai.io.readers.list_inputs`, earlier ``_denoised`` outputs skipped). Every
    input is loaded and checked before anything is written; a bad one raises the bundle's
    error (:class:`~c2s_monai.errors.InputError` naming it, ``FileNotFoundError`` if missing).

    All arguments are the method's knobs (``docs/method.md`` section 2-section 7 and section 9); ``sigma_data`` is the noise
    std in the images' units or ``"auto"`` (estimated per volume). Training resumes from
    ``<output_dir>/checkpoints`` when a checkpoint is there. ``pretrained`` (a ``model.pt``,
    e.g. the shipped ``bundle/models/model.pt``) starts from its weights instead of random
    ones: fine-tuning, for which ``learning_rate=4e-3`` with ``warmup_iterations=20`` was
    the fastest recipe measured (docs/benchmarks.md, time to quality).

    Noise (:mod:`c2s_monai.noise_level`, docs/method.md section 10): ``noise_model`` is the data's
    observation model, ``"auto"`` (the default: magnitude images with an air background train
    through the VST of their Rician or noncentral-chi model, ``num_coils`` coils, ``"auto"``
    estimated; signed data as Gaussian), ``"gaussian"``, ``"rician"`` or ``"noncentral_chi"``.
    ``sigma_map``: ``"none"`` (one level per volume), ``"auto"`` (a per-voxel map estimated per
    volume) or one map file per training volume (spatially varying noise: parallel imaging's
    g-factor). They are recorded beside the weights, and :func:`denoise` follows them.
    ``rician_vst``: the 0.6 flag for ``noise_model="rician"``.

    Volumes (:mod:`c2s_monai.context`): a 2D network sees the ``context_slices`` neighbouring
    slices on each side of its target slice (``"auto"``: the default
    :data:`~c2s_monai.context.DEFAULT_CONTEXT_SLICES`, which lets single 2D images through with
    zero context; an explicit number refuses them; 0: slice by slice), stacked along
    ``slice_axis`` (``"auto"``: the axis of largest voxel spacing); ``spatial_dims=3`` trains a
    native 3D network on ``patch_size``-cube patches instead. ``context_dropout``: the share of
    training patches whose context is zeroed, so the network also denoises a lone 2D image.

    Multi-contrast (:func:`train_multicontrast` calls it so): with ``channels`` (the target
    contrast, then its guides), ``files`` are subjects ``{contrast: file}`` and the network
    takes ``len(channels)`` image channels; ``sigma_data`` is the target's; the channel order
    is recorded beside the weights (``contrasts.json``).
    """
    output_dir = Path(output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    noise_model = legacy_noise_model(noise_model, bool(parse_flag(rician_vst, "rician_vst")))
    num_coils = check_num_coils(num_coils)
    if isinstance(sigma_map, (str, os.PathLike)) and map_file(sigma_map) is not None:
        sigma_map = [str(sigma_map)]  # one map file: of the one training file
    map_setting = check_sigma_map(sigma_map) if isinstance(sigma_map, (str, os.PathLike)) or sigma_map is None else [str(m) for m in sigma_map]
    set_determinism(seed)
    if channels is not None:
        channels = check_contrasts(channels)
    in_channels = len(channels) if channels else 1
    spatial_dims = check_spatial_dims(spatial_dims)
    context_slices = check_context_slices(context_slices)
    slice_axis = check_slice_axis(slice_axis)
    network_args: dict[str, Any] = {
        "spatial_dims": spatial_dims,
        "in_channels": in_channels,
        "context_slices": model_context_slices(spatial_dims, context_slices),
        "features": list(features),
        "conditioning": conditioning,
    }
    network = load_pretrained(NoiseConditionedUNet(**network_args), pretrained).to(device)
    loss = GDSMLoss(tau_max=tau_max, sigma_target_ratio=sigma_target_ratio, max_weight=max_weight)
    # loads and checks every file first: a bad one stops the run before anything is written
    # with channels, files are subjects
    items = training_inputs(cast(Sequence[str | os.PathLike], files)) if channels is None else list(cast(Sequence[Mapping[str, str]], files))
    loader = training_loader(
        items, sigma_data, patch_size, batch_size, iterations_per_epoch, seed, channels=channels, resample_guides=resample_guides,
        context_slices=context_slices, spatial_dims=spatial_dims, slice_axis=slice_axis,
        context_dropout=context_dropout, h5_key=str(h5_key), num_channels=None if channels is not None else 1,
        noise_model=noise_model, num_coils=num_coils, sigma_map=map_setting,
    )
    check_writable_folder(checkpoint_dir)
    if channels is not None:
        record_channel_order(output_dir / MODEL_FILE, channels)
    trainer, ema = create_trainer(
        network,
        loss,
        loader,
        epochs,
        iterations_per_epoch,
        learning_rate=learning_rate,
        warmup_iterations=warmup_iterations,
        ema_momentum=ema_momentum,
        device=device,
        autocast_dtype=autocast_dtype,
        checkpoint_dir=str(checkpoint_dir),
        progress=progress,
    )
    trainer.run()

    model_path = output_dir / MODEL_FILE
    atomic_write(model_path, lambda temporary: torch.save(ema.ema_model.state_dict(), temporary))
    settings = {
        "network": network_args,
        "training": {
            "sigma_data": sigma_data,
            "noise_model": noise_model,
            "num_coils": num_coils,
            "sigma_map": map_setting if isinstance(map_setting, str) else "given",
            "context_slices": context_slices,
            "slice_axis": slice_axis,
            "context_dropout": context_dropout,
            "epochs": epochs,
            "iterations_per_epoch": iterations_per_epoch,
            "patch_size": patch_size,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "ema_momentum": ema_momentum,
            "tau_max": tau_max,
            "sigma_target_ratio": sigma_target_ratio,
            "max_weight": max_weight,
            "seed": seed,
            "pretrained": None if pretrained is None else str(pretrained),
            **({"channels": channels, "resample_guides": bool(parse_flag(resample_guides))} if channels else {}),
        },
    }
    write_text_atomic(output_dir / CONFIG_FILE, json.dumps(settings, indent=2))
    return model_path


def training_inputs(files: Sequence[str | os.PathLike] | str | os.PathLike) -> list[str]:
    """The volumes of ``files``: files (NIfTI, HDF5, a DICOM file) as given, folders expanded by :func:`~c2s_monai.io.readers.list_inputs`.

    As :func:`~c2s_monai.api.denoise_files` expands its inputs: a DICOM series folder is one
    input, a folder of NIfTI/HDF5 files or of series folders gives each of them.
    """
    items = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    found: list[str] = []
    for item in items:
        if Path(item).is_dir():
            found.extend(list_inputs(item))
        else:
            found.append(str(item))
    return list(dict.fromkeys(found))


def train_multicontrast(
    subjects: str | os.PathLike | Sequence[Mapping[str, str]],
    output_dir: str | os.PathLike,
    contrasts: Sequence[str] | str | None = None,
    targets: Sequence[str] | str | None = None,
    sigma_data: float | str | Mapping[str, float | str] = defaults.SIGMA_DATA,
    resample_guides: bool = False,
    **options,
) -> dict[str, Path]:
    """Train one multi-contrast network per target contrast; return ``{target: <output_dir>/<target>/model.pt}``.

    The network for target ``t`` takes the channels ``rotate_target(contrasts, t)``: ``t``
    (re-corrupted and predicted) then the other contrasts as guides (docs/method.md section 9).
    One network per target, because a network knows each guide only by its position; the
    order is recorded beside the weights (``contrasts.json``) and checked when it is used.

    Args:
        subjects: a datalist file (JSON/CSV, :func:`c2s_monai.multicontrast.load_datalist`) or its entries.
        output_dir: one sub-folder per target (weights, ``model_config.json``, ``contrasts.json``, checkpoints).
        contrasts: the channel order (default: the datalist's order).
        targets: the contrasts to train a network for (default: all of them, for joint mode).
        sigma_data: one setting for every contrast, or ``{contrast: sigma or "auto"}`` (image units).
        resample_guides: resample guides on another grid onto the target's (else they are refused).
        options: the keywords of :func:`train` (``epochs``, ``features``, ``patch_size``, ...).
    """
    subject_list = load_datalist(subjects, contrasts)
    names = check_contrasts(contrasts) if contrasts is not None else datalist_contrasts(subject_list)
    targets = optional_contrasts(targets) or names
    check_contrast_sigmas(sigma_data)
    models = {}
    for target in targets:
        channels = rotate_target(names, target)
        logger.info("training the %s network (input channels %s)", target, channels)
        models[target] = train(
            subject_list, Path(output_dir) / target, sigma_data=contrast_sigma_data(sigma_data, target),
            channels=channels, resample_guides=resample_guides, **options,
        )
    return models
