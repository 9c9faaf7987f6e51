"""Per-voxel noise maps and the data's noise model (issue 18, docs/method.md section 10) through every front door.

The Python API (``denoise``, ``denoise_files``, ``train``), the bundle (``inference.json``,
``train.json``; in process with ``create_workflow`` and once as ``python -m monai.bundle run``),
the MONAI Label task and the multi-contrast datalists: ``sigma_map`` given (a map file on the
image grid, image units) or ``"auto"`` (estimated), the ``<output name>_noise_map.nii.gz`` written
beside every output, the report's ``noise`` entry, bad maps refused before anything is written,
``noise_model`` "auto" and the magnitude VST, and the GDSM loss with a map. Tiny networks, CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import create_workflow
from torch import nn

import c2s_monai
from c2s_monai.api.models import trained_noise_settings
from c2s_monai.context import DEFAULT_CONTEXT_SLICES
from c2s_monai.errors import InputError
from c2s_monai.inferers import C2SInferer, denoising_noise_map, denoising_record
from c2s_monai.losses import GDSMLoss
from c2s_monai.naming import noise_map_path
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.noise import add_noise

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
TINY = [8, 8, 16, 32, 64, 8]
TINY_INFER = {"features": TINY, "flips": 1, "slice_batch": 4}
TINY_TRAIN = {**TINY_INFER, "max_epochs": 1, "iterations_per_epoch": 2, "batch_size": 2, "patch_size": 32, "warmup_iterations": 1, "max_val_volumes": 1}
SHAPE = (40, 36, 3)
SIGMA = 40.0  # image units: 0.05 of the 800 peak
AFFINE = np.array([[0.0, -1.1, 0.0, 20.0], [0.9, 0.0, 0.0, -10.0], [0.0, 0.0, 3.0, 5.0], [0.0, 0.0, 0.0, 1.0]])

pytestmark = pytest.mark.usefixtures("one_thread")


def _phantom(shape=SHAPE) -> np.ndarray:
    """Two ellipses in [0, 1] on a dark background, the same in every slice."""
    x, y = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    head = ((x / 0.8) ** 2 + (y / 0.7) ** 2 < 1).astype(np.float32) * 0.6
    head += ((x / 0.3) ** 2 + (y / 0.25) ** 2 < 1).astype(np.float32) * 0.4
    return np.repeat(head[..., None], shape[2], axis=-1)


def _given_map(shape=SHAPE) -> np.ndarray:
    """A smooth positive map (image units): SIGMA in the middle, twice that at one edge (a g-factor-like ramp)."""
    ramp = np.linspace(0.75, 1.5, shape[0], dtype=np.float32)[:, None, None]
    return np.broadcast_to(SIGMA * ramp, shape).astype(np.float32).copy()


def _save(path: Path, array, affine=AFFINE) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(array, np.float32), affine), str(path))
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _cause(error: BaseException, kind: type) -> BaseException:
    """The ``kind`` error in ``error``'s chain (MONAI wraps errors of config expressions)."""
    seen = error
    while seen is not None and not isinstance(seen, kind):
        seen = seen.__cause__ or seen.__context__
    assert seen is not None, f"no {kind.__name__} in the chain of {error!r}"
    return seen


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, Path]:
    """A noisy (Gaussian, signed) scan, a second one, a good map on their grid, and the bad maps."""
    root = tmp_path_factory.mktemp("noise_maps")
    rng = np.random.default_rng(0)
    clean = _phantom() * 800
    (root / "in").mkdir()
    (root / "maps").mkdir()
    files = {
        "scan": _save(root / "in" / "scan.nii.gz", clean + rng.normal(0, SIGMA, SHAPE)),
        "other": _save(root / "in" / "other.nii.gz", clean + rng.normal(0, SIGMA, SHAPE)),
        "map": _save(root / "maps" / "good_map.nii.gz", _given_map()),
    }
    bad = {
        "other_shape": (_given_map((40, 36, 4)), AFFINE),
        "other_affine": (_given_map(), AFFINE + np.array([[0, 0, 0, 5.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])),
        "nan": (np.where(np.arange(np.prod(SHAPE)).reshape(SHAPE) == 7, np.nan, _given_map()), AFFINE),
        "zero": (np.where(np.arange(np.prod(SHAPE)).reshape(SHAPE) < 3, 0.0, _given_map()), AFFINE),
        "negative": (np.where(np.arange(np.prod(SHAPE)).reshape(SHAPE) == 5, -2.0, _given_map()), AFFINE),
    }
    for case, (array, affine) in bad.items():
        files[case] = _save(root / "maps" / f"{case}_map.nii.gz", array, affine)
    model_dir = root / "model"
    model_dir.mkdir()
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=TINY, context_slices=DEFAULT_CONTEXT_SLICES).state_dict(), model_dir / "model.pt")
    (model_dir / "model_config.json").write_text(json.dumps({"network": {"features": TINY, "context_slices": DEFAULT_CONTEXT_SLICES}}))
    files["model"] = model_dir / "model.pt"
    return files


