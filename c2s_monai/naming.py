"""File naming: what kind of input a path is, and the names of everything written from it.

One rule for every writer (API, CLI, bundle, MONAI Label): an output is named
``<stem>_<postfix><suffix>``, where the stem is a NIfTI/HDF5 file's name without its suffix
(case-insensitive) or a DICOM series' folder name (also for one file of the series), and
the postfix marks it (``denoised``), so that listing a folder never takes an output for an
input (:data:`OUTPUT_MARK`). The weights a training writes are :data:`MODEL_FILE`, with its
settings in :data:`CONFIG_FILE` beside them.

>>> from pathlib import Path
>>> output_path(Path("/data/sub-01_T1w.nii.gz"))
PosixPath('/data/sub-01_T1w_denoised.nii.gz')
>>> output_stem("scan.NII.GZ"), output_stem("brain.h5")
('scan', 'brain')
"""

from __future__ import annotations

import os
from pathlib import Path

import pydicom

PathLike = str | os.PathLike

DICOM_SUFFIXES = (".dcm", ".ima", ".dicom")
HDF5_SUFFIXES = (".h5", ".hdf5")
NIFTI_SUFFIXES = (".nii.gz", ".nii")
DENOISED_POSTFIX = "denoised"
# Beside an output: the per-voxel noise level it was denoised with (image units).
NOISE_MAP_POSTFIX = "noise_map"
# The output metadata key of that level (c2s_monai.inferers), read by the writers.
NOISE_MAP_META_KEY = "c2s_noise_map"
# In a file or folder name: an output of this package, never listed as an input.
OUTPUT_MARK = f"_{DENOISED_POSTFIX}"
NIFTI_OUTPUT_SUFFIX = ".nii.gz"
MODEL_FILE = "model.pt"
CONFIG_FILE = "model_config.json"


def is_dicom_file(path: PathLike) -> bool:
    """A file with a DICOM suffix, or any visible file with the DICOM preamble."""
    path = Path(path)
    if path.name.lower().endswith(DICOM_SUFFIXES):
        return True
    return path.is_file() and not path.name.startswith(".") and pydicom.misc.is_dicom(str(path))


def input_kind(path: PathLike) -> str:
    """``"dicom"`` (a series folder or a DICOM file), ``"hdf5"``, ``"nifti"`` or ``"other"``."""
    path = Path(path)
    name = path.name.lower()
    if path.is_dir():
        return "dicom"
    if name.endswith(HDF5_SUFFIXES):
        return "hdf5"
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if path.is_file() and is_dicom_file(path):
        return "dicom"
    return "other"


def output_stem(source: PathLike) -> str:
    """The name an output is derived from: a NIfTI/HDF5 file's stem, a DICOM series' folder name."""
    path = Path(source)
    if input_kind(path) == "dicom":
        return path.name if path.is_dir() else path.parent.name
    for suffix in NIFTI_SUFFIXES:
        if path.name.lower().endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def output_path(
    source: PathLike,
    output_dir: PathLike | None = None,
    postfix: str = DENOISED_POSTFIX,
    suffix: str = NIFTI_OUTPUT_SUFFIX,
    subfolder: str = "",
) -> Path:
    """``<output_dir or the source's folder>[/<subfolder>]/<stem>_<postfix><suffix>``."""
    if not postfix:
        raise ValueError("the output postfix must not be empty: the output would take the input's name.")
    source = Path(source)
    folder = Path(output_dir) if output_dir is not None else source.parent
    folder = folder / subfolder if subfolder else folder
    return folder / f"{output_stem(source)}_{postfix}{suffix}"


def noise_map_path(output: PathLike) -> Path:
    """``<output name>_noise_map.nii.gz`` beside an output (a file, or a DICOM series folder): the noise level it was denoised with.

    >>> noise_map_path("/out/scan_denoised.nii.gz")
    PosixPath('/out/scan_denoised_noise_map.nii.gz')
    """
    output = Path(output)
    stem = output.name if output.is_dir() else output_stem(output)
    return output.parent / f"{stem}_{NOISE_MAP_POSTFIX}{NIFTI_OUTPUT_SUFFIX}"
