"""The C2S training step on MONAI's ``SupervisedTrainer`` (ignite loop, MONAI handlers).

The only thing C2S changes in supervised training is the iteration: there is no label,
and the loss (:class:`c2s_monai.losses.GDSMLoss`) calls the network itself on re-corrupted
inputs. :class:`GDSMIteration` is that step, passed as ``iteration_update``; everything
else (EMA, checkpoints, LR schedule, logging) is an ignite/MONAI handler.
"""

from __future__ import annotations

import torch
from ignite.engine import Events
from ignite.handlers import Checkpoint, DiskSaver, ProgressBar
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.handlers import LrScheduleHandler, StatsHandler
from monai.optimizers import WarmupCosineSchedule
from monai.utils.enums import CommonKeys

from c2s_monai import defaults
from c2s_monai.engines.random_state import RandomState
from c2s_monai.handlers import ResumeFromCheckpoint, WarmupEMAHandler
from c2s_monai.precision import autocast_dtype, check_autocast_dtype


class GDSMIteration:
    """One GDSM optimisation step: ``loss = engine.loss_function(engine.network, y, sigma_data)``.

    Args:
        image_key: batch key of the noisy images ``(B, C, *spatial)`` (channel 0: target).
        sigma_key: batch key of the per-sample data noise level ``(B,)`` in network units.
        map_key: batch key of the per-voxel level map (network units, channel 0 the target's;
            :class:`~c2s_monai.transforms.ResolveNoiseLeveld`); used instead of ``sigma_key``
            when the batch has it.
        autocast_dtype: ``"float32"`` (no autocast), ``"bfloat16"`` or ``"auto"`` (the default):
            mixed precision for the forward pass on the engine's device; ``"auto"`` is
            bfloat16 where the device has native bfloat16 units (AMX CPUs, recent GPUs),
            see :mod:`c2s_monai.precision`.
    """

    def __init__(
        self, image_key: str = "image", sigma_key: str = "sigma_data", autocast_dtype: str = defaults.AUTOCAST_DTYPE, map_key: str = "sigma_map"
    ) -> None:
        check_autocast_dtype(autocast_dtype)
        self.image_key = image_key
        self.sigma_key = sigma_key
        self.map_key = map_key
        self.autocast_setting = autocast_dtype

    def __call__(self, engine: SupervisedTrainer, batchdata: dict) -> dict:
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        device = engine.state.device
        noisy = torch.as_tensor(batchdata[self.image_key]).to(device=device, dtype=torch.float32)
        if self.map_key in batchdata:
            sigma_data = torch.as_tensor(batchdata[self.map_key])[:, :1].to(device=device, dtype=torch.float32)
        else:
            sigma_data = torch.as_tensor(batchdata[self.sigma_key]).to(device=device, dtype=torch.float32).reshape(-1)
        output = {CommonKeys.IMAGE: noisy}
        engine.state.output = output
        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=True)
        device_type = torch.device(device).type
        dtype = autocast_dtype(self.autocast_setting, device_type)
        with torch.autocast(device_type, dtype=dtype, enabled=dtype is not None):
            loss = engine.loss_function(engine.network, noisy, sigma_data)
        output[CommonKeys.LOSS] = loss
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        loss.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        output[CommonKeys.LOSS] = loss.detach()
        return output


def checkpoint_handler(save_dict: dict, checkpoint_dir: str) -> Checkpoint:
    """ignite's ``Checkpoint`` writing ``checkpoint_<epoch>.pt`` crash-safely.

    ``DiskSaver(atomic=True)`` writes a temporary file and renames it, so a killed run never
    leaves a truncated checkpoint. Two checkpoints are kept because ``Checkpoint`` deletes the
    oldest *before* writing the new one: with one, a kill during that write would leave none.
    ``include_self`` saves the list of written files, so a resumed run goes on rotating them.
    """
    saver = DiskSaver(str(checkpoint_dir), atomic=True, require_empty=False)
    return Checkpoint(save_dict, saver, n_saved=2, include_self=True, global_step_transform=lambda engine, _: engine.state.epoch)


