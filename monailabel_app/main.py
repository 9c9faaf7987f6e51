"""MONAI Label app serving the C2S bundle's denoiser (docs/monai-label.md).

    monailabel start_server --app monailabel_app --studies /data/studies \
        --uvicorn_app c2s_monai.monailabel_adapter.server:app --host 127.0.0.1 --port 8000

One model, ``c2s``, of type ``others``: ``POST /infer/c2s?image=<id>&output=image`` (or an
uploaded ``file``) returns the denoised volume as float32 NIfTI in the input's units.
Options (``--conf KEY VALUE``):

- ``bundle``: the bundle folder (default: ``bundle/`` beside this app folder);
- ``ckpt_path``: weights to serve instead of ``<bundle>/models/model.pt`` (same ``network_def``).

There is no training task: C2S trains on unlabelled scans with the bundle's ``train.json``
(MONAI Label's training tasks expect labels).
"""

from __future__ import annotations

import logging
from pathlib import Path

from monailabel.interfaces.app import MONAILabelApp

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
