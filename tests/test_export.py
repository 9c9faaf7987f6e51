"""Deployment exports against the eager network: ONNX (c2s_monai.export) and TorchScript (monai.bundle ckpt_export).

The bare-network TorchScript check is in test_bundle.py; here both exported files also run
behind the inferer on a volume, as a deployment without the training code would.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ckpt_export

from c2s_monai import C2SInferer, NoiseConditionedUNet
from c2s_monai.cli import _export_onnx
from c2s_monai.context import DEFAULT_CONTEXT_SLICES
from c2s_monai.export import ONNX_OPSET, OnnxNetwork, export_onnx


def _require(module: str):
    """Import an optional dependency: skip without it locally, fail in CI (CI installs the test extra)."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


onnx = _require("onnx")
_require("onnxruntime")
_require("onnxscript")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundle" / "configs"
SHIPPED_MODEL = REPO / "bundle" / "models" / "model.pt"
TOLERANCE = 1e-4  # network outputs are in network units (images scaled to about [0, 1])


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def shipped():
    network = NoiseConditionedUNet(context_slices=DEFAULT_CONTEXT_SLICES)
    network.load_state_dict(torch.load(SHIPPED_MODEL, weights_only=True))
    return network.eval()


@pytest.fixture(scope="module")
def shipped_onnx(shipped, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = export_onnx(shipped, tmp_path_factory.mktemp("onnx") / "model.onnx")
    torch.set_num_threads(threads)
    return path


def _inputs(batch: int, height: int, width: int, sigma: float = 0.006, seed: int = 0, channels: int = 1 + 2 * DEFAULT_CONTEXT_SLICES) -> torch.Tensor:
    """The shipped network's input: the slice, its context slices, the noise-level map."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, height, width, generator=generator)
    return torch.cat([image, torch.full_like(image[:, :1], sigma)], dim=1)


def _phantom_volume(seed: int = 0) -> torch.Tensor:
    """(1, 1, 40, 36, 3): an ellipse 'head' at 800 with noise of std 6, not a multiple of 16 in-plane."""
    x, y = np.meshgrid(np.linspace(-1, 1, 40), np.linspace(-1, 1, 36), indexing="ij")
    head = (((x / 0.8) ** 2 + (y / 0.7) ** 2) < 1).astype(np.float32) * 800.0
    noisy = head[..., None] + np.random.default_rng(seed).normal(0.0, 6.0, (40, 36, 3)).astype(np.float32)
    return torch.from_numpy(noisy)[None, None]


def test_onnx_file_declares_opset_names_and_dynamic_axes(shipped_onnx):
    model = onnx.load(str(shipped_onnx))
    onnx.checker.check_model(model)
    assert {entry.domain: entry.version for entry in model.opset_import}[""] == ONNX_OPSET
    (graph_input,), (graph_output,) = model.graph.input, model.graph.output
    assert graph_input.name == "image" and graph_output.name == "pred"

    def dims(value):
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    assert dims(graph_input) == ["batch", 2 + 2 * DEFAULT_CONTEXT_SLICES, "height", "width"]
    assert dims(graph_output) == ["batch", 1, "height", "width"]
    layout = {p.key: p.value for p in model.metadata_props}  # what OnnxNetwork tells the inferer
    assert layout == {"spatial_dims": "2", "in_channels": "1", "context_slices": str(DEFAULT_CONTEXT_SLICES)}
    assert OnnxNetwork(shipped_onnx, threads=1).context_slices == DEFAULT_CONTEXT_SLICES


@pytest.mark.parametrize(("batch", "height", "width"), [(1, 64, 64), (3, 96, 160), (2, 256, 32)])
def test_onnx_matches_the_eager_network(shipped, shipped_onnx, batch, height, width):
    inputs = _inputs(batch, height, width, seed=batch)
    with torch.no_grad():
        expected = shipped(inputs)
    actual = OnnxNetwork(shipped_onnx, threads=1)(inputs)
    assert actual.shape == expected.shape == (batch, 1, height, width)
    assert (actual - expected).abs().max().item() < TOLERANCE


def test_onnx_and_torchscript_denoise_a_volume_behind_the_inferer_like_eager(shipped, shipped_onnx, tmp_path, monkeypatch):
    """Padding, slicing, flips and scaling stay in the inferer; the exported files replace the network."""
    monkeypatch.chdir(REPO)  # the bundle configs' `%bundle/configs/...` macros are relative to the repository root
    scripted_path = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(scripted_path),
        ckpt_file=str(SHIPPED_MODEL),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
    )
    volume = _phantom_volume()
    inferer = C2SInferer(sigma_data="auto", flips=2, autocast_dtype="float32")
    expected = inferer(volume, shipped)
    for exported in (OnnxNetwork(shipped_onnx, threads=1), torch.jit.load(str(scripted_path))):
        denoised = inferer(volume, exported)
        assert denoised.shape == volume.shape
        # image units: TOLERANCE of the intensity scale (about 800 here)
        assert (denoised - expected).abs().max().item() < TOLERANCE * 800
    residual = volume - expected
    assert 0.5 * 6.0 < residual.std().item() < 1.5 * 6.0  # the eager reference did denoise


def test_cli_export_onnx_of_a_film_network_matches_eager(tmp_path):
    """`c2s-monai export-onnx MODEL`: the network is rebuilt from model_config.json beside the weights."""
    network_args = {"features": [8, 8, 16, 32, 64, 8], "conditioning": "map+film"}
    torch.manual_seed(0)
    network = NoiseConditionedUNet(**network_args)
    with torch.no_grad():  # FiLM layers start as the identity: give them weights to export
        for parameter in network.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    model = tmp_path / "model.pt"
    torch.save(network.state_dict(), model)
    (tmp_path / "model_config.json").write_text(json.dumps({"network": network_args}))
    exported = Path(_export_onnx(str(model)))
    assert exported == tmp_path / "model.onnx"
    inputs = _inputs(2, 48, 80, sigma=0.02, channels=1)
    with torch.no_grad():
        expected = network.eval()(inputs)
    assert (OnnxNetwork(exported, threads=1)(inputs) - expected).abs().max().item() < TOLERANCE


def test_export_onnx_refuses_what_it_cannot_export(shipped, tmp_path):
    with pytest.raises(ValueError, match="opset"):
        export_onnx(shipped, tmp_path / "old.onnx", opset=13)
    with pytest.raises(ValueError, match="example_size"):
        export_onnx(shipped, tmp_path / "odd.onnx", example_size=40)
    with pytest.raises(TypeError, match="NoiseConditionedUNet"):
        export_onnx(torch.nn.Conv2d(2, 1, 3), tmp_path / "conv.onnx")
    with pytest.raises(FileNotFoundError, match="export_onnx"):
        OnnxNetwork(tmp_path / "missing.onnx")


def test_the_numpy_onnxruntime_recipe_in_the_docs_matches_the_inferer(shipped, shipped_onnx, tmp_path, monkeypatch):
    """docs/deployment.md's recipe, run as written: same volume as C2SInferer(sigma_data=10, flips=1)."""
    text = (REPO / "docs" / "deployment.md").read_text()
    recipe = text.split("<!-- recipe: numpy-onnxruntime -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    volume = _phantom_volume()[0, 0].numpy()
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    affine = np.diag([0.9, 1.1, 3.0, 1.0])
    nib.save(nib.Nifti1Image(np.rint(volume).astype(np.int16), affine, header), "scan.nii.gz")
    shutil.copy(shipped_onnx, "model.onnx")
    exec(compile(recipe, "docs/deployment.md", "exec"), {})  # noqa: S102  (the documented recipe, run as a user would)
    output = nib.load("scan_denoised.nii.gz")
    assert output.get_data_dtype() == np.float32
    np.testing.assert_allclose(output.affine, affine)
    stored = torch.from_numpy(np.asarray(nib.load("scan.nii.gz").dataobj, np.float32))[None, None]
    expected = C2SInferer(sigma_data=10.0, flips=1, autocast_dtype="float32")(stored, shipped)[0, 0].numpy()
    assert np.abs(np.asarray(output.dataobj) - expected).max() < TOLERANCE * 800


def test_onnx_export_prints_none_of_the_exporters_notes(tmp_path, capfd):
    """The exporter's torchvision and deprecation notes are not the user's business (issue 17 item 6)."""
    pytest.importorskip("onnxscript")
    from c2s_monai.export import export_onnx
    from c2s_monai.networks import NoiseConditionedUNet

    capfd.readouterr()
    export_onnx(NoiseConditionedUNet(features=(8, 8, 16, 32, 64, 8)), tmp_path / "tiny.onnx")
    out, err = capfd.readouterr()
    assert (tmp_path / "tiny.onnx").is_file()
    assert "torchvision" not in err and "LeafSpec" not in err and "torchvision" not in out, err
