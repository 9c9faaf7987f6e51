"""Every bad input of docs/bad-inputs.md: one clear error (the file, what is wrong, what to do), nothing written.

Each input case builds one bad input, then denoises it through the two front doors: the
bundle's loading transforms (``LoadVolumed`` + ``EnsureVolumed``, what ``inference.json`` and
``train.json`` run) and the Python API (``c2s_monai.denoise``, what ``c2s-monai denoise`` runs).
Both must raise the same kind of error, naming the input and saying what to do, and leave the
output folder empty.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from helpers import (
    SHAPE,
    SLICE_STEP,
    constant,
    dicom_missing_slice,
    dicom_slice_file,
    make_dicom_series,
    nan_voxels,
    noise_free,
    noisy,
    series_4d,
    truncated_nifti_gz,
    write_nifti,
)
from ignite.engine import Engine
from monai.bundle import create_workflow

import c2s_monai
from c2s_monai.errors import InputError
from c2s_monai.handlers import LoadCheckpoint
from c2s_monai.intensity import check_sigma_data
from c2s_monai.io import check_output_path, check_writable_folder
from c2s_monai.io.readers import LoadVolumed, list_inputs
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.transforms import EnsureVolumed

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
DOCS = REPO / "docs" / "bad-inputs.md"
TINY = [8, 8, 16, 32, 64, 8]


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ the bad inputs (one builder each)
# (noisy, write_nifti and the builders that test_batch_inference also uses are in helpers.py)


def truncated_nifti(folder: Path) -> Path:
    good = write_nifti(folder / "good.nii", noisy())
    raw = good.read_bytes()
    good.unlink()
    (folder / "truncated.nii").write_bytes(raw[: len(raw) // 2])
    return folder / "truncated.nii"


def empty_file(folder: Path) -> Path:
    (folder / "empty.nii.gz").write_bytes(b"")
    return folder / "empty.nii.gz"


def corrupt_nifti(folder: Path) -> Path:
    (folder / "corrupt.nii.gz").write_bytes(b"not a NIfTI file " * 40)
    return folder / "corrupt.nii.gz"


def inf_voxels(folder: Path) -> Path:
    data = noisy()
    data[5, 5, 0] = np.inf
    data[6, 5, 0] = -np.inf
    return write_nifti(folder / "inf.nii.gz", data)


def zero_size(folder: Path) -> Path:
    return write_nifti(folder / "zero_size.nii.gz", np.zeros((0, 20, 3), np.float32))


def all_zero(folder: Path) -> Path:
    return write_nifti(folder / "zeros.nii.gz", np.zeros(SHAPE, np.int16))


def too_small(folder: Path) -> Path:
    return write_nifti(folder / "tiny.nii.gz", np.random.default_rng(0).random((4, 20, 3)).astype(np.float32))


def complex_voxels(folder: Path) -> Path:
    return write_nifti(folder / "complex.nii.gz", noisy().astype(np.complex64) * (1 + 1j))


def rgb_voxels(folder: Path) -> Path:
    rgb = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["R"] = np.random.default_rng(0).integers(0, 255, SHAPE)
    return write_nifti(folder / "rgb.nii.gz", rgb)


def not_an_image(folder: Path) -> Path:
    (folder / "notes.txt").write_text("scan notes, not an image")
    return folder / "notes.txt"


def missing_file(folder: Path) -> Path:
    return folder / "absent.nii.gz"


def dicom_mixed_series(folder: Path) -> Path:
    make_dicom_series(folder / "mixed", num_slices=3)
    make_dicom_series(folder / "other", num_slices=2)
    for path in (folder / "other").iterdir():
        path.rename(folder / "mixed" / f"other_{path.name}")
    return folder / "mixed"


def dicom_uneven_spacing(folder: Path) -> Path:
    make_dicom_series(folder / "uneven", num_slices=5)
    path = dicom_slice_file(folder / "uneven", 3, 5)
    ds = pydicom.dcmread(path)
    normal = np.cross(ds.ImageOrientationPatient[:3], ds.ImageOrientationPatient[3:])
    ds.ImagePositionPatient = [float(v) for v in np.asarray(ds.ImagePositionPatient, float) + 0.3 * SLICE_STEP * normal]
    ds.save_as(path, enforce_file_format=True)
    return folder / "uneven"


def dicom_mixed_pixel_spacing(folder: Path) -> Path:
    make_dicom_series(folder / "spacing", num_slices=3)
    path = dicom_slice_file(folder / "spacing", 1, 3)
    ds = pydicom.dcmread(path)
    ds.PixelSpacing = [0.5, 0.5]
    ds.save_as(path, enforce_file_format=True)
    return folder / "spacing"


def dicom_truncated_file(folder: Path) -> Path:
    make_dicom_series(folder / "truncated_dicom", num_slices=3)
    path = dicom_slice_file(folder / "truncated_dicom", 1, 3)
    path.write_bytes(path.read_bytes()[:300])
    return folder / "truncated_dicom"


def dicom_no_geometry(folder: Path) -> Path:
    make_dicom_series(folder / "no_geometry", num_slices=3)
    path = dicom_slice_file(folder / "no_geometry", 0, 3)
    ds = pydicom.dcmread(path)
    del ds.ImagePositionPatient
    ds.save_as(path, enforce_file_format=True)
    return folder / "no_geometry"


def hdf5_missing_key(folder: Path) -> Path:
    with h5py.File(folder / "knee.h5", "w") as handle:
        handle["kspace"] = np.zeros((2, 16, 16), np.complex64)
    return folder / "knee.h5"


def hdf5_corrupt(folder: Path) -> Path:
    (folder / "broken.h5").write_bytes(b"\x89HDF garbage" * 30)
    return folder / "broken.h5"


# (case, builder, error type, fragments of the message besides the input's name)
INPUT_CASES = [
    ("truncated_nifti_gz", truncated_nifti_gz, InputError, ["cannot be read as NIfTI", "truncated or corrupt", "copy or export it again"]),
    ("truncated_nifti", truncated_nifti, InputError, ["cannot be read as NIfTI", "copy or export it again"]),
    ("empty_file", empty_file, InputError, ["Empty file", "copy or export it again"]),
    ("corrupt_nifti", corrupt_nifti, InputError, ["cannot be read as NIfTI", "copy or export it again"]),
    ("nan_voxels", nan_voxels, InputError, ["1 voxel(s) are NaN or Inf", "replace them"]),
    ("inf_voxels", inf_voxels, InputError, ["2 voxel(s) are NaN or Inf", "replace them"]),
    ("series_4d", series_4d, InputError, ["4D series of 3 volumes", "--each_volume true"]),
    ("zero_size", zero_size, InputError, ["empty", "no voxel", "export the scan again"]),
    ("constant", constant, InputError, ["constant (every voxel is 7)", "nothing to denoise"]),
    ("all_zero", all_zero, InputError, ["constant (every voxel is 0)", "check that the right series"]),
    ("too_small", too_small, InputError, ["4 x 20 voxels are too small", "at least 8 x 8"]),
    ("complex_voxels", complex_voxels, InputError, ["complex64 is not a real number", "save the magnitude image"]),
    ("rgb_voxels", rgb_voxels, InputError, ["is not a number (RGB", "one grey-level magnitude image"]),
    ("not_an_image", not_an_image, InputError, ["not a NIfTI", "convert it to NIfTI"]),
    ("missing_file", missing_file, FileNotFoundError, ["no such file", "check the path"]),
    ("dicom_mixed_series", dicom_mixed_series, InputError, ["holds 2 DICOM series", "one series at a time"]),
    ("dicom_missing_slice", dicom_missing_slice, InputError, ["1 slice(s) missing between", "complete series"]),
    ("dicom_uneven_spacing", dicom_uneven_spacing, InputError, ["slice spacing is not uniform", "regular stack"]),
    ("dicom_mixed_pixel_spacing", dicom_mixed_pixel_spacing, InputError, ["inconsistent in-plane spacing", "own folder"]),
    ("dicom_truncated_file", dicom_truncated_file, InputError, ["img_002.dcm: holds no pixel data", "export the series again"]),
    ("dicom_no_geometry", dicom_no_geometry, InputError, ["img_001.dcm: the DICOM file has no ImagePositionPatient", "geometry tags"]),
    ("hdf5_missing_key", hdf5_missing_key, InputError, ["no dataset 'reconstruction_rss'", "h5_key"]),
    ("hdf5_corrupt", hdf5_corrupt, InputError, ["cannot be read as HDF5", "copy or export it again"]),
]

# found only when the volume is denoised (the noise level is estimated by the inferer)
DENOISE_CASES = [
    ("noise_free", noise_free, InputError, ["finds no noise", "give sigma_data"]),
]


def _cause(error: BaseException, kind: type) -> BaseException:
    """The ``kind`` error in ``error``'s chain (MONAI wraps errors of config expressions in a ``RuntimeError``)."""
    while error is not None and not isinstance(error, kind):
        error = error.__cause__ or error.__context__
    assert error is not None, f"no {kind.__name__} in the chain"
    return error


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=TINY).state_dict(), folder / "model.pt")
    (folder / "model_config.json").write_text(json.dumps({"network": {"features": TINY}}))
    return folder / "model.pt"


