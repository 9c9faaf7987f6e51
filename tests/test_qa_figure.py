"""The QA figure a reader can use, written by the bundle, the API and the CLI alike; summary paths; overwrite notice (issue 17 items 5, 8)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

import c2s_monai
from c2s_monai import api
from c2s_monai.handlers.reports import RESIDUAL_LABEL, build_qa_figure, qa_figure

TINY = [8, 8, 16, 32, 64, 8]
SIGMA = 0.1


def _volumes(shape=(32, 24, 5)):
    rng = np.random.default_rng(0)
    clean = np.zeros(shape, dtype=np.float32)
    clean[8:24, 6:18] = 1.0
    noisy = clean + rng.normal(0.0, SIGMA, shape).astype(np.float32)
    return torch.as_tensor(noisy), torch.as_tensor(clean)


def _axes(figure, label: str) -> list:
    return [axis for axis in figure.axes if axis.get_label() == label]


def test_the_figure_has_whole_slices_zoomed_crops_one_grey_scale_and_a_signed_residual():
    noisy, denoised = _volumes()
    figure = build_qa_figure(noisy, denoised, num_slices=2, title="scan.nii.gz", sigma=SIGMA)
    for label in ("noisy", "denoised", "noisy zoom", "denoised zoom", "residual"):
        assert len(_axes(figure, label)) == 2, label  # one panel per slice row
    for row in range(2):
        whole = [_axes(figure, label)[row].images[0] for label in ("noisy", "denoised", "noisy zoom", "denoised zoom")]
        # one grey scale for noisy and denoised, whole and zoomed
        assert len({image.get_clim() for image in whole}) == 1
        assert all(image.get_cmap().name == "gray" for image in whole)
        # the crop: the central quarter of the 32 x 24 slice, shown in the slice's voxel indices
        zoom = _axes(figure, "noisy zoom")[row]
        assert zoom.images[0].get_array().shape == (12, 16)  # (y, x) of x 8:24, y 6:18
        assert zoom.get_xlim() == pytest.approx((7.5, 23.5)) and zoom.get_ylim() == pytest.approx((5.5, 17.5))
        assert _axes(figure, "noisy")[row].patches, "the whole slice outlines the zoomed region"
        residual = _axes(figure, "residual")[row].images[0]
        assert residual.get_clim() == pytest.approx((-3 * SIGMA, 3 * SIGMA))
        assert residual.colorbar is not None and "noisy - denoised" in residual.colorbar.ax.get_ylabel()
        assert residual.colorbar.ax.get_ylabel() == RESIDUAL_LABEL
        np.testing.assert_allclose(residual.get_array().T, (noisy - denoised).numpy()[..., [1, 3][row]], atol=1e-6)
    title = figure._suptitle.get_text()
    assert "scan.nii.gz" in title and "sigma used = 0.1" in title and "noisy - denoised" in title


def test_without_a_sigma_the_residual_is_still_symmetric_and_qa_figure_writes_a_png(tmp_path):
    noisy, denoised = _volumes((16, 16, 1))
    figure = build_qa_figure(noisy, denoised, num_slices=3)
    low, high = _axes(figure, "residual")[0].images[0].get_clim()
    assert high > 0 and low == -high
    assert "sigma not recorded" in figure._suptitle.get_text()
    path = qa_figure(noisy, denoised, tmp_path / "scan_qa.png", sigma=SIGMA)
    assert path == tmp_path / "scan_qa.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scan_qa.png"]  # no temporary left


def test_the_api_writes_the_qa_figure_and_the_json_report_beside_the_output(model_and_input, tmp_path):
    model, inputs = model_and_input
    output = c2s_monai.denoise(inputs / "scan.nii.gz", model, tmp_path / "out.nii.gz", sigma_data=SIGMA, flips=2, report=True)
    assert output == tmp_path / "out.nii.gz" and output.is_file()
    figure = tmp_path / "out_qa.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["sigma_data"] == pytest.approx(SIGMA) and report["sigma_source"] == "given"
    assert report["input"] == str((inputs / "scan.nii.gz").resolve()) and report["output"] == str(output.resolve())
    assert report["qa_figure"] == str(figure.resolve())
    assert report["flips"] == 2 and report["device"] == "cpu" and report["shape"] == [16, 16, 3]
    assert report["model"] == str(model.resolve()) and "no_reference" in report


def test_without_report_only_the_output_is_written(model_and_input, tmp_path):
    model, inputs = model_and_input
    c2s_monai.denoise(inputs / "scan.nii.gz", model, tmp_path / "out.nii.gz", sigma_data=SIGMA, report=False)
    # the output and the noise level it was denoised with (issue 18: every denoising writes its map)
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == ["out.nii.gz", "out_noise_map.nii.gz"]
    assert not [p for p in tmp_path.glob("*.json") if p.name != "model_config.json"] and not list(tmp_path.glob("*.png"))
    c2s_monai.denoise(inputs / "scan.nii.gz", model, tmp_path / "default.nii.gz", sigma_data=SIGMA)  # reports by default, as the bundle
    assert (tmp_path / "default_qa.png").is_file() and (tmp_path / "default.json").is_file()
    summary = api.denoise_files([inputs], model, output_dir=tmp_path / "batch", sigma_data=SIGMA, report="false")
    summary.check()
    assert sorted(p.name for p in (tmp_path / "batch").iterdir()) == ["scan_denoised.nii.gz", "scan_denoised_noise_map.nii.gz", "summary.json"]
    with pytest.raises(ValueError, match="report"):
        api.denoise_files([inputs], model, output_dir=tmp_path / "never", report="perhaps")
    assert not (tmp_path / "never").exists()


def test_denoise_files_summary_holds_absolute_paths_and_says_what_it_overwrote(model_and_input, tmp_path, monkeypatch, caplog):
    model, inputs = model_and_input
    monkeypatch.chdir(tmp_path)
    api.denoise_files(["inputs"], model, output_dir="out", sigma_data=SIGMA, report="true").check()  # relative paths given
    written = json.loads((tmp_path / "out" / "summary.json").read_text())
    output = (tmp_path / "out" / "scan_denoised.nii.gz").resolve()
    assert [(r["input"], r["status"], r["output"]) for r in written["results"]] == [
        (str((inputs / "scan.nii.gz").resolve()), "denoised", str(output))
    ]
    assert "overwritten" not in written["results"][0]
    per_file = json.loads((tmp_path / "out" / "scan_denoised.json").read_text())
    assert (per_file["input"], per_file["output"]) == (written["results"][0]["input"], written["results"][0]["output"])
    with caplog.at_level(logging.WARNING, logger="c2s_monai"):
        api.denoise_files(["inputs"], model, output_dir="out", sigma_data=SIGMA, report=True).check()
    assert f"{Path('out') / 'scan_denoised.nii.gz'}: exists, overwritten" in caplog.text
    again = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert again["results"][0]["overwritten"] is True
    assert json.loads((tmp_path / "out" / "scan_denoised.json").read_text())["overwritten"] is True


def test_a_second_denoise_to_the_same_output_warns_that_it_overwrites(model_and_input, tmp_path, caplog):
    model, inputs = model_and_input
    target = tmp_path / "out.nii.gz"
    with caplog.at_level(logging.WARNING, logger="c2s_monai"):
        c2s_monai.denoise(inputs / "scan.nii.gz", model, target, sigma_data=SIGMA, report=False)
        assert "overwritten" not in caplog.text
        c2s_monai.denoise(inputs / "scan.nii.gz", model, target, sigma_data=SIGMA, report=False)
    assert f"{target}: exists, overwritten" in caplog.text
    assert sorted(p.name for p in tmp_path.glob("*.nii.gz")) == ["out.nii.gz", "out_noise_map.nii.gz"]  # written atomically: no temporary left
