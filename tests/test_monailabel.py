"""MONAI Label serving: the bundle infer task in process, then a real server over HTTP on 127.0.0.1.

Needs MONAI Label (installed with --no-deps on top of the `label` extra: docs/monai-label.md,
.ci/run). Locally the module is skipped without it; in CI (CI set) a missing install fails.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from c2s_monai import estimate_sigma_mad
from c2s_monai.io.sample_data import dipy_s0_path


def _require(module: str):
    """Import an optional dependency: skip without it locally, fail in CI (CI installs it)."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


_require("monailabel")
requests = _require("requests")

from c2s_monai.monailabel_adapter.task import BundleDenoiseTask, anchor_macro_paths  # noqa: E402  (after the skips above)

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundle"
APP = REPO / "monailabel_app"
SERVER_START_TIMEOUT = 180.0
REQUEST_TIMEOUT = 300.0


def _dipy_crop(path: Path) -> Path:
    """Four slices of dipy's real noisy b=0 scan (128 x 128 x 4 x 1, uint16), header kept."""
    source = nib.load(str(dipy_s0_path()))
    nib.save(nib.Nifti1Image(np.asarray(source.dataobj)[:, :, 3:7], source.affine, source.header), str(path))
    return path


def _slice_mad(volume: np.ndarray) -> float:
    """Mean over slices of the wavelet MAD noise estimate (the in-plane noise the 2D model removes)."""
    volume = volume.reshape(volume.shape[:3])
    return float(np.mean([estimate_sigma_mad(volume[..., index]) for index in range(volume.shape[-1])]))


def _background_std(volume: np.ndarray) -> float:
    """Std of the 20 x 20 corners of every slice: air, where any variation is noise."""
    volume = volume.reshape(volume.shape[:3])
    return float(np.std(np.concatenate([volume[:20, :20].ravel(), volume[-20:, :20].ravel()])))


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- the infer task, in process


def test_macro_paths_are_anchored_to_the_folder_holding_the_bundle(tmp_path):
    config = {"a": "%bundle/configs/common.json#features", "b": ["%/abs/common.json::x", "@features", "$1 + 1"], "c": {"d": "%x.json#k::m"}}
    anchored = anchor_macro_paths(config, tmp_path)
    assert anchored == {
        "a": f"%{tmp_path}/bundle/configs/common.json#features",
        "b": ["%/abs/common.json::x", "@features", "$1 + 1"],
        "c": {"d": f"%{tmp_path}/x.json#k::m"},
    }


def test_task_reads_the_bundle_from_any_working_directory_and_returns_a_float_image(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository root: the configs' macros must still resolve
    source = _dipy_crop(tmp_path / "s0.nii.gz")
    task = BundleDenoiseTask(BUNDLE)
    info = task.info()
    assert info["type"] == "others" and info["labels"] == []
    assert info["config"]["sigma_data"] == "auto" and info["config"]["flips"] == 1
    assert (task.input_key, task.output_label_key) == ("image", "pred")  # metadata.json network_data_format

    result, result_json = task({"image": str(source), "device": "cpu", "flips": "1", "sigma_data": "10.0"})
    try:
        output, reference = nib.load(result), nib.load(str(source))
        assert output.shape == reference.shape
        assert output.get_data_dtype() == np.float32  # an image, not an integer label map
        np.testing.assert_allclose(output.affine, reference.affine)
        noisy, denoised = np.asarray(reference.dataobj, np.float32), np.asarray(output.dataobj)
        assert np.isfinite(denoised).all()
        assert _slice_mad(denoised) < 0.75 * _slice_mad(noisy)
        assert result_json["sigma_data"] == pytest.approx(10.0) and result_json["sigma_source"] == "given"
    finally:
        os.unlink(result)
    assert not list(Path(result).parent.glob("c2s_monailabel_*/*"))  # the per-request folders are gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s0.nii.gz"]  # nothing written beside the input


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [("sigma_data", "12.5", 12.5), ("sigma_data", 3, 3.0), ("sigma_data", " mad", "mad"), ("flips", "2", 2), ("flips", 4, 4),
     ("slice_axis", "0", 0), ("slice_axis", 2, 2), ("slice_axis", "Auto", "auto")],
)
def test_request_options_are_parsed(name, value, expected):
    from c2s_monai.monailabel_adapter.task import _request_value

    assert _request_value(name, value) == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [("sigma_data", "$__import__('os').getcwd()"), ("sigma_data", "@network_def"), ("sigma_data", "-1"), ("sigma_data", "inf"), ("flips", "3"), ("flips", "$4"),
     ("slice_axis", "$2"), ("slice_axis", "3")],
)
def test_request_options_that_could_reach_the_config_parser_as_code_are_refused(name, value):
    from c2s_monai.monailabel_adapter.task import _request_value

    with pytest.raises(ValueError, match=name):
        _request_value(name, value)


