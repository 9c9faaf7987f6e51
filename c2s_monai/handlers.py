"""Ignite handlers that report what a denoising run did, for MONAI evaluators.

- :class:`DenoisingReportHandler` (inference, evaluation): for every input, a PNG QA figure
  (noisy | denoised | residual on a few slices, :func:`qa_figure`) and a JSON report (input and
  output paths, the noise level used in image units and where it came from, how the volume
  was denoised: network dimensions, slice axis, context and its edge handling or 2D fallback,
  the measured noise correlation; timings, shape, no-reference checks).
- :class:`WarmupEMAHandler`: ignite's ``EMAHandler`` with the recipe's EMA warm-up
  (:class:`EMAWarmup`), attachable with ``attach(engine)`` alone.
- :class:`LoadCheckpoint`: MONAI's ``CheckpointLoader`` whose errors (missing or unreadable
  file, another network shape) name the checkpoint and say what to do.
- :class:`ResumeFromCheckpoint`: that loader on the newest checkpoint of a folder, keeping the
  current run's learning-rate schedule length, so a resumed run may also be a longer one.
- :class:`LoadContrastCheckpoints`: multi-contrast joint mode, one ``LoadCheckpoint`` per
  target contrast (``<ckpt_dir>/<target>/model.pt``), each after checking the input channel
  order recorded beside it (:func:`c2s_monai.multicontrast.check_channel_order`).
- :class:`LossProgressBar`: ignite's ``ProgressBar`` showing the training loss, attachable as a
  plain MONAI ``train_handlers`` entry.
- :class:`NoReferenceReportHandler` (validation without a clean image): averages the
  no-reference checks of :func:`c2s_monai.evaluation.no_reference_metrics` over the
  validation volumes into ``engine.state.metrics`` (so ``StatsHandler`` and
  ``TensorBoardStatsHandler`` log them) and appends them to a JSON file per epoch.

The two report handlers read the noise level each volume was denoised at from the
prediction's metadata, where :class:`~c2s_monai.inferers.C2SInferer` writes it
(:func:`c2s_monai.inferers.denoising_record`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import EMAHandler, ProgressBar
from monai.config import PathLike
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointLoader

from c2s_monai.errors import InputError, describe
from c2s_monai.evaluation import NO_REFERENCE_METRICS, no_reference_metrics
from c2s_monai.inferers import denoising_record
from c2s_monai.io import atomic_write, write_text_atomic
from c2s_monai.multicontrast import check_channel_order, contrast_model_path
from c2s_monai.settings import parse_flag

__all__ = [
    "DenoisingReportHandler",
    "EMAWarmup",
    "LoadCheckpoint",
    "LoadContrastCheckpoints",
    "LossProgressBar",
    "NoReferenceReportHandler",
    "ResumeFromCheckpoint",
    "WarmupEMAHandler",
    "inflate_context",
    "latest_checkpoint",
    "qa_figure",
    "read_checkpoint",
]

logger = logging.getLogger(__name__)


def _in_plane_display(volume: np.ndarray, affine: np.ndarray | None) -> np.ndarray:
    """Flip the two in-plane axes that point away from +R/+A/+S, so every input displays upright."""
    if affine is None:
        return volume
    import nibabel as nib

    orientation = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))
    for axis in (0, 1):
        if orientation[axis, 1] < 0:
            volume = np.flip(volume, axis=axis)
    return volume


def _target_volume(volume) -> np.ndarray:
    """``(x, y, slices)`` of the target contrast (channel 0) of a ``(C, x, y, slices)`` or ``(x, y, slices)`` volume."""
    array = torch.as_tensor(volume).detach().cpu().float().numpy()
    return array[0] if array.ndim == 4 else array


def qa_figure(
    noisy, denoised, output_path: PathLike, affine=None, num_slices: int = 3, title: str = "", sigma: float | None = None
) -> Path:
    """Save a PNG with rows of ``noisy | denoised | residual`` for ``num_slices`` slices (last axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noisy_array, denoised_array = _target_volume(noisy), _target_volume(denoised)
    noisy_array = _in_plane_display(noisy_array, affine)
    denoised_array = _in_plane_display(denoised_array, affine)
    residual = noisy_array - denoised_array
    depth = noisy_array.shape[-1]
    count = max(1, min(num_slices, depth))
    indices = sorted({round(float(v)) for v in np.linspace(0, depth - 1, count + 2)[1:-1]}) if depth > count else list(range(depth))
    low, high = np.percentile(noisy_array, [0.5, 99.5])
    bound = 3.0 * sigma if sigma else float(np.percentile(np.abs(residual), 99.5)) or 1.0
    figure, axes = plt.subplots(len(indices), 3, figsize=(9, 3 * len(indices)), squeeze=False)
    for row, k in enumerate(indices):
        panels = (("noisy", noisy_array[..., k], "gray", low, high), ("denoised", denoised_array[..., k], "gray", low, high),
                  ("residual", residual[..., k], "coolwarm", -bound, bound))
        for column, (name, panel, cmap, vmin, vmax) in enumerate(panels):
            axis = axes[row, column]
            axis.imshow(panel.T, cmap=cmap, vmin=vmin, vmax=vmax, origin="lower", interpolation="nearest")
            axis.set_title(f"{name}, slice {k}", fontsize=9)
            axis.axis("off")
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    try:
        atomic_write(output_path, lambda temporary: figure.savefig(temporary, dpi=100))
    finally:
        plt.close(figure)
    return Path(output_path)


def _contrast_fields(meta) -> dict:
    """The report entries of a multi-contrast input (:class:`c2s_monai.multicontrast.StackContrasts` meta)."""
    if "contrasts" not in meta:
        return {}
    return {
        "target_contrast": str(meta.get("target_contrast")),
        "channels": [str(c) for c in meta["contrasts"]],
        "channel_files": [_absolute(f) for f in meta.get("contrast_files", [])],
    }


def _absolute(path) -> str | None:
    return str(Path(str(path)).resolve()) if path else None


def _items(output) -> list[dict]:
    return list(output) if isinstance(output, (list, tuple)) else [output]


def _report_name(item: dict, path_key: str, image_key: str) -> tuple[Path | None, str]:
    """Where the reports of one item go: beside its output, named after it."""
    output = item.get(path_key)
    if output:
        path = Path(str(output))
        name = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem if path.is_file() else path.name
        return path.parent, name
    source = str(getattr(item.get(image_key), "meta", {}).get("filename_or_obj", "volume"))
    return None, Path(source).name.split(".")[0]


class DenoisingReportHandler:
    """Write ``<output name>_qa.png`` and ``<output name>.json`` for every denoised input.

    Attach to a MONAI evaluator whose postprocessing saves the output and stores its path under
    ``path_key`` (:class:`c2s_monai.writers.SaveDenoisedd`).

    Args:
        output_dir: folder for the reports when an item has no saved output.
        num_slices: slices shown in the QA figure.
        image_key, pred_key, path_key: keys of the noisy input, the denoised output, the output path.
        extra: entries copied into every JSON report (e.g. the checkpoint path).
    """

    def __init__(
        self,
        output_dir: PathLike = ".",
        num_slices: int = 3,
        image_key: str = "image",
        pred_key: str = "pred",
        path_key: str = "output_path",
        extra: dict | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.num_slices = num_slices
        self.image_key = image_key
        self.pred_key = pred_key
        self.path_key = path_key
        self.extra = dict(extra or {})
        self.reports: list[dict] = []
        self._start = 0.0
        self._forward_done = 0.0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.GET_BATCH_STARTED, self._started)
        engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self._forward_completed)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _started(self, engine: Engine) -> None:
        self._start = time.perf_counter()

    def _forward_completed(self, engine: Engine) -> None:
        self._forward_done = time.perf_counter()

    def __call__(self, engine: Engine) -> None:
        items = _items(engine.state.output)
        seconds = (time.perf_counter() - self._start) / max(1, len(items))
        for item in items:
            record = denoising_record(item.get(self.pred_key))
            sigma, source, volume = record.get("sigma_data"), record.get("sigma_source", "unknown"), record.get("volume", {})
            try:
                self._report(engine, item, sigma, source, seconds, len(items), volume)
            except Exception as error:  # noqa: BLE001  a report must not stop a batch run: the denoised output is written
                logger.warning("%s: the QA figure or JSON report failed (%s); the denoised output is kept.", item.get(self.path_key), error)

    def _report(
        self, engine: Engine, item: dict, sigma: float | None, sigma_source: str, seconds: float, count: int, volume: dict | None = None
    ) -> None:
        noisy, denoised = item[self.image_key], item[self.pred_key]
        meta = getattr(noisy, "meta", {})
        folder, name = _report_name(item, self.path_key, self.image_key)
        folder = folder or self.output_dir
        figure = qa_figure(
            noisy, denoised, folder / f"{name}_qa.png", affine=meta.get("affine"), num_slices=self.num_slices,
            title=f"{Path(str(meta.get('filename_or_obj', name))).name}  sigma_data={sigma:.4g}" if sigma else name, sigma=sigma,
        )
        report = {
            "input": _absolute(meta.get("filename_or_obj", "")),
            "input_format": str(meta.get("source_format", "")),
            "output": _absolute(item.get(self.path_key)),
            "qa_figure": _absolute(figure),
            "sigma_data": sigma,
            "sigma_source": sigma_source,
            "flips": len(getattr(engine.inferer, "flips", ())) or None,
            "shape": [int(s) for s in torch.as_tensor(noisy).shape[-3:]],
            **({"volume": volume} if volume else {}),
            **_contrast_fields(meta),
            "seconds_total": seconds,
            "seconds_denoising": max(0.0, self._forward_done - self._start) / count if self._forward_done else None,
            "device": str(engine.state.device),
            **self.extra,
        }
        if sigma:
            report["no_reference"] = no_reference_metrics(_target_volume(noisy), _target_volume(denoised), sigma)
        if "label" in item and item["label"] is not None:
            report["has_reference"] = True
        write_text_atomic(folder / f"{name}.json", json.dumps(report, indent=2))
        self.reports.append(report)
        logger.info("%s -> %s (sigma_data %.4g, %s, %.1f s)", report["input"], report["output"], sigma or float("nan"), sigma_source, seconds)


