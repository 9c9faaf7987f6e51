"""Volumetric context (c2s_monai.context): channel order, edges, slice axis, the noise check, and what context buys."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from scipy import ndimage

from c2s_monai import C2SInferer, NoiseConditionedUNet, denoise, train
from c2s_monai.context import (
    AUTO,
    DEFAULT_CONTEXT_SLICES,
    check_context_slices,
    check_noise_independence,
    context_indices,
    context_offsets,
    context_stack,
    model_context_slices,
    noise_correlation,
    resolve_slice_axis,
)
from c2s_monai.data import training_loader
from c2s_monai.errors import InputError
from c2s_monai.inferers import denoising_record
from c2s_monai.transforms import CheckContextd, MoveSliceAxis, RandContextSliced, RandDropContextd

TINY = (8, 8, 16, 32, 64, 8)


def _slice_numbers(depth: int, channels: int = 1, size: int = 6) -> torch.Tensor:
    """A ``(C, size, size, depth)`` volume whose voxels hold ``100 c + z`` (contrast c, slice z)."""
    values = torch.arange(depth, dtype=torch.float32)[None, None, None, :] + 100 * torch.arange(channels, dtype=torch.float32)[:, None, None, None]
    return values.expand(channels, size, size, depth).clone()


# ----------------------------------------------------------------------- channel order and edges


def test_offsets_put_the_target_first_then_the_neighbours_in_order():
    assert context_offsets(0) == [0]
    assert context_offsets(2) == [0, -2, -1, 1, 2]


def test_interior_rows_are_the_target_and_its_neighbours():
    rows = context_indices(10, 2)
    assert rows.shape == (10, 5)
    for z in range(2, 8):
        assert rows[z].tolist() == [z, z - 2, z - 1, z + 1, z + 2]


def test_ends_are_reflected_about_the_end_slice():
    rows = context_indices(6, 2)
    assert rows[0].tolist() == [0, 2, 1, 1, 2]
    assert rows[5].tolist() == [5, 3, 4, 4, 3]


@pytest.mark.parametrize("depth", range(2, 12))
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_no_neighbour_is_the_target_slice_itself(depth, k):
    rows = context_indices(depth, k)
    assert rows.min() >= 0 and rows.max() < depth
    assert bool((rows[:, 0] == torch.arange(depth)).all())
    assert not bool((rows[:, 1:] == rows[:, :1]).any()), rows


def test_stack_orders_channels_per_contrast_target_first():
    volume = _slice_numbers(depth=8, channels=2)
    inputs = context_stack(volume, context_indices(8, 1)[3:5], 1)
    assert inputs.shape == (2, 6, 6, 6)
    assert inputs[:, :, 0, 0].tolist() == [[3, 2, 4, 103, 102, 104], [4, 3, 5, 104, 103, 105]]


def test_a_single_slice_gets_zero_context_the_2d_fallback():
    volume = _slice_numbers(depth=1) + 7
    inputs = context_stack(volume, context_indices(1, 2), 2)
    assert inputs[0, 0].unique().tolist() == [7.0]
    assert not bool(inputs[0, 1:].any())


def test_training_patch_holds_its_slice_and_neighbours():
    volume = _slice_numbers(depth=9, size=8)
    transform = RandContextSliced("image", 2)
    transform.set_random_state(seed=3)
    seen = set()
    for _ in range(30):
        patch = transform({"image": volume})["image"]
        z = int(patch[0, 0, 0])
        seen.add(z)
        assert patch.shape == (5, 8, 8)
        assert patch[:, 0, 0].tolist() == [float(v) for v in context_indices(9, 2)[z]]
    assert len(seen) > 5  # target slices are drawn across the volume


def test_context_dropout_zeroes_the_context_and_keeps_every_target():
    patch = torch.arange(1, 11, dtype=torch.float32)[:, None, None].expand(10, 4, 4).clone()  # 2 contrasts x (2K+1 = 5)
    dropped = RandDropContextd("image", 2, prob=1.0)({"image": patch})["image"]
    assert dropped[:, 0, 0].tolist() == [1, 0, 0, 0, 0, 6, 0, 0, 0, 0]
    kept = RandDropContextd("image", 2, prob=0.0)({"image": patch})["image"]
    assert torch.equal(kept, patch)


def test_training_loader_stacks_context_with_reflected_ends(tmp_path):
    volume = np.tile(np.arange(7, dtype=np.float32)[None, None], (40, 40, 1)) + 10
    volume[0, 0, 0] = 0  # not constant per slice is not needed, but keep the scale away from the values
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "v.nii.gz")
    loader = training_loader([str(tmp_path / "v.nii.gz")], 1.0, patch_size=16, batch_size=8, iterations_per_epoch=3,
                             context_slices=2, context_dropout=0.0, slice_axis=2)
    for batch in loader:
        values = (batch["image"][:, :, 8, 8] * batch["intensity_scale"][:, None]).round() - 10
        for row in values.long():
            assert row.tolist() == context_indices(7, 2)[int(row[0])].tolist()


# ------------------------------------------------------------------------------------ settings


@pytest.mark.parametrize(("value", "expected"), [("auto", AUTO), ("AUTO", AUTO), (0, 0), (3, 3), ("2", 2), (2.0, 2)])
def test_context_settings(value, expected):
    assert check_context_slices(value) == expected


@pytest.mark.parametrize("value", [-1, 1.5, "two", None, True])
def test_bad_context_settings_say_what_is_expected(value):
    with pytest.raises(InputError, match="context_slices must be 'auto' or an integer >= 0"):
        check_context_slices(value)


def test_a_3d_network_takes_no_slice_context():
    assert model_context_slices(2, AUTO) == DEFAULT_CONTEXT_SLICES
    assert model_context_slices(3, AUTO) == 0
    with pytest.raises(InputError, match="for 2D networks"):
        model_context_slices(3, 2)
    with pytest.raises(InputError, match="spatial_dims must be 2"):
        model_context_slices(4, 0)


@pytest.mark.parametrize(
    ("spacing", "axis"),
    [((0.5, 0.5, 5.0), 2), ((5.0, 0.5, 0.5), 0), ((0.9, 3.0, 0.9), 1), ((1.0, 1.0, 1.0), 2), (None, 2), ((2.0, 2.0, 1.0), 1)],
)
def test_slice_axis_is_the_axis_of_largest_spacing(spacing, axis):
    assert resolve_slice_axis("auto", spacing) == axis


def test_a_single_image_is_its_own_slice_whatever_its_spacing():
    assert resolve_slice_axis("auto", (1.0, 1.0, 0.8), shape=(40, 40, 1)) == 2
    assert resolve_slice_axis("auto", (3.0, 1.0, 1.0), shape=(1, 40, 40)) == 0
    assert resolve_slice_axis("auto", (1.0, 1.0, 0.8), shape=(40, 40, 6)) == 1  # a volume: the largest spacing


def test_an_explicit_slice_axis_overrides_the_spacing():
    assert resolve_slice_axis(0, (0.5, 0.5, 5.0)) == 0
    assert resolve_slice_axis(-1, None) == 2
    with pytest.raises(InputError, match="slice_axis must be 'auto'"):
        resolve_slice_axis(3)


def test_move_slice_axis_uses_the_affine(tmp_path):
    from monai.data import MetaTensor

    image = MetaTensor(torch.zeros(1, 4, 5, 6), affine=torch.diag(torch.tensor([5.0, 0.5, 0.5, 1.0])))
    assert MoveSliceAxis("auto")(image).shape == (1, 5, 6, 4)
    assert MoveSliceAxis(2)(image).shape == (1, 4, 5, 6)


# ------------------------------------------------------------------------------ the noise check


def _noisy_volume(shape=(64, 64, 24), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.random(shape), 3)
    return (smooth / smooth.max() + 0.05 * rng.standard_normal(shape)).astype(np.float32)


def test_iid_noise_passes_the_independence_check():
    record = check_noise_independence(_noisy_volume(), "iid.nii.gz")
    assert record["independent"] is True
    assert abs(record["across_slices"]) < 0.1 and max(abs(v) for v in record["in_plane"]) < 0.1


def test_interpolated_slices_fail_the_independence_check(caplog):
    interpolated = ndimage.zoom(_noisy_volume(), (1, 1, 2), order=1)  # every other slice the mean of two
    with caplog.at_level("WARNING"):
        record = check_noise_independence(interpolated, "resampled.nii.gz")
    assert record["independent"] is False and record["across_slices"] > 0.5
    assert "resampled.nii.gz" in caplog.text and "neighbouring slices is correlated" in caplog.text


def test_zero_filled_slices_are_flagged_in_plane(caplog):
    noisy = _noisy_volume((48, 48, 4))
    spectrum = np.fft.fftshift(np.fft.fft2(noisy, axes=(0, 1)), axes=(0, 1))
    padded = np.pad(spectrum, ((24, 24), (24, 24), (0, 0)))
    zero_filled = np.abs(np.fft.ifft2(np.fft.ifftshift(padded, axes=(0, 1)), axes=(0, 1)))
    with caplog.at_level("WARNING"):
        record = check_noise_independence(zero_filled, "zf.nii.gz")
    assert min(record["in_plane"]) > 0.3 and record["independent"] is False
    assert "within each slice" in caplog.text


def test_noise_correlation_of_a_single_image_has_no_slice_value():
    values = noise_correlation(_noisy_volume((40, 40, 1))[..., 0])
    assert len(values) == 2 and all(abs(v) < 0.1 for v in values)


# ---------------------------------------------------------------------------- the inferer


def _context_network(k: int = 2) -> NoiseConditionedUNet:
    torch.manual_seed(0)
    return NoiseConditionedUNet(features=TINY, context_slices=k).eval()


def test_inferer_records_the_context_and_the_fallback():
    volume = torch.from_numpy(_noisy_volume((32, 32, 6)))[None, None]
    inferer = C2SInferer(sigma_data=0.05, check_noise=True)
    output = inferer(volume, _context_network())
    assert output.shape == volume.shape
    info = denoising_record(output)["volume"]
    assert info["context_slices"] == 2 and info["context"] == "reflected at the ends" and info["slice_axis"] == 2
    assert info["noise_correlation"]["independent"] is True
    single = volume[..., 0]
    output = inferer(single, _context_network())
    assert output.shape == single.shape
    assert denoising_record(output)["volume"]["context"].startswith("2D fallback")


def test_an_explicit_context_is_refused_for_a_single_image():
    single = torch.from_numpy(_noisy_volume((32, 32, 1)))[None, None, ..., 0]
    with pytest.raises(InputError, match="a single 2D image, so there are no neighbouring slices"):
        C2SInferer(sigma_data=0.05, context_slices=2)(single, _context_network())


def test_an_explicit_context_must_be_the_networks():
    volume = torch.from_numpy(_noisy_volume((32, 32, 6)))[None, None]
    with pytest.raises(InputError, match="the input image: context_slices=1 was asked for, but the network takes 2 slices on each side"):
        C2SInferer(sigma_data=0.05, context_slices=1)(volume, _context_network(2))


def test_slice_axis_is_moved_and_moved_back():
    volume = torch.from_numpy(_noisy_volume((32, 32, 6)))[None, None]
    network = _context_network()
    along_z = C2SInferer(sigma_data=0.05, slice_axis=2, check_noise=False)(volume, network)
    transposed = C2SInferer(sigma_data=0.05, slice_axis=0, check_noise=False)(volume.permute(0, 1, 4, 2, 3), network)
    assert transposed.shape == (1, 1, 6, 32, 32)
    torch.testing.assert_close(transposed.permute(0, 1, 3, 4, 2), along_z, atol=1e-5, rtol=1e-4)


def test_a_3d_network_denoises_volumes_with_a_bounded_window():
    torch.manual_seed(0)
    network = NoiseConditionedUNet(spatial_dims=3, features=TINY).eval()
    volume = torch.from_numpy(_noisy_volume((40, 36, 20)))[None, None]
    inferer = C2SInferer(sigma_data=0.05, volume_roi_size=(32, 32, 32), check_noise=False)
    out = inferer(volume, network)
    assert out.shape == volume.shape and bool(torch.isfinite(out).all())
    assert denoising_record(out)["volume"]["context"] == "native 3D"
    with pytest.raises(InputError, match="a 3D network needs a volume"):
        inferer(volume[..., 0], network)
    with pytest.raises(InputError, match="context_slices=2 is for 2D networks"):
        C2SInferer(sigma_data=0.05, context_slices=2, check_noise=False)(volume, network)


# --------------------------------------------------------------------- training and what it buys


def test_explicit_context_refuses_a_single_image_for_training(tmp_path):
    image = torch.zeros(1, 16, 16, 1)
    with pytest.raises(InputError, match="context_slices=2"):
        CheckContextd("image", 2, check_noise=False)({"image": image})
    assert CheckContextd("image", AUTO, check_noise=False)({"image": image})["image"] is image
    with pytest.raises(InputError, match="a 3D network needs volumes"):
        CheckContextd("image", AUTO, check_noise=False, spatial_dims=3)({"image": image})


def test_train_records_the_context_and_denoise_follows_it(tmp_path):
    noisy = _noisy_volume((48, 48, 8))
    nib.save(nib.Nifti1Image(noisy, np.diag([1.0, 1.0, 3.0, 1.0])), tmp_path / "scan.nii.gz")
    model = train([tmp_path / "scan.nii.gz"], tmp_path / "run", sigma_data=0.05, epochs=1, iterations_per_epoch=2, patch_size=32,
                  batch_size=2, features=TINY, progress=False)
    config = json.loads((tmp_path / "run" / "model_config.json").read_text())
    assert config["network"]["context_slices"] == DEFAULT_CONTEXT_SLICES and config["training"]["context_slices"] == "auto"
    output = denoise(tmp_path / "scan.nii.gz", model)
    assert nib.load(output).shape == noisy.shape
    nib.save(nib.Nifti1Image(noisy[..., 0], np.eye(4)), tmp_path / "single.nii.gz")
    assert nib.load(denoise(tmp_path / "single.nii.gz", model)).shape == noisy.shape[:2]
    with pytest.raises(InputError, match="single.nii.gz: a single 2D image"):
        denoise(tmp_path / "single.nii.gz", model, tmp_path / "never.nii.gz", context_slices=2)
    assert not (tmp_path / "never.nii.gz").exists()


@pytest.mark.parametrize(
    "args",
    [{"context_slices": 2}, {"context_slices": 0}, {"spatial_dims": 3}, {"context_slices": 1, "conditioning": "map+film"},
     {"context_slices": 3, "conditioning": "film"}],
)
def test_load_network_reads_a_bundle_checkpoints_layout_off_its_weights(tmp_path, args):
    """No model_config.json beside the weights (a bundle checkpoint): dimensions, context and conditioning come from them."""
    from c2s_monai import load_network

    torch.save(NoiseConditionedUNet(**args).state_dict(), tmp_path / "model.pt")
    network = load_network(tmp_path / "model.pt")
    expected = {"spatial_dims": 2, "context_slices": 0, "conditioning": "map", **args}
    conditioning = {(True, False): "map", (False, True): "film", (True, True): "map+film"}[(network.use_map, network.use_film)]
    assert {"spatial_dims": network.spatial_dims, "context_slices": network.context_slices, "conditioning": conditioning} == expected


def test_load_network_takes_the_contrasts_of_a_multicontrast_bundle_checkpoint(tmp_path):
    from c2s_monai import load_network
    from c2s_monai.multicontrast import write_channel_order

    torch.save(NoiseConditionedUNet(in_channels=3, context_slices=2).state_dict(), tmp_path / "model.pt")
    write_channel_order(tmp_path / "model.pt", ["t1", "t2", "pd"])  # 15 + 1 input channels: 3 contrasts with K = 2, not K = 7
    network = load_network(tmp_path / "model.pt")
    assert (network.in_channels, network.context_slices) == (3, 2)


def _train_toy(file, k: int, sigma: float, steps: int = 150) -> torch.nn.Module:
    """A small network trained with C2S on ``file`` for ``steps`` steps with ``k`` context slices; its EMA weights."""
    from c2s_monai.engines import create_trainer
    from c2s_monai.losses import GDSMLoss

    torch.manual_seed(0)
    loader = training_loader([str(file)], sigma, patch_size=32, batch_size=8, iterations_per_epoch=steps, context_slices=k, slice_axis=2)
    network = NoiseConditionedUNet(features=(16, 16, 32, 64, 128, 16), context_slices=k)
    trainer, ema = create_trainer(network, GDSMLoss(), loader, epochs=1, iterations_per_epoch=steps, learning_rate=4e-3,
                                  warmup_iterations=10, autocast_dtype="float32")
    trainer.run()
    return ema.ema_model


def test_context_beats_2d_when_the_neighbours_carry_the_signal(tmp_path, one_thread, psnr_fn):
    """A volume whose slices repeat one image: the neighbours' independent noise averages out, which 2D cannot do."""
    rng = np.random.default_rng(0)
    image = ndimage.gaussian_filter(rng.random((40, 40)), 1.0)
    image = (image - image.min()) / (image.max() - image.min())
    clean = np.repeat(image[..., None], 12, axis=-1).astype(np.float32)
    sigma = 0.15
    noisy = (clean + sigma * rng.standard_normal(clean.shape)).astype(np.float32)
    nib.save(nib.Nifti1Image(noisy, np.eye(4)), tmp_path / "toy.nii.gz")
    scores = {}
    for k in (0, 2):
        network = _train_toy(tmp_path / "toy.nii.gz", k, sigma)
        estimate = C2SInferer(sigma_data=sigma, percentile=99.5, autocast_dtype="float32", check_noise=False)(
            torch.from_numpy(noisy)[None, None], network)[0, 0].numpy()
        scores[k] = psnr_fn(clean, estimate)
    noisy_psnr = psnr_fn(clean, noisy)
    assert scores[0] > noisy_psnr + 2, scores
    assert scores[2] > scores[0] + 1.5, (scores, noisy_psnr)