def _check_message(error: BaseException, source: Path, fragments: list[str]) -> None:
    message = str(error)
    assert source.name in message, f"the message does not name the input: {message}"
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"


@pytest.mark.parametrize(("case", "build", "error", "fragments"), INPUT_CASES, ids=[c[0] for c in INPUT_CASES])
def test_bad_input_file_one_clear_error_and_nothing_written(case, build, error, fragments, tmp_path, tiny_model):
    (tmp_path / "in").mkdir()
    source = build(tmp_path / "in")
    inputs_before = {p: p.read_bytes() for p in _files(tmp_path / "in")}
    load = [LoadVolumed("image"), EnsureVolumed("image", num_channels=1)]
    with pytest.raises(error) as raised:
        data = {"image": str(source)}
        for transform in load:
            data = transform(data)
    _check_message(raised.value, source, fragments)

    with pytest.raises(error) as raised:
        c2s_monai.denoise(source, tiny_model, tmp_path / "out" / "denoised.nii.gz", flips=1)
    _check_message(raised.value, source, fragments)
    assert not (tmp_path / "out").exists()
    assert {p: p.read_bytes() for p in _files(tmp_path / "in")} == inputs_before


@pytest.mark.parametrize(("case", "build", "error", "fragments"), DENOISE_CASES, ids=[c[0] for c in DENOISE_CASES])
def test_bad_input_found_when_denoising(case, build, error, fragments, tmp_path, tiny_model):
    source = build(tmp_path)
    with pytest.raises(error) as raised:
        c2s_monai.denoise(source, tiny_model, tmp_path / "out" / "denoised.nii.gz", flips=1)
    _check_message(raised.value, source, fragments)
    assert not (tmp_path / "out").exists()


