"""Ignite handlers, one concern per module (the layout of ``monai.handlers``).

- :mod:`.reports`: :class:`DenoisingReportHandler` (QA figure and JSON report per input) and
  :class:`NoReferenceReportHandler` (no-reference checks during validation);
- :mod:`.ema`: :class:`WarmupEMAHandler` and its warm-up :class:`EMAWarmup`;
- :mod:`.checkpoints`: :func:`load_pretrained`, :class:`LoadCheckpoint`,
  :class:`ResumeFromCheckpoint`, :class:`LoadContrastCheckpoints`;
- :mod:`.progress`: :class:`LossProgressBar`.

Training imports :mod:`.ema`, :mod:`.checkpoints` and :mod:`.progress` only; the reports
(figures) are for evaluators.
"""

from c2s_monai.handlers.checkpoints import (
    FIRST_CONV,
    LoadCheckpoint,
    LoadContrastCheckpoints,
    ResumeFromCheckpoint,
    inflate_context,
    latest_checkpoint,
    load_pretrained,
    read_checkpoint,
)
from c2s_monai.handlers.ema import EMAWarmup, WarmupEMAHandler
from c2s_monai.handlers.progress import LossProgressBar
from c2s_monai.handlers.reports import DenoisingReportHandler, NoReferenceReportHandler, qa_figure

__all__ = [
    "FIRST_CONV",
    "DenoisingReportHandler",
    "EMAWarmup",
    "LoadCheckpoint",
    "LoadContrastCheckpoints",
    "LossProgressBar",
    "NoReferenceReportHandler",
    "ResumeFromCheckpoint",
    "WarmupEMAHandler",
    "inflate_context",
    "latest_checkpoint",
    "load_pretrained",
    "qa_figure",
    "read_checkpoint",
]
