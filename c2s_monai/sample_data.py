"""Real MRI that ships inside installed packages (no download at run time).

- :func:`mni152_t1_path`: the MNI152 2009a T1 template from the nilearn wheel (1 mm,
  197x233x189), near noise-free: the clean reference for synthetic-noise experiments.
- :func:`dipy_s0_path`: ``S0_10slices.nii.gz`` from the dipy wheel, a real b=0 diffusion
  scan (128x128x10, 2 mm) with real Rician noise: the default noisy scan of the demo.
- :func:`noisy_mni152_slices`: axial slices of the MNI T1 scaled to [0, 1] with simulated
  noise of a known std, for tests and benchmarks.
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
