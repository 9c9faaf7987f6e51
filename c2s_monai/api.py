"""The three-line Python API: train C2S on noisy files, denoise a file.

    from c2s_monai import train, denoise
    model = train(["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"], "runs/t1")
    denoise("sub-03_T1w.nii.gz", model)            # writes sub-03_T1w_denoised.nii.gz

``train`` writes ``<output_dir>/model.pt`` (the EMA weights, a plain state dict as in a
MONAI bundle), ``<output_dir>/model_config.json`` (the network's arguments and the
training settings) and, every epoch, a full checkpoint in ``<output_dir>/checkpoints``
(network, EMA, optimiser, scheduler, trainer state) from which a killed run resumes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from monai.utils import set_determinism

from c2s_monai.data import training_loader
from c2s_monai.engines import create_trainer
from c2s_monai.inferers import C2SInferer
from c2s_monai.io import atomic_write, check_output_path, default_output_path, load_volume, save_like
from c2s_monai.losses import GDSMLoss
from c2s_monai.networks import NoiseConditionedUNet

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
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    set_determinism(seed)
    network_args = {"spatial_dims": 2, "in_channels": 1, "features": list(features), "conditioning": conditioning}
    network = NoiseConditionedUNet(**network_args).to(device)
    loss = GDSMLoss(tau_max=tau_max, sigma_target_ratio=sigma_target_ratio, max_weight=max_weight, noise_model=noise_model)
    loader = training_loader([str(f) for f in files], sigma_data, patch_size, batch_size, iterations_per_epoch, seed)
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
    (output_dir / CONFIG_FILE).write_text(json.dumps(settings, indent=2))
    return model_path


def load_network(model_path: str | os.PathLike, device: str = "cpu") -> NoiseConditionedUNet:
    """Build the network described by ``model_config.json`` beside ``model_path`` and load its weights."""
    model_path = Path(model_path)
    config_path = model_path.parent / CONFIG_FILE
    network_args = json.loads(config_path.read_text())["network"] if config_path.is_file() else {}
    network = NoiseConditionedUNet(**network_args)
    state = torch.load(model_path, map_location=device, weights_only=True)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise ValueError(
            f"{model_path}: the checkpoint does not fit the network {network_args or '(defaults)'}; "
            f"use the model_config.json it was trained with. ({str(error).splitlines()[0]})"
        ) from error
    return network.to(device).eval()


def denoise(
    input_file: str | os.PathLike,
    model: str | os.PathLike | torch.nn.Module,
    output_file: str | os.PathLike | None = None,
    sigma_data: float | str = "auto",
    flips: int = 4,
    device: str = "cpu",
) -> Path:
    """Denoise one NIfTI volume and write ``<name>_denoised.nii.gz`` beside it (or ``output_file``).

    Returns the output path; the input is never overwritten and the output keeps the
    input's affine and header (float32 voxels).
    """
    output_file = check_output_path(input_file, output_file if output_file is not None else default_output_path(input_file))
    network = model if isinstance(model, torch.nn.Module) else load_network(model, device)
    volume = load_volume(input_file)
    inferer = C2SInferer(sigma_data=sigma_data, flips=flips)
    denoised = inferer(volume.as_tensor().unsqueeze(0).to(device), network)[0]
    logger.info("%s: sigma_data = %.6g (image units)", input_file, inferer.sigma_used[0])
    return save_like(denoised, input_file, output_file)
