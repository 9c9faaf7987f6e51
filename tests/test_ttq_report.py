"""The time-to-quality report (issue 8) on synthetic results: curves, targets, lever table."""

from __future__ import annotations

import json

import pytest

from benchmarks import ttq_report
from benchmarks.ttq_report import END, START, first_time_above, psnr_at, write_report

BM3D = 32.7


def _curve(points):
    return [{"iteration": 100 * i, "train_seconds": s, "psnr_mask": p} for i, (s, p) in enumerate(points)]


def _result(folder, name, recipe, condition, points, init=None, settings=None):
    final = {"psnr_mask": points[-1][1], "ssim_mask": 0.9}
    run = {
        "name": name, "recipe": recipe, "condition": condition, "init": init, "threads": 1, "minutes": points[-1][0] / 60,
        "iterations": 100 * len(points), "train_seconds": points[-1][0], "curve": _curve(points),
        "settings": settings or {"learning_rate": 2e-3, "autocast_dtype": "bfloat16"},
        "final": {key: final for key in ("train_flips1", "train_flips4", "held_out_flips1", "held_out_flips4")},
    }
    (folder / f"{name}.json").write_text(json.dumps(run))


@pytest.fixture
def results(tmp_path, monkeypatch):
    classical = tmp_path / "full"
    for condition in ("gaussian_6", "rician_6"):
        (classical / condition).mkdir(parents=True)
        for method, psnr in (("bm3d", BM3D), ("nlm", 31.1)):
            (classical / condition / f"{method}.json").write_text(json.dumps({"metrics": {"train": {"psnr_mask": psnr}}}))
    monkeypatch.setattr(ttq_report, "CLASSICAL", classical)
    folder = tmp_path / "ttq"
    folder.mkdir()
    _result(folder, "main_scratch_gaussian_6", "c2s", "gaussian_6", [(60, 30.0), (400, 32.8), (900, 33.0)])
    _result(folder, "main_supervised_gaussian_6", "supervised", "gaussian_6", [(60, 31.0), (400, 33.2), (900, 33.8)])
    _result(folder, "main_finetune_gaussian_6", "finetune", "gaussian_6", [(0, 32.0), (170, 32.9), (590, 33.5)], init="model.pt")
    _result(folder, "main_scratch_rician_6", "c2s", "rician_6", [(60, 30.0), (900, 32.5)])
    _result(folder, "screen_bf16", "bf16", "gaussian_6", [(300, 32.4)])
    _result(folder, "screen_bf16_lr4e-3", "bf16_lr4e-3", "gaussian_6", [(300, 32.6)], settings={"learning_rate": 4e-3, "autocast_dtype": "bfloat16"})
    speed = {"threads": 2, "cpu": "test CPU", "native_bfloat16": True, "auto_resolves_to": "bfloat16",
             "seconds": {"flips 1, auto (bundle default)": 8.4, "flips 4, auto": 33.0}}
    (folder / "inference_speed.json").write_text(json.dumps(speed))
    return folder


def test_curve_helpers():
    curve = _curve([(60, 30.0), (400, 32.8), (900, 33.0)])
    assert first_time_above(curve, 32.7) == 400
    assert first_time_above(curve, 34.0) is None
    assert psnr_at(curve, 450) == 32.8
    assert psnr_at(curve, 30) is None


def test_targets_are_judged_from_the_curves(results, tmp_path):
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nkept\n")
    write_report(results, page)
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nkept\n") and START in text and END in text
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert rows["from scratch, beats BM3D within 15 min (gaussian_6, Adam 0.002)"].endswith("| yes |")
    assert "after 6.7 min" in rows["from scratch, beats BM3D within 15 min (gaussian_6, Adam 0.002)"]
    assert rows["from scratch, beats BM3D within 15 min (rician_6, Adam 0.002)"].endswith("| no |")
    assert rows["fine-tuned, beats BM3D within 3 min (gaussian_6, Adam 0.002)"].endswith("| yes |")  # 32.9 at 170 s
    assert rows["fine-tuned, beats BM3D + 1 dB within 10 min (gaussian_6, Adam 0.002)"].endswith("| no |")  # 33.5 < 33.7
    # equal wall-clock: both at 900 s, 33.8 - 33.0
    assert "0.80 dB at 15 min | no |" in rows["gap to the supervised bound at equal wall-clock <= 0.5 dB (gaussian_6, Adam 0.002)"]
    assert rows["inference of a 256x256x100 volume <= 10 s"].endswith("| yes |")
    # the lever table compares with the base recipe and names the changed setting
    assert "| bf16_lr4e-3 | learning_rate = 0.004 | 100 | 32.60 | +0.20 |" in text
    assert (tmp_path / "figures" / "time_to_quality.png").is_file()
    # a second report replaces the section, it does not append another
    write_report(results, page)
    assert page.read_text().count(START) == 1
