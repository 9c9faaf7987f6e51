"""Batch calls check their settings before any input is read: a bad one stops the run at once, nothing written."""

from __future__ import annotations

import pytest

from c2s_monai import api

TINY = [8, 8, 16, 32, 64, 8]


@pytest.mark.parametrize(
    "options, error, fragment",
    [
        ({"flips": 3}, ValueError, "flips must be one of"),
        ({"sigma": 10}, TypeError, "unknown setting(s) sigma"),
        ({"sigma_data": "guess"}, ValueError, "sigma_data"),
        ({"autocast_dtype": "float16"}, ValueError, "autocast_dtype"),
        ({"each_volume": "maybe"}, ValueError, "each_volume"),
        ({"slice_axis": 5}, ValueError, "slice_axis"),
    ],
)
def test_denoise_files_refuses_a_bad_setting_before_reading_any_input(model_and_input, tmp_path, options, error, fragment):
    model, inputs = model_and_input
    output_dir = tmp_path / "out"
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        api.denoise_files([inputs], model, output_dir=output_dir, **options)
    assert not output_dir.exists(), "a refused run must write nothing, not even its summary"


def test_denoise_files_runs_with_good_settings(model_and_input, tmp_path):
    model, inputs = model_and_input
    summary = api.denoise_files([inputs], model, output_dir=tmp_path / "out", flips=2, sigma_data=0.1)
    summary.check()
    assert (tmp_path / "out" / "scan_denoised.nii.gz").is_file()


@pytest.mark.parametrize("options, error", [({"flipz": 2}, TypeError), ({"flips": 3}, ValueError), ({"resample_guides": "perhaps"}, ValueError)])
def test_denoise_subjects_refuses_unknown_or_bad_settings(tmp_path, options, error):
    subjects = [{"subject": "s1", "t1": str(tmp_path / "t1.nii.gz"), "t2": str(tmp_path / "t2.nii.gz")}]
    with pytest.raises(error):
        api.denoise_subjects(subjects, {"t1": tmp_path / "m.pt"}, output_dir=tmp_path / "out", contrasts=["t1", "t2"], **options)
    assert not (tmp_path / "out").exists()
