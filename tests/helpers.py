"""Plain helper functions shared by several test modules (import with ``from helpers import ...``).

Fixtures live in ``conftest.py``; these are ordinary functions and constants that build test
inputs on disk:

- :func:`make_dicom_series`: a small, deliberately out-of-order DICOM series (the readers',
  writers', bundle, fuzz and bad-input tests);
- :func:`noisy`, :func:`write_nifti` and the bad-input builders that the batch-inference tests
  reuse (the other builders of ``docs/bad-inputs.md`` stay in ``test_bad_inputs.py``).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

# ------------------------------------------------------------------ DICOM series

# A sagittal stack: rows along +y (anterior-posterior in LPS), columns along -z; the normal is -x.
ORIENTATION = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
ORIGIN = np.array([10.0, -20.0, 30.0])
SLICE_STEP = 2.5
SLOPE, INTERCEPT = 2.0, -100.0


def make_dicom_series(folder: Path, num_slices: int = 5, series_uid: str | None = None, seed: int = 0) -> dict:
    """Write a small DICOM series built on pydicom's MR_small.dcm into ``folder``.

    Slice ``k`` lies at ``ORIGIN + k * SLICE_STEP * normal``; its stored pixels are
    ``k * 100 + (template // 4) + noise``. File names and InstanceNumber are deliberately out
    of position order (InstanceNumber reversed, names rotated by one), so sorting by either is wrong.
    Returns the series UID and the expected real-world volume ``(columns, rows, slices)``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    rng = np.random.default_rng(seed)
    series_uid = series_uid or generate_uid()
    normal = np.cross(ORIENTATION[:3], ORIENTATION[3:])
    expected = []
    for k in range(num_slices):
        ds = template.copy()
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.ImageOrientationPatient = ORIENTATION
        ds.ImagePositionPatient = [float(v) for v in ORIGIN + k * SLICE_STEP * normal]
        ds.InstanceNumber = num_slices - k
        ds.RescaleSlope, ds.RescaleIntercept = SLOPE, INTERCEPT
        stored = (template.pixel_array.astype(np.int32) // 4 + rng.integers(0, 50, template.pixel_array.shape) + 100 * k).astype(np.int16)
        ds.PixelData = stored.tobytes()
        ds.save_as(folder / f"img_{(k + 1) % num_slices:03d}.dcm", enforce_file_format=True)
        expected.append((stored.astype(np.float32) * SLOPE + INTERCEPT).T)
    return {"series_uid": series_uid, "volume": np.stack(expected, axis=-1)}


def dicom_slice_file(series: Path, index: int, num_slices: int) -> Path:
    """The file of slice ``index`` of a :func:`make_dicom_series` series (which rotates the names)."""
    return series / f"img_{(index + 1) % num_slices:03d}.dcm"


# ------------------------------------------------------------------ NIfTI volumes and bad inputs

SHAPE = (24, 20, 3)


def noisy(seed: int = 0, shape=SHAPE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    image[4:20, 4:16] = 600.0
    return (image + rng.normal(0, 30, shape)).astype(np.float32)


def write_nifti(path: Path, data, dtype=None) -> Path:
    image = nib.Nifti1Image(np.asarray(data), np.eye(4))
    if dtype is not None:
        image.set_data_dtype(dtype)
    nib.save(image, str(path))
    return path


def truncated_nifti_gz(folder: Path) -> Path:
    good = write_nifti(folder / "good.nii.gz", noisy())
    raw = good.read_bytes()
    good.unlink()
    (folder / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    return folder / "truncated.nii.gz"


def nan_voxels(folder: Path) -> Path:
    data = noisy()
    data[3, 4, 1] = np.nan
    return write_nifti(folder / "nan.nii.gz", data)


def series_4d(folder: Path) -> Path:
    return write_nifti(folder / "dwi.nii.gz", np.stack([noisy(k) for k in range(3)], axis=-1))


def constant(folder: Path) -> Path:
    return write_nifti(folder / "constant.nii.gz", np.full(SHAPE, 7.0, np.float32))


def noise_free(folder: Path) -> Path:
    image = np.zeros(SHAPE, np.float32)
    image[6:18, 5:15] = 1.0
    return write_nifti(folder / "noise_free.nii.gz", image)


def dicom_missing_slice(folder: Path) -> Path:
    make_dicom_series(folder / "gap", num_slices=5)
    dicom_slice_file(folder / "gap", 2, 5).unlink()
    return folder / "gap"
