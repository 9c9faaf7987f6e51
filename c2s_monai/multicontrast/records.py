"""The channel order a network was trained with, written beside its weights (``contrasts.json``) and checked before use.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from torch import nn

from c2s_monai.errors import InputError
from c2s_monai.io import write_text_atomic
from c2s_monai.multicontrast.channels import check_contrasts
from c2s_monai.naming import MODEL_FILE
from c2s_monai.settings import parse_flag

logger = logging.getLogger(__name__)

CHANNELS_FILE = "contrasts.json"


def contrast_model_path(folder, target: str) -> Path:
    """``<folder>/<target>/model.pt``: where the network for ``target`` is written and read."""
    return Path(folder) / target / MODEL_FILE


def write_channel_order(model_path, channels: Sequence[str]) -> Path:
    """Write ``contrasts.json`` beside ``model_path``: the target and the input channel order it was trained with."""
    channels = check_contrasts(channels)
    record = {"target_contrast": channels[0], "channels": channels}
    return write_text_atomic(Path(model_path).parent / CHANNELS_FILE, json.dumps(record, indent=2))


def read_channel_order(model_path) -> list[str] | None:
    """The channel order recorded beside ``model_path`` (``None`` without a ``contrasts.json``)."""
    record_path = Path(model_path).parent / CHANNELS_FILE
    if not record_path.is_file():
        return None
    try:
        return check_contrasts(json.loads(record_path.read_text())["channels"])
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{record_path}: not a channel-order record ({error}); restore it or remove it.") from error


def record_channel_order(model_path, channels: Sequence[str], replace: bool = False) -> Path:
    """A training run's first step: refuse a folder holding a model of another channel order (unless ``replace``), then record ``channels``.

    Resuming a run with the guides in another order would mix two meanings of each channel
    in one network.
    """
    channels = check_contrasts(channels)
    recorded = read_channel_order(model_path)
    if recorded is not None and recorded != channels and not parse_flag(replace, "replace"):
        raise InputError(
            f"{Path(model_path).parent}: holds a run trained with the input channels {recorded} ({CHANNELS_FILE}), this "
            f"run stacks {channels}: train into another folder (bundle_root, output_dir), or start over there (bundle: "
            "--resume false)."
        )
    return write_channel_order(model_path, channels)


def check_channel_order(model_path, channels: Sequence[str]) -> list[str]:
    """Refuse a network whose recorded input channels (``contrasts.json``) differ from ``channels``.

    Without a record the order cannot be checked: a warning says so. Returns ``channels``.
    """
    channels = list(channels)
    recorded = read_channel_order(model_path)
    if recorded is None:
        logger.warning("%s: no %s beside it; the order of its input channels cannot be checked (this run stacks %s).", model_path, CHANNELS_FILE, channels)
    elif recorded != channels:
        raise InputError(
            f"{model_path}: trained with the input channels {recorded} ({CHANNELS_FILE} beside it), but this run stacks "
            f"{channels}: list the guides in the order it was trained with ({recorded[1:]}), or use a model trained "
            "for this order."
        )
    return channels


def networks_by_target(network: nn.Module, targets: Sequence[str]) -> nn.ModuleDict:
    """One copy of ``network`` per target contrast (the first is ``network`` itself), for joint mode."""
    targets = list(targets)
    return nn.ModuleDict({t: network if i == 0 else copy.deepcopy(network) for i, t in enumerate(targets)})
