"""Packaged sample data: the pseudo-contrasts and the pretraining set."""

import nibabel as nib
import numpy as np
import pytest

from c2s_monai.io.sample_data import (
    CONTRASTS,
    mni152_contrast,
    mni152_t1_path,
    write_pretraining_set,
)


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


def test_pretraining_set_leaves_out_the_t1_and_the_axial_view(tmp_path):
    files = write_pretraining_set(tmp_path, levels=(0.06,), contrasts=("t2",))
    names = sorted(f.name for f in files)
    expected = [f"mni152_t2_{plane}_{noise}_6pct.nii.gz" for plane in ("sagittal", "coronal") for noise in ("gaussian", "rician")]
    assert names == sorted([*expected, "S0_10slices.nii.gz", "test_piesno.nii.gz", "aniso_vox.nii.gz"])
    assert not any("t1" in name or "axial" in name for name in names)
    clean = mni152_contrast("t2")
    sagittal = nib.load(str(tmp_path / "mni152_t2_sagittal_gaussian_6pct.nii.gz"))
    noisy = np.asarray(sagittal.dataobj)
    # slices run along the last axis: x = 30, 32, ... of the template (2 mm apart), each a (y, z) image
    expected_clean = np.transpose(clean[30:168:2], (1, 2, 0))
    assert noisy.shape == expected_clean.shape == (233, 189, 69)
    assert np.std(noisy - expected_clean) == pytest.approx(0.06, rel=0.02)
    # the affine maps each voxel to its place in the template's world space
    template = nib.load(str(mni152_t1_path())).affine
    voxel = np.array([10, 20, 5, 1])
    np.testing.assert_allclose(sagittal.affine @ voxel, template @ np.array([30 + 2 * 5, 10, 20, 1]))
    coronal = nib.load(str(tmp_path / "mni152_t2_coronal_rician_6pct.nii.gz"))
    assert coronal.shape == (197, 189, 87)
    np.testing.assert_allclose(coronal.affine @ voxel, template @ np.array([10, 30 + 2 * 5, 20, 1]))
    # the 2.5D context takes the slices along the last axis, the one of largest spacing (2 mm)
    assert [round(float(z), 3) for z in nib.affines.voxel_sizes(sagittal.affine)] == [1.0, 1.0, 2.0]
