"""The MONAI bundle in bundle/: every workflow through monai.bundle on tiny data, and the three verify commands.

Each workflow config stands on its own (no cross-file macros): the keys train.json and
inference.json share hold the same values (a test below), and the bundle runs from the repository
root, from its own folder and from a copy elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import make_dicom_series
from ignite.engine import Events
from monai.bundle import (
    ConfigParser,
    ckpt_export,
    create_workflow,
    verify_metadata,
    verify_net_in_out,
)

from c2s_monai.context import DEFAULT_CONTEXT_SLICES
from c2s_monai.io.readers import read_dicom_series
from c2s_monai.networks import NoiseConditionedUNet

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
METADATA = CONFIGS / "metadata.json"
SCHEMA = REPO / "tests" / "data" / "meta_schema_20240725.json"
SHIPPED_MODEL = REPO / "bundle" / "models" / "model.pt"
TINY_FEATURES = [8, 8, 16, 32, 64, 8]
TINY = {"features": TINY_FEATURES, "flips": 1, "slice_batch": 4}
TINY_TRAIN = {**TINY, "max_epochs": 2, "iterations_per_epoch": 2, "batch_size": 2, "patch_size": 32, "warmup_iterations": 1}


def _phantom(seed: int, shape=(40, 36, 3)) -> np.ndarray:
    """A smooth piecewise-constant 'head' in [0, 1]: two ellipses on a dark background."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    head = ((x / 0.8) ** 2 + (y / 0.7) ** 2 < 1).astype(np.float32) * 0.6
    head += ((x / 0.3) ** 2 + ((y - 0.1 * seed) / 0.25) ** 2 < 1).astype(np.float32) * 0.4
    return np.repeat(head[..., None], shape[2], axis=-1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bundle_data")
    rng = np.random.default_rng(0)
    affine = np.array([[0.0, -1.1, 0.0, 20.0], [0.9, 0.0, 0.0, -10.0], [0.0, 0.0, 3.0, 5.0], [0.0, 0.0, 0.0, 1.0]])
    (root / "noisy").mkdir()
    (root / "clean").mkdir()
    for index in range(2):
        clean = _phantom(index)
        image = nib.Nifti1Image((clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32) * 800, affine)
        image.header["descrip"] = b"test scanner"
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=2)
        nib.save(image, root / "noisy" / f"sub-{index}_T1w.nii.gz")
        nib.save(nib.Nifti1Image(clean, affine), root / "clean" / f"ref-{index}.nii.gz")
    make_dicom_series(root / "dicom" / "t2_series", num_slices=4)
    with __import__("h5py").File(root / "knee.h5", "w") as handle:
        handle["reconstruction_rss"] = np.abs(_phantom(0, (3, 36, 40)) + rng.normal(0, 0.05, (3, 36, 40))).astype(np.float32)
    model = root / "tiny_model.pt"
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=TINY_FEATURES, context_slices=DEFAULT_CONTEXT_SLICES).state_dict(), model)
    return root


@pytest.fixture(autouse=True)
def _at_repo_root_on_one_thread(monkeypatch):
    """Workflows resolve `%bundle/configs/...` from the repository root; tiny networks run fastest on one thread."""
    monkeypatch.chdir(REPO)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _workflow(configs, workflow_type, **override):
    return create_workflow(
        config_file=[str(CONFIGS / name) for name in configs], workflow_type=workflow_type, logging_file=False, **override
    )


