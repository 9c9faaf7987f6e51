"""Writing denoised outputs: DICOM series round trip, NIfTI header kept, inputs never overwritten."""

from __future__ import annotations

import hashlib
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from helpers import SLOPE, make_dicom_series

from c2s_monai.io.readers import LoadVolume, read_dicom_series
from c2s_monai.io.writers import SaveDenoisedd, output_stem, parse_flag, write_dicom_series

GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns")


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dicom_series_round_trip_keeps_geometry_and_gets_new_uids(tmp_path):
    make_dicom_series(tmp_path / "series")
    before = _digest(tmp_path / "series")
    noisy = LoadVolume()(tmp_path / "series")
    denoised = noisy * 0.5 + 40.0
    written = write_dicom_series(denoised, tmp_path / "series", tmp_path / "out")
    assert [p.name for p in written] == [f"IM_{k:04d}.dcm" for k in range(1, 6)]
    assert _digest(tmp_path / "series") == before

    _, source, _ = read_dicom_series(tmp_path / "series")
    _, result, _ = read_dicom_series(tmp_path / "out")
    for original, new in zip(source, result):
        for tag in GEOMETRY_TAGS:
            assert new[tag].value == original[tag].value, tag
        assert new.StudyInstanceUID == original.StudyInstanceUID
        assert new.FrameOfReferenceUID == original.FrameOfReferenceUID
        assert new.SOPInstanceUID != original.SOPInstanceUID
        assert new.file_meta.MediaStorageSOPInstanceUID == new.SOPInstanceUID
        assert new.SeriesNumber == original.SeriesNumber + 1000
        assert "DERIVED" in new.ImageType
    assert len({ds.SeriesInstanceUID for ds in result}) == 1
    assert result[0].SeriesInstanceUID != source[0].SeriesInstanceUID
    assert len({ds.SOPInstanceUID for ds in result}) == len(result)

    reread = LoadVolume()(tmp_path / "out")
    np.testing.assert_allclose(np.asarray(reread.meta["affine"]), np.asarray(noisy.meta["affine"]))
    # stored as the source's int16 with its slope 2: at most half a step of rounding error
    assert float((reread - denoised).abs().max()) <= SLOPE / 2 + 1e-4


def test_dicom_values_outside_the_stored_range_are_clipped(tmp_path):
    make_dicom_series(tmp_path / "series", num_slices=2)
    noisy = LoadVolume()(tmp_path / "series")
    huge = torch.full_like(noisy, 1e9)
    write_dicom_series(huge, tmp_path / "series", tmp_path / "out")
    stored = pydicom.dcmread(tmp_path / "out" / "IM_0001.dcm").pixel_array
    assert stored.dtype == np.int16 and int(stored.max()) == np.iinfo(np.int16).max


def test_dicom_writer_refuses_the_input_folder_and_foreign_files(tmp_path):
    make_dicom_series(tmp_path / "series", num_slices=2)
    noisy = LoadVolume()(tmp_path / "series")
    with pytest.raises(ValueError, match="overwrite the input"):
        write_dicom_series(noisy, tmp_path / "series", tmp_path / "series")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("user file")
    with pytest.raises(ValueError, match="did not write"):
        write_dicom_series(noisy, tmp_path / "series", tmp_path / "busy")
    assert (tmp_path / "busy" / "keep.txt").read_text() == "user file"
    write_dicom_series(noisy, tmp_path / "series", tmp_path / "again")
    write_dicom_series(noisy, tmp_path / "series", tmp_path / "again")  # a rerun replaces its own files
    assert len(list((tmp_path / "again").iterdir())) == 2


def _nifti_with_rich_header(path: Path) -> nib.Nifti1Image:
    data = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32) * 1000
    affine = np.array([[0.0, -1.2, 0.0, 40.0], [0.9, 0.0, 0.0, -30.0], [0.0, 0.0, 4.0, 12.0], [0.0, 0.0, 0.0, 1.0]])
    image = nib.Nifti1Image(data.astype(np.int16), affine)
    image.header["descrip"] = b"scanner T2 FLAIR"
    image.header.set_xyzt_units("mm", "msec")
    image.header["pixdim"][4] = 2500.0
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=2)
    nib.save(image, path)
    return image


def test_save_denoised_nifti_keeps_affine_and_header_and_input(tmp_path):
    source = tmp_path / "flair.nii.gz"
    original = _nifti_with_rich_header(source)
    before = source.read_bytes()
    image = LoadVolume()(source)
    out = SaveDenoisedd("pred", output_dir=tmp_path / "out")({"image": image, "pred": image * 0.5})
    target = Path(out["output_path"])
    assert target == tmp_path / "out" / "flair_denoised.nii.gz"
    saved = nib.load(target)
    np.testing.assert_allclose(saved.affine, original.affine)
    assert saved.header["descrip"] == original.header["descrip"]
    assert saved.header.get_xyzt_units() == ("mm", "msec")
    assert float(saved.header["pixdim"][4]) == 2500.0
    assert int(saved.header["qform_code"]) == 1 and int(saved.header["sform_code"]) == 2
    assert saved.get_data_dtype() == np.float32
    np.testing.assert_allclose(saved.get_fdata(), np.asarray(original.dataobj) * 0.5, rtol=1e-5)
    assert source.read_bytes() == before


def test_save_denoised_beside_the_input_never_takes_its_name(tmp_path):
    source = tmp_path / "scan.nii"
    _nifti_with_rich_header(source)
    image = LoadVolume()(source)
    out = SaveDenoisedd("pred", output_dir=None)({"image": image, "pred": image})
    assert out["output_path"] == str(tmp_path / "scan_denoised.nii.gz")
    with pytest.raises(ValueError, match="output_postfix"):
        SaveDenoisedd("pred", output_postfix="")


def test_dicom_and_hdf5_inputs_become_nifti_with_the_reader_affine(tmp_path):
    make_dicom_series(tmp_path / "series", num_slices=3)
    image = LoadVolume()(tmp_path / "series")
    out = SaveDenoisedd("pred", output_dir=tmp_path / "out")({"image": image, "pred": image})
    saved = nib.load(out["output_path"])
    assert Path(out["output_path"]).name == "series_denoised.nii.gz"
    np.testing.assert_allclose(saved.affine, np.asarray(image.meta["affine"]), atol=1e-6)
    np.testing.assert_allclose(saved.get_fdata(), image[0].numpy(), rtol=1e-6)
    assert output_stem(tmp_path / "series" / "img_000.dcm") == "series"


def test_dicom_output_option_writes_a_series_folder(tmp_path):
    make_dicom_series(tmp_path / "series", num_slices=3)
    image = LoadVolume()(tmp_path / "series")
    out = SaveDenoisedd("pred", output_dir=tmp_path / "out", dicom_output=True)({"image": image, "pred": image + 2.0})
    assert Path(out["output_path"]) == tmp_path / "out" / "series_denoised"
    assert len(list(Path(out["output_path"]).glob("IM_*.dcm"))) == 3


def test_flags_typed_on_a_command_line_are_parsed(tmp_path):
    assert parse_flag("false") is False and parse_flag("True") is True and parse_flag(1) is True
    with pytest.raises(ValueError, match="dicom_output must be true or false"):
        SaveDenoisedd("pred", dicom_output="maybe")
    make_dicom_series(tmp_path / "series", num_slices=2)
    image = LoadVolume()(tmp_path / "series")
    out = SaveDenoisedd("pred", output_dir=tmp_path / "out", dicom_output="false")({"image": image, "pred": image})
    assert out["output_path"].endswith("series_denoised.nii.gz")
