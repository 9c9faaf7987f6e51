"""Packaged sample data: the pseudo-contrasts and the pretraining set."""

import nibabel as nib
import numpy as np
import pytest

from c2s_monai.sample_data import CONTRASTS, mni152_contrast, write_pretraining_set


@pytest.fixture(scope="module")
def contrasts():
    return {name: mni152_contrast(name) for name in CONTRASTS}


def test_pseudo_contrasts_share_the_grid_and_invert_csf(contrasts):
    t1, t2, pd = contrasts["t1"], contrasts["t2"], contrasts["pd"]
    assert t1.shape == t2.shape == pd.shape == (197, 233, 189)
    for volume in (t1, t2, pd):
        assert volume.min() >= 0 and volume.max() == pytest.approx(1.0)
    # the lateral ventricles (CSF) are dark on the T1 and the brightest tissue on the T2
    ventricles = (t2 > 0.9 * t2.max()) & (t1 > 0)
    assert ventricles.sum() > 1000
    white = t1 > 0.8
    assert t1[ventricles].mean() < t1[white].mean()
    assert t2[ventricles].mean() > t2[white].mean() + 0.4
    assert t1[ventricles].mean() < pd[ventricles].mean()
    with pytest.raises(ValueError, match="contrast must be one of"):
        mni152_contrast("flair")


def test_pretraining_set_leaves_out_the_t1(tmp_path):
    files = write_pretraining_set(tmp_path, levels=(0.06,), contrasts=("t2",))
    names = sorted(f.name for f in files)
    assert names == sorted(
        ["mni152_t2_gaussian_6pct.nii.gz", "mni152_t2_rician_6pct.nii.gz", "S0_10slices.nii.gz", "test_piesno.nii.gz", "aniso_vox.nii.gz"]
    )
    assert not any("t1" in name for name in names)
    noisy = np.asarray(nib.load(str(tmp_path / "mni152_t2_gaussian_6pct.nii.gz")).dataobj)
    clean = mni152_contrast("t2")[:, :, 30:160:2]
    assert noisy.shape == clean.shape
    assert np.std(noisy - clean) == pytest.approx(0.06, rel=0.02)
