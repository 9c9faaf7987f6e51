"""Ignite handlers that report what a denoising run did, for MONAI evaluators.

- :class:`DenoisingReportHandler` (inference, evaluation): for every input, a PNG QA figure
  (noisy | denoised | residual on a few slices, :func:`qa_figure`) and a JSON report (input and
  output paths, the noise level used in image units and where it came from, timings, shape,
  no-reference checks).
- :class:`WarmupEMAHandler`: ignite's ``EMAHandler`` with the recipe's EMA warm-up
  (:class:`EMAWarmup`), attachable with ``attach(engine)`` alone.
- :class:`ResumeFromCheckpoint`: MONAI's ``CheckpointLoader`` that keeps the current run's
  learning-rate schedule length, so a resumed run may also be a longer one.
- :class:`LossProgressBar`: ignite's ``ProgressBar`` showing the training loss, attachable as a
  plain MONAI ``train_handlers`` entry.
- :class:`NoReferenceReportHandler` (validation without a clean image): averages the
  no-reference checks of :func:`c2s_monai.evaluation.no_reference_metrics` over the
  validation volumes into ``engine.state.metrics`` (so ``StatsHandler`` and
  ``TensorBoardStatsHandler`` log them) and appends them to a JSON file per epoch.

The two report handlers read the noise level each volume was denoised at from the
evaluator's inferer (:attr:`c2s_monai.inferers.C2SInferer.sigma_used`).
"""

from __future__ import annotations

import json
import os
import logging
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from ignite.handlers import EMAHandler, ProgressBar
from ignite.handlers.state_param_scheduler import LambdaStateScheduler
from monai.config import PathLike
from monai.engines.utils import IterationEvents
from monai.handlers import CheckpointLoader

from c2s_monai.evaluation import NO_REFERENCE_METRICS, no_reference_metrics
from c2s_monai.writers import parse_flag

__all__ = [
    "DenoisingReportHandler",
    "LossProgressBar",
    "NoReferenceReportHandler",
    "EMAWarmup",
    "ResumeFromCheckpoint",
    "WarmupEMAHandler",
    "latest_checkpoint",
    "qa_figure",
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
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output_path, dpi=100)
    plt.close(figure)
    return output_path


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
        seconds = time.perf_counter() - self._start
        sigmas = list(getattr(engine.inferer, "sigma_used", []))
        sources = list(getattr(engine.inferer, "sigma_source", []))
        for index, item in enumerate(items):
            noisy, denoised = item[self.image_key], item[self.pred_key]
            meta = getattr(noisy, "meta", {})
            folder, name = _report_name(item, self.path_key, self.image_key)
            folder = folder or self.output_dir
            sigma = float(sigmas[index]) if index < len(sigmas) else None
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
                "sigma_source": sources[index] if index < len(sources) else "unknown",
                "flips": len(getattr(engine.inferer, "flips", ())) or None,
                "shape": [int(s) for s in torch.as_tensor(noisy).shape[-3:]],
                "seconds_total": seconds / len(items),
                "seconds_denoising": max(0.0, self._forward_done - self._start) / len(items) if self._forward_done else None,
                "device": str(engine.state.device),
                **self.extra,
            }
            if sigma:
                report["no_reference"] = no_reference_metrics(noisy, denoised, sigma)
            if "label" in item and item["label"] is not None:
                report["has_reference"] = True
            path = folder / f"{name}.json"
            path.write_text(json.dumps(report, indent=2))
            self.reports.append(report)
            logger.info("%s -> %s (sigma_data %.4g, %s, %.1f s)", report["input"], report["output"], sigma or float("nan"), report["sigma_source"], report["seconds_total"])


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
        sigmas = list(getattr(engine.inferer, "sigma_used", []))
        for index, item in enumerate(_items(engine.state.output)):
            if index >= len(sigmas):
                raise RuntimeError("NoReferenceReportHandler needs an evaluator whose inferer records sigma_used (C2SInferer).")
            values = no_reference_metrics(item[self.image_key], item[self.pred_key], float(sigmas[index]))
            values["sigma_data"] = float(sigmas[index])
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
            self.output_file.parent.mkdir(parents=True, exist_ok=True)
            self.output_file.write_text(json.dumps(history, indent=2))


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
    steps behind them (``shared/recipe-notes.md``).
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
    that iteration's momentum, then the EMA update itself.
    """

    def attach(self, engine, name: str = "ema_momentum", warn_if_exists: bool = False, event=Events.ITERATION_COMPLETED) -> None:  # type: ignore[override]
        LambdaStateScheduler(EMAWarmup(self.momentum), param_name=name, create_new=True).attach(engine, event)
        super().attach(engine, name=name, warn_if_exists=warn_if_exists, event=event)


class ResumeFromCheckpoint(CheckpointLoader):
    """Resume training from the newest checkpoint in ``checkpoint_dir``, keeping the new run's LR schedule length.

    With ``resume`` false, or no checkpoint in ``checkpoint_dir``, attaching does nothing and the
    run starts from scratch. Otherwise MONAI's ``CheckpointLoader`` restores ``load_dict`` at
    ``STARTED``, and the scheduler's length (``t_total``, ``warmup_steps`` of MONAI's
    ``WarmupCosineSchedule``) is set back to the current run's: the checkpoint holds the length
    of the run that wrote it, and keeping it would make a resumed run given more epochs follow
    the old, shorter schedule. The position (step count) comes from the checkpoint.

    Args:
        checkpoint_dir: folder of the checkpoints (``*.pt``; the newest by modification time is used).
        load_dict, map_location: as ``CheckpointLoader``.
        lr_scheduler: the scheduler in ``load_dict`` whose length is kept.
        resume: whether to resume (a bool, or ``"true"``/``"false"`` as typed on a command line).
    """

    SCHEDULE_LENGTH = ("t_total", "warmup_steps", "cycles")

    def __init__(self, checkpoint_dir: PathLike, load_dict: dict, lr_scheduler=None, resume=True, **kwargs) -> None:
        checkpoint = latest_checkpoint(checkpoint_dir) if parse_flag(resume, "resume") else None
        super().__init__(load_path=str(checkpoint or checkpoint_dir), load_dict=load_dict, **kwargs)
        self.checkpoint = checkpoint
        self.lr_scheduler = lr_scheduler

    def attach(self, engine) -> None:
        if self.checkpoint is None:
            self.logger.info("training from scratch (no checkpoint to resume from, or resume is off).")
            return
        super().attach(engine)

    def __call__(self, engine) -> None:
        kept = {k: getattr(self.lr_scheduler, k) for k in self.SCHEDULE_LENGTH if hasattr(self.lr_scheduler, k)}
        super().__call__(engine)
        for key, value in kept.items():
            setattr(self.lr_scheduler, key, value)


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The newest ``*.pt`` in ``checkpoint_dir`` (by modification time), or ``None``."""
    folder = Path(checkpoint_dir)
    candidates = sorted(folder.glob("*.pt"), key=lambda p: p.stat().st_mtime) if folder.is_dir() else []
    return candidates[-1] if candidates else None
