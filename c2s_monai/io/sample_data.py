"""Real MRI that ships inside installed packages (no download at run time).

- :func:`mni152_t1_path`: the MNI152 2009a T1 template from the nilearn wheel (1 mm,
  197x233x189), near noise-free: the clean reference for synthetic-noise experiments.
- :func:`dipy_s0_path`: ``S0_10slices.nii.gz`` from the dipy wheel, a real b=0 diffusion
  scan (128x128x10, 2 mm) with real Rician noise: the default noisy scan of the demo.
- :func:`noisy_mni152_slices`: axial slices of the MNI T1 scaled to [0, 1] with simulated
  noise of a known std, for tests and benchmarks.
- :func:`mni152_contrast`: the MNI T1 or a co-registered pseudo-T2 / pseudo-PD image built
  from the template's grey- and white-matter maps (multi-contrast experiments).
- :func:`write_pretraining_set`: the noisy volumes the shipped checkpoint is trained on.
- :func:`write_multicontrast_subject`: noisy T1, pseudo-T2 and pseudo-PD volumes of one
  "subject" on one grid, for multi-contrast tests and demos.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
import torch

from c2s_monai.noise import add_noise


def _load_nifti(path: Path) -> nib.Nifti1Image:
    """``nib.load`` of one of the NIfTI files below, typed as a NIfTI image (``nib.load`` is annotated with the base class)."""
    return cast(nib.Nifti1Image, nib.load(str(path)))


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


# Pseudo-contrast tissue intensities (fraction of the max): CSF, grey matter, white matter, and
# the factor applied to the T1's non-brain tissue (scalp, fat, muscle). Ordering as in real
# scans: T2 CSF > GM > WM; PD CSF > GM > WM with a smaller spread.
PSEUDO_CONTRASTS = {"t2": (1.0, 0.55, 0.35, 0.5), "pd": (0.85, 0.75, 0.6, 0.7)}
CONTRASTS = ("t1", *PSEUDO_CONTRASTS)


def mni152_contrast(name: str) -> np.ndarray:
    """The MNI volume ``(197, 233, 189)`` of contrast ``name`` (``"t1"``, ``"t2"``, ``"pd"``), in [0, 1].

    ``"t1"`` is the template itself. ``"t2"`` and ``"pd"`` are pseudo-contrasts on the same grid:
    inside the brain ``c_csf * CSF + c_gm * GM + c_wm * WM`` with the template's GM/WM
    probability maps and CSF = brain mask - GM - WM (the mask: GM + WM > 0.3, holes filled,
    closed, so ventricles and sulci are CSF); outside the brain the T1's head tissue times a
    factor (:data:`PSEUDO_CONTRASTS`). They share every anatomical edge with the T1 but invert
    its CSF/WM contrast, as a T2 does: a co-registered guide for multi-contrast denoising.
    """
    if name not in CONTRASTS:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {name!r}.")
    t1 = np.asarray(_load_nifti(mni152_t1_path()).dataobj, dtype=np.float32)
    t1 /= t1.max()
    if name == "t1":
        return t1
    from scipy import ndimage

    gm, wm = (np.asarray(_load_nifti(mni152_tissue_path(t)).dataobj, dtype=np.float32) / 255.0 for t in ("gm", "wm"))
    brain = ndimage.binary_fill_holes(gm + wm > 0.3)
    brain = ndimage.binary_fill_holes(ndimage.binary_closing(ndimage.binary_dilation(brain, iterations=1), iterations=4))
    brain = brain.astype(np.float32)
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    c_csf, c_gm, c_wm, outside = PSEUDO_CONTRASTS[name]
    volume = brain * (c_csf * csf + c_gm * gm + c_wm * wm) + (1.0 - brain) * outside * t1
    return (volume / volume.max()).astype(np.float32)


def mni152_t1_slices(first: int = 40, last: int = 140, step: int = 2) -> np.ndarray:
    """Axial slices ``[first:last:step]`` of the MNI T1, scaled to [0, 1], shape ``(N, 197, 233)``."""
    volume = np.asarray(_load_nifti(mni152_t1_path()).dataobj, dtype=np.float32)
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


def dipy_scan_paths() -> list[Path]:
    """The real noisy scans of the dipy wheel usable as 3D volumes: ``S0_10slices`` (b=0 DWI,
    128x128x10, 2 mm), ``test_piesno`` (96x96x14) and ``aniso_vox`` (58x58x24, 4x4x5 mm)."""
    return [_package_file("dipy", "data", "files", name) for name in ("S0_10slices.nii.gz", "test_piesno.nii.gz", "aniso_vox.nii.gz")]


# Pretraining planes: (name, axis sliced, first, last, step); a volume's slices run along its last axis.
# 2 mm apart: the 2.5D context of the shipped checkpoint sees neighbours as close as in a typical 2D
# multi-slice scan, between the 1 mm of a 3D acquisition and the 3-5 mm of a clinical one.
PRETRAINING_PLANES = (("sagittal", 0, 30, 168, 2), ("coronal", 1, 30, 204, 2))


def _plane_volume(volume: np.ndarray, affine: np.ndarray, axis: int, first: int, last: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Slices ``first:last:step`` along ``axis`` of ``volume``, moved to the last axis, with the matching affine."""
    index = [slice(None)] * 3
    index[axis] = slice(first, last, step)
    kept = volume[tuple(index)]
    sliced = affine.copy()
    sliced[:3, 3] += affine[:3, axis] * first
    sliced[:3, axis] *= step
    order = [a for a in range(3) if a != axis] + [axis]
    moved = sliced.copy()
    moved[:, :3] = sliced[:, order]
    return np.ascontiguousarray(np.transpose(kept, order)), moved