def test_a_4d_series_is_denoised_volume_by_volume_when_asked(tmp_path, tiny_model):
    source = series_4d(tmp_path)
    output = c2s_monai.denoise(source, tiny_model, tmp_path / "dwi_denoised.nii.gz", flips=1, each_volume=True)
    written = nib.load(output)
    assert written.shape == (*SHAPE, 3)
    np.testing.assert_allclose(written.affine, nib.load(source).affine)
    single = c2s_monai.denoise(write_nifti(tmp_path / "vol1.nii.gz", noisy(1)), tiny_model, tmp_path / "vol1_d.nii.gz", flips=1)
    np.testing.assert_allclose(written.get_fdata()[..., 1], nib.load(single).get_fdata(), rtol=1e-5, atol=1e-3)
    # a bad volume inside the series names the file and the volume
    data = np.stack([noisy(0), np.full(SHAPE, 3.0, np.float32)], axis=-1)
    with pytest.raises(InputError, match=r"bad_series\.nii\.gz: the image is constant.*\(volume 1 of the series\)"):
        c2s_monai.denoise(write_nifti(tmp_path / "bad_series.nii.gz", data), tiny_model, tmp_path / "x.nii.gz", each_volume=True)


def test_empty_input_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "old_denoised.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty: no NIfTI .* in this folder \(skipped as earlier outputs: \['old_denoised.nii.gz'\]\); point dataset_dir"):
        list_inputs(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="no such file or folder; check dataset_dir"):
        list_inputs(tmp_path / "nowhere")


