"""The CLI demo trains on dipy's real noisy scan and writes its denoised copy (tiny settings)."""

from __future__ import annotations

import nibabel as nib
import numpy as np

from c2s_monai.cli import _demo
from c2s_monai.io.sample_data import dipy_s0_path


def test_demo_writes_a_denoised_copy_of_the_shipped_scan(tmp_path, tiny_features, one_thread):
    output = _demo(
        output_dir=str(tmp_path), epochs=1, iterations_per_epoch=2, patch_size=32, batch_size=2,
        features=tiny_features, progress=False,
    )
    source, denoised = nib.load(str(dipy_s0_path())), nib.load(output)
    assert output.endswith("S0_10slices_denoised.nii.gz") and str(tmp_path) in output
    assert denoised.shape == source.shape
    np.testing.assert_allclose(denoised.affine, source.affine)
    assert np.isfinite(np.asarray(denoised.dataobj)).all()
    assert (tmp_path / "model.pt").is_file()