def _digest(folder: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- configs


# keys that train.json and inference.json define differently, on purpose
TRAIN_ONLY_VALUES = {
    "network": "the network_def with the pretrained weights loaded (fine-tuning)",
    "backend": "validation: the weights change every epoch, no ONNX export each time",
    "initialize": "each workflow's own start",
    "run": "each workflow's own run",
}


def test_the_workflow_configs_stand_alone_and_agree_on_every_shared_key():
    train, inference = (json.loads((CONFIGS / name).read_text()) for name in ("train.json", "inference.json"))
    for name in sorted(CONFIGS.glob("*.json")):
        assert "%" + "bundle/" not in name.read_text(), f"{name.name}: a macro relative to the working directory"
    shared = set(train) & set(inference)
    assert {"network_def", "inferer", "load_transforms", "flips", "context_slices", "bundle_root"} <= shared
    differing = {key for key in shared if train[key] != inference[key]}
    assert differing == set(TRAIN_ONLY_VALUES), differing - set(TRAIN_ONLY_VALUES) or set(TRAIN_ONLY_VALUES) - differing
    for name in ("evaluate.json", "multi_gpu_train.json", "persistent_cache.json"):
        config = json.loads((CONFIGS / name).read_text())
        redefined = set(config) & shared - {"device", "network", "output_dir", "initialize", "run"}
        assert not redefined, (name, redefined)


@pytest.mark.parametrize(
    ("key", "value", "component", "check"),
    [
        ("sigma_data", 0.05, "inferer", lambda c: c.scaler.sigma_data == 0.05),
        ("flips", 2, "inferer", lambda c: len(c.flips) == 2),
        ("sigma_target_ratio", 0.2, "loss", lambda c: c.sigma_target_ratio == 0.2),
        ("tau_max", 2.0, "loss", lambda c: c.tau_max == 2.0),
        ("noise_model", "rician", "inferer", lambda c: c.noise_model == "rician"),
        ("noise_model", "gaussian", "train#noise", lambda c: c.noise_model == "gaussian"),
        ("num_coils", 8, "inferer", lambda c: c.num_coils == 8),
        ("num_coils", "8", "train#noise", lambda c: c.num_coils == "8"),
        ("sigma_map", "auto", "inferer", lambda c: c.sigma_map == "auto"),
        ("sigma_map", "auto", "train#noise", lambda c: c.sigma_map == "auto"),
        ("features", TINY_FEATURES, "network_def", lambda c: c.backbone.conv_0.conv_0.conv.out_channels == 8),
        ("ema_momentum", 0.01, "ema", lambda c: c.momentum == 0.01),
        ("learning_rate", 0.01, "optimizer", lambda c: c.param_groups[0]["lr"] <= 0.01),
        ("max_epochs", 3, "train#trainer", lambda c: c.state.max_epochs == 3),
        ("patch_size", 48, "train#patch_transforms", lambda c: tuple(c.transforms[0].padder.spatial_size)[:2] == (48, 48)),
        ("context_slices", 3, "network_def", lambda c: c.context_slices == 3 and c.image_channels == 7),
        ("context_slices", 1, "inferer", lambda c: c.context_slices == 1),
        ("context_slices", 0, "train#patch_transforms", lambda c: "SqueezeDimd" in [type(t).__name__ for t in c.transforms]),
        ("context_dropout", 0.3, "train#patch_transforms", lambda c: c.transforms[-1].prob == 0.3),
        ("spatial_dims", 3, "network_def", lambda c: c.spatial_dims == 3 and c.context_slices == 0),
        ("spatial_dims", 3, "train#patch_transforms", lambda c: tuple(c.transforms[0].padder.spatial_size) == (96, 96, 96)),
        ("slice_axis", 0, "inferer", lambda c: c.slice_axis == 0),
        ("slice_axis", 1, "train#slices", lambda c: c.mover.slice_axis == 1),
        ("device", "cpu", "network", lambda c: next(c.parameters()).device.type == "cpu"),
        # the 0.6 flag, read as noise_model "rician"
        ("rician_vst", True, "train#noise", lambda c: c.noise_model == "rician"),
        ("rician_vst", "false", "train#noise", lambda c: c.noise_model == "auto"),
        ("rician_vst", True, "inferer", lambda c: c.noise_model == "rician"),
        ("rician_vst", "false", "inferer", lambda c: c.noise_model == "auto"),  # as typed on the command line
    ],
)
def test_every_knob_is_a_config_key(key, value, component, check, tmp_path):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train.json")])
    parser.read_meta(str(METADATA))
    parser["bundle_root"] = str(tmp_path)
    assert key in parser, key
    parser[key] = value
    if key == "max_epochs":
        parser["datalist"] = []
    assert check(parser.get_parsed_content(component))


# ---------------------------------------------------------------- verify commands


def test_verify_metadata_offline_with_the_repo_schema(tmp_path):
    verify_metadata(meta_file=str(METADATA), filepath=str(SCHEMA))
    broken = json.loads(METADATA.read_text())
    del broken["network_data_format"]["inputs"]["image"]["num_channels"]
    (tmp_path / "metadata.json").write_text(json.dumps(broken))
    with pytest.raises(ValueError, match="num_channels"):
        verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=str(SCHEMA))


