"""c2s-monai: Corruption2Self (Tu, Shi & Lam, ICLR 2025) self-supervised MRI denoising on MONAI."""

import logging as _logging
import warnings as _warnings

from c2s_monai.api import (
    denoise,
    denoise_files,
    denoise_subject,
    denoise_subjects,
    load_network,
    train,
    train_multicontrast,
)
from c2s_monai.estimation import (
    estimate_sigma,
    estimate_sigma_background,
    estimate_sigma_mad,
)
from c2s_monai.inferers import C2SInferer
from c2s_monai.losses import GDSMLoss
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.noise import add_noise, recorrupt
from c2s_monai.transforms import AddNoise, AddNoised

# MONAI's optional GPU DICOM decoder (nvImageCodec) is absent on CPU machines: that is not news
# to a user denoising on a CPU, so its two notices are silenced; pydicom decodes as before.
_logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(_logging.ERROR)
_warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register", category=UserWarning)

__version__ = "0.1.0"

__all__ = [
    "AddNoise",
    "AddNoised",
    "C2SInferer",
    "GDSMLoss",
    "NoiseConditionedUNet",
    "add_noise",
    "denoise",
    "denoise_files",
    "denoise_subject",
    "denoise_subjects",
    "estimate_sigma",
    "estimate_sigma_background",
    "estimate_sigma_mad",
    "load_network",
    "recorrupt",
    "train",
    "train_multicontrast",
]