class NoReferenceReportHandler:
    """Average no-reference checks over an evaluation epoch into ``engine.state.metrics`` and a JSON file.

    Attach before ``StatsHandler``/``TensorBoardStatsHandler`` so they log the values.

    Args:
        output_file: JSON file; one entry per epoch (per validation run) is appended.
        image_key, pred_key: keys of the noisy input and the denoised output.
        prefix: prefix of the metric names.
    """

    def __init__(self, output_file: PathLike | None = None, image_key: str = "image", pred_key: str = "pred", prefix: str = "val_") -> None:
        self.output_file = Path(output_file) if output_file else None
        self.image_key = image_key
        self.pred_key = pred_key
        self.prefix = prefix
        self._values: list[dict] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._complete)

    def _reset(self, engine: Engine) -> None:
        self._values = []

    def _update(self, engine: Engine) -> None:
        for item in _items(engine.state.output):
            sigma = denoising_record(item[self.pred_key]).get("sigma_data")
            if sigma is None:
                raise RuntimeError("NoReferenceReportHandler needs predictions made by C2SInferer (their metadata holds the sigma used).")
            values = no_reference_metrics(_target_volume(item[self.image_key]), _target_volume(item[self.pred_key]), sigma)
            values["sigma_data"] = sigma
            values["input"] = str(getattr(item[self.image_key], "meta", {}).get("filename_or_obj", ""))
            self._values.append(values)

    def _complete(self, engine: Engine) -> None:
        if not self._values:
            return
        summary = {name: float(np.mean([v[name] for v in self._values])) for name in NO_REFERENCE_METRICS}
        for name, value in summary.items():
            engine.state.metrics[f"{self.prefix}{name}"] = value
        if self.output_file is not None:
            history = json.loads(self.output_file.read_text()) if self.output_file.is_file() else []
            history.append({"validation_run": len(history) + 1, "mean": summary, "volumes": self._values})
            write_text_atomic(self.output_file, json.dumps(history, indent=2))