def test_verify_net_in_out():
    verify_net_in_out(net_id="network_def", meta_file=str(METADATA), config_file=str(CONFIGS / "inference.json"), device="cpu", n=2)


def test_ckpt_export_torchscript_matches_the_eager_network(tmp_path):
    target = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(target),
        ckpt_file=str(SHIPPED_MODEL),
        meta_file=str(METADATA),
        config_file=str(CONFIGS / "inference.json"),
    )
    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(target), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == json.loads(METADATA.read_text())["version"]
    eager = NoiseConditionedUNet(context_slices=DEFAULT_CONTEXT_SLICES)
    eager.load_state_dict(torch.load(SHIPPED_MODEL, weights_only=True))
    eager.eval()
    inputs = torch.cat([torch.rand(1, eager.image_channels, 64, 64), torch.full((1, 1, 64, 64), 0.02)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(scripted(inputs), eager(inputs), rtol=1e-4, atol=1e-5)


def test_shipped_checkpoint_is_small_and_fits_the_default_network():
    assert SHIPPED_MODEL.stat().st_size < 20 * 1024 * 1024
    NoiseConditionedUNet(context_slices=DEFAULT_CONTEXT_SLICES).load_state_dict(torch.load(SHIPPED_MODEL, weights_only=True))


# ---------------------------------------------------------------- training


def test_train_workflow_logs_checkpoints_and_resumes(data, tmp_path):
    settings = {**TINY_TRAIN, "bundle_root": str(tmp_path), "dataset_dir": str(data / "noisy")}
    workflow = _workflow(["train.json"], "train", **settings)
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()
    model = tmp_path / "models" / "model.pt"
    NoiseConditionedUNet(features=TINY_FEATURES, context_slices=DEFAULT_CONTEXT_SLICES).load_state_dict(torch.load(model, weights_only=True))
    # the two newest are kept: a kill while the newest is written still leaves a complete one
    assert sorted(p.name for p in (tmp_path / "models" / "checkpoints").iterdir()) == ["checkpoint_1.pt", "checkpoint_2.pt"]
    assert list((tmp_path / "eval" / "train").glob("events.out.tfevents.*"))
    report = json.loads((tmp_path / "eval" / "train" / "validation_no_reference.json").read_text())
    assert len(report) == 2 and len(report[-1]["volumes"]) == 2
    assert 0 < report[-1]["mean"]["residual_std_ratio"]
    metrics = workflow.evaluator.state.metrics
    assert {"val_residual_std_ratio", "val_residual_correlation", "val_remaining_noise_ratio"} <= set(metrics)

    fresh = _workflow(["train.json"], "train", **{**settings, "resume": "false"})  # as typed on a command line
    assert fresh.parser.get_parsed_content("train#resume_handler").checkpoint is None

    resumed = _workflow(["train.json"], "train", **{**settings, "max_epochs": 3, "resume": "true"})
    iterations = []
    resumed.trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda engine: iterations.append(engine.state.iteration))
    resumed.run()
    resumed.finalize()
    assert iterations == [5, 6]  # epochs 1-2 were restored from the checkpoint, only epoch 3 ran
    assert resumed.parser.get_parsed_content("lr_scheduler").t_total == 6  # the longer run's schedule


def test_train_in_synthetic_noise_mode_reports_psnr_and_ssim(data, tmp_path):
    settings = {**TINY_TRAIN, "max_epochs": 1, "bundle_root": str(tmp_path), "dataset_dir": str(data / "clean"), "synthetic_sigma": 0.1}
    workflow = _workflow(["train.json"], "train", **settings)
    workflow.run()
    workflow.finalize()
    metrics = workflow.evaluator.state.metrics
    assert {"val_psnr", "val_ssim", "val_noisy_psnr"} <= set(metrics)
    assert 15 < metrics["val_noisy_psnr"] < 25  # sigma 0.1 of the peak: 20 dB
    assert not (tmp_path / "eval" / "train" / "validation_no_reference.json").exists()


@pytest.mark.skipif(sys.platform == "win32", reason="torchrun with gloo")
def test_multi_gpu_train_config_runs_two_processes_on_cpu(data, tmp_path):
    overrides = {**TINY_TRAIN, "bundle_root": str(tmp_path), "dataset_dir": str(data / "noisy"), "max_epochs": 1}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=2",
        "-m", "monai.bundle", "run",
        "--config_file", "['bundle/configs/train.json','bundle/configs/multi_gpu_train.json']",
    ]
    for key, value in overrides.items():
        command += [f"--{key}", json.dumps(value) if isinstance(value, list) else str(value)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # the checkpoint and model.pt load into the single-process network: same keys and shapes, no DDP "module." prefix
    single = NoiseConditionedUNet(features=TINY_FEATURES, context_slices=DEFAULT_CONTEXT_SLICES).state_dict()
    checkpoint = torch.load(tmp_path / "models" / "checkpoints" / "checkpoint_1.pt", weights_only=True)
    for weights in (checkpoint["network"], checkpoint["ema_network"], torch.load(tmp_path / "models" / "model.pt", weights_only=True)):
        assert {k: tuple(v.shape) for k, v in weights.items()} == {k: tuple(v.shape) for k, v in single.items()}
        NoiseConditionedUNet(features=TINY_FEATURES, context_slices=DEFAULT_CONTEXT_SLICES).load_state_dict(weights)
    # DistributedSampler: each process ran iterations_per_epoch steps; each keeps its own random streams
    assert checkpoint["trainer"]["iteration"] == TINY_TRAIN["iterations_per_epoch"]
    ranks = checkpoint["random_state"]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["torch"], ranks[1]["torch"])


