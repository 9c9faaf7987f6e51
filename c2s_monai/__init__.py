"""c2s-monai: Corruption2Self (Tu, Shi & Lam, ICLR 2025) self-supervised MRI denoising on MONAI.

The public names below are imported on first use (PEP 562), so ``import c2s_monai`` and the
CLI's ``--help`` start without loading torch and MONAI; ``from c2s_monai import denoise`` and
``c2s_monai.C2SInferer`` work as with eager imports.
"""

from __future__ import annotations

import importlib as _importlib
import logging as _logging
import warnings as _warnings

from c2s_monai.errors import install_excepthook as _install_excepthook

# MONAI's optional GPU DICOM decoder (nvImageCodec) is absent on CPU machines: that is not news
# to a user denoising on a CPU, so its two notices are silenced; pydicom decodes as before.
_logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(_logging.ERROR)
_warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register", category=UserWarning)

# a failed run ends with the clear message, not MONAI's wrapper of it (c2s_monai.errors.report_error)
_install_excepthook()

__version__ = "0.1.0"

# public name -> the module that defines it
_PUBLIC = {
    "denoise": "c2s_monai.api",
    "denoise_files": "c2s_monai.api",
    "denoise_subject": "c2s_monai.api",
    "denoise_subjects": "c2s_monai.api",
    "load_network": "c2s_monai.api",
    "train": "c2s_monai.api",
    "train_multicontrast": "c2s_monai.api",
    "estimate_sigma": "c2s_monai.estimation",
    "estimate_sigma_background": "c2s_monai.estimation",
    "estimate_sigma_mad": "c2s_monai.estimation",
    "C2SInferer": "c2s_monai.inferers",
    "GDSMLoss": "c2s_monai.losses",
    "NoiseConditionedUNet": "c2s_monai.networks",
    "add_noise": "c2s_monai.noise",
    "recorrupt": "c2s_monai.noise",
    "AddNoise": "c2s_monai.transforms",
    "AddNoised": "c2s_monai.transforms",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    """A public name (imported from its module on first use), or a submodule (``c2s_monai.context``)."""
    if name in _PUBLIC:
        value = getattr(_importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("_"):
        try:
            return _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
