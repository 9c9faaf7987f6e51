"""Batch denoising goes on past bad inputs, writes summary.json, exits non-zero; outputs appear whole or not at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from helpers import (
    constant,
    dicom_missing_slice,
    make_dicom_series,
    nan_voxels,
    noise_free,
    noisy,
    series_4d,
    truncated_nifti_gz,
    write_nifti,
)
from monai.bundle import create_workflow

import c2s_monai
from c2s_monai.batch import BatchFailedError
from c2s_monai.cli import main as cli_main
from c2s_monai.context import DEFAULT_CONTEXT_SLICES
from c2s_monai.io.readers import LoadVolume
from c2s_monai.io.writers import write_dicom_series
from c2s_monai.networks import NoiseConditionedUNet

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
TINY = [8, 8, 16, 32, 64, 8]
BAD = {  # input name -> (stage, a fragment of its message)
    "b_truncated.nii.gz": ("load", "cannot be read as NIfTI"),
    "c_nan.nii.gz": ("load", "NaN or Inf"),
    "d_dwi.nii.gz": ("load", "4D series of 3 volumes"),
    "e_constant.nii.gz": ("load", "constant"),
    "f_noise_free.nii.gz": ("denoise", "finds no noise"),
    "gap": ("load", "slice(s) missing"),
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _rename(path: Path, name: str) -> Path:
    return path.rename(path.with_name(name))


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A folder of NIfTI files (two good, five bad) and a folder of DICOM series (one good, one with a gap)."""
    root = tmp_path_factory.mktemp("batch")
    nifti, dicom = root / "nifti", root / "dicom"
    nifti.mkdir()
    dicom.mkdir()
    write_nifti(nifti / "a_good.nii.gz", noisy(0))
    write_nifti(nifti / "z_good.nii.gz", noisy(1))
    _rename(truncated_nifti_gz(nifti), "b_truncated.nii.gz")
    _rename(nan_voxels(nifti), "c_nan.nii.gz")
    _rename(series_4d(nifti), "d_dwi.nii.gz")
    _rename(constant(nifti), "e_constant.nii.gz")
    _rename(noise_free(nifti), "f_noise_free.nii.gz")
    make_dicom_series(dicom / "series", num_slices=3)
    dicom_missing_slice(dicom)
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=TINY, context_slices=DEFAULT_CONTEXT_SLICES).state_dict(), root / "model.pt")
    (root / "model_config.json").write_text(json.dumps({"network": {"features": TINY, "context_slices": DEFAULT_CONTEXT_SLICES}}))
    return root


