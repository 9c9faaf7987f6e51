"""The message users read last: a failed bundle run ends with the clear error, not MONAI's wrapper.

``python -m monai.bundle run`` wraps an error raised while a config expression is evaluated
(``datalist``: a missing ``dataset_dir``) or a component instantiated (``C2SInferer``: a bad
``sigma_data``) in ``RuntimeError("Failed to evaluate ConfigExpression ...")``, which Python
prints after the error itself. :func:`c2s_monai.errors.install_excepthook` prints
``error: <message>`` after the traceback. Each case of docs/bad-inputs.md that stops a whole
``inference.json`` run is run here as a user runs it; its exit status is not 0 and the last line
of its stderr names the file or setting. A file of an unsupported type (a PNG) is named as such.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import noisy, write_nifti
from PIL import Image

import c2s_monai
from c2s_monai import errors
from c2s_monai.errors import InputError, clear_error, install_excepthook, report_error
from c2s_monai.io.readers import LoadVolume, list_inputs, unsupported_file
from c2s_monai.networks import NoiseConditionedUNet

REPO = Path(__file__).resolve().parents[1]
CONFIG = "bundle/configs/inference.json"
TINY = [8, 8, 16, 32, 64, 8]

# until c2s_monai/__init__.py installs the hook, the subprocess installs it before running MONAI's __main__
RUNPY = (
    "import sys, runpy, c2s_monai.errors as e; e.install_excepthook(); "
    "sys.argv = ['monai.bundle'] + sys.argv[1:]; runpy.run_module('monai.bundle', run_name='__main__', alter_sys=True)"
)


def _png(path: Path, channels: int = 4) -> Path:
    pixels = (np.random.default_rng(0).random((32, 32, channels)) * 255).astype(np.uint8)
    Image.fromarray(pixels, "RGBA" if channels == 4 else "RGB").save(path)
    return path


def _run(args: list[str], plain: bool = False) -> subprocess.CompletedProcess:
    command = ["-m", "monai.bundle"] if plain else ["-c", RUNPY]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, *command, "run", "--config_file", CONFIG, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("surface")
    (root / "empty").mkdir()
    (root / "pngs").mkdir()
    _png(root / "pngs" / "slice_01.png")
    _png(root / "pngs" / "slice_02.png")
    _png(root / "photo.png")
    write_nifti(root / "scan.nii.gz", noisy())
    (root / "a_file").write_text("not a folder")
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=TINY).state_dict(), root / "tiny.pt")
    (root / "broken.pt").write_bytes((root / "tiny.pt").read_bytes()[:1000])
    return {"root": root}


# (case of docs/bad-inputs.md, arguments with {root}, fragments the last line of stderr must hold)
CASES = [
    ("missing_dataset_dir", ["--dataset_dir", "{root}/nowhere"], ["error: ", "nowhere: no such file or folder; check dataset_dir"]),
    ("empty_input_folder", ["--dataset_dir", "{root}/empty"], ["error: ", "empty: no NIfTI", "point dataset_dir"]),
    ("png_folder", ["--dataset_dir", "{root}/pngs"], ["error: ", "pngs: no NIfTI", "slice_01.png (a PNG image)", "convert the scans to NIfTI"]),
    # one bad input: recorded and skipped, the run ends with the batch's list of failures
    ("png_file", ["--dataset_dir", "{root}/photo.png"], ["photo.png: a PNG image, not a NIfTI", "convert it to NIfTI"]),
    ("sigma_data", ["--sigma_data", "-1"], ["error: ", "sigma_data must be a finite number > 0", "got -1"]),
    ("output_not_writable", ["--dataset_dir", "{root}/scan.nii.gz", "--output_dir", "{root}/a_file/out"],
     ["error: ", "a_file/out: outputs cannot be written here"]),
    ("checkpoint_missing", ["--dataset_dir", "{root}/scan.nii.gz", "--ckpt_path", "{root}/absent.pt"],
     ["error: ", "absent.pt: no such checkpoint; give ckpt_path"]),
    ("checkpoint_truncated", ["--dataset_dir", "{root}/scan.nii.gz", "--ckpt_path", "{root}/broken.pt"],
     ["error: ", "broken.pt: cannot be read as a PyTorch checkpoint"]),
    ("checkpoint_other_network", ["--dataset_dir", "{root}/scan.nii.gz", "--ckpt_path", "{root}/tiny.pt"],
     ["error: ", "tiny.pt: the checkpoint does not fit the network", "set features and conditioning"]),
    ("context_setting", ["--dataset_dir", "{root}/scan.nii.gz", "--context_slices", "-1"],
     ["error: ", "context_slices must be 'auto' or an integer >= 0", "got -1"]),
    ("slice_axis_setting", ["--dataset_dir", "{root}/scan.nii.gz", "--slice_axis", "3"],
     ["error: ", "slice_axis must be 'auto'", "got 3"]),
]


@pytest.fixture(scope="module")
def runs(files) -> dict[str, subprocess.CompletedProcess]:
    """Every case's bundle run (two at a time: each takes a few seconds to start MONAI)."""
    root = files["root"]

    def one(case):
        name, args, _ = case
        args = [a.format(root=root) for a in args]
        if "--output_dir" not in args:
            args += ["--output_dir", str(root / "out" / name)]
        return name, _run(args)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(one, CASES))