# ----------------------------------------------------------------------- the ONNX Runtime backend


def test_onnxruntime_backend_matches_eager_and_exports_once(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    monkeypatch.setenv("C2S_MONAI_CACHE", str(tmp_path / "cache"))
    network = _context_network()
    volume = torch.from_numpy(_noisy_volume((40, 36, 5)))[None, None]
    eager = C2SInferer(sigma_data=0.05, backend="torch", autocast_dtype="float32", check_noise=False)
    exported = C2SInferer(sigma_data=0.05, backend="onnxruntime", check_noise=False)
    expected, result = eager(volume, network), exported(volume, network)
    torch.testing.assert_close(result.as_tensor(), expected.as_tensor(), atol=1e-4, rtol=1e-4)
    assert denoising_record(result)["volume"]["backend"] == "onnxruntime (float32)"
    assert denoising_record(expected)["volume"]["backend"] == "torch (float32)"
    files = list((tmp_path / "cache").glob("*.onnx"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    C2SInferer(sigma_data=0.05, backend="onnxruntime", check_noise=False)(volume, network)  # a new inferer: the cached file
    assert [f.stat().st_mtime_ns for f in (tmp_path / "cache").glob("*.onnx")] == [stamp]


def test_auto_backend_uses_onnxruntime_only_without_native_bfloat16(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from c2s_monai import inferers

    monkeypatch.setenv("C2S_MONAI_CACHE", str(tmp_path / "cache"))
    volume = torch.from_numpy(_noisy_volume((32, 32, 4)))[None, None]
    inferer = C2SInferer(sigma_data=0.05, check_noise=False, autocast_dtype="auto")
    monkeypatch.setattr(inferers, "autocast_dtype", lambda name, device: torch.bfloat16)  # a CPU with native bfloat16
    assert denoising_record(inferer(volume, _context_network()))["volume"]["backend"] == "torch (bfloat16)"
    monkeypatch.setattr(inferers, "autocast_dtype", lambda name, device: None)  # one without
    assert denoising_record(inferer(volume, _context_network()))["volume"]["backend"] == "onnxruntime (float32)"
    explicit = C2SInferer(sigma_data=0.05, check_noise=False, autocast_dtype="float32")  # asked for eager float32
    assert denoising_record(explicit(volume, _context_network()))["volume"]["backend"] == "torch (float32)"


def test_every_volumetric_case_is_documented():
    from pathlib import Path

    documented = (Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md").read_text()
    cases = ["context_on_a_2d_image", "context_other_network", "context_setting", "slice_axis_setting", "context_with_3d",
             "3d_network_2d_image", "correlated_noise"]
    missing = [case for case in cases if f"`{case}`" not in documented]
    assert not missing, f"docs/bad-inputs.md does not list {missing}"