def test_fine_tuning_starts_both_networks_from_the_pretrained_weights(data, tmp_path):
    settings = {**TINY_TRAIN, "bundle_root": str(tmp_path), "dataset_dir": str(data / "noisy")}
    # weights no random initialisation gives
    pretrained = {k: v + 0.25 if v.is_floating_point() else v for k, v in torch.load(data / "tiny_model.pt", weights_only=True).items()}
    torch.save(pretrained, tmp_path / "pretrained.pt")
    workflow = _workflow(["train.json"], "train", pretrained_ckpt=str(tmp_path / "pretrained.pt"), **settings)
    for key in ("network", "ema_network"):
        loaded = workflow.parser.get_parsed_content(key).state_dict()
        assert all(torch.equal(loaded[name], value) for name, value in pretrained.items()), key
    scratch = _workflow(["train.json"], "train", **settings).parser.get_parsed_content("network").state_dict()
    assert not all(torch.equal(scratch[name], value) for name, value in pretrained.items())
    # weights of another shape: one error naming the file, before anything is written
    wide = tmp_path / "wide.pt"
    torch.save(NoiseConditionedUNet(features=[16, 16, 32, 64, 128, 16], context_slices=DEFAULT_CONTEXT_SLICES).state_dict(), wide)
    with pytest.raises(RuntimeError) as raised:  # MONAI's config evaluation wraps the error: it is the cause
        _workflow(["train.json"], "train", pretrained_ckpt=str(wide), **settings).parser.get_parsed_content("network")
    assert "wide.pt: the pretrained weights do not fit this network" in str(raised.value.__cause__)
    assert not (tmp_path / "models").exists()


