"""Writing denoised volumes next to the format they came from, never over the input.

- NIfTI in -> NIfTI out with the input's affine and header (:func:`c2s_monai.io.save_like`).
- DICOM series or HDF5 in -> NIfTI out with the affine the reader computed
  (:mod:`c2s_monai.io.readers`), or, for DICOM with ``dicom_output=True``, a DICOM series out
  (:func:`write_dicom_series`): a new ``SeriesInstanceUID`` and ``SOPInstanceUID`` per slice,
  the source's geometry (``ImagePositionPatient``, ``ImageOrientationPatient``,
  ``PixelSpacing``, ``SliceThickness``), study and patient tags, and its
  ``RescaleSlope``/``RescaleIntercept`` (pixel values stored in the source's integer type).

Outputs are named ``<input name>_<postfix>`` (``.nii.gz``, or a folder for DICOM) in
``output_dir``; :class:`SaveDenoisedd` records the path under ``path_key`` so report handlers
find it. Every output appears complete or not at all: a NIfTI file is written to a temporary
file and renamed (:func:`c2s_monai.io.atomic_write`), a DICOM series into a temporary folder
that is renamed once every slice is written.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pydicom
import torch
from monai.config import KeysCollection, PathLike
from monai.transforms import MapTransform
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from c2s_monai.errors import InputError
from c2s_monai.io import (
    atomic_write,
    check_output_path,
    check_writable_folder,
    current_umask,
    save_like,
)
from c2s_monai.io.readers import read_dicom_series
from c2s_monai.naming import DENOISED_POSTFIX, NOISE_MAP_META_KEY, input_kind, noise_map_path, output_path, output_stem
from c2s_monai.settings import parse_flag

__all__ = ["SaveDenoisedd", "derived_image_type", "output_stem", "parse_flag", "save_denoised", "save_nifti", "write_dicom_series"]

logger = logging.getLogger(__name__)

DERIVED_IMAGE_TYPE = ["DERIVED", "SECONDARY", "DENOISED"]
"""``ImageType`` of an output whose source has no values from the third on (see :func:`derived_image_type`)."""
SERIES_NUMBER_OFFSET = 1000

# DerivationCodeSequence (0008,9215), General Image Module: a code of CID 7203 "Image Derivation".
# CID 7203 has no "denoising" concept; "Smoothing" is the nearest (noise reduction by filtering).
# Values as pydicom ships them: pydicom.sr.codedict.codes.cid7203.Smoothing.
DERIVATION_CODE = ("113087", "DCM", "Smoothing")
# PurposeOfReferenceCodeSequence (0040,A170) of each SourceImageSequence item: a code of CID 7202
# "Source Image Purposes of Reference" (pydicom.sr.codedict.codes.cid7202.SourceImageForImageProcessingOperation).
SOURCE_PURPOSE_CODE = ("121322", "DCM", "Source image for image processing operation")


def _as_volume(volume) -> np.ndarray:
    array = volume.detach().cpu().float().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume, dtype=np.float32)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"expected a (1, x, y, slices) or (x, y, slices) volume, got shape {array.shape}.")
    return array


def save_nifti(volume, affine: np.ndarray, output_path: PathLike) -> Path:
    """Write ``volume`` as float32 NIfTI with ``affine`` (qform and sform, scanner space), atomically."""
    output_path = Path(output_path)
    image = nib.Nifti1Image(_as_volume(volume), np.asarray(affine, dtype=np.float64))
    image.header.set_xyzt_units("mm", "sec")
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    return atomic_write(output_path, lambda temporary: nib.save(image, temporary))


def _stored_values(slice_values: np.ndarray, ds: pydicom.Dataset, source: Path) -> np.ndarray:
    """Real-world values -> the source's stored integers (its rescale, bit depth and sign)."""
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    low, high = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    stored = np.rint((slice_values - intercept) / slope)
    clipped = int(np.count_nonzero((stored < low) | (stored > high)))
    if clipped:
        logger.info("%s: %d denoised values outside the stored range [%d, %d] were clipped.", source, clipped, low, high)
    dtype = {(8, False): np.uint8, (8, True): np.int8, (16, False): np.uint16, (16, True): np.int16, (32, False): np.uint32, (32, True): np.int32}
    bits_allocated = int(ds.get("BitsAllocated", 16))
    if (bits_allocated, signed) not in dtype:
        raise InputError(
            f"{source}: cannot write {bits_allocated}-bit pixels; only 8, 16 or 32-bit integer images are supported: "
            "write NIfTI instead (dicom_output false)."
        )
    return np.clip(stored, low, high).astype(dtype[(bits_allocated, signed)])


