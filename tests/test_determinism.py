"""Same seed, same data: identical weights and identical denoised volumes on the CPU.

(tests/test_crash_resume.py checks the same across processes: an uninterrupted bundle run in
this process and a killed-and-resumed one in subprocesses end with equal weights.)
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import create_workflow

import c2s_monai
from c2s_monai.context import DEFAULT_CONTEXT_SLICES

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
TINY = [8, 8, 16, 32, 64, 8]
SETTINGS = {"sigma_data": "auto", "epochs": 2, "iterations_per_epoch": 2, "patch_size": 32, "batch_size": 2, "features": TINY, "warmup_iterations": 1, "progress": False}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("scan")
    rng = np.random.default_rng(3)
    image = np.zeros((40, 36, 3), np.float32)
    image[8:32, 6:28] = 500.0
    path = folder / "scan.nii.gz"
    nib.save(nib.Nifti1Image(image + rng.normal(0, 25, image.shape).astype(np.float32), np.eye(4)), path)
    return path


def _weights(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_api_training_and_denoising_are_reproducible(scan, tmp_path):
    first = c2s_monai.train([scan], tmp_path / "first", seed=7, **SETTINGS)
    torch.manual_seed(123)  # global state left by anything else must not matter
    np.random.seed(123)
    second = c2s_monai.train([scan], tmp_path / "second", seed=7, **SETTINGS)
    other = c2s_monai.train([scan], tmp_path / "other", seed=8, **SETTINGS)
    assert _equal(_weights(first), _weights(second))
    assert not _equal(_weights(first), _weights(other))

    outputs = [c2s_monai.denoise(scan, first, tmp_path / f"denoised_{k}.nii.gz", flips=4) for k in range(2)]
    np.testing.assert_array_equal(nib.load(outputs[0]).get_fdata(), nib.load(outputs[1]).get_fdata())


def test_bundle_training_and_inference_are_reproducible(scan, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    train = {"features": TINY, "flips": 1, "max_epochs": 1, "iterations_per_epoch": 2, "batch_size": 2, "patch_size": 32,
             "warmup_iterations": 1, "dataset_dir": str(scan)}
    models = []
    for name in ("first", "second"):
        workflow = create_workflow(config_file=str(CONFIGS / "train.json"), workflow_type="train", logging_file=False, bundle_root=str(tmp_path / name), **train)
        workflow.run()
        workflow.finalize()
        models.append(tmp_path / name / "models" / "model.pt")
    assert _equal(_weights(models[0]), _weights(models[1]))

    denoised = []
    for name in ("first", "second"):
        workflow = create_workflow(
            config_file=str(CONFIGS / "inference.json"), workflow_type="infer", logging_file=False, features=TINY, flips=2,
            dataset_dir=str(scan), ckpt_path=str(models[0]), output_dir=str(tmp_path / f"out_{name}"),
        )
        workflow.run()
        denoised.append(nib.load(tmp_path / f"out_{name}" / "scan_denoised.nii.gz").get_fdata())
    np.testing.assert_array_equal(denoised[0], denoised[1])
    # the bundle and the Python API denoise alike
    network = c2s_monai.NoiseConditionedUNet(features=TINY, context_slices=DEFAULT_CONTEXT_SLICES)
    network.load_state_dict(_weights(models[0]))
    api = c2s_monai.denoise(scan, network.eval(), tmp_path / "api.nii.gz", flips=2)
    np.testing.assert_allclose(nib.load(api).get_fdata(), denoised[0], rtol=1e-6, atol=1e-4)