def test_persistent_cache_config_caches_the_loaded_volumes_on_disk(data, tmp_path):
    settings = {**TINY_TRAIN, "max_epochs": 1, "bundle_root": str(tmp_path), "dataset_dir": str(data / "noisy")}
    workflow = _workflow(["train.json", "persistent_cache.json"], "train", **settings)
    assert type(workflow.parser.get_parsed_content("train#dataset")).__name__ == "PersistentDataset"
    workflow.run()
    workflow.finalize()
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2  # one per volume, reused by the next run
    assert (tmp_path / "models" / "model.pt").is_file()


# ---------------------------------------------------------------- inference and evaluation


def test_inference_on_nifti_keeps_header_writes_reports_and_spares_inputs(data, tmp_path):
    before = _digest(data / "noisy")
    workflow = _workflow(
        ["inference.json"], "infer", **TINY, dataset_dir=str(data / "noisy"), ckpt_path=str(data / "tiny_model.pt"), output_dir=str(tmp_path)
    )
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()
    assert _digest(data / "noisy") == before
    for index in range(2):
        source = nib.load(data / "noisy" / f"sub-{index}_T1w.nii.gz")
        output = nib.load(tmp_path / f"sub-{index}_T1w_denoised.nii.gz")
        np.testing.assert_allclose(output.affine, source.affine)
        assert output.header["descrip"] == source.header["descrip"]
        assert (int(output.header["qform_code"]), int(output.header["sform_code"])) == (1, 2)
        assert output.shape == source.shape
        report = json.loads((tmp_path / f"sub-{index}_T1w_denoised.json").read_text())
        assert report["input"] == str((data / "noisy" / f"sub-{index}_T1w.nii.gz").resolve())
        assert report["output"] == str((tmp_path / f"sub-{index}_T1w_denoised.nii.gz").resolve())
        assert report["sigma_source"] == "estimated (mad)"  # Gaussian noise, negative values: auto picks the MAD
        assert 10 < report["sigma_data"] < 80  # 0.05 * 800 = 40 in image units
        assert report["seconds_total"] > 0 and report["shape"] == [40, 36, 3]
        assert set(report["no_reference"]) == {"residual_std_ratio", "residual_correlation", "remaining_noise_ratio"}
        figure = tmp_path / f"sub-{index}_T1w_denoised_qa.png"
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ({}, {"spatial_dims": 2, "context_slices": 2, "context": "reflected at the ends; 3 slices, fewer than the 5 of the context"}),
        ({"context_slices": 0}, {"spatial_dims": 2, "context_slices": 0, "context": "none (slice by slice)"}),
        ({"context_slices": 1, "slice_axis": 2}, {"spatial_dims": 2, "context_slices": 1, "context": "reflected at the ends"}),
        ({"spatial_dims": 3}, {"spatial_dims": 3, "context_slices": 0, "context": "native 3D"}),
    ],
)
def test_train_then_denoise_in_each_volumetric_mode(data, tmp_path, mode, expected):
    """2.5D context (the default), slice by slice, another slice axis, native 3D: train.json then inference.json."""
    settings = {**TINY_TRAIN, "max_epochs": 1, "bundle_root": str(tmp_path), "dataset_dir": str(data / "noisy"), **mode}
    workflow = _workflow(["train.json"], "train", **settings)
    workflow.run()
    workflow.finalize()
    network = workflow.parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(tmp_path / "models" / "model.pt", weights_only=True))
    inference = _workflow(
        ["inference.json"], "infer", **TINY, **mode, dataset_dir=str(data / "noisy" / "sub-0_T1w.nii.gz"),
        ckpt_path=str(tmp_path / "models" / "model.pt"), output_dir=str(tmp_path / "out"),
    )
    inference.run()
    inference.finalize()
    assert nib.load(tmp_path / "out" / "sub-0_T1w_denoised.nii.gz").shape == (40, 36, 3)
    report = json.loads((tmp_path / "out" / "sub-0_T1w_denoised.json").read_text())
    volume = report["volume"]
    expected = {"slice_axis": 2, **expected}
    assert {k: volume[k] for k in expected} == expected
    assert set(volume["noise_correlation"]) == {"across_slices", "in_plane", "threshold", "independent"}


