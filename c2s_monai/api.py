"""The three-line Python API: train C2S on noisy files, denoise a file.

    from c2s_monai import train, denoise
    model = train(["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"], "runs/t1")
    denoise("sub-03_T1w.nii.gz", model)            # writes sub-03_T1w_denoised.nii.gz

``train`` writes ``<output_dir>/model.pt`` (the EMA weights, a plain state dict as in a
MONAI bundle), ``<output_dir>/model_config.json`` (the network's arguments and the
training settings) and, every epoch, a full checkpoint in ``<output_dir>/checkpoints``
(network, EMA, optimiser, scheduler, trainer state, random streams) from which a killed run
resumes. ``denoise_files`` denoises many inputs, goes on past bad ones and writes a JSON
summary (:mod:`c2s_monai.batch`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.utils import set_determinism

from c2s_monai.batch import BatchSummary
from c2s_monai.data import training_loader
from c2s_monai.engines import create_trainer
from c2s_monai.errors import InputError, describe
from c2s_monai.handlers import read_checkpoint
from c2s_monai.inferers import C2SInferer
from c2s_monai.intensity import check_sigma_data
from c2s_monai.io import (
    atomic_write,
    check_output_path,
    check_writable_folder,
    default_output_path,
    load_volume,
    save_like,
    write_text_atomic,
)
from c2s_monai.losses import GDSMLoss
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.readers import input_kind, list_inputs
from c2s_monai.transforms import EnsureVolume
from c2s_monai.writers import parse_flag, save_nifti

logger = logging.getLogger(__name__)

MODEL_FILE = "model.pt"
CONFIG_FILE = "model_config.json"
DEFAULT_FEATURES = (32, 32, 64, 128, 256, 32)


def train(
    files: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    sigma_data: float | str = "auto",
    noise_model: str = "gaussian",
    epochs: int = 20,
    iterations_per_epoch: int = 100,
    patch_size: int = 96,
    batch_size: int = 8,
    learning_rate: float = 2e-3,
    warmup_iterations: int = 200,
    ema_momentum: float = 0.001,
    features: Sequence[int] = DEFAULT_FEATURES,
    conditioning: str = "map",
    tau_max: float = 1.0,
    sigma_target_ratio: float = 0.0,
    max_weight: float = 4.0,
    autocast_dtype: str = "float32",
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Train a C2S denoiser on noisy volumes only; return the path of the EMA weights.

    All arguments are the method's knobs (``shared/method.md``); ``sigma_data`` is the noise
    std in the images' units or ``"auto"`` (estimated per volume). Training resumes from
    ``<output_dir>/checkpoints`` when a checkpoint is there.
    """
    output_dir = Path(output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    set_determinism(seed)
    network_args = {"spatial_dims": 2, "in_channels": 1, "features": list(features), "conditioning": conditioning}
    network = NoiseConditionedUNet(**network_args).to(device)
    loss = GDSMLoss(tau_max=tau_max, sigma_target_ratio=sigma_target_ratio, max_weight=max_weight, noise_model=noise_model)
    # loads and checks every file first: a bad one stops the run before anything is written
    loader = training_loader([str(f) for f in files], sigma_data, patch_size, batch_size, iterations_per_epoch, seed)
    check_writable_folder(checkpoint_dir)
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
        },
    }
    write_text_atomic(output_dir / CONFIG_FILE, json.dumps(settings, indent=2))
    return model_path


def load_network(model_path: str | os.PathLike, device: str = "cpu") -> NoiseConditionedUNet:
    """Build the network described by ``model_config.json`` beside ``model_path`` and load its weights."""
    model_path = Path(model_path)
    config_path = model_path.parent / CONFIG_FILE
    try:
        network_args = json.loads(config_path.read_text())["network"] if config_path.is_file() else {}
    except (ValueError, KeyError) as error:
        raise InputError(f"{config_path}: not a model_config.json written by c2s_monai.train ({error}); restore or remove it.") from error
    network = NoiseConditionedUNet(**network_args)
    state = read_checkpoint(model_path, map_location=device)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise InputError(
            f"{model_path}: the checkpoint does not fit the network {network_args or '(defaults)'} "
            f"({describe(error)}); put the model_config.json it was trained with beside it."
        ) from error
    return network.to(device).eval()


