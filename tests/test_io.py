"""Reading noisy volumes and writing denoised ones (c2s_monai.io)."""

from __future__ import annotations

import math
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from c2s_monai.io import check_output_path, default_output_path, load_volume, save_like

OBLIQUE = np.array(
    [
        [-1.2 * math.cos(0.3), -1.5 * math.sin(0.3), 0.0, 90.0],
        [1.2 * math.sin(0.3), -1.5 * math.cos(0.3), 0.0, -120.0],
        [0.0, 0.0, 2.5, -60.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def write(path, data, affine=OBLIQUE, dtype=None, slope=None):
    image = nib.Nifti1Image(np.asarray(data), affine)
    if dtype is not None:
        image.set_data_dtype(dtype)
    if slope is not None:
        image.header.set_slope_inter(slope, 0.0)
    nib.save(image, str(path))
    return path


def folder_listing(folder):
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------------------- load_volume


def test_load_3d(tmp_path, rng):
    data = rng.random((10, 12, 3)).astype(np.float32)
    volume = load_volume(write(tmp_path / "t1.nii.gz", data))
    assert isinstance(volume, MetaTensor)
    assert volume.shape == (1, 10, 12, 3) and volume.dtype == torch.float32
    np.testing.assert_array_equal(volume[0].numpy(), data)  # voxel order kept (no reorientation)
    np.testing.assert_allclose(volume.affine.numpy(), OBLIQUE, atol=1e-5)


def test_load_2d(tmp_path, rng):
    data = rng.random((10, 12)).astype(np.float32)
    volume = load_volume(write(tmp_path / "slice.nii", data))
    assert volume.shape == (1, 10, 12, 1)
    np.testing.assert_array_equal(volume[0, ..., 0].numpy(), data)


def test_load_4d_single_volume_is_squeezed(tmp_path, rng):
    data = rng.random((10, 12, 3, 1)).astype(np.float32)
    volume = load_volume(write(tmp_path / "series.nii.gz", data))
    assert volume.shape == (1, 10, 12, 3)
    np.testing.assert_array_equal(volume[0].numpy(), data[..., 0])


def test_load_integer_with_scaling_gives_float32_in_real_units(tmp_path, rng):
    data = rng.integers(0, 1000, (8, 9, 2)).astype(np.int16)
    path = write(tmp_path / "int.nii.gz", data, dtype=np.int16, slope=0.5)
    volume = load_volume(path)
    assert volume.dtype == torch.float32
    np.testing.assert_allclose(volume[0].numpy(), 0.5 * data, rtol=1e-6)


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "absent.nii.gz"
    with pytest.raises(FileNotFoundError, match="absent.nii.gz"):
        load_volume(path)


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"not a nifti file at all")
    with pytest.raises(ValueError, match="broken.nii.gz"):
        load_volume(path)


def test_nan_names_the_file(tmp_path, rng):
    data = rng.random((10, 12, 3)).astype(np.float32)
    data[2, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"nan_voxels\.nii\.gz.*NaN"):
        load_volume(write(tmp_path / "nan_voxels.nii.gz", data))


def test_constant_names_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"flat\.nii\.gz.*constant"):
        load_volume(write(tmp_path / "flat.nii.gz", np.full((10, 12, 3), 7.0, dtype=np.float32)))


def test_4d_series_names_the_file(tmp_path, rng):
    with pytest.raises(ValueError, match=r"dwi\.nii\.gz.*3 volumes"):
        load_volume(write(tmp_path / "dwi.nii.gz", rng.random((10, 12, 3, 3)).astype(np.float32)))


# ---------------------------------------------------------------------------- save_like


def reference_with_header(tmp_path, rng, shape=(10, 12, 3)):
    data = rng.integers(0, 1000, shape).astype(np.int16)
    image = nib.Nifti1Image(data, OBLIQUE)
    image.set_data_dtype(np.int16)
    image.header.set_slope_inter(2.0, 1.0)
    image.header.set_zooms((1.2, 1.5, 2.5)[: len(shape)] + (3.0,) * (len(shape) - 3))
    image.header.set_qform(OBLIQUE, code=1)
    image.header.set_sform(OBLIQUE, code=2)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = b"noisy test scan"
    path = tmp_path / "reference.nii.gz"
    nib.save(image, str(path))
    return path


def test_save_like_keeps_geometry_and_header(tmp_path, rng):
    reference = reference_with_header(tmp_path, rng)
    volume = torch.from_numpy(rng.random((1, 10, 12, 3)).astype(np.float64))
    out = save_like(volume, reference, tmp_path / "out" / "denoised.nii.gz")
    assert out == tmp_path / "out" / "denoised.nii.gz" and out.is_file()
    written, original = nib.load(str(out)), nib.load(str(reference))
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-6)
    np.testing.assert_allclose(written.header.get_qform(), original.header.get_qform(), atol=1e-6)
    np.testing.assert_allclose(written.header.get_sform(), original.header.get_sform(), atol=1e-6)
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 2
    np.testing.assert_allclose(written.header.get_zooms(), original.header.get_zooms())
    assert written.header.get_xyzt_units() == ("mm", "sec")
    assert written.header["descrip"].tobytes().rstrip(b"\0") == b"noisy test scan"
    # float32, unscaled: the values come back exactly
    assert written.get_data_dtype() == np.float32
    assert written.header.get_slope_inter() in ((1.0, 0.0), (None, None))
    assert written.shape == (10, 12, 3)
    np.testing.assert_array_equal(np.asarray(written.dataobj), volume[0].numpy().astype(np.float32))
    # no temporary file left behind
    assert folder_listing(out.parent) == ["denoised.nii.gz"]


