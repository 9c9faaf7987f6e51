"""One naming rule for every writer (c2s_monai.naming): the API, the bundle's writer and folder listing agree."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset

from c2s_monai import naming
from c2s_monai.io import default_output_path
from c2s_monai.io.readers import list_inputs
from c2s_monai.io.writers import SaveDenoisedd


def _dicom_file(path: Path) -> Path:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID = pydicom.uid.MRImageStorage
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    "name, stem",
    [("sub-01_T1w.nii.gz", "sub-01_T1w"), ("scan.NII.GZ", "scan"), ("scan.nii", "scan"), ("brain.h5", "brain"), ("a.b.nii.gz", "a.b")],
)
def test_the_api_and_the_bundle_writer_name_an_output_alike(tmp_path, name, stem):
    source = tmp_path / name
    source.write_bytes(b"")
    writer = SaveDenoisedd(keys="pred", output_dir=str(tmp_path / "out"))
    assert default_output_path(source, tmp_path / "out") == writer._target(source, ".nii.gz") == tmp_path / "out" / f"{stem}_denoised.nii.gz"
    assert default_output_path(source) == tmp_path / f"{stem}_denoised.nii.gz"


def test_a_dicom_series_is_named_after_its_folder_from_the_folder_or_one_of_its_files(tmp_path):
    file = _dicom_file(tmp_path / "series_7" / "IM0001")  # no suffix: known by its preamble
    assert naming.input_kind(file) == "dicom"
    assert naming.output_stem(file) == naming.output_stem(file.parent) == "series_7"
    assert default_output_path(file, tmp_path) == default_output_path(file.parent, tmp_path) == tmp_path / "series_7_denoised.nii.gz"


def test_an_output_is_never_listed_as_an_input(tmp_path):
    image = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), image)
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), default_output_path(image))
    assert naming.OUTPUT_MARK in default_output_path(image).name
    assert [Path(p).name for p in list_inputs(tmp_path)] == ["scan.nii.gz"]


def test_an_empty_postfix_is_refused():
    with pytest.raises(ValueError, match="postfix"):
        naming.output_path("scan.nii.gz", postfix="")