@pytest.mark.parametrize("sigma", [0, -1.5, "-2", float("nan"), float("inf"), "abc", "", None, True, [0.1]])
def test_sigma_data_must_be_a_positive_number_or_an_estimator(sigma):
    with pytest.raises(InputError, match=r"sigma_data must be a finite number > 0 in the image's units, or one of 'auto'.*give the noise std"):
        check_sigma_data(sigma)
    with pytest.raises(InputError, match="sigma_data must be"):
        c2s_monai.C2SInferer(sigma_data=sigma)


@pytest.mark.parametrize(("sigma", "expected"), [(0.5, 0.5), ("12.5", 12.5), (3, 3.0), ("auto", "auto"), (" MAD ", "mad"), ("background", "background")])
def test_valid_sigma_data(sigma, expected):
    assert check_sigma_data(sigma) == expected


def test_output_equal_to_the_input_is_refused(tmp_path, tiny_model):
    source = write_nifti(tmp_path / "scan.nii.gz", noisy())
    before = source.read_bytes()
    with pytest.raises(InputError, match=r"scan\.nii\.gz: the output would overwrite the input; choose another output path"):
        c2s_monai.denoise(source, tiny_model, tmp_path / "." / "scan.nii.gz")
    with pytest.raises(InputError, match="overwrite the input"):
        check_output_path(source, source)
    assert source.read_bytes() == before and _files(tmp_path) == [source]


def test_output_folder_that_cannot_be_written(tmp_path, tiny_model):
    source = write_nifti(tmp_path / "scan.nii.gz", noisy())
    (tmp_path / "a_file").write_text("not a folder")
    blocked = tmp_path / "a_file" / "out"
    with pytest.raises(InputError, match=r"a_file/out: outputs cannot be written here .*choose a writable output folder"):
        c2s_monai.denoise(source, tiny_model, blocked / "scan_denoised.nii.gz")
    with pytest.raises(InputError, match="outputs cannot be written here"):
        check_writable_folder(blocked)


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0, reason="file modes do not bind root")
def test_read_only_output_folder(tmp_path, tiny_model):
    source = write_nifti(tmp_path / "scan.nii.gz", noisy())
    (tmp_path / "locked").mkdir(mode=0o500)
    with pytest.raises(InputError, match=r"locked: outputs cannot be written here \(Permission denied\)"):
        c2s_monai.denoise(source, tiny_model, tmp_path / "locked" / "scan_denoised.nii.gz")