def test_save_like_round_trip_with_load_volume(tmp_path, rng):
    data = rng.random((10, 12, 3)).astype(np.float32)
    source = write(tmp_path / "in.nii.gz", data)
    out = save_like(load_volume(source) * 2.0, source, tmp_path / "out.nii")
    assert out.suffix == ".nii"
    np.testing.assert_allclose(nib.load(str(out)).get_fdata(), 2.0 * data, rtol=1e-6)


def test_save_like_2d_reference_stays_2d(tmp_path, rng):
    data = rng.random((10, 12)).astype(np.float32)
    source = write(tmp_path / "slice.nii.gz", data)
    volume = load_volume(source)  # (1, 10, 12, 1)
    out = save_like(volume, source, tmp_path / "slice_out.nii.gz")
    written = nib.load(str(out))
    assert written.shape == (10, 12)
    np.testing.assert_array_equal(np.asarray(written.dataobj), data)


def test_save_like_accepts_numpy_without_channel(tmp_path, rng):
    source = write(tmp_path / "in.nii.gz", rng.random((10, 12, 3)).astype(np.float32))
    data = rng.random((10, 12, 3))
    out = save_like(data, source, tmp_path / "np.nii.gz")
    np.testing.assert_allclose(nib.load(str(out)).get_fdata(), data.astype(np.float32))


@pytest.mark.parametrize("same", ["identical", "relative", "dotted"])
def test_save_like_refuses_to_overwrite_the_input(tmp_path, rng, monkeypatch, same):
    data = rng.random((10, 12, 3)).astype(np.float32)
    source = write(tmp_path / "scan.nii.gz", data)
    before = source.read_bytes()
    listing = folder_listing(tmp_path)
    monkeypatch.chdir(tmp_path)
    target = {"identical": source, "relative": "scan.nii.gz", "dotted": tmp_path / "." / "scan.nii.gz"}[same]
    with pytest.raises(ValueError, match="overwrite the input"):
        save_like(np.zeros((10, 12, 3)), source, target)
    assert source.read_bytes() == before
    assert folder_listing(tmp_path) == listing  # nothing written, no temporary file
    with pytest.raises(ValueError):
        check_output_path(source, target)


def test_check_output_path_accepts_other_paths(tmp_path):
    assert check_output_path(tmp_path / "a.nii.gz", tmp_path / "b.nii.gz") == tmp_path / "b.nii.gz"


# ---------------------------------------------------------------------------- default_output_path


@pytest.mark.parametrize(
    "name, expected",
    [
        ("sub-01_T1w.nii.gz", "sub-01_T1w_denoised.nii.gz"),
        ("scan.nii", "scan_denoised.nii.gz"),
        ("a.b.c.nii.gz", "a.b.c_denoised.nii.gz"),
    ],
)
def test_default_output_path(tmp_path, name, expected):
    assert default_output_path(tmp_path / "in" / name) == tmp_path / "in" / expected
    assert default_output_path(tmp_path / "in" / name, tmp_path / "out") == tmp_path / "out" / expected
    assert default_output_path(str(tmp_path / "in" / name)) != tmp_path / "in" / name
