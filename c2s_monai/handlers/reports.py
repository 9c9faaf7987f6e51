"""What a denoising run did, for MONAI evaluators: QA figures and JSON reports.

- :class:`DenoisingReportHandler` (inference, evaluation): for every input, a PNG QA figure
  (noisy | denoised | residual on a few slices, :func:`qa_figure`) and a JSON report (input and
  output paths, the noise level used in image units and where it came from, how the volume
  was denoised: network dimensions, slice axis, context and its edge handling or 2D fallback,
  the measured noise correlation; timings, shape, no-reference checks).
- :class:`NoReferenceReportHandler` (validation without a clean image): averages the
  no-reference checks of :func:`c2s_monai.evaluation.no_reference_metrics` over the
  validation volumes into ``engine.state.metrics`` (so ``StatsHandler`` and
  ``TensorBoardStatsHandler`` log them) and appends them to a JSON file per epoch.

Both read the noise level each volume was denoised at from the prediction's metadata, where
:class:`~c2s_monai.inferers.C2SInferer` writes it (:func:`c2s_monai.inferers.denoising_record`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.config import PathLike
from monai.engines.utils import IterationEvents

from c2s_monai.evaluation import NO_REFERENCE_METRICS, no_reference_metrics
from c2s_monai.inferers import denoising_record
from c2s_monai.io import atomic_write, write_text_atomic

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
    ``path_key`` (:class:`c2s_monai.io.writers.SaveDenoisedd`).

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
            "flips": len(getattr(engine.inferer, "flips", ())) or None,  # type: ignore[attr-defined]  # a MONAI evaluator's inferer
            "shape": [int(s) for s in torch.as_tensor(noisy).shape[-3:]],
            **({"volume": volume} if volume else {}),
            **_contrast_fields(meta),
            "seconds_total": seconds,
            "seconds_denoising": max(0.0, self._forward_done - self._start) / count if self._forward_done else None,
            "device": str(engine.state.device),  # type: ignore[attr-defined]  # MONAI's Workflow adds device to ignite's State
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
            values: dict[str, Any] = no_reference_metrics(_target_volume(item[self.image_key]), _target_volume(item[self.pred_key]), sigma)
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
