"""The three-line Python API: train C2S on noisy files, denoise a file.

    from c2s_monai import train, denoise
    model = train(["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"], "runs/t1")
    denoise("sub-03_T1w.nii.gz", model)            # writes sub-03_T1w_denoised.nii.gz

Multi-contrast (docs/method.md section 9, docs/multicontrast.md): one network per target
contrast, the subject's other contrasts as guides:

    from c2s_monai import train_multicontrast, denoise_subject
    train_multicontrast("subjects.csv", "runs/mc")          # runs/mc/<contrast>/model.pt
    denoise_subject({"t1": "t1.nii.gz", "t2": "t2.nii.gz", "flair": "flair.nii.gz"}, "runs/mc")

One module per concern: :mod:`.training` (``train``, ``train_multicontrast``),
:mod:`.denoising` (``denoise``, ``denoise_files``: many inputs, going on past bad ones, with a
JSON summary, :mod:`c2s_monai.batch`), :mod:`.subjects` (``denoise_subject(s)``) and
:mod:`.models` (``load_network`` and the settings recorded beside the weights).
"""

from __future__ import annotations

from c2s_monai import defaults
from c2s_monai.api.denoising import check_settings, denoise, denoise_files
from c2s_monai.api.models import load_network, trained_with_rician_vst, training_setting
from c2s_monai.api.subjects import denoise_subject, denoise_subjects
from c2s_monai.api.training import train, train_multicontrast

# The defaults (c2s_monai.defaults) under the names this module has exported.
DEFAULT_FEATURES = defaults.FEATURES
DEFAULT_FLIPS = defaults.FLIPS

__all__ = [
    "DEFAULT_FEATURES",
    "DEFAULT_FLIPS",
    "check_settings",
    "denoise",
    "denoise_files",
    "denoise_subject",
    "denoise_subjects",
    "load_network",
    "train",
    "train_multicontrast",
    "trained_with_rician_vst",
    "training_setting",
]