def denoise(
    input_file: str | os.PathLike,
    model: str | os.PathLike | torch.nn.Module,
    output_file: str | os.PathLike | None = None,
    sigma_data: float | str = "auto",
    flips: int = 4,
    device: str = "cpu",
    each_volume: bool = False,
) -> Path:
    """Denoise one volume and write ``<name>_denoised.nii.gz`` beside it (or ``output_file``).

    ``input_file`` is NIfTI (the output keeps its affine and header, float32 voxels), a DICOM
    series folder or an HDF5 file (the output has the reader's affine). With ``each_volume``,
    a 4D series is denoised volume by volume (each at its own noise level) into one 4D
    output. Returns the output path; the input is never overwritten, and a bad input raises
    :class:`~c2s_monai.errors.InputError` before anything is written.
    """
    output_file = check_output_path(input_file, output_file if output_file is not None else default_output_path(input_file))
    inferer = C2SInferer(sigma_data=sigma_data, flips=flips)
    network = model if isinstance(model, torch.nn.Module) else load_network(model, device)
    check_writable_folder(output_file.parent, create=False)
    volumes = load_volume(input_file, num_channels=None if parse_flag(each_volume, "each_volume") else 1)
    denoised = []
    for index in range(volumes.shape[0]):
        volume = volumes[index : index + 1]
        if volumes.shape[0] > 1:
            try:
                volume = EnsureVolume(num_channels=1)(volume)
            except InputError as error:
                raise InputError(f"{error} (volume {index} of the series)") from error
        denoised.append(inferer(volume.unsqueeze(0).to(device), network)[0, 0])
        logger.info("%s: sigma_data = %.6g (image units)", input_file, inferer.sigma_used[0])
    result = torch.stack(denoised, dim=-1) if len(denoised) > 1 else denoised[0]
    if input_kind(input_file) == "nifti":
        return save_like(result, input_file, output_file)
    return save_nifti(result, volumes.meta["affine"], output_file)


def denoise_files(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike | torch.nn.Module,
    output_dir: str | os.PathLike | None = None,
    summary_file: str | os.PathLike | None = None,
    device: str = "cpu",
    **options,
) -> BatchSummary:
    """Denoise every input (files, DICOM series folders, folders of them), going on past bad ones.

    Each input is written as by :func:`denoise` into ``output_dir`` (default: beside it). A
    bad input is recorded and skipped, nothing written for it; at the end the outcome of every
    input is written to ``summary_file`` (default ``<output_dir>/summary.json``; none without
    either) and returned as a :class:`~c2s_monai.batch.BatchSummary`, whose ``check()`` raises
    if any input failed. A bad model, setting or output folder stops the run at once.

    Args:
        inputs: files and folders; a folder is expanded by :func:`c2s_monai.readers.list_inputs`.
        model, device, options: as :func:`denoise` (``sigma_data``, ``flips``, ``each_volume``).
    """
    check_sigma_data(options.get("sigma_data", "auto"))
    network = model if isinstance(model, torch.nn.Module) else load_network(model, device)
    if output_dir is not None:
        check_writable_folder(output_dir)
    summary_file = summary_file if summary_file is not None else (Path(output_dir) / "summary.json" if output_dir is not None else None)
    files, unlisted = [], []
    for item in inputs:
        if Path(item).is_dir():
            try:
                files.extend(list_inputs(item))
            except (InputError, FileNotFoundError) as error:
                unlisted.append((str(item), error))
        else:
            files.append(str(item))
    summary = BatchSummary(summary_file, inputs=[item for item, _ in unlisted] + files)
    for item, error in unlisted:
        summary.failed(item, "list", error)
    for file in files:
        try:
            summary.denoised(file, denoise(file, network, default_output_path(file, output_dir), device=device, **options))
        except Exception as error:  # one input's failure is not the run's
            summary.failed(file, "denoise", error)
    summary.write()
    return summary