def _digest(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _check_summary(summary: dict, good: list[str], inputs: int) -> None:
    results = {Path(r["input"]).name: r for r in summary["results"]}
    assert summary["inputs"] == inputs and summary["denoised"] == len(good) and summary["failed"] == len(BAD)
    assert summary["not_processed"] == 0
    for name in good:
        assert results[name]["status"] == "denoised" and Path(results[name]["output"]).exists()
    for name, (stage, fragment) in BAD.items():
        result = results[name]
        assert result["status"] == "failed" and result["stage"] == stage, result
        assert name in result["message"] and fragment in result["message"], result


@pytest.mark.parametrize("num_workers", [0, 2])
def test_bundle_inference_goes_on_past_bad_inputs(batch, tmp_path, monkeypatch, num_workers):
    monkeypatch.chdir(REPO)
    before = _digest(batch)
    workflow = create_workflow(
        config_file=str(CONFIGS / "inference.json"), workflow_type="infer", logging_file=False,
        dataset_dir=[str(batch / "nifti"), str(batch / "dicom")], ckpt_path=str(batch / "model.pt"), output_dir=str(tmp_path),
        features=TINY, flips=1, num_workers=num_workers,
    )
    with pytest.raises(SystemExit) as raised:
        workflow.run()
    message = str(raised.value.code)
    assert message.startswith(f"error: 6 of 9 inputs failed (every failure is listed in {tmp_path / 'summary.json'}):")
    summary = json.loads((tmp_path / "summary.json").read_text())
    _check_summary(summary, ["a_good.nii.gz", "z_good.nii.gz", "series"], inputs=9)
    # outputs and reports of the good inputs only, nothing else, no temporary file
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = [f"{stem}_denoised{suffix}" for stem in ("a_good", "series", "z_good") for suffix in (".json", ".nii.gz", "_qa.png", "_noise_map.nii.gz")]
    assert names == sorted(expected + ["summary.json"])
    assert _digest(batch) == before


def test_bundle_command_exits_non_zero_and_says_why(batch, tmp_path):
    command = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", "bundle/configs/inference.json",
        "--dataset_dir", str(batch / "nifti"), "--ckpt_path", str(batch / "model.pt"), "--output_dir", str(tmp_path),
        "--features", json.dumps(TINY), "--flips", "1",
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "error: 5 of 7 inputs failed" in result.stderr
    assert json.loads((tmp_path / "summary.json").read_text())["denoised"] == 2


def test_bundle_inference_of_good_inputs_reports_them_all(batch, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    workflow = create_workflow(
        config_file=str(CONFIGS / "inference.json"), workflow_type="infer", logging_file=False,
        dataset_dir=[str(batch / "nifti" / "a_good.nii.gz"), str(batch / "dicom" / "series")], ckpt_path=str(batch / "model.pt"),
        output_dir=str(tmp_path), features=TINY, flips=1,
    )
    workflow.run()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["inputs"], summary["denoised"], summary["failed"]) == (2, 2, 0)


def test_python_api_and_cli_go_on_past_bad_inputs(batch, tmp_path, monkeypatch):
    inputs = [batch / "nifti", batch / "dicom", batch / "missing.nii.gz"]
    summary = c2s_monai.denoise_files(inputs, batch / "model.pt", output_dir=tmp_path / "api", flips=1)
    written = json.loads((tmp_path / "api" / "summary.json").read_text())
    assert written["failed"] == len(BAD) + 1 and written["denoised"] == 3
    missing = next(r for r in written["results"] if r["input"].endswith("missing.nii.gz"))
    assert missing["error"] == "FileNotFoundError" and "no such file" in missing["message"]
    with pytest.raises(BatchFailedError, match="7 of 10 inputs failed"):
        summary.check()
    outputs = ["a_good_denoised", "series_denoised", "z_good_denoised"]  # each with its QA figure and JSON report, as the bundle writes
    expected = sorted([f"{name}{suffix}" for name in outputs for suffix in (".nii.gz", "_qa.png", ".json", "_noise_map.nii.gz")] + ["summary.json"])
    assert sorted(p.name for p in (tmp_path / "api").iterdir()) == expected

    argv = ["c2s-monai", "denoise", str(batch / "nifti"), "--model", str(batch / "model.pt"), "--output_dir", str(tmp_path / "cli"), "--flips", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as raised:
        cli_main()
    assert str(raised.value.code).startswith("error: 5 of 7 inputs failed")
    assert json.loads((tmp_path / "cli" / "summary.json").read_text())["denoised"] == 2


def test_cli_stops_at_once_on_a_bad_model_with_one_line(batch, tmp_path, monkeypatch):
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    argv = ["c2s-monai", "denoise", str(batch / "nifti" / "a_good.nii.gz"), "--model", str(tmp_path / "broken.pt"), "--output_dir", str(tmp_path / "out")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as raised:
        cli_main()
    assert str(raised.value.code).startswith(f"error: {tmp_path / 'broken.pt'}: cannot be read as a PyTorch checkpoint")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ atomic outputs


def test_a_nifti_output_appears_complete_or_not_at_all(batch, tmp_path, monkeypatch):
    source = batch / "nifti" / "a_good.nii.gz"

    def dies_half_way(image, filename):
        Path(filename).write_bytes(b"\x1f\x8b half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(nib, "save", dies_half_way)
    summary = c2s_monai.denoise_files([source], batch / "model.pt", output_dir=tmp_path, flips=1)
    assert summary.failures[0]["message"].endswith("No space left on device")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no output, no temporary file


def test_a_dicom_series_output_appears_complete_or_not_at_all(tmp_path, monkeypatch):
    make_dicom_series(tmp_path / "series", num_slices=3)
    image = LoadVolume()(tmp_path / "series")
    write_dicom_series(image, tmp_path / "series", tmp_path / "out" / "series_denoised")
    before = _digest(tmp_path / "out")
    calls = []
    original = pydicom.Dataset.save_as

    def dies_at_the_second_slice(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pydicom.Dataset, "save_as", dies_at_the_second_slice)
    with pytest.raises(OSError, match="No space left"):
        write_dicom_series(image * 2.0, tmp_path / "series", tmp_path / "out" / "series_denoised")
    assert _digest(tmp_path / "out") == before  # the earlier series is whole, no partial one, no staging folder
    monkeypatch.setattr(pydicom.Dataset, "save_as", original)
    written = write_dicom_series(image * 2.0, tmp_path / "series", tmp_path / "out" / "series_denoised")
    assert len(written) == 3 and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["series_denoised"]
    assert oct((tmp_path / "out" / "series_denoised").stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_atomic_nifti_outputs_get_the_usual_file_mode(batch, tmp_path):
    output = c2s_monai.denoise(batch / "nifti" / "a_good.nii.gz", batch / "model.pt", tmp_path / "a.nii.gz", flips=1)
    assert output.stat().st_mode & 0o777 == 0o666 & ~_umask()
    np.testing.assert_array_equal(nib.load(output).shape, (24, 20, 3))
