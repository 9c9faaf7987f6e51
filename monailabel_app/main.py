"""MONAI Label app serving the C2S bundle's denoiser (docs/monai-label.md).

    monailabel start_server --app monailabel_app --studies /data/studies \
        --uvicorn_app c2s_monai.monailabel_adapter.server:app --host 127.0.0.1 --port 8000

One model, ``c2s``, of type ``others``: ``POST /infer/c2s?image=<id>&output=image`` (or an
uploaded ``file``) returns the denoised volume as float32 NIfTI in the input's units.
Options (``--conf KEY VALUE``):

- ``bundle``: the bundle folder (default: ``bundle/`` beside this app folder);
- ``ckpt_path``: weights to serve instead of ``<bundle>/models/model.pt`` (same ``network_def``).

The image is an id of the datastore (the studies folder) or an uploaded file; an empty or
unknown id is refused (400, 404) with the message, before anything is denoised
(:meth:`C2SDenoisingApp.infer`; the status codes come from
``c2s_monai.monailabel_adapter.server``; docs/monai-label.md "Errors").

There is no training task: C2S trains on unlabelled scans with the bundle's ``train.json``
(MONAI Label's training tasks expect labels).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.exception import ImageNotFoundException, MONAILabelError, MONAILabelException

import c2s_monai
from c2s_monai.monailabel_adapter.task import BundleDenoiseTask

logger = logging.getLogger(__name__)

MODEL_NAME = "c2s"
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "bundle"


class C2SDenoisingApp(MONAILabelApp):
    """The MONAI Label app: one infer task, :class:`~c2s_monai.monailabel_adapter.task.BundleDenoiseTask`."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.bundle_path = Path(conf.get("bundle", DEFAULT_BUNDLE)).expanduser().resolve()
        self.ckpt_path = conf.get("ckpt_path")
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="C2S MRI denoising",
            description="Corruption2Self (C2S) self-supervised MRI denoising: returns the denoised image",
            version=c2s_monai.__version__,
        )

    def init_infers(self):
        logger.info("serving the bundle %s as model %r", self.bundle_path, MODEL_NAME)
        return {MODEL_NAME: BundleDenoiseTask(self.bundle_path, ckpt_path=self.ckpt_path)}

    def infer(self, request, datastore=None):
        """MONAI Label's ``infer``, with the image id resolved here and refused when it is not an image.

        MONAI Label resolves an id the datastore does not know to ``""``, which the task would read
        as the server's working directory (denoising any DICOM series there), and a relative path
        that exists from the working directory is used as the image. Here the image is a
        datastore id (resolved to its file; the result is never saved into the datastore) or an
        absolute path that exists (the temporary file of an upload, a session's image);
        anything else is refused before the task runs.
        """
        image = request.get("image")
        if request.get("model") not in self._infers or not isinstance(image, str):
            return super().infer(request, datastore)
        if not image.strip():
            raise MONAILabelException(
                MONAILabelError.INVALID_INPUT, "no image: give image=<id> of an image in the datastore, or upload a file; nothing was denoised."
            )
        if not (os.path.isabs(image) and os.path.exists(image)):
            uri = (datastore if datastore else self.datastore()).get_image_uri(image)
            if not uri or not os.path.exists(uri):
                raise ImageNotFoundException(
                    f"image {image!r} is not in the datastore: give the id of one of its images "
                    "(GET /datastore/?output=all lists them) or upload a file; nothing was denoised."
                )
            request = {**request, "image": uri}
        return super().infer(request, datastore)
