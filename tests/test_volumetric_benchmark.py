"""The volumetric benchmark's pieces (benchmarks/volumetric.py): the volumes, the supervised bound's exclusions, the report."""

from __future__ import annotations

import json

import numpy as np
import torch

from benchmarks.volumetric import (
    EXCLUDED_TARGET,
    SCORED,
    ContextSupervisedLoss,
    make_volume,
    score,
)
from benchmarks.volumetric_report import END, START, write_report


def test_volumes_of_the_protocol():
    gaussian = make_volume("gaussian_6")
    assert gaussian.clean.shape == gaussian.noisy.shape == (197, 233, 101) and gaussian.scored == SCORED
    assert abs(float(np.std(gaussian.noisy - gaussian.clean)) - 0.06) < 0.001
    thick = make_volume("thick_6")
    assert thick.clean.shape == (197, 233, 20) and thick.spacing == (1.0, 1.0, 5.0) and thick.scored == tuple(range(1, 20, 2))  # the even slices stay targets of the supervised bound
    np.testing.assert_allclose(thick.clean[..., 3], gaussian.clean[..., 15:20].mean(-1), atol=1e-6)
    rician = make_volume("rician_6")
    assert rician.noise_model == "rician" and float(rician.noisy.min()) >= 0
    assert abs(score(gaussian.noisy, gaussian)["psnr_mask"] - 24.43) < 0.01  # the noisy row of the table


class _Recorder(torch.nn.Module):
    """A 'network' that returns its first channel and remembers what it was given."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen = []

    def forward(self, x):
        self.seen.append(x.shape[0])
        return x[:, :1] + self.weight


def test_supervised_bound_never_learns_from_the_scored_slices():
    block = 5  # K = 2
    noisy = torch.rand(4, 2 * block, 8, 8)
    noisy[1, block] = EXCLUDED_TARGET  # a scored slice's clean target
    noisy[3, block] = EXCLUDED_TARGET
    network = _Recorder()
    loss = ContextSupervisedLoss(context_slices=2)(network, noisy, 0.05)
    assert network.seen == [2]  # only the two samples with a real target
    expected = ((noisy[[0, 2], :1] - noisy[[0, 2], block : block + 1]) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    noisy[:, block] = EXCLUDED_TARGET
    assert float(ContextSupervisedLoss(2)(network, noisy, 0.05)) == 0.0


def test_report_writes_tables_curves_and_speed(tmp_path):
    folder = tmp_path / "results"
    (folder / "gaussian_6").mkdir(parents=True)
    (folder / "curves").mkdir()
    metrics = {"psnr_mask": 35.5, "psnr_image": 38.0, "ssim_mask": 0.97}
    (folder / "gaussian_6" / "bm4d.json").write_text(json.dumps({"method": "bm4d", "metrics": {**metrics, "psnr_mask": 35.42}, "seconds": 345.0, "commit": "abc"}))
    learned = {"method": "c2s_k2", "label": "C2S 2.5D, K = 2", "metrics": metrics, "metrics_flips4": {**metrics, "psnr_mask": 35.7},
               "iterations": 600, "train_seconds": 200.0, "inference_seconds_slab": 10.0, "commit": "abc"}
    (folder / "gaussian_6" / "c2s_k2.json").write_text(json.dumps(learned))
    curve = {**learned, "condition": "gaussian_6", "curve": [{"iteration": 100, "train_seconds": 200.0, "psnr_mask": 34.0},
                                                            {"iteration": 500, "train_seconds": 880.0, "psnr_mask": 35.5}]}
    (folder / "curves" / "c2s_k2_gaussian_6_15min_2t.json").write_text(json.dumps(curve))
    (folder / "speed.json").write_text(json.dumps({"volume": "256x256x100", "threads": 2, "bundle_autocast": "bfloat16", "k2_float32_s": 15.0, "k2_bfloat16_s": 9.0,
                                                   "k2_onnxruntime_s": 6.5, "noise_check_s": 0.4}))
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nkept\n")
    write_report(folder, page)
    text = page.read_text()
    assert text.startswith("# Benchmarks\n\nkept") and text.count(START) == 1 and text.count(END) == 1
    assert "| BM4D on the volume | 35.42 |" in text
    assert "| C2S 2.5D, K = 2 | 35.50 | 0.970 | 38.00 | 35.70 |" in text
    assert "| 34.00 / 34.00 / 35.50 |" in text and "| 14.7 min |" in text  # first above BM4D at 880 s
    assert "| 2.5D, K = 2 (default) | 15.00 | 9.00 | 6.50 |" in text
    # the targets are judged from the numbers: +0.08 dB over BM4D, not the +0.5 dB goal; 9.00 s and 6.50 s within 10 s
    assert "35.50 against 35.42 dB, +0.08 dB, **met** (4 flips: 35.70, +0.28); the goal BM4D + 0.5 dB: **not met**." in text
    assert "9.00 s with this CPU's native bfloat16, **met**" in text and "6.50 s, **met** (eager float32: 15.00 s)" in text
    assert "gaussian_10: no 15-minute curve run." in text
    write_report(folder, page)  # idempotent: the section is replaced, not appended
    assert page.read_text() == text
