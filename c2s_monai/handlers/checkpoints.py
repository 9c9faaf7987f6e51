"""Loading weights and checkpoints, with errors that name the file and say what to do.

- :func:`read_checkpoint`, :func:`load_pretrained` (fine-tuning; :func:`inflate_context` starts a
  2.5D context network from 2D weights).
- :class:`LoadCheckpoint`: MONAI's ``CheckpointLoader`` whose errors (missing or unreadable
  file, another network shape) name the checkpoint and say what to do.
- :class:`ResumeFromCheckpoint`: that loader on the newest checkpoint of a folder
  (:func:`latest_checkpoint`), keeping the current run's learning-rate schedule length, so a
  resumed run may also be a longer one.
- :class:`LoadContrastCheckpoints`: multi-contrast joint mode, one ``LoadCheckpoint`` per
  target contrast (``<ckpt_dir>/<target>/model.pt``), each after checking the input channel
  order recorded beside it (:func:`c2s_monai.multicontrast.check_channel_order`).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch
from ignite.engine import Engine, Events
from monai.config import PathLike
from monai.handlers import CheckpointLoader

from c2s_monai.errors import InputError, describe
from c2s_monai.multicontrast import check_channel_order, contrast_model_path
from c2s_monai.settings import parse_flag

logger = logging.getLogger(__name__)

def read_checkpoint(path: PathLike, map_location=None) -> dict:
    """``torch.load`` a checkpoint (weights only); a missing or unreadable file raises an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such checkpoint; give ckpt_path of a trained model (train.json writes <bundle_root>/models/model.pt)."
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # zip, pickle and I/O errors: one message naming the file
        raise InputError(
            f"{path}: cannot be read as a PyTorch checkpoint ({describe(error)}); the file is truncated or not a "
            "checkpoint: copy it again, or use another one."
        ) from error


def load_pretrained(network: torch.nn.Module, path: PathLike | None) -> torch.nn.Module:
    """Initialise ``network`` in place with the weights at ``path`` and return it (fine-tuning).

    ``path`` is a ``model.pt`` (the EMA weights that ``train.json`` and :func:`c2s_monai.train`
    write, e.g. the shipped ``bundle/models/model.pt``) or a training checkpoint (its
    ``ema_network``). ``None`` or ``""`` leaves ``network`` as it is (training from scratch).
    A resumed run's checkpoint, loaded later, takes precedence. Weights of a slice-by-slice
    network (``context_slices`` 0) start a 2.5D context network as that network
    (:func:`inflate_context`). Weights of another network shape raise one
    :class:`~c2s_monai.errors.InputError` naming the file.
    """
    if path is None or str(path) == "":
        return network
    state = read_checkpoint(path, map_location="cpu")
    if isinstance(state, dict) and isinstance(state.get("ema_network"), dict):
        state = state["ema_network"]
    state = inflate_context(state, network)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise InputError(
            f"{path}: the pretrained weights do not fit this network ({describe(error)}); set features, conditioning, "
            "in_channels, context_slices and spatial_dims to the values they were trained with (the shipped checkpoint: the "
            "defaults, one contrast), or "
            "train from scratch (pretrained_ckpt null)."
        ) from error
    return network


FIRST_CONV = "backbone.conv_0.conv_0.conv.weight"


def inflate_context(state: dict, network: torch.nn.Module) -> dict:
    """Weights of a slice-by-slice network made to fit the 2.5D context ``network`` (else ``state`` unchanged).

    Only the first convolution differs: it gains the context channels of each contrast
    (:mod:`c2s_monai.context`). Their weights start at zero and every other weight is kept, so
    the inflated network computes exactly what the 2D one did until fine-tuning teaches it to
    use the neighbours.
    """
    context = int(getattr(network, "context_slices", 0))
    current = network.state_dict().get(FIRST_CONV)
    old = state.get(FIRST_CONV) if isinstance(state, dict) else None
    if not context or current is None or old is None or old.shape == current.shape:
        return state
    contrasts, block = int(network.in_channels), 2 * context + 1  # type: ignore[arg-type]  # a plain int attribute; Module.__getattr__ is annotated for tensors and submodules
    extra = old.shape[1] - contrasts  # the level-map channel, if any
    if old.shape[0] != current.shape[0] or old.shape[2:] != current.shape[2:] or current.shape[1] != contrasts * block + extra:
        return state
    inflated = torch.zeros_like(current)
    for contrast in range(contrasts):
        inflated[:, contrast * block] = old[:, contrast]
    inflated[:, contrasts * block :] = old[:, contrasts:]
    return {**state, FIRST_CONV: inflated}