@pytest.mark.parametrize(("case", "args", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_a_failed_bundle_run_ends_with_the_clear_message(case, args, fragments, runs):
    result = runs[case]
    last = _last_line(result.stderr)
    assert result.returncode != 0, f"{case}: exit status 0\n{result.stderr[-3000:]}"
    for fragment in fragments:
        assert fragment in last, f"{case}: {fragment!r} not in the last line {last!r}\n{result.stderr[-3000:]}"
    assert "Failed to" not in last and "RuntimeError" not in last.split(":")[0]


def test_the_run_writes_nothing_for_a_refused_setting(runs, files):
    out = files["root"] / "out"
    for case in ("missing_dataset_dir", "sigma_data", "checkpoint_missing"):
        folder = out / case
        assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*")), case
    summary = json.loads((out / "png_file" / "summary.json").read_text())
    assert summary["failed"] == 1 and "a PNG image" in summary["results"][0]["message"]


@pytest.mark.skipif(
    sys.excepthook is not report_error,
    reason="c2s_monai/__init__.py does not install the hook yet (until then the runs above install it themselves)",
)
def test_plain_command_once_installed(files):
    """``python -m monai.bundle run`` itself, once importing c2s_monai installs the hook."""
    result = _run(["--dataset_dir", str(files["root"] / "nowhere"), "--output_dir", str(files["root"] / "out" / "plain")], plain=True)
    assert result.returncode != 0
    assert "nowhere: no such file or folder; check dataset_dir" in _last_line(result.stderr)


# ------------------------------------------------------------------ files of an unsupported type


@pytest.fixture
def tiny_model(tmp_path) -> Path:
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=TINY).state_dict(), tmp_path / "model.pt")
    (tmp_path / "model_config.json").write_text(json.dumps({"network": {"features": TINY}}))
    return tmp_path / "model.pt"


@pytest.mark.parametrize("channels", [3, 4])
def test_a_png_is_named_a_png_not_a_4d_series(tmp_path, tiny_model, channels):
    png = _png(tmp_path / "photo.png", channels)
    with pytest.raises(InputError) as raised:
        c2s_monai.denoise(png, tiny_model, tmp_path / "out" / "photo_denoised.nii.gz", flips=1)
    message = str(raised.value)
    assert message.startswith(f"{png}: a PNG image, not a NIfTI"), message
    assert "4D series" not in message and "each_volume" not in message
    assert "convert it to NIfTI" in message
    assert not (tmp_path / "out").exists()


