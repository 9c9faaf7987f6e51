"""The Python API and the CLI read and write as the bundle does (issue 16 item 9).

``c2s_monai.train`` loads its inputs with the bundle's ``load_transforms`` (``LoadVolumed`` then
``EnsureVolumed``): DICOM series folders and HDF5 files train, and a bad input gives the bundle's
own message. ``c2s_monai.denoise(..., dicom_output=True)`` writes a DICOM series input as the
series folder ``<series>_denoised`` with the bundle's writer (``write_dicom_series``). The CLI
forwards both options.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import SLOPE, dicom_slice_file, make_dicom_series, noisy, write_nifti
from monai.bundle import ConfigParser
from monai.transforms import Compose

import c2s_monai
from c2s_monai.api.denoising import check_settings, denoise
from c2s_monai.cli import main as cli_main
from c2s_monai.defaults import H5_KEY
from c2s_monai.errors import InputError, root_cause
from c2s_monai.io.readers import LoadVolume, read_dicom_series
from c2s_monai.networks import NoiseConditionedUNet

REPO = Path(__file__).resolve().parents[1]
TRAIN_CONFIG = REPO / "bundle" / "configs" / "train.json"
INFERENCE_CONFIG = REPO / "bundle" / "configs" / "inference.json"
TINY = [8, 8, 16, 32, 64, 8]
TINY_TRAINING = {"epochs": 1, "iterations_per_epoch": 2, "patch_size": 32, "batch_size": 2, "features": TINY, "warmup_iterations": 1, "progress": False}
GEOMETRY_TAGS = ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness", "Rows", "Columns")


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _write_hdf5(path: Path, key: str = "reconstruction_rss", slices: int = 5) -> Path:
    """A fastMRI-like magnitude volume ``(slices, rows, columns)``."""
    volume = np.stack([noisy(k, shape=(48, 40)) for k in range(slices)])
    with h5py.File(path, "w") as handle:
        handle.create_dataset(key, data=np.abs(volume).astype(np.float32))
    return path


def _bundle_load_error(source: Path, **overrides) -> BaseException:
    """The error the bundle's own ``load_transforms`` (configs/train.json) raise for ``source``."""
    parser = ConfigParser()
    parser.read_config(str(TRAIN_CONFIG))
    parser.update(overrides)
    load = Compose(parser.get_parsed_content("load_transforms"))
    with pytest.raises(Exception) as raised:  # the bundle's error, whatever its type
        load({"image": str(source)})
    return root_cause(raised.value)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=tuple(TINY)).state_dict(), folder / "model.pt")
    (folder / "model_config.json").write_text(json.dumps({"network": {"features": TINY}}))
    return folder / "model.pt"


def test_the_api_reads_hdf5_with_the_bundles_default_key():
    bundle_key = json.loads(TRAIN_CONFIG.read_text())["h5_key"]
    assert H5_KEY == bundle_key == json.loads(INFERENCE_CONFIG.read_text())["h5_key"]
    for function in (c2s_monai.train, c2s_monai.denoise):
        assert inspect.signature(function).parameters["h5_key"].default == bundle_key, function.__name__
    assert inspect.signature(c2s_monai.denoise).parameters["dicom_output"].default is False


# ------------------------------------------------------------------ training inputs


def test_train_on_a_dicom_series_folder(tmp_path, one_thread):
    make_dicom_series(tmp_path / "series", num_slices=5)
    before = _digest(tmp_path / "series")
    model = c2s_monai.train([tmp_path / "series"], tmp_path / "run", **TINY_TRAINING)
    assert model == tmp_path / "run" / "model.pt" and model.is_file()
    assert _digest(tmp_path / "series") == before
    # a folder of series folders is expanded as denoise_files expands it (list_inputs)
    make_dicom_series(tmp_path / "study" / "a", num_slices=5, seed=1)
    make_dicom_series(tmp_path / "study" / "b", num_slices=5, seed=2)
    assert c2s_monai.train([tmp_path / "study"], tmp_path / "run_study", **TINY_TRAINING).is_file()


def test_train_on_an_hdf5_file(tmp_path, one_thread):
    source = _write_hdf5(tmp_path / "knee.h5")
    model = c2s_monai.train([source], tmp_path / "run", **TINY_TRAINING)
    assert model.is_file()
    # another dataset name, through h5_key; a folder of HDF5 files is expanded
    (tmp_path / "images").mkdir()
    _write_hdf5(tmp_path / "images" / "brain.h5", key="magnitude")
    assert c2s_monai.train([tmp_path / "images"], tmp_path / "run_key", h5_key="magnitude", **TINY_TRAINING).is_file()