class LoadCheckpoint(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` whose failures name the checkpoint and say what to do.

    A missing file, an unreadable one, a checkpoint of another network shape (other
    ``features`` or ``conditioning``) and one beyond ``max_epochs`` each raise one
    :class:`~c2s_monai.errors.InputError` (``FileNotFoundError`` for a missing file) at
    ``STARTED``, before anything is written.
    """

    mismatch_advice = "set features and conditioning to the values it was trained with, or give a checkpoint trained with these settings"

    def __call__(self, engine) -> None:
        """Restore ``load_dict`` with MONAI's ``CheckpointLoader``, its failures turned into one clear error."""
        checkpoint = read_checkpoint(self.load_path, self.map_location)  # a missing or unreadable file: named
        key = next(iter(self.load_dict))
        if not (len(self.load_dict) == 1 and key not in checkpoint):  # a bare state_dict fits a single object
            missing = [k for k in self.load_dict if k not in checkpoint]
            if missing:
                raise InputError(
                    f"{self.load_path}: the checkpoint holds {sorted(checkpoint)} but not {missing}; {self.mismatch_advice}."
                )
        max_epochs = engine.state.max_epochs
        try:
            super().__call__(engine)
        except ValueError as error:
            if max_epochs is not None and engine.state.epoch > max_epochs:
                raise InputError(
                    f"{self.load_path}: the checkpoint is at epoch {engine.state.epoch}, beyond max_epochs {max_epochs}; "
                    f"give max_epochs >= {engine.state.epoch} to continue that run, or start a new one in another folder."
                ) from error
            raise InputError(f"{self.load_path}: the checkpoint does not fit the network ({describe(error)}); {self.mismatch_advice}.") from error
        except (RuntimeError, KeyError) as error:
            raise InputError(f"{self.load_path}: the checkpoint does not fit the network ({describe(error)}); {self.mismatch_advice}.") from error


class LoadContrastCheckpoints:
    """Load ``<ckpt_dir>/<target>/model.pt`` into ``networks[target]`` for every target, at ``STARTED``.

    Before each is loaded, the input channel order recorded beside it (``contrasts.json``,
    written by ``train_multicontrast.json`` and :func:`c2s_monai.train_multicontrast`) must be
    ``channels[target]``: a network used with its guides in another order would return a
    wrong image without any error. Failures name the checkpoint and say what to do, as
    :class:`LoadCheckpoint`'s.

    Args:
        ckpt_dir: folder holding one sub-folder per target contrast.
        networks: ``nn.ModuleDict`` of one network per target contrast.
        channels: the input channel order of each target's network.
        map_location: as ``CheckpointLoader``.
    """

    def __init__(self, ckpt_dir: PathLike, networks, channels: dict, map_location=None) -> None:
        missing = [t for t in networks if t not in channels]
        if missing:
            raise ValueError(f"no channel order for the targets {missing}.")
        self.channels = {t: list(channels[t]) for t in networks}
        self.loaders = {
            t: LoadCheckpoint(load_path=str(contrast_model_path(ckpt_dir, t)), load_dict={"model": networks[t]}, map_location=map_location)
            for t in networks
        }

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine: Engine) -> None:
        for target, loader in self.loaders.items():
            if not Path(loader.load_path).is_file():
                raise FileNotFoundError(
                    f"{loader.load_path}: no {target} model; train it (train_multicontrast.json with --target_contrast "
                    f"{target} and the same bundle_root) or leave {target} out of this run (--joint false "
                    "--target_contrast NAME)."
                )
            check_channel_order(loader.load_path, self.channels[target])
            loader(engine)


class ResumeFromCheckpoint(LoadCheckpoint):
    """Resume training from the newest checkpoint in ``checkpoint_dir``, keeping the new run's LR schedule length.

    With no checkpoint in ``checkpoint_dir`` (a new run), attaching does nothing and the run
    starts from scratch. With ``resume`` false, the run starts from scratch too and the
    folder's old ``checkpoint_*.pt`` files are deleted when it is attached, so that a later
    resume cannot pick up the abandoned run. Otherwise the newest checkpoint is restored at
    ``STARTED`` (every object of ``load_dict``; objects named in ``optional`` may be absent
    from older checkpoints), and the scheduler's length (``t_total``, ``warmup_steps`` of
    MONAI's ``WarmupCosineSchedule``) is set back to the current run's: the checkpoint holds
    the length of the run that wrote it, and keeping it would make a resumed run given more
    epochs follow the old, shorter schedule. The position (step count) comes from the
    checkpoint. Temporary files a killed writer left behind (``tmp*``) are removed.

    Args:
        checkpoint_dir: folder of the checkpoints (``*.pt``; the newest, :func:`latest_checkpoint`, is used).
        load_dict, map_location: as ``CheckpointLoader``.
        lr_scheduler: the scheduler in ``load_dict`` whose length is kept.
        resume: whether to resume (a bool, or ``"true"``/``"false"`` as typed on a command line).
        optional: keys of ``load_dict`` that a checkpoint may lack (restored when present).
    """

    SCHEDULE_LENGTH = ("t_total", "warmup_steps", "cycles")
    mismatch_advice = (
        "it was written by a run with another network or settings: start the new run in another folder "
        "(bundle_root, or output_dir of c2s_monai.train), or set resume false to start over here"
    )

    def __init__(
        self, checkpoint_dir: PathLike, load_dict: dict, lr_scheduler=None, resume=True, optional=("random_state", "checkpointer"), **kwargs
    ) -> None:
        self.resume = parse_flag(resume, "resume")
        self.checkpoint_dir = Path(checkpoint_dir)
        checkpoint = latest_checkpoint(checkpoint_dir) if self.resume else None
        super().__init__(load_path=str(checkpoint or checkpoint_dir), load_dict=load_dict, **kwargs)
        self.checkpoint = checkpoint
        self.lr_scheduler = lr_scheduler
        self.optional = tuple(optional)

    def attach(self, engine) -> None:
        if _is_writer():
            self._remove_leftovers()
        if self.checkpoint is None:
            self.logger.info("training from scratch (no checkpoint to resume from, or resume is off).")
            return
        super().attach(engine)

    def _remove_leftovers(self) -> None:
        if not self.checkpoint_dir.is_dir():
            return
        stale = [p for p in self.checkpoint_dir.glob("tmp*") if p.is_file()]
        if not self.resume:
            stale += sorted(self.checkpoint_dir.glob("checkpoint_*.pt"))
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            self.logger.warning(f"removed {[p.name for p in stale]} from {self.checkpoint_dir} (resume={self.resume}).")

    def __call__(self, engine) -> None:
        checkpoint = read_checkpoint(self.load_path, self.map_location)
        for key in self.optional:
            if key in self.load_dict and key not in checkpoint:
                self.logger.warning(f"{self.load_path} holds no {key!r}: it is not restored.")
                self.load_dict = {k: v for k, v in self.load_dict.items() if k != key}
        kept = {k: getattr(self.lr_scheduler, k) for k in self.SCHEDULE_LENGTH if hasattr(self.lr_scheduler, k)}
        super().__call__(engine)
        for key, value in kept.items():
            setattr(self.lr_scheduler, key, value)


def _is_writer() -> bool:
    """Whether this process writes the run's files (not a non-zero rank of a distributed run)."""
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or torch.distributed.get_rank() == 0


def _checkpoint_order(path: Path) -> tuple[int, float]:
    match = re.search(r"_(\d+)\.pt$", path.name)
    return (int(match.group(1)) if match else -1, path.stat().st_mtime)


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest ``*.pt`` in ``checkpoint_dir``: the highest epoch in its name (``checkpoint_<epoch>.pt``),
    then the latest modification time; ``None`` when there is none."""
    folder = Path(checkpoint_dir)
    candidates = sorted(folder.glob("*.pt"), key=_checkpoint_order) if folder.is_dir() else []
    return candidates[-1] if candidates else None
