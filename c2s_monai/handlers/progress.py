"""Training progress: :class:`LossProgressBar`, ignite's ``ProgressBar`` showing the training loss,
attachable as a plain MONAI ``train_handlers`` entry.
"""

from __future__ import annotations

from ignite.handlers import ProgressBar


def _loss_of(output) -> dict[str, float]:
    item = output[0] if isinstance(output, (list, tuple)) else output
    return {"loss": float(item["loss"])}


class LossProgressBar(ProgressBar):
    """ignite ``ProgressBar`` that shows the loss; ``attach(engine)`` alone suffices (MONAI handler lists)."""

    def attach(self, engine, metric_names=None, output_transform=None, *args, **kwargs):  # type: ignore[override]
        super().attach(engine, metric_names, output_transform or _loss_of, *args, **kwargs)
