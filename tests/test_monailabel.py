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

import torch  # noqa: E402
from helpers import make_dicom_series  # noqa: E402
from monailabel.client import MONAILabelClient  # noqa: E402
from monailabel.client.client import MONAILabelClientException  # noqa: E402
from monailabel.interfaces.exception import ImageNotFoundException, MONAILabelError, MONAILabelException  # noqa: E402

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
        assert result_json["device"] == "cpu"  # the device the network ran on
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
    # a DICOM series in the server's working directory: what an unknown image id used to denoise ('' read as the cwd)
    make_dicom_series(root, num_slices=3)
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
    assert report["device"].startswith("cuda" if torch.cuda.is_available() else "cpu")  # the default: a GPU if there is one
    volume = report["volume"]  # the bundle's default 2.5D context, along the requested axis
    assert volume["context_slices"] == 2 and volume["slice_axis"] == 2 and volume["context"].startswith("reflected at the ends")
    assert set(volume["noise_correlation"]) >= {"across_slices", "in_plane", "independent"}


# ---------------------------------------------------------------- errors and the device, through MONAI Label's client

TASK_STARTED = "Infer Request (final)"  # logged by BasicInferTask.__call__ once it starts loading and denoising


def _task_runs(server) -> int:
    return (server["root"] / "server.log").read_text().count(TASK_STARTED)


def _refused(server, image_id: str, params: dict, status: int, model: str = "c2s") -> str:
    """``MONAILabelClient.infer`` on a bad request: the client raises with the HTTP status and the server's message."""
    client = MONAILabelClient(server["url"], tmpdir=str(server["root"] / "client"))
    runs = _task_runs(server)
    with pytest.raises(MONAILabelClientException) as raised:
        client.infer(model, image_id, params)
    message = raised.value.msg
    assert message.startswith(f"Status: {status}; Response: "), message
    assert "Internal Server Error" not in message
    assert _task_runs(server) == runs  # refused before the task loaded anything: nothing was denoised
    assert not (server["root"] / "client").exists()  # and nothing came back
    return message


def test_client_unknown_image_id_is_404_naming_it_and_nothing_is_denoised(server):
    """An id not in the datastore used to resolve to '' and denoise the DICOM series in the server's working directory."""
    message = _refused(server, "no_such_image", {}, 404)
    assert "'no_such_image'" in message and "not in the datastore" in message and "nothing was denoised" in message
    message = _refused(server, ".", {}, 404)  # a relative path is not an image id either
    assert "'.'" in message and "not in the datastore" in message


def test_client_empty_image_id_is_400(server):
    message = _refused(server, "", {}, 400)
    assert "no image" in message and "upload a file" in message


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"flips": 3}, "flips must be one of (1, 2, 4), got 3"), ({"sigma_data": "abc"}, "sigma_data must be a number > 0"),
     ({"sigma_data": -2}, "got -2"), ({"slice_axis": 5}, "slice_axis must be 'auto' or 0, 1, 2, got 5"),
     ({"device": "tpu"}, "device 'tpu' is not available on this server")],
)
def test_client_bad_request_options_are_400_with_the_message(server, params, expected):
    message = _refused(server, "s0", params, 400)
    assert expected in message and "nothing was denoised" in message


def test_client_unknown_model_is_400(server):
    assert "no model 'other' available" in _refused(server, "s0", {}, 400, model="other")


def test_params_that_are_not_a_json_object_are_400(server):
    runs = _task_runs(server)
    for params in ("{flips: 3", "[1, 2]"):
        response = requests.post(f"{server['url']}/infer/c2s", params={"image": "s0"}, data={"params": params}, timeout=REQUEST_TIMEOUT)
        assert response.status_code == 400 and "params must be a JSON object" in response.json()["detail"], response.text
    assert _task_runs(server) == runs


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a CPU-only server")
def test_client_cuda_on_a_cpu_only_server_is_400_not_a_silent_cpu_run(server):
    message = _refused(server, "s0", {"device": "cuda", "flips": 1}, 400)
    assert "device 'cuda' is not available on this server" in message and "CUDA is not available" in message and "'cpu'" in message


def test_client_result_names_the_device_used(server, tmp_path):
    """A normal request through the client: the denoised image and a JSON result naming the device (here, the default)."""
    client = MONAILabelClient(server["url"], tmpdir=str(tmp_path))
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    for params in ({"flips": 1, "sigma_data": 10.0}, {"flips": 1, "sigma_data": 10.0, "device": "cpu", "save_label": True}):
        image, result = client.infer("c2s", "s0", params)
        assert result["device"].startswith(expected if "device" not in params else "cpu"), result
        assert result["sigma_data"] == pytest.approx(10.0)
        output = nib.load(image)
        assert output.shape == nib.load(str(server["studies"] / "s0.nii.gz")).shape and output.get_data_dtype() == np.float32
    assert not list((server["studies"] / "labels").rglob("*.nii.gz"))  # never saved as a label, even when asked


# ---------------------------------------------------------------- the same checks in the task, for callers without the app


def test_task_refuses_a_missing_image_bad_options_and_an_unavailable_device_before_loading(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_dicom_series(tmp_path, num_slices=3)  # what '' (the cwd) would read
    source = _dipy_crop(tmp_path / "s0.nii.gz")
    task = BundleDenoiseTask(BUNDLE)
    monkeypatch.setattr(task, "pre_transforms", lambda data=None: pytest.fail(f"loading {data}"))  # refused before loading
    for image in ("", str(tmp_path / "missing.nii.gz")):
        with pytest.raises(ImageNotFoundException) as raised:
            task({"image": image, "device": "cpu"})
        assert repr(image) in raised.value.msg and "nothing was denoised" in raised.value.msg
    for request, expected in [({"flips": "3"}, "flips"), ({"sigma_data": "abc"}, "sigma_data"), ({"device": "tpu"}, "device 'tpu'")]:
        with pytest.raises(MONAILabelException) as raised:
            task({"image": str(source), "device": "cpu", **request})
        assert raised.value.error == MONAILabelError.INVALID_INPUT and expected in raised.value.msg
    if not torch.cuda.is_available():
        with pytest.raises(MONAILabelException) as raised:
            task({"image": str(source), "device": "cuda"})
        assert "device 'cuda' is not available" in raised.value.msg
