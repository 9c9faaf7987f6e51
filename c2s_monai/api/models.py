"""Trained weights and what was recorded beside them (``model_config.json``, ``contrasts.json``).

:func:`load_network` builds the network a ``model.pt`` was trained as, from its recorded
arguments or, for bare weights, from their layout; :func:`training_setting` reads a setting
the training recorded (the Rician VST, the slice axis), which denoising follows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from c2s_monai import defaults
from c2s_monai.errors import InputError, describe
from c2s_monai.handlers import FIRST_CONV, read_checkpoint
from c2s_monai.multicontrast import (
    read_channel_order,
)
from c2s_monai.naming import CONFIG_FILE
from c2s_monai.networks import NoiseConditionedUNet


def _model_config(model_path: str | os.PathLike) -> dict:
    """The ``model_config.json`` :func:`train` wrote beside ``model_path`` (``{}`` where there is none)."""
    config_path = Path(model_path).parent / CONFIG_FILE
    if not config_path.is_file():
        return {}
    try:
        config = json.loads(config_path.read_text())
        if not isinstance(config, dict) or "network" not in config:
            raise KeyError("network")
    except (ValueError, KeyError) as error:
        raise InputError(f"{config_path}: not a model_config.json written by c2s_monai.train ({error}); restore or remove it.") from error
    return config


def _layout_of_weights(state: Mapping, in_channels: int) -> dict:
    """``spatial_dims``, ``context_slices`` and ``conditioning`` that weights of ``in_channels`` contrasts were trained with.

    Read off the first convolution, ``(width, C (2K + 1) [+ 1 level map], 3, 3[, 3])``, and
    the presence of FiLM layers; ``{}`` where it does not tell (the defaults then apply).
    """
    weight = state.get(FIRST_CONV) if isinstance(state, Mapping) else None
    if weight is None:
        return {}
    film = any(str(name).startswith("embedding.") for name in state)
    for conditioning, extra in ((("map+film", 1), ("film", 0)) if film else (("map", 1),)):
        image_channels = int(weight.shape[1]) - extra
        block, remainder = divmod(image_channels, in_channels)
        if not remainder and block % 2 == 1:
            return {"spatial_dims": weight.ndim - 2, "context_slices": (block - 1) // 2, "conditioning": conditioning}
    return {}


def load_network(model_path: str | os.PathLike, device: str = "cpu", in_channels: int | None = None) -> NoiseConditionedUNet:
    """Build the network described by ``model_config.json`` beside ``model_path`` and load its weights.

    Without a ``model_config.json`` (a bundle checkpoint, e.g. the shipped ``bundle/models/model.pt``)
    the network's dimensions, 2.5D context and conditioning are read off the weights, with the
    default widths; ``in_channels`` then says the contrasts (a multi-contrast bundle checkpoint,
    whose channels ``contrasts.json`` records).
    """
    model_path = Path(model_path)
    state = read_checkpoint(model_path, map_location=device)
    network_args = _model_config(model_path).get("network")
    if network_args is None:
        if in_channels is None:  # a multi-contrast bundle checkpoint records its channels beside it
            in_channels = len(read_channel_order(model_path) or [None])
        network_args = {"in_channels": int(in_channels), **_layout_of_weights(state, int(in_channels))}
    elif in_channels is not None:
        network_args = {"in_channels": int(in_channels), **network_args}
    network = NoiseConditionedUNet(**network_args)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise InputError(
            f"{model_path}: the checkpoint does not fit the network {network_args or '(defaults)'} "
            f"({describe(error)}); put the model_config.json it was trained with beside it."
        ) from error
    return network.to(device).eval()


def training_setting(model: str | os.PathLike | torch.nn.Module, name: str, default):
    """A training setting :func:`train` recorded beside the weights at ``model`` (``default`` for a module or none)."""
    if isinstance(model, torch.nn.Module):
        return default
    return _model_config(model).get("training", {}).get(name, default)


def trained_with_rician_vst(model: str | os.PathLike | torch.nn.Module) -> bool:
    """Whether the weights at ``model`` were trained on variance-stabilised Rician data (``model_config.json``)."""
    return bool(training_setting(model, "rician_vst", False)) or training_setting(model, "noise_model", None) == "rician"


def trained_noise_settings(model: str | os.PathLike | torch.nn.Module) -> dict:
    """The noise settings :func:`denoise` follows for ``model``: as trained, or the defaults (:mod:`c2s_monai.noise_level`).

    A 0.6 ``rician_vst`` model denoises with ``noise_model="rician"``; a model trained with a
    noise map (estimated or given) denoises with an estimated one, ``sigma_map="auto"``.
    """
    noise_model = "rician" if training_setting(model, "rician_vst", False) else training_setting(model, "noise_model", defaults.NOISE_MODEL)
    trained_map = training_setting(model, "sigma_map", defaults.SIGMA_MAP)
    return {
        "noise_model": noise_model,
        "num_coils": training_setting(model, "num_coils", defaults.NUM_COILS),
        "sigma_map": defaults.SIGMA_MAP if trained_map == "none" else "auto",
    }