def test_inference_with_a_given_sigma_reports_it(data, tmp_path):
    workflow = _workflow(
        ["inference.json"], "infer", **TINY, sigma_data=33.0, dataset_dir=str(data / "noisy" / "sub-0_T1w.nii.gz"),
        ckpt_path=str(data / "tiny_model.pt"), output_dir=str(tmp_path),
    )
    workflow.run()
    report = json.loads((tmp_path / "sub-0_T1w_denoised.json").read_text())
    assert report["sigma_data"] == pytest.approx(33.0) and report["sigma_source"] == "given"


def test_inference_dicom_series_in_dicom_series_out(data, tmp_path):
    before = _digest(data / "dicom")
    workflow = _workflow(
        ["inference.json"], "infer", **TINY, dataset_dir=str(data / "dicom" / "t2_series"), dicom_output=True,
        ckpt_path=str(data / "tiny_model.pt"), output_dir=str(tmp_path),
    )
    workflow.run()
    assert _digest(data / "dicom") == before
    _, source, _ = read_dicom_series(data / "dicom" / "t2_series")
    _, result, _ = read_dicom_series(tmp_path / "t2_series_denoised")
    for original, new in zip(source, result, strict=True):
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
            assert new[tag].value == original[tag].value
        assert new.SeriesInstanceUID != original.SeriesInstanceUID
    assert (tmp_path / "t2_series_denoised_qa.png").is_file()
    assert json.loads((tmp_path / "t2_series_denoised.json").read_text())["input_format"] == "dicom"


def test_inference_reads_hdf5(data, tmp_path):
    workflow = _workflow(
        ["inference.json"], "infer", **TINY, dataset_dir=str(data / "knee.h5"), ckpt_path=str(data / "tiny_model.pt"), output_dir=str(tmp_path)
    )
    workflow.run()
    output = nib.load(tmp_path / "knee_denoised.nii.gz")
    assert output.shape == (40, 36, 3)


@pytest.mark.parametrize("base", ["inference.json", "train.json"])  # train.json first: the Model Zoo's convention
def test_evaluate_synthetic_noise_writes_metrics(data, tmp_path, base):
    workflow = _workflow(
        [base, "evaluate.json"], "eval", **TINY, dataset_dir=str(data / "clean"), synthetic_sigma=0.1,
        sigma_data=0.1, ckpt_path=str(data / "tiny_model.pt"), output_dir=str(tmp_path),
    )
    assert workflow.check_properties() == []
    workflow.run()
    workflow.finalize()
    metrics = dict(line.split(",") for line in (tmp_path / "metrics.csv").read_text().splitlines())
    assert {"psnr", "ssim", "noisy_psnr", "residual_std_ratio"} <= set(metrics)
    assert 15 < float(metrics["noisy_psnr"]) < 25
    raw = (tmp_path / "psnr_raw.csv").read_text().splitlines()
    assert len(raw) == 3 and "ref-0.nii.gz" in raw[1]
    assert (tmp_path / "ref-0_noisy.nii.gz").is_file() and (tmp_path / "ref-0_denoised.nii.gz").is_file()


def test_embedded_default_inference_denoises_the_shipped_scan_from_the_cli(tmp_path):
    """`python -m monai.bundle run --config_file bundle/configs/inference.json` (output redirected)."""
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "bundle/configs/inference.json", "--output_dir", str(tmp_path)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = nib.load(tmp_path / "S0_10slices_denoised.nii.gz")
    assert output.shape[:3] == (128, 128, 10)
    report = json.loads((tmp_path / "S0_10slices_denoised.json").read_text())
    assert report["checkpoint"].endswith("bundle/models/model.pt")
    assert report["flips"] == 1  # the bundle default (10 s budget)
    # the shipped model removes noise: the residual is a sizeable part of sigma, and little noise is left
    assert report["no_reference"]["residual_std_ratio"] > 0.5
    assert report["no_reference"]["remaining_noise_ratio"] < 0.8  # the noisy input scores 1 by definition
