"""DICOM series and HDF5 readers, input listing (c2s_monai.io.readers)."""

from __future__ import annotations

from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from helpers import make_dicom_series
from pydicom.uid import generate_uid

from c2s_monai.io.readers import (
    DicomSeriesReader,
    HDF5Reader,
    LoadVolume,
    LoadVolumed,
    input_kind,
    list_inputs,
    read_dicom_series,
)


def test_dicom_series_is_sorted_by_position_and_rescaled(tmp_path):
    series = make_dicom_series(tmp_path / "series")
    image = LoadVolume()(tmp_path / "series")
    assert image.shape == (1, 64, 64, 5)
    np.testing.assert_allclose(image[0].numpy(), series["volume"])
    _, datasets, positions = read_dicom_series(tmp_path / "series")
    assert np.all(np.diff(positions) > 0)
    assert [int(ds.InstanceNumber) for ds in datasets] == [5, 4, 3, 2, 1]


def test_dicom_affine_maps_voxels_to_patient_positions(tmp_path):
    make_dicom_series(tmp_path / "series")
    image = LoadVolume()(tmp_path / "series")
    affine = np.asarray(image.meta["affine"], dtype=np.float64)
    _, datasets, _ = read_dicom_series(tmp_path / "series")
    lps_to_ras = np.array([-1.0, -1.0, 1.0])
    for k, ds in enumerate(datasets):
        # voxel (column 3, row 7, slice k) -> DICOM position IPP + 3*dc*row_cos + 7*dr*col_cos
        spacing = [float(v) for v in ds.PixelSpacing]
        row_cos, col_cos = np.asarray(ds.ImageOrientationPatient[:3]), np.asarray(ds.ImageOrientationPatient[3:])
        lps = np.asarray(ds.ImagePositionPatient, dtype=float) + 3 * spacing[1] * row_cos + 7 * spacing[0] * col_cos
        np.testing.assert_allclose((affine @ [3, 7, k, 1])[:3], lps * lps_to_ras, atol=1e-4)
    assert image.meta["source_format"] == "dicom"


def test_dicom_folder_with_two_series_is_refused_with_both_named(tmp_path):
    first = make_dicom_series(tmp_path / "mixed", num_slices=4)
    other = make_dicom_series(tmp_path / "other", num_slices=2)
    for path in (tmp_path / "other").iterdir():
        path.rename(tmp_path / "mixed" / f"other_{path.name}")
    with pytest.raises(ValueError, match="holds 2 DICOM series") as error:
        LoadVolume()(tmp_path / "mixed")
    assert first["series_uid"] in str(error.value) and other["series_uid"] in str(error.value)
    chosen = LoadVolume(series_uid=other["series_uid"])(tmp_path / "mixed")
    assert chosen.shape[-1] == 2


def test_dicom_series_with_two_images_at_one_position_is_refused(tmp_path):
    make_dicom_series(tmp_path / "series", num_slices=3)
    duplicate = pydicom.dcmread(tmp_path / "series" / "img_000.dcm")
    duplicate.SOPInstanceUID = generate_uid()
    duplicate.save_as(tmp_path / "series" / "echo2.dcm", enforce_file_format=True)
    with pytest.raises(ValueError, match="same slice position"):
        read_dicom_series(tmp_path / "series")


def test_dicom_file_selects_its_series(tmp_path):
    make_dicom_series(tmp_path / "series", num_slices=3)
    assert input_kind(tmp_path / "series" / "img_001.dcm") == "dicom"
    assert LoadVolume()(tmp_path / "series" / "img_001.dcm").shape == (1, 64, 64, 3)


def test_empty_folder_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no DICOM file"):
        DicomSeriesReader().read(tmp_path / "empty")


def _write_h5(path: Path, key: str = "reconstruction_rss", data=None) -> np.ndarray:
    data = np.random.default_rng(1).random((3, 20, 12)).astype(np.float32) if data is None else data
    with h5py.File(path, "w") as handle:
        handle[key] = data
        handle["kspace"] = np.zeros((3, 4, 4), np.complex64)
    return data


def test_hdf5_reader_reads_slices_last(tmp_path):
    data = _write_h5(tmp_path / "file1000.h5")
    image = LoadVolume()(tmp_path / "file1000.h5")
    assert image.shape == (1, 12, 20, 3)
    for k in range(3):
        np.testing.assert_array_equal(image[0, :, :, k].numpy().T, data[k])
    assert image.meta["source_format"] == "hdf5"


def test_hdf5_reader_key_is_configurable_and_errors_name_the_keys(tmp_path):
    data = _write_h5(tmp_path / "m4raw.h5", key="image")
    with pytest.raises(ValueError, match=r"no dataset 'reconstruction_rss'.*\['image', 'kspace'\]"):
        LoadVolume()(tmp_path / "m4raw.h5")
    loaded = LoadVolumed("image", h5_key="image")({"image": str(tmp_path / "m4raw.h5")})["image"]
    np.testing.assert_array_equal(loaded[0, :, :, 0].numpy().T, data[0])
    with pytest.raises(ValueError, match="complex"):
        HDF5Reader(key="kspace").read(tmp_path / "m4raw.h5")


def test_nifti_goes_through_monai_default_reader(tmp_path):
    volume = np.random.default_rng(2).random((9, 8, 4)).astype(np.float32)
    affine = np.diag([1.5, 2.0, 3.0, 1.0])
    nib.save(nib.Nifti1Image(volume, affine), tmp_path / "t1.nii.gz")
    image = LoadVolume()(tmp_path / "t1.nii.gz")
    np.testing.assert_allclose(image[0].numpy(), volume)
    np.testing.assert_allclose(np.asarray(image.meta["affine"]), affine)
    assert isinstance(image, torch.Tensor)


def test_list_inputs_expands_folders_and_skips_outputs(tmp_path):
    for name in ("a.nii.gz", "b.nii", "a_denoised.nii.gz", "notes.txt"):
        (tmp_path / "nifti" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "nifti" / name).write_bytes(b"")
    assert [Path(p).name for p in list_inputs(tmp_path / "nifti")] == ["a.nii.gz", "b.nii"]
    make_dicom_series(tmp_path / "study" / "t1", num_slices=2)
    make_dicom_series(tmp_path / "study" / "t2", num_slices=2)
    assert list_inputs(tmp_path / "study" / "t1") == [str(tmp_path / "study" / "t1")]
    assert [Path(p).name for p in list_inputs(tmp_path / "study")] == ["t1", "t2"]
    assert list_inputs([tmp_path / "nifti" / "b.nii", str(tmp_path / "nifti" / "b.nii")]) == [str(tmp_path / "nifti" / "b.nii")]
    with pytest.raises(FileNotFoundError):
        list_inputs(tmp_path / "missing.nii.gz")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match=r"no NIfTI .*HDF5 .*DICOM input"):
        list_inputs(tmp_path / "nothing")