def create_trainer(
    network: torch.nn.Module,
    loss_function: torch.nn.Module,
    train_loader,
    epochs: int,
    iterations_per_epoch: int,
    learning_rate: float = defaults.LEARNING_RATE,
    warmup_iterations: int = defaults.WARMUP_ITERATIONS,
    ema_momentum: float = defaults.EMA_MOMENTUM,
    device: str | torch.device = "cpu",
    autocast_dtype: str = defaults.AUTOCAST_DTYPE,
    checkpoint_dir: str | None = None,
    train_handlers: list | None = None,
    progress: bool = False,
) -> tuple[SupervisedTrainer, WarmupEMAHandler]:
    """A ``SupervisedTrainer`` running :class:`GDSMIteration` with the C2S recipe's handlers.

    The defaults are the bundle's recipe (:mod:`c2s_monai.defaults`, the values of
    ``bundle/configs/train.json``): Adam at 8e-3 and bfloat16 autocast where the device has
    native bfloat16 units (docs/benchmarks.md, time to quality).

    Adam, ``warmup_iterations`` of linear warm-up (at most a fifth of the run) then cosine
    decay to zero (``WarmupCosineSchedule``, stepped per iteration), an EMA of the weights
    (:class:`c2s_monai.handlers.WarmupEMAHandler`), and, with ``checkpoint_dir``, a full
    checkpoint each epoch (network, EMA, optimiser, scheduler, trainer, random streams:
    :class:`~c2s_monai.engines.RandomState`) written atomically (:func:`checkpoint_handler`),
    from which the run resumes when one is there: a run killed and started again loses at
    most the epoch it was in, and ends with the weights of a run never killed. Returns
    ``(trainer, ema)``; the EMA weights are ``ema.ema_model``.
    """
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    total = epochs * iterations_per_epoch
    warmup = min(warmup_iterations, max(1, total // 5))
    scheduler = WarmupCosineSchedule(optimizer, warmup_steps=warmup, t_total=total)
    # MONAI's annotation names torch's legacy _LRScheduler; WarmupCosineSchedule is an LRScheduler, stepped the same way
    handlers = [LrScheduleHandler(scheduler, print_lr=False, epoch_level=False), StatsHandler(iteration_log=False, tag_name="loss")]  # type: ignore[arg-type]
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=epochs,
        epoch_length=iterations_per_epoch,
        train_data_loader=train_loader,
        network=network,
        optimizer=optimizer,
        loss_function=loss_function,
        iteration_update=GDSMIteration(autocast_dtype=autocast_dtype),  # type: ignore[arg-type]  # MONAI calls it with the trainer itself
        train_handlers=handlers + list(train_handlers or []),
        amp=False,
        decollate=False,
    )
    # ignite says "resuming from iteration 0" on every fresh run; only a real resume is news
    trainer.logger.addFilter(lambda record: not str(record.getMessage()).startswith("Engine run resuming from iteration 0,"))
    trainer.lr_scheduler = scheduler  # type: ignore[attr-defined]  # an attribute of ours, for callers that resize the schedule (benchmarks/volumetric.py: a time budget)
    ema = WarmupEMAHandler(network, momentum=ema_momentum)
    ema.attach(trainer)
    if checkpoint_dir is not None:
        random_state = RandomState(getattr(train_loader.dataset, "transform", None), getattr(train_loader, "sampler", None))
        save_dict = {
            "network": network,
            "ema_network": ema.ema_model,
            "optimizer": optimizer,
            "lr_scheduler": scheduler,
            "trainer": trainer,
            "random_state": random_state,
        }
        checkpoint = checkpoint_handler(save_dict, checkpoint_dir)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, checkpoint)
        load_dict = {**save_dict, "checkpointer": checkpoint}
        ResumeFromCheckpoint(checkpoint_dir, load_dict, lr_scheduler=scheduler, map_location=device).attach(trainer)
    if progress:
        ProgressBar(persist=False).attach(trainer, output_transform=lambda output: {"loss": float(output["loss"])})
    return trainer, ema