def _loss_of(output) -> dict[str, float]:
    item = output[0] if isinstance(output, (list, tuple)) else output
    return {"loss": float(item["loss"])}


class LossProgressBar(ProgressBar):
    """ignite ``ProgressBar`` that shows the loss; ``attach(engine)`` alone suffices (MONAI handler lists)."""

    def attach(self, engine, metric_names=None, output_transform=None, *args, **kwargs):  # type: ignore[override]
        super().attach(engine, metric_names, output_transform or _loss_of, *args, **kwargs)


class EMAWarmup:
    """EMA momentum ``max(momentum, 9 / (10 + n))`` at iteration ``n``.

    The decay ``min(1 - momentum, (1 + n) / (10 + n))`` of common EMA-with-warm-up practice:
    early on the average follows the fast-moving weights instead of lagging thousands of
    steps behind them (``docs/method.md`` section 7).
    """

    def __init__(self, momentum: float) -> None:
        if not 0 < momentum <= 1:
            raise ValueError(f"ema momentum must be in (0, 1], got {momentum!r}.")
        self.momentum = momentum

    def __call__(self, iteration: int) -> float:
        return max(self.momentum, 9.0 / (10.0 + iteration))


class WarmupEMAHandler(EMAHandler):
    """ignite ``EMAHandler`` whose momentum follows :class:`EMAWarmup` (``max(momentum, 9 / (10 + n))``).

    ``attach(engine)`` attaches the momentum schedule first, so each iteration's EMA update uses
    that iteration's momentum, then the EMA update itself. ``n`` is the trainer's iteration
    count (not a count of the handler's own calls, as in ignite's ``LambdaStateScheduler``), so a
    resumed run goes on with the momentum where the checkpoint left it.
    """

    def attach(self, engine, name: str = "ema_momentum", warn_if_exists: bool = False, event=Events.ITERATION_COMPLETED) -> None:  # type: ignore[override]
        warmup = EMAWarmup(self.momentum)

        def set_momentum(engine: Engine) -> None:
            setattr(engine.state, name, warmup(engine.state.iteration))

        set_momentum(engine)
        engine.add_event_handler(event, set_momentum)
        super().attach(engine, name=name, warn_if_exists=warn_if_exists, event=event)


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
    contrasts, block = int(network.in_channels), 2 * context + 1
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
