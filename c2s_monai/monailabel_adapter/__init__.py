"""Serving the C2S bundle from MONAI Label (optional: needs ``monailabel``; see docs/monai-label.md).

- :class:`~c2s_monai.monailabel_adapter.task.BundleDenoiseTask`: a MONAI Label infer task
  that reads the bundle's ``configs/inference.json`` and ``metadata.json`` as MONAI Label's
  ``BundleInferTask`` does and returns the denoised volume as a float32 NIfTI image;
- :mod:`c2s_monai.monailabel_adapter.server`: the ASGI app for
  ``monailabel start_server --uvicorn_app c2s_monai.monailabel_adapter.server:app``;
- the MONAI Label app itself is the folder ``monailabel_app/`` of the repository.

Importing this package makes ``pydicom_seg`` importable under pydicom 3
(:func:`alias_pydicom_storage_uids`), which MONAI Label's server needs.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = ["alias_pydicom_storage_uids"]


def alias_pydicom_storage_uids() -> None:
    """Let ``pydicom_seg`` 0.4.1 import under pydicom 3.

    MONAI Label 0.8.5 imports ``pydicom_seg`` at start-up (for DICOM SEG results, which a
    denoiser never returns), and ``pydicom_seg`` reads the storage SOP class UIDs from
    ``pydicom._storage_sopclass_uids``, a module pydicom 3 folded into ``pydicom.uid`` (which
    defines the same names). The old name is made an alias of the new module; nothing is
    changed when the old module exists.
    """
    if "pydicom._storage_sopclass_uids" in sys.modules or importlib.util.find_spec("pydicom._storage_sopclass_uids"):
        return
    import pydicom.uid

    sys.modules["pydicom._storage_sopclass_uids"] = pydicom.uid


alias_pydicom_storage_uids()