def test_a_grey_level_png_is_refused_too(tmp_path):
    """A one-channel PNG would be read by PIL as a 2D image and denoised; it is a picture, not the scan."""
    png = tmp_path / "grey.png"
    Image.fromarray((np.random.default_rng(0).random((32, 32)) * 255).astype(np.uint8)).save(png)
    with pytest.raises(InputError, match=r"grey\.png: a PNG image, not a NIfTI"):
        LoadVolume()(png)


@pytest.mark.parametrize(
    ("name", "content", "kind"),
    [
        ("scan.jpg", b"\xff\xd8\xff\xe0rest", "a JPEG image"),
        ("scan.tiff", b"II*\x00rest", "a TIFF image"),
        ("notes.txt", b"scan notes", "a text file"),
        ("export", b"\x89PNG\r\n\x1a\nrest", "a PNG image"),  # no suffix: named by its content
        ("data.xyz", b"\x00\x01", "a file of an unsupported type (.xyz)"),
    ],
)
def test_unsupported_files_are_named_by_type(tmp_path, name, content, kind):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as raised:
        LoadVolume()(path)
    assert str(raised.value).startswith(f"{path}: {kind}, not a NIfTI (.nii, .nii.gz), DICOM or HDF5 (.h5) volume: ")


def test_a_folder_of_pngs_lists_what_it_holds(tmp_path):
    for index in range(5):
        _png(tmp_path / f"slice_{index:02d}.png")
    with pytest.raises(InputError) as raised:
        list_inputs(tmp_path)
    message = str(raised.value)
    assert message.startswith(f"{tmp_path}: no NIfTI (.nii, .nii.gz), HDF5 (.h5) or DICOM input in this folder")
    assert "it holds only 5 file(s) of other types: slice_00.png (a PNG image), slice_01.png (a PNG image), slice_02.png (a PNG image), ...: " in message


# ------------------------------------------------------------------ the hook itself


def _chained(error: BaseException) -> RuntimeError:
    try:
        try:
            raise error
        except BaseException as inner:
            raise RuntimeError("Failed to evaluate ConfigExpression: \"$...\"") from inner
    except RuntimeError as wrapper:
        return wrapper


def test_clear_error_finds_ours_under_the_wrapper():
    ours = InputError("scan.nii.gz: bad")
    assert clear_error(_chained(ours)) is ours
    # a FileNotFoundError raised by c2s_monai's code counts, one raised elsewhere does not
    try:
        list_inputs("/nonexistent/for/sure")
    except FileNotFoundError as error:
        assert clear_error(_chained(error)) is error
    assert clear_error(_chained(FileNotFoundError("elsewhere"))) is None
    assert clear_error(_chained(KeyError("bug"))) is None


def test_report_error_prints_the_message_last_and_chains_other_errors(monkeypatch):
    calls = []
    monkeypatch.setattr(errors, "_previous_hook", lambda *args: calls.append(args))
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    wrapper = _chained(InputError("scan.nii.gz: the image is constant"))
    report_error(RuntimeError, wrapper, wrapper.__traceback__)
    assert len(calls) == 1 and _last_line(stderr.getvalue()) == "error: scan.nii.gz: the image is constant"
    other = _chained(KeyError("bug"))
    report_error(RuntimeError, other, other.__traceback__)
    assert len(calls) == 2 and stderr.getvalue().count("error:") == 1


def test_install_is_idempotent(monkeypatch):
    def previous(*args):
        return None

    monkeypatch.setattr(sys, "excepthook", previous)
    monkeypatch.setattr(errors, "_previous_hook", None)
    install_excepthook()
    install_excepthook()
    assert sys.excepthook is report_error and errors._previous_hook is previous


def test_the_documented_messages_are_the_code_s():
    """docs/bad-inputs.md quotes these messages (the folders in front of the names left out)."""
    documented = (REPO / "docs" / "bad-inputs.md").read_text()
    for name in ("notes.txt", "photo.png"):
        assert f"`{unsupported_file(Path(name))}`" in documented, name
    for case in [c[0] for c in CASES if c[0] not in ("png_folder", "png_file")] + ["png_image"]:
        assert f"`{case}`" in documented, case