def _check_output_folder(folder: Path) -> None:
    if folder.exists():
        foreign = [p.name for p in folder.iterdir() if not (p.is_file() and p.name.startswith("IM_") and p.name.endswith(".dcm"))]
        if foreign:
            raise InputError(
                f"{folder}: exists and holds files this writer did not write ({foreign[:3]}...); "
                "choose another output_dir or remove them."
            )


def _replace_folder(staging: Path, folder: Path) -> None:
    """Put the complete ``staging`` folder at ``folder`` by renames: the series appears whole or not at all."""
    previous = None
    if folder.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".tmp_old_{folder.name}_", dir=folder.parent))
        os.replace(folder, previous / folder.name)
    os.replace(staging, folder)
    if previous is not None:
        shutil.rmtree(previous)


def write_dicom_series(
    volume,
    source: PathLike,
    output_folder: PathLike,
    series_uid: str | None = None,
    description: str = "C2S denoised",
) -> list[Path]:
    """Write ``volume`` (``(x, y, slices)`` as read by :class:`~c2s_monai.io.readers.DicomSeriesReader`) as a new series.

    Each slice is written from the source slice at the same position: every tag is kept but
    the pixel data, ``SeriesInstanceUID`` (new, shared), ``SOPInstanceUID`` (new per slice),
    ``SeriesNumber`` (+1000), ``SeriesDescription`` (``description`` appended), the transfer
    syntax (explicit VR little endian) and the provenance tags:

    - ``ImageType``: ``DERIVED\\SECONDARY`` then the source's values from the third on, then
      ``DENOISED`` (:func:`derived_image_type`);
    - ``DerivationDescription``: what was done, by which c2s-monai version, to which source
      series (its ``SeriesInstanceUID``);
    - ``DerivationCodeSequence``: ``(113087, DCM, "Smoothing")`` of CID 7203 "Image Derivation";
    - ``SourceImageSequence``: one item, the source slice at the same position
      (``ReferencedSOPClassUID``, ``ReferencedSOPInstanceUID``, purpose of reference
      ``(121322, DCM, "Source image for image processing operation")`` of CID 7202).

    Files are ``IM_0001.dcm``... in slice order; returns their paths.
    """
    source, output_folder = Path(source), Path(output_folder)
    source_folder = source if source.is_dir() else source.parent
    check_output_path(source_folder, output_folder)
    files, datasets, _ = read_dicom_series(source, series_uid)
    data = _as_volume(volume)
    rows, columns = int(datasets[0].Rows), int(datasets[0].Columns)
    if data.shape != (columns, rows, len(datasets)):
        raise ValueError(f"{source}: the volume has shape {data.shape}, the series {(columns, rows, len(datasets))}.")
    _check_output_folder(output_folder)
    output_folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp_{output_folder.name}_", dir=output_folder.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())  # mkdtemp makes 0700 folders
        names = _write_series(data, datasets, files, staging, description)
        _replace_folder(staging, output_folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return [output_folder / name for name in names]


def derived_image_type(source_image_type: Any) -> list[str]:
    """``ImageType`` of a denoised image made from an image whose ``ImageType`` is ``source_image_type``.

    DICOM PS3.3 C.7.6.1.1.2: value 1 is ``ORIGINAL`` or ``DERIVED`` (the pixels were derived from
    other images: ``DERIVED``), value 2 ``PRIMARY`` or ``SECONDARY`` (made after the examination:
    ``SECONDARY``), values 3 on are modality- and vendor-specific (for MR, e.g. ``OTHER``, ``MPR``;
    vendors add ``M``/``P`` for magnitude/phase, ``NORM``, ``DIS2D``...). Those describe what the
    pixels are, which denoising does not change, so they are kept, in order, and ``DENOISED``
    is appended unless one of them already is ``DENOISED``. A source without values from the
    third on (or without ``ImageType``) gives :data:`DERIVED_IMAGE_TYPE`, whose ``DENOISED`` at
    value 3 is not a defined term of the MR Image Module: validators warn about it, Defined Terms
    may be extended, and it is not an error.

    >>> derived_image_type(["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"])
    ['DERIVED', 'SECONDARY', 'M', 'NORM', 'DIS2D', 'DENOISED']
    >>> derived_image_type(["DERIVED", "SECONDARY", "DENOISED"])
    ['DERIVED', 'SECONDARY', 'DENOISED']
    >>> derived_image_type(None)
    ['DERIVED', 'SECONDARY', 'DENOISED']
    """
    if source_image_type is None:
        values: list[str] = []
    elif isinstance(source_image_type, str):
        values = source_image_type.split("\\")
    else:
        values = [str(v) for v in source_image_type]
    specific = [v.strip() for v in values[2:]]
    if "DENOISED" not in specific:
        specific.append("DENOISED")
    return ["DERIVED", "SECONDARY", *specific]


def _code_item(code: tuple[str, str, str]) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code
    return item


def _source_image_item(sop_class: str, sop_instance: str) -> pydicom.Dataset:
    item = pydicom.Dataset()
    item.ReferencedSOPClassUID = sop_class
    item.ReferencedSOPInstanceUID = sop_instance
    item.PurposeOfReferenceCodeSequence = [_code_item(SOURCE_PURPOSE_CODE)]
    return item


def _derivation_description(source_series: str) -> str:
    from c2s_monai import __version__  # here: c2s_monai imports this module

    series = f"series {source_series}" if source_series else "a series without SeriesInstanceUID"
    return f"C2S self-supervised denoising (c2s-monai {__version__}) of {series}"[:1024]


def _write_series(data: np.ndarray, datasets: list, files: list[Path], folder: Path, description: str) -> list[str]:
    # the source's identity, read before any dataset is changed
    source_series = str(datasets[0].get("SeriesInstanceUID", "") or "")
    sources = [(str(ds.SOPClassUID), str(ds.SOPInstanceUID)) for ds in datasets]
    derivation = _derivation_description(source_series)
    new_series = generate_uid()
    written = []
    for index, (ds, path) in enumerate(zip(datasets, files)):
        pixels = _stored_values(data[:, :, index].T, ds, path)
        for tag in ("LargestImagePixelValue", "SmallestImagePixelValue", "PixelPaddingValue"):
            if tag in ds:
                del ds[tag]
        ds.PixelData = pixels.tobytes()
        ds["PixelData"].VR = "OB" if pixels.itemsize == 1 else "OW"
        ds.SamplesPerPixel = 1
        if "NumberOfFrames" in ds:
            del ds["NumberOfFrames"]
        sop = generate_uid()
        ds.SOPInstanceUID = sop
        ds.SeriesInstanceUID = new_series
        if "SeriesNumber" in ds and ds.SeriesNumber is not None:
            ds.SeriesNumber = int(ds.SeriesNumber) + SERIES_NUMBER_OFFSET
        ds.SeriesDescription = f"{ds.get('SeriesDescription', '')} {description}".strip()[:64]
        ds.ImageType = derived_image_type(ds.get("ImageType"))
        ds.DerivationDescription = derivation
        ds.DerivationCodeSequence = [_code_item(DERIVATION_CODE)]
        ds.SourceImageSequence = [_source_image_item(*sources[index])]
        if not hasattr(ds, "file_meta") or ds.file_meta is None:
            ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPInstanceUID = sop
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        name = f"IM_{index + 1:04d}.dcm"
        ds.save_as(folder / name, enforce_file_format=True)
        written.append(name)
    return written


def save_denoised(
    volume, source: PathLike, target: PathLike, affine=None, dicom_output: bool = False, postfix: str = DENOISED_POSTFIX
) -> Path:
    """Write ``volume``, denoised from ``source``, at ``target``: the one writer path of the bundle, the API and the CLI.

    A DICOM input with ``dicom_output``: a new DICOM series, the folder ``target``
    (:func:`write_dicom_series`); a NIfTI input: NIfTI with the input's header (:func:`save_like`);
    any other input (DICOM without ``dicom_output``, HDF5): NIfTI with ``affine`` (the reader's;
    the identity when ``None``). ``dicom_output`` for an input that is not DICOM writes NIfTI with
    a warning. Returns the path written; the input is never overwritten.
    """
    source, target = Path(source), Path(target)
    kind = input_kind(source)
    if kind == "dicom" and dicom_output:
        write_dicom_series(volume, source, target, description=f"C2S {postfix}")
        return target
    if dicom_output:
        logger.warning("%s: DICOM output needs a DICOM input; writing NIfTI.", source)
    return _save_nifti_beside(volume, source, target, affine)


def _save_nifti_beside(volume, source: Path, target: Path, affine=None) -> Path:
    """NIfTI on ``source``'s grid: with a NIfTI source's header (:func:`save_like`), else with ``affine`` (the identity when ``None``)."""
    if input_kind(source) == "nifti":
        return save_like(volume, source, target)
    matrix = np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine).cpu(), dtype=np.float64)
    check_output_path(source, target)
    return save_nifti(volume, matrix, target)


