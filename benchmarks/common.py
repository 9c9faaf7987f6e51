"""What the benchmarks share: result folders, the protocol's slices and noise conditions, data, scores, small utilities.

The drivers (:mod:`benchmarks.run`, :mod:`benchmarks.time_to_quality`, :mod:`benchmarks.inference_speed`,
:mod:`benchmarks.multicontrast`, :mod:`benchmarks.volumetric`) and the reports (:mod:`benchmarks.report`,
:mod:`benchmarks.ttq_report`, :mod:`benchmarks.volumetric_report`) import this module; it imports none of
them. Protocol of the slices and conditions: the module docstring of :mod:`benchmarks.run`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Events
from skimage.metrics import structural_similarity

from c2s_monai.io.sample_data import mni152_t1_slices
from c2s_monai.noise import add_noise
from c2s_monai.precision import autocast_dtype

RESULTS = Path("benchmarks/results")  # one folder per benchmark; the main benchmark's: <mode>/ ("full" or "quick")
TTQ_RESULTS = RESULTS / "ttq"  # time to quality and the inference timing it reports

TRAIN_SLICES = (40, 140, 2)
HELD_OUT_SLICES = (45, 140, 10)
EXAMPLE_SLICE = 4  # the held-out slice shown in the figures (z = 85)


@dataclass(frozen=True)
class Condition:
    noise_model: str
    level: float

    @property
    def name(self) -> str:
        return f"{self.noise_model}_{round(self.level * 100)}"


def parse_condition(name: str) -> Condition:
    noise_model, percent = name.split("_")
    return Condition(noise_model, int(percent) / 100)


# ------------------------------------------------------------------------------- data + metrics


def make_data(condition: Condition) -> dict[str, np.ndarray]:
    """Clean and noisy training / held-out slices ``(N, H, W)`` for one condition (seeded)."""
    data = {}
    for split, (first, last, step), seed in (("train", TRAIN_SLICES, 0), ("held_out", HELD_OUT_SLICES, 1)):
        clean = mni152_t1_slices(first, last, step)
        generator = torch.Generator().manual_seed(seed)
        noisy = add_noise(torch.from_numpy(clean), condition.level, condition.noise_model, generator).numpy()
        data[f"{split}_clean"], data[f"{split}_noisy"] = clean, noisy
    return data


def metrics(estimate: np.ndarray, clean: np.ndarray) -> dict[str, float]:
    """PSNR/SSIM (peak 1) inside ``clean > 0.1`` and on the whole image, pooled over slices."""
    mask = clean > 0.1
    ssim_maps = np.stack([structural_similarity(c, e, data_range=1.0, full=True)[1] for c, e in zip(clean, estimate)])
    error = (estimate - clean) ** 2
    return {
        "psnr_mask": float(10 * np.log10(1 / error[mask].mean())),
        "psnr_image": float(10 * np.log10(1 / error.mean())),
        "ssim_mask": float(ssim_maps[mask].mean()),
        "ssim_image": float(ssim_maps.mean()),
    }


def scored_metrics(estimate: np.ndarray, clean: np.ndarray, scored) -> dict[str, float]:
    """:func:`metrics` of the ``scored`` slices of volumes ``(x, y, z)`` (slices last): PSNR and SSIM inside ``clean > 0.1``, whole-image PSNR."""
    scores = metrics(np.moveaxis(estimate[..., list(scored)], -1, 0), np.moveaxis(clean[..., list(scored)], -1, 0))
    return {key: scores[key] for key in ("psnr_mask", "psnr_image", "ssim_mask")}


def write_volume(path: Path, *channels: np.ndarray) -> None:
    """Slices ``(N, H, W)`` -> NIfTI ``(H, W, N[, C])``."""
    volume = np.stack([np.moveaxis(c, 0, -1) for c in channels], axis=-1) if len(channels) > 1 else np.moveaxis(channels[0], 0, -1)
    nib.save(nib.Nifti1Image(volume.astype(np.float32), np.eye(4)), str(path))


def speed_volume() -> tuple[np.ndarray, torch.Tensor]:
    """The timing volume: 100 MNI T1 slices padded to 256x256, 6% Gaussian noise, as ``(100, 256, 256)``
    slices and as the inferer's ``(1, 1, 256, 256, 100)`` tensor."""
    padded = np.zeros((100, 256, 256), dtype=np.float32)
    padded[:, 30:227, 11:244] = mni152_t1_slices(40, 140, 1)
    noisy = add_noise(torch.from_numpy(padded), 0.06, "gaussian", torch.Generator().manual_seed(0)).numpy()
    return noisy, torch.from_numpy(np.moveaxis(noisy, 0, -1))[None, None]


# ------------------------------------------------------------------------------------ utilities


def bundle_autocast() -> str:
    """What the bundle's ``autocast_dtype: "auto"`` runs in on this CPU: ``"bfloat16"`` where native, else ``"float32"``."""
    return str(autocast_dtype("auto", "cpu") or "float32").removeprefix("torch.")


def current_commit() -> str:
    """The short hash of the checked-out commit (``"unknown"`` outside a git checkout)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    return commit or "unknown"


def write_json(path: Path, result: dict) -> None:
    """Save ``result`` (indented JSON) at ``path`` atomically: written beside it as ``.tmp``, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(result, indent=2))
    os.replace(temporary, path)


class TrainingClock:
    """Seconds spent in training steps only (not in the evaluations between them), with an optional budget.

    :meth:`attach` times each iteration from ``ITERATION_STARTED`` to ``ITERATION_COMPLETED`` into
    ``seconds``; with ``budget`` (seconds) it terminates the trainer once ``seconds`` reaches it.
    """

    def __init__(self, budget: float | None = None) -> None:
        self.seconds = 0.0
        self.budget = budget
        self._started = 0.0

    def attach(self, trainer) -> TrainingClock:
        trainer.add_event_handler(Events.ITERATION_STARTED, self._start)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._stop)
        return self

    def _start(self, _) -> None:
        self._started = time.perf_counter()

    def _stop(self, engine) -> None:
        self.seconds += time.perf_counter() - self._started
        if self.budget is not None and self.seconds >= self.budget:
            engine.terminate()