def write_pretraining_set(
    folder: str | Path,
    levels: tuple[float, ...] = (0.03, 0.06, 0.1),
    contrasts: tuple[str, ...] = ("t2", "pd"),
    seed: int = 0,
) -> list[Path]:
    """Write the public training set of the shipped checkpoint into ``folder``; return the files.

    Noisy data only, as C2S needs: each of ``contrasts`` (:func:`mni152_contrast`, scaled to
    [0, 1]) in sagittal and coronal slices (:data:`PRETRAINING_PLANES`), with Gaussian and with
    Rician noise at each of ``levels`` (fractions of the max, one seed per volume), and copies
    of dipy's real noisy scans (:func:`dipy_scan_paths`). Neither the T1 nor axial slices of the
    template are in it, so that fine-tuning on the benchmark's axial T1 slices
    (docs/benchmarks.md, time to quality) adapts to a contrast and a view never seen.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    affine = _load_nifti(mni152_t1_path()).affine
    written = []
    index = 0
    for contrast in contrasts:
        full = mni152_contrast(contrast)
        for plane, axis, first, last, step in PRETRAINING_PLANES:
            volume, plane_affine = _plane_volume(full, affine, axis, first, last, step)
            for noise_model in ("gaussian", "rician"):
                for level in levels:
                    generator = torch.Generator().manual_seed(seed + index)
                    index += 1
                    noisy = add_noise(torch.from_numpy(volume), level, noise_model, generator).numpy()
                    path = folder / f"mni152_{contrast}_{plane}_{noise_model}_{round(level * 100)}pct.nii.gz"
                    nib.save(nib.Nifti1Image(noisy.astype(np.float32), plane_affine), str(path))
                    written.append(path)
    for scan in dipy_scan_paths():
        copy = folder / scan.name
        copy.write_bytes(scan.read_bytes())
        written.append(copy)
    return written


def write_multicontrast_subject(
    folder: str | Path,
    sigma: float = 0.06,
    noise_model: str = "gaussian",
    seed: int = 0,
    first: int = 40,
    last: int = 140,
    step: int = 2,
) -> dict[str, Path]:
    """Write noisy ``t1``, ``t2`` and ``pd`` volumes of the MNI head into ``folder``; return ``{contrast: path}``.

    Each is :func:`mni152_contrast` (scaled to [0, 1]) at axial slices z = ``first``..``last``
    (step ``step``) with noise of std ``sigma`` (fraction of the max) of ``noise_model``, its
    own seed (``seed`` + its index in :data:`CONTRASTS`), and one affine (the template's, for
    the kept slices): a co-registered multi-contrast subject, ``mni152_<contrast>.nii.gz``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    template_affine = _load_nifti(mni152_t1_path()).affine
    written = {}
    for index, name in enumerate(CONTRASTS):
        clean, affine = _plane_volume(mni152_contrast(name), template_affine, 2, first, last, step)
        generator = torch.Generator().manual_seed(seed + index)
        noisy = add_noise(torch.from_numpy(clean), sigma, noise_model, generator).numpy().astype(np.float32)
        path = folder / f"mni152_{name}.nii.gz"
        nib.save(nib.Nifti1Image(noisy, affine), str(path))
        written[name] = path
    return written