def save_noise_map(noise_map, source: PathLike, output: PathLike, affine=None) -> Path:
    """Write the per-voxel noise level an output was denoised with (image units) at :func:`~c2s_monai.naming.noise_map_path` of ``output``.

    NIfTI, on the input's grid: with a NIfTI input's header (:func:`save_like`), else with
    ``affine`` (the reader's). Returns the path written.
    """
    return _save_nifti_beside(noise_map, Path(source), noise_map_path(output), affine)


class SaveDenoisedd(MapTransform):
    """Save the denoised volume under ``keys`` in the input's format family; store the path under ``path_key``.

    Args:
        keys: key of the denoised volume (``(1, x, y, slices)`` in the input's units).
        reference_key: key of the loaded input (its ``meta`` gives the source path and affine).
        output_dir: folder of the outputs (created); ``None`` writes beside each input.
        output_postfix: appended to the input name after ``_``.
        dicom_output: write a DICOM series (for DICOM inputs) instead of NIfTI.
        path_key: key where the written path is stored.
        subfolder_key: key of a sub-folder of ``output_dir`` for the item (multi-contrast: the
            subject id, so subjects whose files share names do not share outputs); an absent
            or empty value writes into ``output_dir``.
        noise_map: also write the per-voxel noise level the output was denoised with, which
            :class:`~c2s_monai.C2SInferer` puts in its metadata, as ``<output name>_noise_map.nii.gz``
            (:func:`save_noise_map`).
    """

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str = "image",
        output_dir: PathLike | None = None,
        output_postfix: str = DENOISED_POSTFIX,
        dicom_output: bool = False,
        path_key: str = "output_path",
        subfolder_key: str | None = None,
        allow_missing_keys: bool = False,
        noise_map: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.noise_map = parse_flag(noise_map, "noise_map")
        if not output_postfix:
            raise ValueError("output_postfix must not be empty: the output would take the input's name.")
        self.reference_key = reference_key
        self.output_dir = output_dir
        self.output_postfix = output_postfix
        self.dicom_output = parse_flag(dicom_output, "dicom_output")
        self.path_key = path_key
        self.subfolder_key = subfolder_key
        if output_dir:
            check_writable_folder(output_dir)

    def _target(self, source: Path, suffix: str, subfolder: str = "") -> Path:
        return output_path(source, self.output_dir or None, self.output_postfix, suffix, subfolder)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        reference = d[self.reference_key]
        meta = getattr(reference, "meta", {})
        if "filename_or_obj" not in meta:
            raise ValueError(f"`{self.reference_key}` carries no source filename: load it with LoadVolumed/LoadImaged.")
        source = Path(str(meta["filename_or_obj"]))
        kind = input_kind(source)
        subfolder = str(d.get(self.subfolder_key) or "") if self.subfolder_key else ""
        writes_dicom = kind == "dicom" and self.dicom_output
        for key in self.key_iterator(d):
            target = self._target(source, "" if writes_dicom else ".nii.gz", subfolder)
            noise_map = getattr(d[key], "meta", {}).get(NOISE_MAP_META_KEY)
            if self.noise_map and noise_map is not None:
                # first: an output that exists is complete with its map (a rerun skips it, c2s_monai.batch.CompletedOutputs)
                save_noise_map(noise_map, source, target, meta.get("affine"))
            written = save_denoised(d[key], source, target, meta.get("affine"), self.dicom_output, self.output_postfix)
            d[self.path_key] = str(written)
        return d