BAD_MAPS = [
    ("other_shape", ["is not on the grid of", "(40, 36, 4)", "resample it"]),
    ("other_affine", ["affine differs", "resample it"]),
    ("nan", ["NaN or Inf"]),
    ("zero", ["zero or negative"]),
    ("negative", ["zero or negative", "min -2"]),
]


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch):
    monkeypatch.chdir(REPO)  # the bundle resolves its configs from the repository root


def _workflow(configs, workflow_type, **override):
    return create_workflow(config_file=[str(CONFIGS / name) for name in configs], workflow_type=workflow_type, logging_file=False, **override)


# ------------------------------------------------------------------ 1. API denoise with a map


def test_denoise_with_a_given_map_writes_it_beside_the_output_and_reports_it(scans, tmp_path):
    output = c2s_monai.denoise(scans["scan"], scans["model"], tmp_path / "scan_denoised.nii.gz", flips=1, sigma_map=scans["map"])
    assert output == tmp_path / "scan_denoised.nii.gz" and nib.load(output).shape == SHAPE
    written = noise_map_path(output)
    assert written == tmp_path / "scan_denoised_noise_map.nii.gz"
    saved = nib.load(written)
    # the map used is the given one, in the image's units, on the image's grid
    np.testing.assert_allclose(saved.get_fdata(), _given_map(), rtol=1e-5)
    np.testing.assert_allclose(saved.affine, AFFINE, atol=1e-5)
    report = json.loads((tmp_path / "scan_denoised.json").read_text())
    noise = report["noise"]
    assert noise["sigma_map"] == "given"
    assert noise["noise_model"] == "gaussian" and noise["vst"] is False  # signed data
    assert noise["sigma_map_min"] == pytest.approx(0.75 * SIGMA, rel=1e-4)
    assert noise["sigma_map_max"] == pytest.approx(1.5 * SIGMA, rel=1e-4)
    assert report["sigma_data"] == pytest.approx(float(torch.as_tensor(_given_map()).median()), rel=1e-5)  # the map's (lower) median
    assert (tmp_path / "scan_denoised_qa.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_denoise_with_an_estimated_map_and_with_none(scans, tmp_path):
    output = c2s_monai.denoise(scans["scan"], scans["model"], tmp_path / "auto" / "scan_denoised.nii.gz", flips=1, sigma_map="auto")
    report = json.loads((tmp_path / "auto" / "scan_denoised.json").read_text())
    assert report["noise"]["sigma_map"].startswith("estimated")
    estimated = nib.load(noise_map_path(output)).get_fdata()
    assert estimated.shape == SHAPE and np.isfinite(estimated).all() and (estimated > 0).all()
    assert 0.5 * SIGMA < float(np.median(estimated)) < 2 * SIGMA  # the true std is SIGMA everywhere
    assert report["noise"]["sigma_map_median"] == pytest.approx(float(torch.as_tensor(estimated).median()), rel=1e-4)
    assert (tmp_path / "auto" / "scan_denoised_qa.png").is_file()

    uniform = c2s_monai.denoise(scans["scan"], scans["model"], tmp_path / "none" / "scan_denoised.nii.gz", flips=1, sigma_map="none", sigma_data=33.0)
    constant = nib.load(noise_map_path(uniform)).get_fdata()
    np.testing.assert_allclose(constant, 33.0, rtol=1e-5)  # a uniform level is written as a constant map
    assert json.loads((tmp_path / "none" / "scan_denoised.json").read_text())["noise"]["sigma_map"] == "none (uniform)"


# ------------------------------------------------------------------ 2. API train with a map, denoise follows it


@pytest.mark.parametrize("how", ["auto", "given"])
def test_train_records_the_map_setting_and_denoise_follows_it(scans, tmp_path, how):
    sigma_map = "auto" if how == "auto" else str(scans["map"])
    model = c2s_monai.train(
        [scans["scan"]], tmp_path / "run", epochs=1, iterations_per_epoch=2, batch_size=2, patch_size=32, warmup_iterations=1,
        features=TINY, progress=False, sigma_map=sigma_map,
    )
    training = json.loads((tmp_path / "run" / "model_config.json").read_text())["training"]
    assert training["sigma_map"] == how
    assert training["noise_model"] == "auto"
    assert trained_noise_settings(model)["sigma_map"] == "auto"  # a map-trained model denoises with an estimated map
    output = c2s_monai.denoise(scans["other"], model, tmp_path / "other_denoised.nii.gz", flips=1)
    report = json.loads((tmp_path / "other_denoised.json").read_text())
    assert report["noise"]["sigma_map"].startswith("estimated")
    assert noise_map_path(output).is_file()


# ------------------------------------------------------------------ 3. bad maps: one error, nothing written


@pytest.mark.parametrize(("case", "fragments"), BAD_MAPS, ids=[c[0] for c in BAD_MAPS])
def test_bad_map_through_the_api_names_the_map_and_writes_nothing(scans, tmp_path, case, fragments):
    with pytest.raises(InputError) as raised:
        c2s_monai.denoise(scans["scan"], scans["model"], tmp_path / "out" / "scan_denoised.nii.gz", flips=1, sigma_map=scans[case])
    message = str(raised.value)
    assert f"{case}_map.nii.gz" in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert _files(tmp_path) == []


@pytest.mark.parametrize(("case", "fragments"), BAD_MAPS, ids=[c[0] for c in BAD_MAPS])
def test_bad_map_through_the_bundle_fails_the_input_and_writes_no_output(scans, tmp_path, case, fragments):
    workflow = _workflow(
        ["inference.json"], "infer", **TINY_INFER, dataset_dir=str(scans["scan"]), ckpt_path=str(scans["model"]),
        output_dir=str(tmp_path / "out"), sigma_map=str(scans[case]),
    )
    with pytest.raises(SystemExit) as raised:
        workflow.run()
    assert "1 of 1 inputs failed" in str(raised.value) and f"{case}_map.nii.gz" in str(raised.value)
    assert _files(tmp_path / "out") == ["summary.json"]  # no output, no map, no report, no figure
    result = json.loads((tmp_path / "out" / "summary.json").read_text())["results"][0]
    assert result["status"] == "failed" and result["error"] == "InputError"
    assert f"{case}_map.nii.gz" in result["message"]
    for fragment in fragments:
        assert fragment in result["message"], result["message"]


def test_every_bad_map_message_names_the_image_it_was_checked_against(scans, tmp_path):
    """Issue 18: a bad map is one InputError naming the map file *and* the image.

    Fails at 8cbce85 for the NaN/Inf and zero/negative cases: ``check_noise_map``
    (c2s_monai/noise_level.py) names the image (``source``) only in its two grid messages.
    """
    missing = {}
    for case, _ in BAD_MAPS:
        with pytest.raises(InputError) as raised:
            c2s_monai.denoise(scans["scan"], scans["model"], tmp_path / "out" / "scan_denoised.nii.gz", flips=1, sigma_map=scans[case])
        if "scan.nii.gz" not in str(raised.value):
            missing[case] = str(raised.value)
    assert not missing, f"messages that do not name the image scan.nii.gz: {missing}"


def test_bad_map_from_the_bundle_command_line_ends_with_the_message(scans, tmp_path):
    """``python -m monai.bundle run ... --sigma_map <NaN map>``: exit status 1, the map named last, nothing but the summary written."""
    command = [
        sys.executable, "-m", "monai.bundle", "run", "--config_file", "bundle/configs/inference.json",
        "--dataset_dir", str(scans["scan"]), "--ckpt_path", str(scans["model"]), "--output_dir", str(tmp_path / "out"),
        "--features", json.dumps(TINY), "--flips", "1", "--sigma_map", str(scans["nan"]),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    last = (result.stdout + result.stderr).strip().splitlines()[-4:]
    assert any("nan_map.nii.gz" in line and "NaN or Inf" in line for line in last), last
    assert _files(tmp_path / "out") == ["summary.json"]


def test_a_map_file_with_several_inputs_is_refused_before_anything_is_written(scans, tmp_path):
    with pytest.raises(ValueError, match=r"good_map\.nii\.gz: a map file fits one input's grid, and 2 inputs were given"):
        c2s_monai.denoise_files([scans["scan"], scans["other"]], scans["model"], tmp_path / "api", flips=1, sigma_map=scans["map"])
    assert _files(tmp_path / "api") == []
    workflow = _workflow(
        ["inference.json"], "infer", **TINY_INFER, dataset_dir=str(scans["scan"].parent), ckpt_path=str(scans["model"]),
        output_dir=str(tmp_path / "bundle"), sigma_map=str(scans["map"]),
    )
    with pytest.raises(Exception) as raised:
        workflow.run()
    assert "a map file fits one input's grid, and the datalist holds 2 inputs" in str(_cause(raised.value, ValueError))
    assert _files(tmp_path / "bundle") == []


def test_a_missing_map_file_is_refused(scans, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent_map\.nii\.gz: the noise map \(sigma_map\) does not exist"):
        c2s_monai.denoise(scans["scan"], scans["model"], tmp_path / "out" / "x.nii.gz", sigma_map=tmp_path / "absent_map.nii.gz")
    assert _files(tmp_path) == []


# ------------------------------------------------------------------ 4. the bundle with a map


@pytest.mark.parametrize("how", ["auto", "given"])
def test_bundle_inference_writes_the_map_beside_the_output_and_the_noise_entry(scans, tmp_path, how):
    workflow = _workflow(
        ["inference.json"], "infer", **TINY_INFER, dataset_dir=str(scans["scan"]), ckpt_path=str(scans["model"]),
        output_dir=str(tmp_path), sigma_map="auto" if how == "auto" else str(scans["map"]),
    )
    workflow.run()
    workflow.finalize()
    assert {"scan_denoised.nii.gz", "scan_denoised_noise_map.nii.gz", "scan_denoised.json", "scan_denoised_qa.png"} <= set(_files(tmp_path))
    saved = nib.load(tmp_path / "scan_denoised_noise_map.nii.gz")
    np.testing.assert_allclose(saved.affine, AFFINE, atol=1e-5)
    noise = json.loads((tmp_path / "scan_denoised.json").read_text())["noise"]
    assert {"noise_model", "num_coils", "reason", "sigma_map", "vst"} <= set(noise)
    if how == "given":
        assert noise["sigma_map"] == "given"
        np.testing.assert_allclose(saved.get_fdata(), _given_map(), rtol=1e-5)
    else:
        assert noise["sigma_map"].startswith("estimated")
        assert 0.5 * SIGMA < float(np.median(saved.get_fdata())) < 2 * SIGMA


def test_bundle_training_with_an_estimated_map(scans, tmp_path):
    settings = {**TINY_TRAIN, "bundle_root": str(tmp_path), "dataset_dir": str(scans["scan"]), "sigma_map": "auto"}
    workflow = _workflow(["train.json"], "train", **settings)
    item = workflow.parser.get_parsed_content("train#dataset")[0][0]  # the first patch of the first volume
    assert item["noise"]["sigma_map"].startswith("estimated")
    assert tuple(item["sigma_map"].shape[1:]) == tuple(item["image"].shape[1:])  # its context channels ride along
    assert bool((item["sigma_map"] > 0).all())
    workflow.run()
    workflow.finalize()
    assert (tmp_path / "models" / "model.pt").is_file()


def test_bundle_training_with_a_given_map_uses_it(scans, tmp_path):
    """``train.json --sigma_map <file>`` on a one-file dataset: the training patches must carry the given map.

    Fails at 8cbce85: train.json's ``train#datalist`` (``[{'image': f} for f in @datalist]``) gives the
    items no ``sigma_map`` key and ``ResolveNoiseLeveld`` gets ``sigma_map_mode(file) == 'none'``: the
    map file is silently ignored and training runs with a uniform level.
    """
    settings = {**TINY_TRAIN, "bundle_root": str(tmp_path), "dataset_dir": str(scans["scan"]), "sigma_map": str(scans["map"])}
    workflow = _workflow(["train.json"], "train", **settings)
    item = workflow.parser.get_parsed_content("train#dataset")[0][0]
    assert item["noise"]["sigma_map"] == "given", f"the given map was not used: noise = {item['noise']}"


# ------------------------------------------------------------------ 5. noise_model "auto" and the magnitude VST


def _two_regions(size=128, depth=16):
    """A bright disk (1.0) in air (0), the same in every slice, and its mask."""
    y, x = np.meshgrid(np.linspace(-1, 1, size), np.linspace(-1, 1, size), indexing="ij")
    disk = torch.as_tensor((x**2 + y**2) < 0.3**2)
    return disk.float().unsqueeze(-1).repeat(1, 1, depth), disk


class RegionMean(nn.Module):
    """An ideal piecewise-constant denoiser: each voxel of the target channel becomes the mean of its region (disk or air)."""

    def __init__(self, disk: torch.Tensor) -> None:
        super().__init__()
        self.disk = disk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        target = x[:, :1]
        out = torch.empty_like(target)
        for region in (self.disk, ~self.disk):
            out[:, :, region] = target[:, :, region].mean()
        return out


def test_auto_chooses_gaussian_for_signed_data_and_rician_for_magnitude_with_air():
    clean, disk = _two_regions(64, 4)
    generator = torch.Generator().manual_seed(0)
    signed = add_noise(clean.double(), 0.05, "gaussian", generator).float()
    magnitude = add_noise(clean.double(), 0.05, "rician", generator).float()
    inferer = C2SInferer(sigma_data=0.05, noise_model="auto", backend="torch", check_noise=False, slice_axis=2, slice_batch=4)
    gaussian = denoising_record(inferer(signed[None, None], RegionMean(disk)))["noise"]
    assert gaussian["noise_model"] == "gaussian" and gaussian["vst"] is False and "signed" in gaussian["reason"]
    rician = denoising_record(inferer(magnitude[None, None], RegionMean(disk)))["noise"]
    assert rician["noise_model"] == "rician" and rician["vst"] is True and rician["num_coils"] == 1
    assert "Rayleigh" in rician["reason"]


def test_the_vst_path_removes_the_rayleigh_bias_of_the_background_and_the_gaussian_path_keeps_it():
    sigma = 0.05
    clean, disk = _two_regions()
    noisy = add_noise(clean.double(), sigma, "rician", torch.Generator().manual_seed(0)).float()
    air = ~disk.unsqueeze(-1).expand_as(clean)
    means = {}
    for model in ("rician", "gaussian"):
        inferer = C2SInferer(sigma_data=sigma, noise_model=model, backend="torch", check_noise=False, slice_axis=2, slice_batch=16)
        result = inferer(noisy[None, None], RegionMean(disk))
        out = result[0, 0]
        means[model] = (float(out[air].mean()) / sigma, float(out[~air].mean()))
        level = denoising_noise_map(result)  # the uniform level, as a map on the image's grid (image units)
        assert tuple(level.shape) == (1, *clean.shape) and torch.allclose(level, torch.full_like(level, sigma))
    # the stabilised air averages to E[f(m) | 0] = 0.81 sigma: the exact unbiased inverse maps it back to ~0
    assert abs(means["rician"][0]) < 0.1, means
    assert means["rician"][1] == pytest.approx(1.0, abs=0.01), means
    # without the VST the magnitude's mean stays: sigma sqrt(pi / 2) = 1.25 sigma
    assert means["gaussian"][0] == pytest.approx(np.sqrt(np.pi / 2), abs=0.05), means


# ------------------------------------------------------------------ 6. the GDSM loss with a map


class LevelRecorder(nn.Module):
    """A fixed linear network that records the re-corrupted target and the level channel it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, 3, padding=1)
        torch.nn.init.constant_(self.conv.weight, 0.05)
        torch.nn.init.constant_(self.conv.bias, 0.01)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.conv(x)


def test_gdsm_with_a_constant_map_equals_the_scalar_level():
    noisy = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    loss = GDSMLoss()
    scalar = loss(LevelRecorder(), noisy, 0.07, generator=torch.Generator().manual_seed(5))
    mapped = loss(LevelRecorder(), noisy, torch.full((3, 1, 32, 32), 0.07), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(mapped, scalar, rtol=1e-6, atol=1e-9)
    per_sample = loss(LevelRecorder(), noisy, torch.tensor([0.07, 0.07, 0.07]), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(per_sample, scalar, rtol=1e-6, atol=1e-9)
    other = loss(LevelRecorder(), noisy, 0.14, generator=torch.Generator().manual_seed(5))
    assert not torch.isclose(other, scalar)  # the level matters


def test_gdsm_recorrupts_in_proportion_to_the_local_level():
    batch, size = 4, 64
    noisy = torch.zeros(batch, 1, size, size)
    level = torch.full((batch, 1, size, size), 0.02)
    level[..., size // 2 :] = 0.08  # a map four times higher on the right half
    network = LevelRecorder()
    GDSMLoss()(network, noisy, level, generator=torch.Generator().manual_seed(3))
    inputs = network.seen[0]
    x_tau, channel = inputs[:, :1], inputs[:, -1:]
    ratio = channel / level  # sigma_total / s_d = sqrt(1 + (tau / s_d)^2): one number per sample
    per_sample = ratio.flatten(1)
    torch.testing.assert_close(per_sample.min(dim=1).values, per_sample.max(dim=1).values, rtol=1e-5, atol=0)
    assert bool((per_sample[:, 0] > 1).all())
    assert per_sample[:, 0].unique().numel() == batch  # each sample draws its own tau
    # the added noise (noisy is 0, so x_tau is tau z) has a std four times larger where the map is
    tau = level * torch.sqrt(ratio**2 - 1)
    added_left, added_right = x_tau[..., : size // 2], x_tau[..., size // 2 :]
    for sample in range(batch):
        expected = float(tau[sample, 0, 0, -1] / tau[sample, 0, 0, 0])
        measured = float(added_right[sample].std() / added_left[sample].std())
        assert expected == pytest.approx(4.0, rel=1e-4)
        assert measured == pytest.approx(expected, rel=0.1)


# ------------------------------------------------------------------ 7. MONAI Label


def _monailabel():
    if os.environ.get("CI"):
        import monailabel  # noqa: F401
    else:
        pytest.importorskip("monailabel")
    from monailabel.interfaces.exception import MONAILabelError, MONAILabelException

    from c2s_monai.monailabel_adapter.task import BundleDenoiseTask

    return BundleDenoiseTask, MONAILabelError, MONAILabelException


def _magnitude_scan(path: Path) -> Path:
    return _save(path, np.abs(_phantom((48, 48, 3)) * 800 + np.random.default_rng(1).normal(0, SIGMA, (48, 48, 3))))


def test_monailabel_request_with_an_estimated_map_returns_one_image_and_the_noise_entry(tmp_path, monkeypatch):
    """A request ``{"sigma_map": "auto"}``: one denoised image (not the map) and the ``noise`` entry of an estimated map.

    The last assertion fails at 8cbce85: ``BundleDenoiseTask.inferer`` (c2s_monai/monailabel_adapter/task.py)
    reads the request options from ``data`` *after* the pre-transforms ran, and the bundle's
    ``LoadNoiseMapd`` (c2s_monai/transforms/dictionary.py) deletes a ``sigma_map`` key holding a mode
    (``"auto"``): the inferer is built with the config's ``sigma_map`` ("none"), and the request's
    ``"auto"`` is silently ignored (the result says ``"sigma_map": "none (uniform)"``).
    """
    BundleDenoiseTask, _, _ = _monailabel()
    monkeypatch.chdir(tmp_path)
    source = _magnitude_scan(tmp_path / "s0.nii.gz")
    task = BundleDenoiseTask(REPO / "bundle")
    result, result_json = task({"image": str(source), "device": "cpu", "flips": "1", "sigma_map": "auto"})
    try:
        assert isinstance(result, str) and result.endswith(".nii.gz")
        output = nib.load(result)
        assert output.shape == (48, 48, 3)
        # the denoised image, not the noise map (whose values are the noise std, ~SIGMA)
        assert float(np.max(output.get_fdata())) > 5 * max(result_json["noise"].get("sigma_map_max", 0), result_json["sigma_data"])
    finally:
        os.unlink(result)
    assert not list(Path(result).parent.glob("c2s_monailabel_*/*"))  # the request folder (with the map) is gone
    assert _files(tmp_path) == ["s0.nii.gz"]
    assert result_json["noise"]["sigma_map"].startswith("estimated"), f"the request's sigma_map 'auto' was not applied: {result_json['noise']}"


def test_monailabel_request_with_a_map_path_is_refused_before_loading(tmp_path, monkeypatch):
    BundleDenoiseTask, MONAILabelError, MONAILabelException = _monailabel()
    monkeypatch.chdir(tmp_path)
    source = _magnitude_scan(tmp_path / "s0.nii.gz")
    task = BundleDenoiseTask(REPO / "bundle")
    monkeypatch.setattr(task, "pre_transforms", lambda data=None: pytest.fail(f"loading {data}"))
    with pytest.raises(MONAILabelException) as raised:
        task({"image": str(source), "device": "cpu", "sigma_map": "/etc/passwd"})
    assert raised.value.error == MONAILabelError.INVALID_INPUT
    assert "sigma_map" in raised.value.msg and "/etc/passwd" in raised.value.msg and "nothing was denoised" in raised.value.msg
    assert _files(tmp_path) == ["s0.nii.gz"]


# ------------------------------------------------------------------ 8. multi-contrast: the subject's map


def test_multicontrast_subject_map_must_lie_on_the_targets_grid(scans, tmp_path):
    from c2s_monai.data import multicontrast_volume_transforms, training_loader
    from c2s_monai.multicontrast import load_datalist, target_items

    rng = np.random.default_rng(2)
    clean = _phantom() * 800
    for name in ("t1", "t2"):
        _save(tmp_path / f"{name}.nii.gz", clean + rng.normal(0, SIGMA, SHAPE))
    _save(tmp_path / "t1_map.nii.gz", _given_map())
    _save(tmp_path / "t1_map_other_grid.nii.gz", _given_map((40, 36, 4)))
    (tmp_path / "good.json").write_text(json.dumps([{"subject": "s", "t1": "t1.nii.gz", "t2": "t2.nii.gz", "sigma_map": "t1_map.nii.gz"}]))
    (tmp_path / "bad.json").write_text(json.dumps([{"subject": "s", "t1": "t1.nii.gz", "t2": "t2.nii.gz", "sigma_map": "t1_map_other_grid.nii.gz"}]))

    subjects = load_datalist(tmp_path / "good.json", ["t1", "t2"])
    assert subjects[0]["sigma_map"] == str(tmp_path / "t1_map.nii.gz")  # relative to the datalist
    item = multicontrast_volume_transforms(["t1", "t2"], SIGMA)(target_items(subjects, ["t1"])[0])
    assert item["noise"]["sigma_map"] == "given"

    bad = load_datalist(tmp_path / "bad.json", ["t1", "t2"])
    with pytest.raises(InputError) as raised:
        training_loader(bad, SIGMA, patch_size=32, batch_size=2, iterations_per_epoch=1, channels=["t1", "t2"])
    message = str(raised.value)
    assert "t1_map_other_grid.nii.gz" in message and "not on the grid of" in message, message


# ------------------------------------------------------------------ the documentation


NOISE_MAP_CASES = [
    "noise_map_other_shape", "noise_map_other_affine", "noise_map_nan", "noise_map_not_positive", "noise_map_several_inputs",
    "noise_map_missing", "noise_map_in_a_request", "noise_model_setting", "num_coils_setting",
]


def test_every_noise_map_case_is_documented(scans):
    documented = (REPO / "docs" / "bad-inputs.md").read_text()
    missing = [case for case in NOISE_MAP_CASES if f"`{case}`" not in documented]
    assert not missing, f"docs/bad-inputs.md does not list {missing}"
    # the grid messages are quoted as the code writes them (the folders in front of the names left out)
    for case in ("other_shape", "other_affine"):
        with pytest.raises(InputError) as raised:
            c2s_monai.denoise(scans["scan"], scans["model"], scans["scan"].parent / "never.nii.gz", sigma_map=scans[case])
        quoted = str(raised.value).replace(f"{scans[case].parent}/", "").replace(f"{scans['scan'].parent}/", "")
        assert f"`{quoted}`" in documented, quoted


def test_multicontrast_maps_go_to_their_own_contrast(tmp_path):
    from c2s_monai.errors import InputError
    from c2s_monai.multicontrast import load_datalist, target_items

    datalist = tmp_path / "subjects.json"
    datalist.write_text(json.dumps([{"subject": "s1", "t1": "t1.nii.gz", "t2": "t2.nii.gz", "sigma_map_t1": "t1_map.nii.gz"}]))
    subjects = load_datalist(datalist)
    assert [s for s in subjects[0] if s.startswith("t")] == ["t1", "t2"]  # a map key is not a contrast
    items = {item["target_contrast"]: item for item in target_items(subjects, ["t1", "t2"])}
    assert items["t1"]["sigma_map"] == str(tmp_path / "t1_map.nii.gz") and "sigma_map" not in items["t2"]
    plain = [{"subject": "s1", "t1": "a", "t2": "b", "sigma_map": "m"}]
    assert target_items(plain, ["t1"])[0]["sigma_map"] == "m"  # one target: the plain key is its map
    with pytest.raises(InputError, match="sigma_map_t1"):
        target_items(plain, ["t1", "t2"])  # several targets: whose map is it?
    with pytest.raises(ValueError, match="from the datalist"):
        target_items(subjects, ["t1"], sigma_map=str(tmp_path / "t1_map.nii.gz"))