def test_task_refuses_a_folder_that_is_not_a_bundle(tmp_path):
    with pytest.raises(FileNotFoundError, match="bundle_path"):
        BundleDenoiseTask(tmp_path)
    with pytest.raises(FileNotFoundError, match="no weights"):
        BundleDenoiseTask(BUNDLE, ckpt_path=tmp_path / "missing.pt")


# ---------------------------------------------------------------- the server, over HTTP


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`monailabel start_server` on 127.0.0.1 with the repository's app (copied: the server writes logs into it)."""
    root = tmp_path_factory.mktemp("monailabel")
    app, studies = root / "app", root / "studies"
    app.mkdir()
    shutil.copy(APP / "main.py", app / "main.py")
    studies.mkdir()
    _dipy_crop(studies / "s0.nii.gz")
    port = _free_port()
    command = [
        sys.executable, "-m", "monailabel.main", "start_server",
        "--app", str(app), "--studies", str(studies),
        "--conf", "bundle", str(BUNDLE),
        "--uvicorn_app", "c2s_monai.monailabel_adapter.server:app",
        "--host", "127.0.0.1", "--port", str(port),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MONAI_LABEL_SESSION_PATH": str(root / "sessions")}
    log = (root / "server.log").open("w")
    process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"the MONAI Label server exited with {process.returncode}:\n{(root / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/info/", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the MONAI Label server did not answer in {SERVER_START_TIMEOUT} s:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(1.0)
        yield {"url": url, "studies": studies, "root": root}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.close()


def test_server_lists_the_denoiser(server):
    info = requests.get(f"{server['url']}/info/", timeout=30).json()
    model = info["models"]["c2s"]
    assert model["type"] == "others" and model["labels"] == []
    assert model["config"]["sigma_data"] == "auto"
    assert info["datastore"]["total"] == 1


def test_infer_by_image_id_returns_the_denoised_volume(server, tmp_path):
    """Defaults (sigma_data "auto", 4 flips) on the study `s0`: a float image with less noise than the input."""
    response = requests.post(f"{server['url']}/infer/c2s", params={"image": "s0", "output": "image"}, timeout=REQUEST_TIMEOUT)
    assert response.status_code == 200, response.text[-2000:]
    (tmp_path / "denoised.nii.gz").write_bytes(response.content)
    output, reference = nib.load(str(tmp_path / "denoised.nii.gz")), nib.load(str(server["studies"] / "s0.nii.gz"))
    noisy, denoised = np.asarray(reference.dataobj, np.float32), np.asarray(output.dataobj)
    assert output.shape == reference.shape
    assert output.get_data_dtype() == np.float32
    np.testing.assert_allclose(output.affine, reference.affine)
    assert np.isfinite(denoised).all()
    assert _slice_mad(denoised) < _slice_mad(noisy)
    assert _background_std(denoised) < _background_std(noisy)
    assert not list((server["studies"] / "labels").rglob("*.nii.gz"))  # a denoised image is not saved as a label


def test_infer_on_an_uploaded_volume_with_request_options(server, tmp_path):
    """An uploaded file and `params`: sigma_data given in image units, one flip; the JSON reports what was used."""
    source = _dipy_crop(tmp_path / "upload.nii.gz")
    noisy = np.asarray(nib.load(str(source)).dataobj, np.float32)
    sigma = _slice_mad(noisy)
    params = json.dumps({"sigma_data": sigma, "flips": 1, "slice_axis": 2})
    with source.open("rb") as handle:
        response = requests.post(
            f"{server['url']}/infer/c2s", params={"output": "image"}, files={"file": ("upload.nii.gz", handle)},
            data={"params": params}, timeout=REQUEST_TIMEOUT,
        )
    assert response.status_code == 200, response.text[-2000:]
    (tmp_path / "denoised.nii.gz").write_bytes(response.content)
    output = nib.load(str(tmp_path / "denoised.nii.gz"))
    denoised = np.asarray(output.dataobj)
    assert output.shape == noisy.shape and output.get_data_dtype() == np.float32 and np.isfinite(denoised).all()
    assert _slice_mad(denoised) < 0.75 * sigma

    with source.open("rb") as handle:
        report = requests.post(
            f"{server['url']}/infer/c2s", params={"output": "json"}, files={"file": ("upload.nii.gz", handle)},
            data={"params": params}, timeout=REQUEST_TIMEOUT,
        ).json()
    assert report["sigma_data"] == pytest.approx(sigma) and report["sigma_source"] == "given"
    volume = report["volume"]  # the bundle's default 2.5D context, along the requested axis
    assert volume["context_slices"] == 2 and volume["slice_axis"] == 2 and volume["context"].startswith("reflected at the ends")
    assert set(volume["noise_correlation"]) >= {"across_slices", "in_plane", "independent"}