def test_bundle_refuses_an_unwritable_output_dir_before_reading_anything(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    source = write_nifti(tmp_path / "scan.nii.gz", noisy())
    (tmp_path / "a_file").write_text("not a folder")
    workflow = create_workflow(
        config_file=str(CONFIGS / "inference.json"), workflow_type="infer", logging_file=False,
        dataset_dir=str(source), output_dir=str(tmp_path / "a_file" / "out"), features=TINY,
    )
    with pytest.raises(Exception) as raised:
        workflow.run()
    assert "a_file/out: outputs cannot be written here" in str(_cause(raised.value, InputError))
    assert not (tmp_path / "a_file").is_dir()


# ------------------------------------------------------------------ checkpoints


def _engine() -> Engine:
    engine = Engine(lambda engine, batch: None)
    engine.state.max_epochs = 1
    return engine


def test_checkpoint_of_another_network_shape(tmp_path, tiny_model):
    wide = tmp_path / "wide.pt"
    torch.save(NoiseConditionedUNet(features=[16, 16, 32, 64, 128, 16]).state_dict(), wide)
    loader = LoadCheckpoint(load_path=str(wide), load_dict={"model": NoiseConditionedUNet(features=TINY)})
    with pytest.raises(InputError, match=r"wide\.pt: the checkpoint does not fit the network \(RuntimeError: .*\); set features and conditioning"):
        loader(_engine())
    # the API reads the network's shape from model_config.json beside the weights
    (tmp_path / "model_config.json").write_text(json.dumps({"network": {"features": TINY}}))
    with pytest.raises(InputError, match=r"wide\.pt: the checkpoint does not fit the network .*model_config.json it was trained with"):
        c2s_monai.load_network(wide)


def test_truncated_and_missing_checkpoints(tmp_path, tiny_model):
    broken = tmp_path / "model.pt"
    broken.write_bytes(tiny_model.read_bytes()[:1000])
    network = NoiseConditionedUNet(features=TINY)
    with pytest.raises(InputError, match=r"model\.pt: cannot be read as a PyTorch checkpoint .*copy it again"):
        LoadCheckpoint(load_path=str(broken), load_dict={"model": network})(_engine())
    with pytest.raises(FileNotFoundError, match=r"absent\.pt: no such checkpoint; give ckpt_path"):
        LoadCheckpoint(load_path=str(tmp_path / "absent.pt"), load_dict={"model": network})(_engine())


def test_bundle_inference_with_a_checkpoint_of_another_shape_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    source = write_nifti(tmp_path / "scan.nii.gz", noisy())
    workflow = create_workflow(
        config_file=str(CONFIGS / "inference.json"), workflow_type="infer", logging_file=False,
        dataset_dir=str(source), output_dir=str(tmp_path / "out"), features=TINY,  # the shipped model.pt has the default widths
    )
    with pytest.raises(Exception) as raised:
        workflow.run()
    assert re.search(r"model\.pt: the checkpoint does not fit the network \(RuntimeError: .* size mismatch for", str(_cause(raised.value, InputError)))
    assert _files(tmp_path / "out") == []


def test_resuming_a_run_of_another_network_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    source = write_nifti(tmp_path / "scan.nii.gz", noisy(shape=(40, 36, 3)))
    settings = {"dataset_dir": str(source), "bundle_root": str(tmp_path / "run"), "flips": 1, "max_epochs": 1, "iterations_per_epoch": 1,
                "batch_size": 2, "patch_size": 32, "warmup_iterations": 1, "max_val_volumes": 1}
    first = create_workflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", logging_file=False, features=TINY, **settings)
    first.run()
    other = create_workflow(
        config_file=str(CONFIGS / "train.json"), workflow_type="train", logging_file=False, features=[16, 16, 32, 64, 128, 16], **settings
    )
    with pytest.raises(Exception) as raised:
        other.run()
    message = str(_cause(raised.value, InputError))
    assert re.search(r"checkpoint_1\.pt: the checkpoint does not fit the network .*another network or settings: start the new run in another folder", message)


def test_every_case_is_documented():
    documented = DOCS.read_text()
    cases = [c[0] for c in INPUT_CASES + DENOISE_CASES] + [
        "empty_input_folder", "sigma_data", "output_equal_to_input", "output_not_writable", "checkpoint_other_network",
        "checkpoint_truncated", "checkpoint_missing", "resume_other_network",
    ]
    missing = [case for case in cases if f"`{case}`" not in documented]
    assert not missing, f"docs/bad-inputs.md does not list {missing}"
