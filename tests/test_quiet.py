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