def _missing_slice(folder: Path) -> Path:
    make_dicom_series(folder / "gap", num_slices=5)
    dicom_slice_file(folder / "gap", 2, 5).unlink()
    return folder / "gap"


def _series_4d(folder: Path) -> Path:
    return write_nifti(folder / "dwi.nii.gz", np.stack([noisy(k) for k in range(3)], axis=-1))


def _constant(folder: Path) -> Path:
    return write_nifti(folder / "constant.nii.gz", np.full((24, 20, 3), 7.0, np.float32))


def _hdf5_missing_key(folder: Path) -> Path:
    return _write_hdf5(folder / "knee.h5", key="kspace_rss")


def _missing_file(folder: Path) -> Path:
    return folder / "nowhere.nii.gz"


@pytest.mark.parametrize(
    ("build", "fragment"),
    [
        (_missing_slice, "1 slice(s) missing between"),
        (_series_4d, "4D series of 3 volumes"),
        (_constant, "the image is constant"),
        (_hdf5_missing_key, "no dataset 'reconstruction_rss'"),
        (_missing_file, "no such file or folder"),
    ],
    ids=["dicom_missing_slice", "series_4d", "constant", "hdf5_missing_key", "missing_file"],
)
def test_train_on_a_bad_input_raises_the_bundles_error_and_writes_nothing(build, fragment, tmp_path):
    (tmp_path / "in").mkdir()
    source = build(tmp_path / "in")
    expected = _bundle_load_error(source)
    with pytest.raises(type(expected)) as raised:
        c2s_monai.train([source], tmp_path / "run", **TINY_TRAINING)
    assert str(raised.value) == str(expected), f"api.train: {raised.value}\nbundle:    {expected}"
    assert fragment in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_train_forwards_h5_key_to_the_reader(tmp_path):
    source = _write_hdf5(tmp_path / "knee.h5")
    expected = _bundle_load_error(source, h5_key="magnitude")
    with pytest.raises(InputError) as raised:
        c2s_monai.train([source], tmp_path / "run", h5_key="magnitude", **TINY_TRAINING)
    assert str(raised.value) == str(expected) and "no dataset 'magnitude'" in str(raised.value)


# ------------------------------------------------------------------ DICOM output


def test_denoise_writes_a_dicom_series_with_the_bundles_writer(tmp_path, tiny_model, one_thread):
    make_dicom_series(tmp_path / "series", num_slices=5)
    before = _digest(tmp_path / "series")
    output = denoise(tmp_path / "series", tiny_model, dicom_output=True, flips=1)
    assert output == tmp_path / "series_denoised" and output.is_dir()
    assert _digest(tmp_path / "series") == before

    _, source, _ = read_dicom_series(tmp_path / "series")
    _, result, _ = read_dicom_series(output)
    assert len(result) == len(source)
    for original, new in zip(source, result):
        for tag in GEOMETRY_TAGS:
            assert new[tag].value == original[tag].value, tag
        assert new.StudyInstanceUID == original.StudyInstanceUID
        assert new.SOPInstanceUID != original.SOPInstanceUID
    assert {ds.SeriesInstanceUID for ds in result} != {ds.SeriesInstanceUID for ds in source}
    assert len({ds.SeriesInstanceUID for ds in result}) == 1
    assert result[0].SeriesDescription.endswith("C2S denoised")

    # the same denoised values as the NIfTI output, up to the source's integer storage
    nifti = denoise(tmp_path / "series", tiny_model, tmp_path / "series_denoised.nii.gz", flips=1)
    reread, reference = LoadVolume()(output), LoadVolume()(tmp_path / "series")
    np.testing.assert_allclose(np.asarray(reread.meta["affine"]), np.asarray(reference.meta["affine"]), atol=1e-6)
    assert float(np.abs(reread[0].numpy() - nib.load(nifti).get_fdata()).max()) <= SLOPE / 2 + 1e-3


