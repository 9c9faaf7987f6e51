"""Real MRI that ships inside installed packages (no download at run time).

- :func:`mni152_t1_path`: the MNI152 2009a T1 template from the nilearn wheel (1 mm,
  197x233x189), near noise-free: the clean reference for synthetic-noise experiments.
- :func:`dipy_s0_path`: ``S0_10slices.nii.gz`` from the dipy wheel, a real b=0 diffusion
  scan (128x128x10, 2 mm) with real Rician noise: the default noisy scan of the demo.
- :func:`noisy_mni152_slices`: axial slices of the MNI T1 scaled to [0, 1] with simulated
  noise of a known std, for tests and benchmarks.
- :func:`write_pretraining_set`: the noisy volumes the shipped checkpoint is trained on.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from c2s_monai.noise import add_noise


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"the package {package!r} is not installed; `pip install {package}` provides this data.")
    path = Path(spec.origin).parent.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found in the installed {package} package.")
    return path


def mni152_t1_path() -> Path:
    return _package_file("nilearn", "datasets", "data", "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")


def mni152_tissue_path(tissue: str) -> Path:
    """``tissue``: ``"gm"`` or ``"wm"`` probability map on the T1's grid."""
    return _package_file("nilearn", "datasets", "data", f"mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz")


def dipy_s0_path() -> Path:
    return _package_file("dipy", "data", "files", "S0_10slices.nii.gz")


def mni152_t1_slices(first: int = 40, last: int = 140, step: int = 2) -> np.ndarray:
    """Axial slices ``[first:last:step]`` of the MNI T1, scaled to [0, 1], shape ``(N, 197, 233)``."""
    volume = np.asarray(nib.load(str(mni152_t1_path())).dataobj, dtype=np.float32)
    volume = volume / volume.max()
    return np.ascontiguousarray(np.moveaxis(volume[:, :, first:last:step], -1, 0))


def noisy_mni152_slices(
    sigma: float, noise_model: str = "gaussian", seed: int = 0, first: int = 40, last: int = 140, step: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """``(clean, noisy)`` MNI T1 slices with noise std ``sigma`` (fraction of the max)."""
    clean = mni152_t1_slices(first, last, step)
    generator = torch.Generator().manual_seed(seed)
    noisy = add_noise(torch.from_numpy(clean), sigma, noise_model, generator).numpy()
    return clean, noisy


def write_pretraining_set(folder: str | Path, levels: tuple[float, ...] = (0.03, 0.06, 0.1), seed: int = 0) -> list[Path]:
    """Write the public training set of the shipped checkpoint into ``folder``; return the files.

    Noisy data only, as C2S needs: the MNI T1 (axial slices z = 30..158, step 2, scaled to
    [0, 1]) with Gaussian and with Rician noise at each of ``levels`` (fractions of the max,
    one seed per volume), and a copy of dipy's real noisy ``S0_10slices`` scan.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    reference = nib.load(str(mni152_t1_path()))
    affine = reference.affine.copy()
    affine[:3, 3] += affine[:3, 2] * 30  # the first kept slice is z = 30
    affine[:3, 2] *= 2
    written = []
    for index, (noise_model, level) in enumerate((m, s) for m in ("gaussian", "rician") for s in levels):
        _, noisy = noisy_mni152_slices(level, noise_model, seed=seed + index, first=30, last=160, step=2)
        path = folder / f"mni152_t1_{noise_model}_{round(level * 100)}pct.nii.gz"
        nib.save(nib.Nifti1Image(np.moveaxis(noisy, 0, -1).astype(np.float32), affine), str(path))
        written.append(path)
    scan = folder / dipy_s0_path().name
    scan.write_bytes(dipy_s0_path().read_bytes())
    return written + [scan]
