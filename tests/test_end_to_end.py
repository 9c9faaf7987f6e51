"""A tiny end-to-end C2S run on real MRI: train on a noisy NIfTI, reload, denoise, measure; and resuming.

The data is a 64x64 centre crop of three axial slices of the MNI152 T1 template shipped with
nilearn, with Gaussian noise of std 0.06 (of the maximum) added with a fixed seed. Training
sees only the noisy file.
"""

from __future__ import annotations

import json
import math
import re
import warnings

import nibabel as nib
import numpy as np
import pytest
import torch

import c2s_monai
import c2s_monai.transforms
from c2s_monai.data import training_loader
from c2s_monai.io.sample_data import noisy_mni152_slices
from c2s_monai.losses.gdsm import GDSMLoss

SIGMA = 0.06
TINY = (8, 8, 16, 32, 64, 8)
AFFINE = np.array(
    [
        [-1.0 * math.cos(0.2), 0.0, 1.0 * math.sin(0.2), 96.0],
        [0.0, 1.1, 0.0, -130.0],
        [1.0 * math.sin(0.2), 0.0, 2.0 * math.cos(0.2), -70.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def latest_checkpoint(output_dir):
    return max((output_dir / "checkpoints").glob("*.pt"), key=lambda p: p.stat().st_mtime)


def checkpoint_epoch(path) -> int:
    """The epoch number at the end of a checkpoint's name (``checkpoint_2.pt``, ``..._epoch=2.pt``)."""
    match = re.search(r"(\d+)\.pt$", path.name)
    assert match, path.name
    return int(match.group(1))


@pytest.fixture(scope="module")
def mni_case(tmp_path_factory):
    """(clean, noisy, path): (64, 64, 3) volumes, the noisy one written as NIfTI with an oblique affine."""
    clean, noisy = noisy_mni152_slices(sigma=SIGMA, seed=0, first=80, last=86, step=2)  # (3, 197, 233)
    h0, w0 = (clean.shape[1] - 64) // 2, (clean.shape[2] - 64) // 2
    crop = np.s_[:, h0 : h0 + 64, w0 : w0 + 64]
    clean = np.ascontiguousarray(np.moveaxis(clean[crop], 0, -1))
    noisy = np.ascontiguousarray(np.moveaxis(noisy[crop], 0, -1)).astype(np.float32)
    folder = tmp_path_factory.mktemp("mni")
    path = folder / "sub-mni_T1w.nii.gz"
    nib.save(nib.Nifti1Image(noisy, AFFINE), str(path))
    return clean, noisy, path


@pytest.fixture(scope="module")
def trained(mni_case, tmp_path_factory):
    _, _, path = mni_case
    output_dir = tmp_path_factory.mktemp("run")
    model = c2s_monai.train(
        [path],
        output_dir,
        sigma_data=SIGMA,
        epochs=2,
        iterations_per_epoch=20,
        patch_size=32,
        batch_size=4,
        features=TINY,
        learning_rate=5e-3,
        warmup_iterations=5,
        ema_momentum=0.1,
        seed=0,
        progress=False,
    )
    return output_dir, model


def test_training_writes_model_config_and_checkpoints(trained):
    output_dir, model = trained
    assert model == output_dir / "model.pt" and model.is_file()
    assert list((output_dir / "checkpoints").glob("*.pt")), "no checkpoint written"
    assert checkpoint_epoch(latest_checkpoint(output_dir)) == 2
    config = json.loads((output_dir / "model_config.json").read_text())
    assert config["network"]["features"] == list(TINY)
    assert config["training"]["sigma_data"] == SIGMA and config["training"]["epochs"] == 2
    state = torch.load(model, weights_only=True)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_denoise_improves_psnr_and_keeps_geometry(mni_case, trained, psnr_fn):
    clean, noisy, path = mni_case
    _, model = trained
    before = path.read_bytes()
    network = c2s_monai.load_network(model)
    assert not network.training
    output = c2s_monai.denoise(path, network, sigma_data=SIGMA, flips=4)
    assert output == path.parent / "sub-mni_T1w_denoised.nii.gz" and output.is_file()
    assert path.read_bytes() == before  # the input is untouched

    written, original = nib.load(str(output)), nib.load(str(path))
    assert written.shape == original.shape == (64, 64, 3)
    np.testing.assert_allclose(written.affine, original.affine, atol=1e-5)
    assert written.get_data_dtype() == np.float32
    denoised = np.asarray(written.get_fdata())
    assert np.isfinite(denoised).all()

    brain = clean > 0.1
    assert brain.mean() > 0.5
    psnr_noisy, psnr_denoised = psnr_fn(clean, noisy, brain), psnr_fn(clean, denoised, brain)
    print(f"\nend-to-end PSNR in the brain: noisy {psnr_noisy:.2f} dB, C2S {psnr_denoised:.2f} dB")
    assert psnr_denoised > psnr_noisy + 1.0


def test_denoise_from_model_path_matches_loaded_network(mni_case, trained, tmp_path):
    _, _, path = mni_case
    _, model = trained
    from_path = c2s_monai.denoise(path, model, tmp_path / "a.nii.gz", sigma_data=SIGMA, flips=1)
    from_network = c2s_monai.denoise(path, c2s_monai.load_network(model), tmp_path / "b.nii.gz", sigma_data=SIGMA, flips=1)
    np.testing.assert_array_equal(nib.load(str(from_path)).get_fdata(), nib.load(str(from_network)).get_fdata())


def test_denoise_refuses_to_overwrite_input(mni_case, trained):
    _, _, path = mni_case
    _, model = trained
    before = path.read_bytes()
    with pytest.raises(ValueError, match="overwrite"):
        c2s_monai.denoise(path, model, output_file=path, sigma_data=SIGMA)
    assert path.read_bytes() == before


def test_load_network_rejects_mismatched_weights(trained, tmp_path):
    _, model = trained
    state = torch.load(model, weights_only=True)
    (tmp_path / "model_config.json").write_text(json.dumps({"network": {"features": [16, 16, 32, 64, 128, 16]}}))
    torch.save(state, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="model_config.json"):
        c2s_monai.load_network(tmp_path / "model.pt")


# ---------------------------------------------------------------------------- resuming


RESUME_SETTINGS = {
    "sigma_data": 0.1, "iterations_per_epoch": 3, "patch_size": 32, "batch_size": 2, "features": TINY, "warmup_iterations": 1, "progress": False
}


@pytest.fixture
def small_noisy_file(tmp_path):
    generator = np.random.default_rng(0)
    data = (0.5 + 0.3 * generator.random((40, 40, 2)) + 0.1 * generator.standard_normal((40, 40, 2))).astype(np.float32)
    path = tmp_path / "small.nii.gz"
    nib.save(nib.Nifti1Image(data, AFFINE), str(path))
    return path


@pytest.fixture
def loss_calls(monkeypatch):
    """Count the training iterations (one GDSM loss evaluation each)."""
    calls = []
    forward = GDSMLoss.forward

    def counting(self, *args, **kwargs):
        calls.append(1)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(GDSMLoss, "forward", counting)
    return calls


def test_resume_continues_from_the_checkpoint(small_noisy_file, tmp_path, loss_calls):
    output_dir = tmp_path / "run"
    c2s_monai.train([small_noisy_file], output_dir, epochs=1, **RESUME_SETTINGS)
    assert len(loss_calls) == 3

    # more epochs: only the missing epoch runs, the trainer counts on from the checkpoint
    c2s_monai.train([small_noisy_file], output_dir, epochs=2, **RESUME_SETTINGS)
    assert len(loss_calls) == 6
    checkpoint = latest_checkpoint(output_dir)
    assert checkpoint_epoch(checkpoint) == 2
    state = torch.load(checkpoint, weights_only=False)
    assert int(state["trainer"]["iteration"]) == 6

    # the same number of epochs again: nothing left to do, the weights are unchanged
    weights = torch.load(output_dir / "model.pt", weights_only=True)
    c2s_monai.train([small_noisy_file], output_dir, epochs=2, **RESUME_SETTINGS)
    assert len(loss_calls) == 6
    again = torch.load(output_dir / "model.pt", weights_only=True)
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_resume_with_more_epochs_follows_the_new_schedule(small_noisy_file, tmp_path):
    """Extending a finished run must end like a fresh run of the new length: the warm-up cosine
    schedule spans the *new* total and the learning rate ends at its end value (0), as it does
    for a fresh run, instead of climbing back up a second cosine period."""
    fresh, extended = tmp_path / "fresh", tmp_path / "extended"
    c2s_monai.train([small_noisy_file], fresh, epochs=2, **RESUME_SETTINGS)
    c2s_monai.train([small_noisy_file], extended, epochs=1, **RESUME_SETTINGS)
    c2s_monai.train([small_noisy_file], extended, epochs=2, **RESUME_SETTINGS)
    lr_fresh = torch.load(latest_checkpoint(fresh), weights_only=False)["optimizer"]["param_groups"][0]["lr"]
    lr_extended = torch.load(latest_checkpoint(extended), weights_only=False)["optimizer"]["param_groups"][0]["lr"]
    assert lr_fresh == pytest.approx(0.0, abs=1e-9)
    assert lr_extended == pytest.approx(lr_fresh, abs=1e-9), (
        f"after extending 1 -> 2 epochs the final learning rate is {lr_extended:g}, a fresh 2-epoch run ends at "
        f"{lr_fresh:g}: the restored scheduler kept the first run's t_total"
    )


def test_training_loader_caches_the_deterministic_part(small_noisy_file, monkeypatch):
    """data.py promises that loading, checking and scaling (and, for sigma_data='auto', estimating
    the noise level) are cached by CacheDataset: once per volume, not once per iteration."""
    calls = []
    original = c2s_monai.transforms.EnsureVolume.__call__

    def counting(self, image):
        calls.append(1)
        return original(self, image)

    monkeypatch.setattr(c2s_monai.transforms.EnsureVolume, "__call__", counting)
    loader = training_loader([str(small_noisy_file)], sigma_data=0.1, patch_size=16, batch_size=2, iterations_per_epoch=5)
    batches = list(loader)
    assert len(batches) == 5 and batches[0]["image"].shape == (2, 1, 16, 16)
    assert len(calls) == 1, f"the volume was loaded and checked {len(calls)} times for 5 iterations"


def test_fine_tuning_starts_from_the_pretrained_weights(small_noisy_file, tmp_path):
    """`pretrained`: the run starts from given weights (a learning rate of 0 keeps them exactly)."""
    scratch = c2s_monai.train([small_noisy_file], tmp_path / "scratch", epochs=1, **RESUME_SETTINGS)
    pretrained = {k: v + 0.25 if v.is_floating_point() else v for k, v in torch.load(scratch, weights_only=True).items()}
    torch.save(pretrained, tmp_path / "pretrained.pt")
    tuned = c2s_monai.train(
        [small_noisy_file], tmp_path / "tuned", epochs=1, learning_rate=0.0, pretrained=tmp_path / "pretrained.pt", **RESUME_SETTINGS
    )
    weights = torch.load(tuned, weights_only=True)
    assert all(torch.allclose(weights[k], pretrained[k]) for k in pretrained)
    assert json.loads((tmp_path / "tuned" / "model_config.json").read_text())["training"]["pretrained"] == str(tmp_path / "pretrained.pt")


def test_training_patches_of_a_sagittal_volume_raise_no_warning(tmp_path):
    """A volume sliced along world x (a sagittal acquisition) trains without a warning per patch."""
    sagittal = np.array([[0.0, 0.0, 1.0, -90.0], [1.0, 0.0, 0.0, -120.0], [0.0, 1.0, 0.0, -70.0], [0.0, 0.0, 0.0, 1.0]])
    path = tmp_path / "sagittal.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((40, 36, 3)).astype(np.float32), sagittal), str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        batches = list(training_loader([str(path)], 0.05, patch_size=32, batch_size=2, iterations_per_epoch=3))
    assert not [str(w.message) for w in caught if "affine" in str(w.message)]
    assert len(batches) == 3 and batches[0]["image"].shape == (2, 1, 32, 32)