def test_dicom_output_never_overwrites_the_input_nor_names_a_nifti(tmp_path, tiny_model):
    make_dicom_series(tmp_path / "series", num_slices=3)
    before = _digest(tmp_path / "series")
    with pytest.raises(InputError, match="overwrite the input"):
        denoise(tmp_path / "series", tiny_model, tmp_path / "series", dicom_output=True)
    with pytest.raises(InputError, match="overwrite the input"):  # one file of the series: its folder is the input
        denoise(tmp_path / "series" / "img_001.dcm", tiny_model, tmp_path / "series", dicom_output=True)
    with pytest.raises(InputError, match="DICOM series folder"):
        denoise(tmp_path / "series", tiny_model, tmp_path / "out.nii.gz", dicom_output=True)
    assert _digest(tmp_path / "series") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]


def test_dicom_output_of_another_input_writes_nifti_with_a_warning_as_the_bundle(tmp_path, tiny_model, caplog):
    source = write_nifti(tmp_path / "scan.nii.gz", noisy())
    with caplog.at_level(logging.WARNING, logger="c2s_monai.api.denoising"):
        output = denoise(source, tiny_model, dicom_output=True, flips=1)
    assert output == tmp_path / "scan_denoised.nii.gz" and output.is_file()
    assert "DICOM output needs a DICOM input; writing NIfTI" in caplog.text


def test_denoise_files_writes_dicom_series_beside_nifti_outputs(tmp_path, tiny_model, one_thread):
    make_dicom_series(tmp_path / "in" / "series", num_slices=3)
    write_nifti(tmp_path / "nifti_scan.nii.gz", noisy())
    summary = c2s_monai.denoise_files(
        [tmp_path / "in", tmp_path / "nifti_scan.nii.gz"], tiny_model, output_dir=tmp_path / "out", dicom_output="true", flips=1, report=False
    )
    summary.check()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "nifti_scan_denoised.nii.gz", "nifti_scan_denoised_noise_map.nii.gz", "series_denoised", "series_denoised_noise_map.nii.gz", "summary.json",
    ]
    assert len(read_dicom_series(tmp_path / "out" / "series_denoised")[0]) == 3


def test_check_settings_knows_the_new_options(tiny_model, tmp_path):
    passed = ("input_file", "model", "output_file", "device")
    check_settings(denoise, {"dicom_output": "true", "h5_key": "reconstruction_rss"}, passed)
    with pytest.raises(ValueError, match="dicom_output must be true or false"):
        check_settings(denoise, {"dicom_output": "maybe"}, passed)
    with pytest.raises(ValueError, match="dicom_output must be true or false"):
        c2s_monai.denoise_files([tmp_path / "nowhere"], tiny_model, output_dir=tmp_path / "out", dicom_output="maybe")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ the CLI


def test_cli_trains_on_hdf5_with_h5_key_and_reports_the_bundles_error(tmp_path, monkeypatch, one_thread):
    source = _write_hdf5(tmp_path / "knee.h5", key="magnitude")
    argv = ["c2s-monai", "train", str(source), "--output_dir", str(tmp_path / "run"), "--h5_key", "magnitude", "--features", json.dumps(TINY),
            "--epochs", "1", "--iterations_per_epoch", "2", "--patch_size", "32", "--batch_size", "2", "--warmup_iterations", "1",
            "--progress", "false"]
    monkeypatch.setattr(sys, "argv", argv)
    cli_main()
    assert (tmp_path / "run" / "model.pt").is_file()

    gap = _missing_slice(tmp_path)
    monkeypatch.setattr(sys, "argv", ["c2s-monai", "train", str(gap), "--output_dir", str(tmp_path / "bad")])
    with pytest.raises(SystemExit) as raised:
        cli_main()
    assert str(raised.value.code) == f"error: {_bundle_load_error(gap)}"
    assert not (tmp_path / "bad").exists()


def test_cli_denoise_writes_a_dicom_series(tmp_path, tiny_model):
    make_dicom_series(tmp_path / "series", num_slices=3)
    command = [sys.executable, "-m", "c2s_monai", "denoise", str(tmp_path / "series"), "--model", str(tiny_model), "--output_dir",
               str(tmp_path / "out"), "--dicom_output", "true", "--flips", "1"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    series = tmp_path / "out" / "series_denoised"
    _, written, _ = read_dicom_series(series)
    _, source, _ = read_dicom_series(tmp_path / "series")
    assert len(written) == 3 and written[0].SeriesInstanceUID != source[0].SeriesInstanceUID
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["results"][0]["output"] == str(series)
