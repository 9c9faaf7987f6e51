"""Readers for the scanner formats a denoising bundle meets: DICOM series and fastMRI-style HDF5.

Both are MONAI ``ImageReader`` classes, so they plug into ``LoadImage``/``LoadImaged``; their
``get_data`` returns a ``(x, y, slices)`` float32 array and a MONAI meta dict (``affine`` in RAS
world coordinates, as ``NibabelReader`` gives).

- :class:`DicomSeriesReader` reads **one series** from a folder. Unlike MONAI's
  ``PydicomReader`` (which stacks a folder by ``InstanceNumber`` and only warns about mixed
  content) it sorts the slices by their position along the slice normal, refuses a folder
  holding several series (naming them, so one can be chosen with ``series_uid``), refuses
  slices of different orientation, size or in-plane spacing, or two images at one position,
  and applies ``RescaleSlope``/``RescaleIntercept``.
- :class:`HDF5Reader` reads a dataset ``(slices, rows, columns)`` (fastMRI/M4Raw
  ``reconstruction_rss`` by default) with an identity affine.

:class:`LoadVolumed` picks the reader by the kind of input (DICOM folder or file, ``.h5``,
NIfTI through MONAI's ``NibabelReader``; a file of any other type, a PNG or a text file, is
refused naming its type) and calls it explicitly, so a reader's own
error (mixed series, missing HDF5 key) reaches the user instead of MONAI's generic "cannot
find a suitable reader". :func:`list_inputs` expands a folder or list into the inputs one
bundle run processes.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import nibabel as nib
import numpy as np
import pydicom
import torch
from monai.config import KeysCollection, PathLike
from monai.data import ImageReader
from monai.transforms import LoadImage, MapTransform, Transform
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from c2s_monai import defaults
from c2s_monai.errors import InputError, describe, root_cause
from c2s_monai.naming import (
    DICOM_SUFFIXES,
    HDF5_SUFFIXES,
    NIFTI_SUFFIXES,
    OUTPUT_MARK,
    input_kind,
    is_dicom_file,
)

__all__ = [
    "DICOM_SUFFIXES",
    "HDF5_SUFFIXES",
    "DicomSeriesReader",
    "HDF5Reader",
    "LoadVolume",
    "LoadVolumed",
    "input_kind",
    "list_inputs",
    "read_dicom_series",
]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _dicom_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_dicom_file(p))


def _series_label(ds) -> str:
    number = ds.get("SeriesNumber", "?")
    description = ds.get("SeriesDescription", "")
    return f"{ds.get('SeriesInstanceUID', '(no SeriesInstanceUID)')} (series {number}{', ' + description if description else ''})"


def read_dicom_series(
    folder: PathLike, series_uid: str | None = None, stop_before_pixels: bool = False
) -> tuple[list[Path], list[pydicom.Dataset], np.ndarray]:
    """Read one DICOM series from ``folder``, sorted along the slice normal.

    Args:
        folder: a folder of DICOM files (or one DICOM file: its folder's series is read).
        series_uid: the ``SeriesInstanceUID`` to read when the folder holds several series.
        stop_before_pixels: read the headers only.

    Returns:
        ``(files, datasets, positions)``: the slices' files and datasets in ascending position
        along the normal ``row x column`` direction cosines, and those positions (mm).

    Raises:
        InputError: naming the folder or file, for no DICOM file, an unreadable file, several
            series without ``series_uid``, mixed orientation/size/spacing, two images at one
            position, missing slices or uneven slice spacing.
    """
    folder = Path(folder)
    chosen_file = None
    if folder.is_file():
        chosen_file, folder = folder, folder.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such DICOM folder; check the path.")
    files = _dicom_files(folder)
    if not files:
        raise InputError(f"{folder}: holds no DICOM file; give a folder with one DICOM series.")
    datasets = [_read_dicom(f, stop_before_pixels) for f in files]
    for ds, f in zip(datasets, files, strict=True):
        if not stop_before_pixels and "PixelData" not in ds:
            raise InputError(
                f"{f}: holds no pixel data: the file is truncated, or not an image (a report, a presentation state); "
                f"remove it from {folder.name} or export the series again."
            )
    if series_uid is None and chosen_file is not None:
        series_uid = str(datasets[files.index(chosen_file)].get("SeriesInstanceUID", ""))
    groups: dict[str, list[int]] = {}
    for index, ds in enumerate(datasets):
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(index)
    if series_uid is not None:
        if series_uid not in groups:
            raise InputError(
                f"{folder}: no series with SeriesInstanceUID {series_uid}; found {sorted(groups)}: set dicom_series_uid to one of them."
            )
        selected = groups[series_uid]
    elif len(groups) > 1:
        labels = "; ".join(f"{_series_label(datasets[i[0]])}: {len(i)} files" for i in groups.values())
        raise InputError(
            f"{folder}: holds {len(groups)} DICOM series ({labels}). Denoise one series at a time: "
            "move each series into its own folder, or choose one with series_uid "
            "(bundle key `dicom_series_uid`)."
        )
    else:
        selected = next(iter(groups.values()))
    files = [files[i] for i in selected]
    datasets = [datasets[i] for i in selected]

    for ds, f in zip(datasets, files):
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns"):
            if tag not in ds:
                raise InputError(
                    f"{f}: the DICOM file has no {tag}; only images with full geometry can be denoised: export the "
                    "series again with its geometry tags."
                )
    orientation = np.asarray(datasets[0].ImageOrientationPatient, dtype=np.float64)
    spacing = np.asarray(datasets[0].PixelSpacing, dtype=np.float64)
    shape = (int(datasets[0].Rows), int(datasets[0].Columns))
    for ds, f in zip(datasets[1:], files[1:]):
        if not np.allclose(np.asarray(ds.ImageOrientationPatient, dtype=np.float64), orientation, atol=1e-4):
            raise InputError(
                f"{folder}: {f.name} has another ImageOrientationPatient than {files[0].name}; the folder mixes "
                "stacks: put each orientation in its own folder."
            )
        if (int(ds.Rows), int(ds.Columns)) != shape:
            raise InputError(
                f"{folder}: {f.name} is {ds.Rows}x{ds.Columns}, {files[0].name} is {shape[0]}x{shape[1]}; the folder "
                "mixes image sizes: put each size in its own folder."
            )
        if not np.allclose(np.asarray(ds.PixelSpacing, dtype=np.float64), spacing, rtol=1e-4):
            raise InputError(
                f"{folder}: {f.name} has PixelSpacing {[float(v) for v in ds.PixelSpacing]}, {files[0].name} {spacing.tolist()}; "
                "inconsistent in-plane spacing: put each resolution in its own folder."
            )
    normal = np.cross(orientation[:3], orientation[3:])
    positions = np.array([float(np.dot(np.asarray(ds.ImagePositionPatient, dtype=np.float64), normal)) for ds in datasets])
    order = np.argsort(positions, kind="stable")
    positions = positions[order]
    if len(positions) > 1 and np.min(np.diff(positions)) < 1e-3:
        at = positions[int(np.argmin(np.diff(positions)))]
        raise InputError(
            f"{folder}: several images lie at the same slice position ({at:.3f} mm along the normal): a "
            "multi-echo, dynamic or repeated series; split it into one folder per echo/time point."
        )
    _check_slice_spacing(folder, positions)
    return [files[i] for i in order], [datasets[i] for i in order], positions


def _read_dicom(path: Path, stop_before_pixels: bool) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(str(path), stop_before_pixels=stop_before_pixels)
    except Exception as error:  # pydicom raises several types for damaged files
        raise InputError(
            f"{path}: cannot be read as DICOM ({describe(error)}); the file is truncated or corrupt: "
            f"remove it from {path.parent.name} or export the series again."
        ) from error


def _check_slice_spacing(folder: Path, positions: np.ndarray) -> None:
    """Refuse a stack with missing slices or uneven spacing: its volume would have a wrong geometry."""
    if len(positions) < 3:
        return
    steps = np.diff(positions)
    step = float(np.median(steps))
    # positions are stored as decimal strings, often rounded to 0.01 mm
    tolerance = max(0.02 * step, 0.01)
    gaps = [i for i, s in enumerate(steps) if s > 1.5 * step]
    if gaps:
        i = gaps[0]
        missing = int(round(steps[i] / step)) - 1  # a numpy scalar: int() makes the type plain
        raise InputError(
            f"{folder}: {missing} slice(s) missing between {positions[i]:.2f} mm and {positions[i + 1]:.2f} mm along "
            f"the slice normal (the other slices are {step:.3g} mm apart){' and more gaps' if len(gaps) > 1 else ''}; "
            "copy or export the complete series."
        )
    if np.max(np.abs(steps - step)) > tolerance:
        raise InputError(
            f"{folder}: the slice spacing is not uniform ({steps.min():.3g} to {steps.max():.3g} mm between neighbouring "
            "slices); a volume needs one spacing: export the series as one regular stack, or resample it."
        )


def dicom_affine(datasets: Sequence[pydicom.Dataset], positions: np.ndarray, lps_to_ras: bool = True) -> np.ndarray:
    """The 4x4 voxel-to-world affine of a sorted series, for arrays indexed ``(column, row, slice)``."""
    first = datasets[0]
    orientation = np.asarray(first.ImageOrientationPatient, dtype=np.float64)
    row_cosine, column_cosine = orientation[:3], orientation[3:]
    row_spacing, column_spacing = (float(v) for v in first.PixelSpacing)
    normal = np.cross(row_cosine, column_cosine)
    if len(datasets) > 1:
        slice_step = (np.asarray(datasets[-1].ImagePositionPatient, dtype=np.float64) - np.asarray(first.ImagePositionPatient, dtype=np.float64)) / (
            len(datasets) - 1
        )
    else:
        thickness = float(first.get("SpacingBetweenSlices", first.get("SliceThickness", 1.0)) or 1.0)
        slice_step = normal * thickness
    affine = np.eye(4)
    affine[:3, 0] = row_cosine * column_spacing
    affine[:3, 1] = column_cosine * row_spacing
    affine[:3, 2] = slice_step
    affine[:3, 3] = np.asarray(first.ImagePositionPatient, dtype=np.float64)
    return LPS_TO_RAS @ affine if lps_to_ras else affine


def _rescaled_pixels(ds: pydicom.Dataset, source: Path) -> np.ndarray:
    try:
        pixels = ds.pixel_array
    except Exception as error:  # pydicom raises several types for missing codecs
        raise InputError(
            f"{source}: the pixel data cannot be decoded ({error}); the file is truncated, or its compression needs a "
            "codec: install the one pydicom names, or export the series uncompressed."
        ) from error
    if pixels.ndim != 2:
        raise InputError(
            f"{source}: expected one 2D image per file, got pixel array shape {pixels.shape} (multi-frame?); "
            "export the series as one file per slice."
        )
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)


class DicomSeriesReader(ImageReader):
    """Read one DICOM series (a folder) as a ``(columns, rows, slices)`` float32 volume.

    Slices are sorted by position along the slice normal; pixel values are in real-world units
    (``RescaleSlope``/``RescaleIntercept`` applied); the affine is in RAS (as ``NibabelReader``),
    or LPS with ``affine_lps_to_ras=False``. See :func:`read_dicom_series` for the checks.

    Args:
        series_uid: ``SeriesInstanceUID`` to read from a folder holding several series.
        affine_lps_to_ras: convert the DICOM (LPS) affine to RAS.
    """

    def __init__(self, series_uid: str | None = None, affine_lps_to_ras: bool = True) -> None:
        super().__init__()
        self.series_uid = series_uid or None
        self.affine_lps_to_ras = affine_lps_to_ras

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        names = ensure_tuple(filename)
        return len(names) == 1 and input_kind(names[0]) == "dicom"

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs):
        names = ensure_tuple(data)
        if len(names) != 1:
            raise ValueError(f"DicomSeriesReader reads one series folder at a time, got {len(names)} inputs.")
        files, datasets, positions = read_dicom_series(names[0], self.series_uid)
        return {"source": str(names[0]), "files": files, "datasets": datasets, "positions": positions}

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        files, datasets = img["files"], img["datasets"]
        volume = np.stack([_rescaled_pixels(ds, f).T for ds, f in zip(datasets, files)], axis=-1)
        affine = dicom_affine(datasets, img["positions"], self.affine_lps_to_ras)
        first = datasets[0]
        meta = {
            MetaKeys.AFFINE: affine,
            MetaKeys.ORIGINAL_AFFINE: affine.copy(),
            MetaKeys.SPATIAL_SHAPE: np.asarray(volume.shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
            MetaKeys.SPACE: SpaceKeys.RAS if self.affine_lps_to_ras else SpaceKeys.LPS,
            "source_format": "dicom",
            "SeriesInstanceUID": str(first.get("SeriesInstanceUID", "")),
            "Modality": str(first.get("Modality", "")),
            "SeriesDescription": str(first.get("SeriesDescription", "")),
        }
        return volume, meta


class HDF5Reader(ImageReader):
    """Read a ``(slices, rows, columns)`` dataset of an HDF5 file (fastMRI, M4Raw) as ``(columns, rows, slices)``.

    The file holds no geometry: the affine is the identity but for the row axis, which points
    down (``y = -row``) so that a viewer shows the slices as stored. Complex data (k-space) is refused.

    Args:
        key: dataset name, ``"reconstruction_rss"`` (fastMRI/M4Raw magnitude images) by default.
    """

    def __init__(self, key: str = defaults.H5_KEY) -> None:
        super().__init__()
        self.key = key

    def verify_suffix(self, filename: Sequence[PathLike] | PathLike) -> bool:
        names = ensure_tuple(filename)
        return len(names) == 1 and str(names[0]).lower().endswith(HDF5_SUFFIXES)

    def read(self, data: Sequence[PathLike] | PathLike, **kwargs):
        import h5py

        names = ensure_tuple(data)
        if len(names) != 1:
            raise ValueError(f"HDF5Reader reads one file at a time, got {len(names)} inputs.")
        path = Path(names[0])
        with h5py.File(path, "r") as handle:
            if self.key not in handle:
                available = sorted(k for k in handle if isinstance(handle[k], h5py.Dataset))
                raise InputError(f"{path}: no dataset {self.key!r}; datasets in the file: {available}. Set the key (bundle key `h5_key`).")
            array = np.asarray(handle[self.key])
        if np.iscomplexobj(array):
            raise InputError(f"{path}: dataset {self.key!r} is complex (k-space?); give reconstructed magnitude images.")
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3:
            raise InputError(
                f"{path}: dataset {self.key!r} has shape {array.shape}; expected (slices, rows, columns): give a "
                "magnitude image dataset (bundle key `h5_key`)."
            )
        return {"source": str(path), "array": array}

    def get_data(self, img) -> tuple[np.ndarray, dict]:
        volume = np.ascontiguousarray(np.transpose(img["array"], (2, 1, 0)), dtype=np.float32)
        affine = np.diag([1.0, -1.0, 1.0, 1.0])
        meta = {
            MetaKeys.AFFINE: affine,
            MetaKeys.ORIGINAL_AFFINE: affine.copy(),
            MetaKeys.SPATIAL_SHAPE: np.asarray(volume.shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: float("nan"),
            MetaKeys.SPACE: SpaceKeys.RAS,
            "source_format": "hdf5",
            "h5_key": self.key,
        }
        return volume, meta


class LoadVolume(Transform):
    """Load one input (NIfTI, DICOM series folder or file, HDF5) as float32 ``(C, x, y, slices)``.

    The reader is chosen from the input (:func:`input_kind`) and called explicitly, so its
    error message (mixed DICOM series, missing HDF5 key) is the one raised; a file of another type
    (a PNG, a text file) is refused naming its type (:func:`unsupported_file`); any other failure
    to read (a truncated or corrupt file, a non-numeric voxel type) becomes one
    :class:`~c2s_monai.errors.InputError` that names the file. ``C`` is 1 for one volume
    (a 4D NIfTI gives one channel per volume: :class:`~c2s_monai.transforms.EnsureVolume`
    refuses it where one volume is expected).

    Args:
        h5_key: HDF5 dataset name.
        series_uid: DICOM ``SeriesInstanceUID`` for folders holding several series.
    """

    def __init__(self, h5_key: str = defaults.H5_KEY, series_uid: str | None = None) -> None:
        # dtype=None: complex or boolean voxels are refused below instead of being cast silently
        self.loader = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)
        self.dicom_reader = DicomSeriesReader(series_uid=series_uid)
        self.hdf5_reader = HDF5Reader(key=h5_key)

    def __call__(self, path: PathLike) -> torch.Tensor:
        if not Path(path).exists():
            raise FileNotFoundError(f"{path}: no such file or folder; check the path.")
        kind = input_kind(path)
        if kind == "other":  # refused before LoadImage guesses a reader (PIL would read a PNG as a "4D series")
            raise InputError(unsupported_file(Path(path)))
        reader = {"dicom": self.dicom_reader, "hdf5": self.hdf5_reader}.get(kind)
        try:
            image = self.loader(path, reader=reader)
        except InputError:
            raise
        except Exception as error:  # nibabel, h5py, MONAI: many types, one message naming the file
            raise InputError(_unreadable(Path(path), kind, root_cause(error))) from error
        if image.dtype == torch.bool or torch.is_complex(image):
            raise InputError(
                f"{path}: voxel type {image.dtype} is not a real number; save the magnitude image as an integer or "
                "float type (e.g. abs() of complex data)."
            )
        image = image.to(torch.float32)
        image.meta.setdefault("source_format", kind)
        return image


KIND_NAMES = {"nifti": "NIfTI", "hdf5": "HDF5", "dicom": "DICOM"}

# what a file of an unsupported type is, by suffix, then by its first bytes
PICTURE = "a picture holds display values, not the scan's intensities"
OTHER_TYPES = {
    ".png": "a PNG image", ".jpg": "a JPEG image", ".jpeg": "a JPEG image", ".tif": "a TIFF image", ".tiff": "a TIFF image",
    ".bmp": "a BMP image", ".gif": "a GIF image", ".webp": "a WebP image", ".txt": "a text file", ".csv": "a CSV table",
    ".tsv": "a TSV table", ".json": "a JSON file", ".pdf": "a PDF document", ".zip": "a ZIP archive", ".npy": "a NumPy array file",
    ".npz": "a NumPy archive", ".mat": "a MATLAB file", ".mha": "a MetaImage volume", ".mhd": "a MetaImage header",
    ".nrrd": "an NRRD volume", ".mgz": "a FreeSurfer MGH volume", ".mgh": "a FreeSurfer MGH volume", ".gz": "a gzip file",
}
OTHER_SIGNATURES = [
    (b"\x89PNG", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"), (b"GIF8", ".gif"),
    (b"BM", ".bmp"), (b"%PDF", ".pdf"), (b"PK\x03\x04", ".zip"), (b"\x93NUMPY", ".npy"), (b"\x1f\x8b", ".gz"),
]
PICTURE_SUFFIXES = (".png", ".jpg", ".tif", ".gif", ".bmp", ".webp")


def file_type(path: Path) -> tuple[str, str]:
    """``(suffix, description)`` of a file that is not an input: ``(".png", "a PNG image")``, by suffix then by content."""
    suffix = path.suffix.lower().replace(".jpeg", ".jpg").replace(".tiff", ".tif")
    if suffix in OTHER_TYPES:
        return suffix, OTHER_TYPES[suffix]
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError:
        head = b""
    for signature, kind in OTHER_SIGNATURES:
        if head.startswith(signature):
            return kind, OTHER_TYPES[kind]
    return suffix, f"a file of an unsupported type ({suffix or 'no suffix'})"


def unsupported_file(path: Path) -> str:
    """The message for an input that is not a NIfTI, DICOM or HDF5 file (a PNG, a text file...)."""
    suffix, description = file_type(path)
    itk = "e.g. SimpleITK.WriteImage(SimpleITK.ReadImage(file), 'scan.nii.gz')"
    if suffix in PICTURE_SUFFIXES:
        advice = f"convert it to NIfTI ({itk}), or better export the scan itself: {PICTURE}"
    elif suffix in (".mha", ".mhd", ".nrrd", ".mgz", ".mgh"):
        advice = f"convert it to NIfTI ({itk}; mri_convert for .mgz)"
    else:
        advice = "give the scan itself, or convert it to NIfTI (e.g. nibabel.save(nibabel.Nifti1Image(array, affine), 'scan.nii.gz'))"
    return f"{path}: {description}, not a NIfTI (.nii, .nii.gz), DICOM or HDF5 (.h5) volume: {advice}."


def _unreadable(path: Path, kind: str, error: BaseException) -> str:
    """The message for a NIfTI, HDF5 or DICOM input its reader could not read: a non-numeric NIfTI, a damaged file."""
    if kind == "nifti":
        try:
            dtype = cast(nib.Nifti1Image, nib.load(str(path))).get_data_dtype()  # a NIfTI: nib.load is annotated with the base class
        except Exception:  # noqa: BLE001 (the header itself is damaged: the generic message below)
            dtype = None
        if dtype is not None and (dtype.names or dtype.kind not in "biufc"):
            return (
                f"{path}: voxel type {dtype} is not a number (RGB or another structured type); save one "
                "grey-level magnitude image per file."
            )
    return (
        f"{path}: cannot be read as {KIND_NAMES[kind]} ({describe(error)}); the file is truncated or "
        "corrupt: copy or export it again."
    )


class LoadVolumed(MapTransform):
    """Dictionary form of :class:`LoadVolume`."""

    def __init__(
        self,
        keys: KeysCollection,
        h5_key: str = defaults.H5_KEY,
        series_uid: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadVolume(h5_key=h5_key, series_uid=series_uid)

    def __call__(self, data: Mapping[Hashable, PathLike]) -> dict[Hashable, Any]:
        d: dict[Hashable, Any] = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key])
        return d


def _folder_inputs(folder: Path) -> list[str]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    volumes = [p for p in files if p.name.lower().endswith(NIFTI_SUFFIXES + HDF5_SUFFIXES)]
    volumes = [p for p in volumes if OUTPUT_MARK not in p.name]
    if volumes:
        return [str(p) for p in volumes]
    if any(is_dicom_file(p) for p in files):
        return [str(folder)]
    series = sorted(p for p in folder.iterdir() if p.is_dir() and OUTPUT_MARK not in p.name and _dicom_files(p))
    return [str(p) for p in series]


def _other_files(folder: Path) -> str:
    """``"; it holds only files of other types: a.png (a PNG image), ...; ..."`` for the empty-folder message."""
    others = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and OUTPUT_MARK not in p.name)
    if not others:
        return ""
    described = [f"{p.name} ({file_type(p)[1]})" for p in others[:3]] + (["..."] if len(others) > 3 else [])
    return f"; it holds only {len(others)} file(s) of other types: {', '.join(described)}: convert the scans to NIfTI"


def list_inputs(inputs: PathLike | Sequence[PathLike]) -> list[str]:
    """Expand ``inputs`` into the volumes one run processes.

    ``inputs`` is a file (NIfTI, HDF5, DICOM file: its series), a DICOM series folder, a folder
    of NIfTI/HDF5 files, a folder of DICOM series folders, or a list of those. Files whose name
    contains ``_denoised`` (outputs of an earlier run) are skipped in folders.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    found: list[str] = []
    for item in items:
        path = Path(item).expanduser()
        if path.is_dir():
            entries = _folder_inputs(path)
            if not entries:
                earlier = sorted(p.name for p in path.iterdir() if OUTPUT_MARK in p.name)
                skipped = f" (skipped as earlier outputs: {earlier[:3]})" if earlier else ""
                raise InputError(
                    f"{path}: no NIfTI (.nii, .nii.gz), HDF5 (.h5) or DICOM input in this folder{skipped}; point "
                    f"dataset_dir at the folder that holds the scans{_other_files(path)}."
                )
            found.extend(entries)
        elif path.is_file():
            found.append(str(path))
        else:
            raise FileNotFoundError(f"{path}: no such file or folder; check dataset_dir.")
    if not found:
        raise InputError("no input was given: set `dataset_dir` to a file, a folder or a list of them.")
    return list(dict.fromkeys(found))
