"""What every command prints: the notices that do not help a user are silenced (issue 17 item 6)."""

from __future__ import annotations

import subprocess
import sys


def test_reading_a_scan_prints_no_gpu_decoder_notices():
    script = (
        "import c2s_monai\n"
        "from c2s_monai.io.readers import LoadVolume\n"
        "from c2s_monai.io.sample_data import dipy_s0_path\n"
        "LoadVolume()(str(dipy_s0_path()))\n"
        "print('read')\n"
    )
    result = subprocess.run([sys.executable, "-W", "default::UserWarning", "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "read", result.stderr
    assert "nvImageCodec" not in result.stderr and "NvImgCodec" not in result.stderr, result.stderr


def test_a_fresh_training_run_does_not_say_it_resumes(tmp_path, caplog, model_and_input):
    import logging

    from c2s_monai import train

    _, inputs = model_and_input
    with caplog.at_level(logging.INFO):
        train([inputs / "scan.nii.gz"], tmp_path / "run", epochs=1, iterations_per_epoch=2, patch_size=32, batch_size=2,
              features=(8, 8, 16, 32, 64, 8), sigma_data=0.1, context_slices=0, progress=False)
    assert "training from scratch" in caplog.text
    assert "resuming from iteration 0" not in caplog.text
