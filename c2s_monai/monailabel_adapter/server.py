"""MONAI Label's ASGI app, importable under pydicom 3.

Start the server with it in place of MONAI Label's default ``monailabel.app:app``:

    monailabel start_server --app monailabel_app --studies /data/studies \\
        --uvicorn_app c2s_monai.monailabel_adapter.server:app

It is MONAI Label's own app, imported after :func:`~c2s_monai.monailabel_adapter.alias_pydicom_storage_uids`
(done by importing the package) so that MONAI Label's start-up import of ``pydicom_seg`` works.
"""

# the alias must exist before MONAI Label is imported
# isort: off
from c2s_monai import monailabel_adapter  # noqa: F401
from monailabel.app import app

# isort: on

__all__ = ["app"]
