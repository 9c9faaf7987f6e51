"""The C2S training step on MONAI's ``SupervisedTrainer`` (ignite loop, MONAI handlers).

The only thing C2S changes in supervised training is the iteration: there is no label,
and the loss (:class:`c2s_monai.losses.GDSMLoss`) calls the network itself on re-corrupted
inputs. :class:`GDSMIteration` is that step, passed as ``iteration_update``; everything
else (EMA, checkpoints, LR schedule, logging) is an ignite/MONAI handler.
"""

from __future__ import annotations

import torch
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils.enums import CommonKeys

AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


class GDSMIteration:
    """One GDSM optimisation step: ``loss = engine.loss_function(engine.network, y, sigma_data)``.

    Args:
        image_key: batch key of the noisy images ``(B, C, *spatial)`` (channel 0: target).
        sigma_key: batch key of the per-sample data noise level ``(B,)`` in network units.
        autocast_dtype: ``"float32"`` (no autocast), ``"bfloat16"`` or ``"float16"``: mixed
            precision for the forward pass on the engine's device (bfloat16 runs on the
            AMX units of recent Xeon CPUs).
    """

    def __init__(self, image_key: str = "image", sigma_key: str = "sigma_data", autocast_dtype: str = "float32") -> None:
        if autocast_dtype not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast_dtype must be one of {tuple(AUTOCAST_DTYPES)}, got {autocast_dtype!r}.")
        self.image_key = image_key
        self.sigma_key = sigma_key
        self.autocast_dtype = AUTOCAST_DTYPES[autocast_dtype]

    def __call__(self, engine: SupervisedTrainer, batchdata: dict) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        device = engine.state.device
        noisy = torch.as_tensor(batchdata[self.image_key]).to(device=device, dtype=torch.float32)
        sigma_data = torch.as_tensor(batchdata[self.sigma_key]).to(device=device, dtype=torch.float32).reshape(-1)
        output = {CommonKeys.IMAGE: noisy}
        engine.state.output = output
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None):
            loss = engine.loss_function(engine.network, noisy, sigma_data)
        output[CommonKeys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        output[CommonKeys.LOSS] = loss.detach()
        return output
