"""What a denoising run did, for MONAI evaluators: QA figures and JSON reports.

- :class:`DenoisingReportHandler` (inference, evaluation): for every input, a PNG QA figure
  (whole slice and zoomed crop of noisy and denoised on one grey scale, and the residual
  ``noisy - denoised`` with its colour bar, on a few slices: :func:`qa_figure`) and a JSON
  report (input and output paths, the noise level used in image units and where it came from, how the volume
  was denoised: network dimensions, slice axis, context and its edge handling or 2D fallback,
  the measured noise correlation; timings, shape, no-reference checks).
- :class:`NoReferenceReportHandler` (validation without a clean image): averages the
  no-reference checks of :func:`c2s_monai.evaluation.no_reference_metrics` over the
  validation volumes into ``engine.state.metrics`` (so ``StatsHandler`` and
  ``TensorBoardStatsHandler`` log them) and appends them to a JSON file per epoch.
- :func:`write_report`: the figure and the JSON report of one volume, written by the handler
  and by :func:`c2s_monai.api.denoise` (the API and the CLI) alike.

Both read the noise level each volume was denoised at from the prediction's metadata, where
:class:`~c2s_monai.inferers.C2SInferer` writes it (:func:`c2s_monai.inferers.denoising_record`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.config import PathLike
from monai.engines.utils import IterationEvents

from c2s_monai.evaluation import NO_REFERENCE_METRICS, no_reference_metrics
from c2s_monai.inferers import denoising_noise_map, denoising_record
from c2s_monai.io import atomic_write, write_text_atomic
from c2s_monai.naming import noise_map_path

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


def _slice_indices(depth: int, num_slices: int) -> list[int]:
    count = max(1, min(num_slices, depth))
    return sorted({round(float(v)) for v in np.linspace(0, depth - 1, count + 2)[1:-1]}) if depth > count else list(range(depth))


def _crop_box(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``(x0, x1, y0, y1)``: the central quarter of a slice (half its width, half its height), at least 1 voxel."""
    (width, height) = shape[:2]
    x0, y0 = width // 4, height // 4
    return x0, max(x0 + 1, x0 + (width + 1) // 2), y0, max(y0 + 1, y0 + (height + 1) // 2)


RESIDUAL_LABEL = "noisy - denoised (image units)"
NOISE_MAP_LABEL = "noise std (image units)"


def build_qa_figure(noisy, denoised, affine=None, num_slices: int = 3, title: str = "", sigma: float | None = None, noise_map=None):
    """The QA figure as a :class:`matplotlib.figure.Figure` (Agg canvas, no pyplot): what :func:`qa_figure` saves.

    One row per slice (last axis), five panels, each axis labelled (``Axes.get_label()``) by its role:

    - ``"noisy"``, ``"denoised"``: the whole slice, one grey scale for both (the 0.5th-99.5th
      percentiles of the noisy slice), the zoomed region outlined;
    - ``"noisy zoom"``, ``"denoised zoom"``: the central quarter of the slice (half its width and
      height), same grey scale, axes in voxel indices of the slice;
    - ``"residual"``: ``noisy - denoised`` in a diverging map symmetric about 0, at ``±3 sigma``
      (without a sigma: ``±`` its 99.5th percentile of ``|residual|``), with a colour bar
      labelled :data:`RESIDUAL_LABEL`; red where the noisy image is brighter;
    - ``"noise map"`` (with ``noise_map``, the per-voxel noise std used, image units): its slice,
      with a colour bar labelled :data:`NOISE_MAP_LABEL`.

    The title states the sigma used (image units) and the residual's definition.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    noisy_array = _in_plane_display(_target_volume(noisy), affine)
    denoised_array = _in_plane_display(_target_volume(denoised), affine)
    residual = noisy_array - denoised_array
    indices = _slice_indices(noisy_array.shape[-1], num_slices)
    bound = 3.0 * float(sigma) if sigma else float(np.percentile(np.abs(residual), 99.5)) or 1.0
    x0, x1, y0, y1 = _crop_box(noisy_array.shape)
    map_array = None if noise_map is None else _in_plane_display(_target_volume(noise_map).reshape(noisy_array.shape), affine)
    columns = 5 if map_array is None else 6
    figure = Figure(figsize=(16 * columns / 5, 3.2 * len(indices) + 0.8))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(indices), columns, squeeze=False)
    zoom_extent = (x0 - 0.5, x1 - 0.5, y0 - 0.5, y1 - 0.5)
    for row, k in enumerate(indices):
        low, high = (float(v) for v in np.percentile(noisy_array[..., k], [0.5, 99.5]))
        high = high if high > low else low + 1.0
        for column, (name, panel) in enumerate((("noisy", noisy_array[..., k]), ("denoised", denoised_array[..., k]))):
            whole, zoom = axes[row, column], axes[row, column + 2]
            whole.imshow(panel.T, cmap="gray", vmin=low, vmax=high, origin="lower", interpolation="nearest")
            whole.add_patch(Rectangle((zoom_extent[0], zoom_extent[2]), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=0.8))
            whole.set_title(f"{name}, slice {k}", fontsize=9)
            whole.set_label(name)
            zoom.imshow(panel[x0:x1, y0:y1].T, cmap="gray", vmin=low, vmax=high, origin="lower", interpolation="nearest", extent=zoom_extent)
            zoom.set_title(f"{name}, zoom x {x0}:{x1}, y {y0}:{y1}", fontsize=9)
            zoom.set_label(f"{name} zoom")
        axis = axes[row, 4]
        image = axis.imshow(residual[..., k].T, cmap="RdBu_r", vmin=-bound, vmax=bound, origin="lower", interpolation="nearest")
        scale = "±3 sigma" if sigma else "±99.5th pct"
        axis.set_title(f"residual noisy - denoised, {scale}", fontsize=9)
        axis.set_label("residual")
        colorbar = figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
        colorbar.set_label(RESIDUAL_LABEL, fontsize=8)
        colorbar.ax.tick_params(labelsize=7)
        if map_array is not None:
            map_axis = axes[row, 5]
            low_map, high_map = float(map_array.min()), float(map_array.max())
            shown = map_axis.imshow(
                map_array[..., k].T, cmap="viridis", vmin=low_map, vmax=max(high_map, low_map * 1.001 + 1e-12), origin="lower", interpolation="nearest"
            )
            map_axis.set_title("noise map (std used)", fontsize=9)
            map_axis.set_label("noise map")
            map_bar = figure.colorbar(shown, ax=map_axis, fraction=0.046, pad=0.04)
            map_bar.set_label(NOISE_MAP_LABEL, fontsize=8)
            map_bar.ax.tick_params(labelsize=7)
        for panel_axis in axes[row, :]:
            panel_axis.set_xticks([])
            panel_axis.set_yticks([])
    used = f"sigma used = {float(sigma):.4g} (image units)" if sigma else "sigma not recorded"
    caption = (
        f"{used}; noisy and denoised share one grey scale per slice (0.5-99.5th percentile of the noisy slice); "
        f"residual = noisy - denoised, red: noisy brighter, blue: denoised brighter, range {'±3 sigma' if sigma else '±99.5th percentile of |residual|'}"
        f" = ±{bound:.4g}"
    )
    figure.suptitle(f"{title}\n{caption}" if title else caption, fontsize=9)
    figure.tight_layout()
    return figure


def qa_figure(
    noisy, denoised, output_path: PathLike, affine=None, num_slices: int = 3, title: str = "", sigma: float | None = None, noise_map=None
) -> Path:
    """Save the QA figure of :func:`build_qa_figure` as a PNG at ``output_path`` (atomically); return the path."""
    figure = build_qa_figure(noisy, denoised, affine=affine, num_slices=num_slices, title=title, sigma=sigma, noise_map=noise_map)
    atomic_write(output_path, lambda temporary: figure.savefig(temporary, dpi=90, format="png"))
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
    source = str(getattr(item.get(image_key), "meta", {}).get("filename_or_obj", "volume"))
    return report_location(item.get(path_key), source)


def report_location(output_path: PathLike | None, source: PathLike | None = None) -> tuple[Path | None, str]:
    """Where the reports of one output go and their name: beside the output, named after it (``<name>_qa.png``, ``<name>.json``).

    A NIfTI output ``.../scan_denoised.nii.gz`` gives ``(..., "scan_denoised")``; a DICOM series
    folder ``.../series_denoised`` gives ``(..., "series_denoised")``. Without an output: no
    folder, the name of ``source``.
    """
    if output_path:
        path = Path(str(output_path))
        name = path.name[: -len(".nii.gz")] if path.name.endswith(".nii.gz") else path.stem if path.is_file() else path.name
        return path.parent, name
    return None, Path(str(source or "volume")).name.split(".")[0]


def write_report(
    noisy,
    denoised,
    output_path: PathLike | None,
    record: Mapping,
    *,
    folder: PathLike | None = None,
    name: str | None = None,
    meta: Mapping | None = None,
    num_slices: int = 3,
    details: Mapping | None = None,
    noise_map=None,
) -> dict:
    """Write the QA figure ``<name>_qa.png`` and the JSON report ``<name>.json`` of one denoised volume; return the report.

    The one report writer of the bundle (:class:`DenoisingReportHandler`) and the API and CLI
    (:func:`c2s_monai.api.denoise`).

    Args:
        noisy, denoised: the input (``(C, x, y, slices)`` or ``(x, y, slices)``; channel 0 is
            shown) and its denoised volume.
        output_path: the written output (a NIfTI file or a DICOM series folder); ``None``: none.
        record: what the inferer recorded (:func:`c2s_monai.inferers.denoising_record`:
            ``sigma_data``, ``sigma_source``, ``volume``, ``noise``).
        folder, name: where the reports go and their name; default :func:`report_location`
            (beside the output, named after it).
        meta: the input's metadata (``filename_or_obj``, ``affine``, ``source_format``, contrasts);
            default ``noisy.meta``.
        num_slices: slices shown in the figure.
        details: entries added to the report (``flips``, timings, ``device``, the checkpoint...).
        noise_map: the per-voxel noise std used (:func:`c2s_monai.inferers.denoising_noise_map`), shown in the figure.
    """
    meta = meta if meta is not None else getattr(noisy, "meta", {}) or {}
    source = meta.get("filename_or_obj", "")
    default_folder, default_name = report_location(output_path, source or None)
    folder = Path(folder) if folder is not None else default_folder or Path(".")
    name = name or default_name
    sigma = record.get("sigma_data")
    sigma_source = record.get("sigma_source", "unknown")
    volume, noise = record.get("volume"), record.get("noise")
    figure = qa_figure(
        noisy, denoised, folder / f"{name}_qa.png", affine=meta.get("affine"), num_slices=num_slices,
        title=f"{Path(str(source or name)).name}  sigma_data={sigma:.4g} ({sigma_source})" if sigma else name, sigma=sigma,
        noise_map=noise_map,
    )
    map_file = noise_map_path(output_path) if output_path else None
    report: dict[str, Any] = {
        "input": _absolute(source),
        "input_format": str(meta.get("source_format", "")),
        "output": _absolute(output_path),
        "qa_figure": _absolute(figure),
        "sigma_data": sigma,
        "sigma_source": sigma_source,
        "shape": [int(s) for s in torch.as_tensor(noisy).shape[-3:]],
        **({"volume": volume} if volume else {}),
        **({"noise": noise} if noise else {}),
        **({"noise_map": _absolute(map_file)} if map_file is not None and map_file.exists() else {}),
        **_contrast_fields(meta),
        **dict(details or {}),
    }
    if sigma:
        report["no_reference"] = no_reference_metrics(_target_volume(noisy), _target_volume(denoised), sigma)
    write_text_atomic(folder / f"{name}.json", json.dumps(report, indent=2))
    seconds = report.get("seconds_total")
    logger.info(
        "%s -> %s (sigma_data %.4g, %s, %.1f s)", report["input"], report["output"], sigma or float("nan"), sigma_source,
        seconds if seconds is not None else float("nan"),
    )
    return report


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
            try:
                self._report(engine, item, record, seconds, len(items), denoising_noise_map(item.get(self.pred_key)))
            except Exception as error:  # noqa: BLE001  a report must not stop a batch run: the denoised output is written
                logger.warning("%s: the QA figure or JSON report failed (%s); the denoised output is kept.", item.get(self.path_key), error)

    def _report(self, engine: Engine, item: dict, record: dict, seconds: float, count: int, noise_map=None) -> None:
        folder, name = _report_name(item, self.path_key, self.image_key)
        details: dict[str, Any] = {
            "flips": len(getattr(engine.inferer, "flips", ())) or None,  # type: ignore[attr-defined]  # a MONAI evaluator's inferer
            "seconds_total": seconds,
            "seconds_denoising": max(0.0, self._forward_done - self._start) / count if self._forward_done else None,
            "device": str(engine.state.device),  # type: ignore[attr-defined]  # MONAI's Workflow adds device to ignite's State
            **self.extra,
        }
        if "label" in item and item["label"] is not None:
            details["has_reference"] = True
        report = write_report(
            item[self.image_key], item[self.pred_key], item.get(self.path_key), record, folder=folder or self.output_dir, name=name,
            num_slices=self.num_slices, details=details, noise_map=noise_map,
        )
        self.reports.append(report)


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
