"""The random streams of a training run as one checkpointable object.

Saved with the network, EMA, optimiser, scheduler and trainer state and restored on resume,
:class:`RandomState` makes a resumed run draw exactly the patches, flips, noise levels and
noise the uninterrupted run would have drawn, so a run killed and started again ends with the
weights of a run never killed (``tests/test_crash_resume.py``).
"""

from __future__ import annotations

import logging
import random

import numpy as np
import torch
import torch.distributed as dist
from ignite.engine import Engine, Events
from monai.transforms import Compose, Randomizable

__all__ = ["RandomState"]

logger = logging.getLogger(__name__)


def _distributed() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _random_transforms(transform, depth: int = 4) -> dict[str, Randomizable]:
    """The ``Randomizable`` objects in ``transform``, by their path (``"4"``, ``"4.cropper"``).

    Found through ``Compose.transforms`` and the attributes of each transform (a dictionary
    transform may draw through the array transform it wraps, e.g. ``RandSpatialCropSamplesd.cropper``).
    """
    found: dict[str, Randomizable] = {}
    seen: set[int] = set()

    def visit(obj, path: str, level: int) -> None:
        if obj is None or id(obj) in seen or level > depth:
            return
        seen.add(id(obj))
        if isinstance(obj, Randomizable):
            found[path] = obj
        children = [(str(i), t) for i, t in enumerate(obj.transforms)] if isinstance(obj, Compose) else []
        children += [(k, v) for k, v in vars(obj).items() if isinstance(v, (Randomizable, Compose))] if hasattr(obj, "__dict__") else []
        for name, child in children:
            visit(child, f"{path}.{name}" if path else name, level + 1)

    visit(transform, "", 0)
    return found


def _numpy_state(generator) -> dict:
    _, keys, position, has_gauss, cached_gaussian = generator.get_state()
    # tensors and numbers only: checkpoints are read with torch.load(weights_only=True)
    return {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position), "has_gauss": int(has_gauss), "cached_gaussian": float(cached_gaussian)}


def _set_numpy_state(generator, state: dict) -> None:
    generator.set_state(("MT19937", state["keys"].numpy().astype(np.uint32), state["pos"], state["has_gauss"], state["cached_gaussian"]))


class RandomState:
    """Every random stream of a C2S training process, with ``state_dict``/``load_state_dict``.

    What is saved and restored:

    - torch's global CPU generator (the GDSM loss's added noise levels and noise, the
      ``DataLoader``'s worker seeds) and, on CUDA, the current device's generator;
    - numpy's and Python's global generators;
    - the generator ``R`` of every MONAI ``Randomizable`` in ``transform`` (patch crops, flips,
      rotations), see :func:`_random_transforms`, and the one unseeded MONAI transforms share;
    - the ``generator`` of ``sampler`` (a ``RandomSampler``'s draws of volumes), if it has one.
      A ``DistributedSampler`` needs none: its order is a function of its seed and the epoch.

    In a distributed run every rank has its own streams: ``attach`` this object to the trainer
    (before the checkpoint handler) so that the ranks' states are gathered at every epoch end
    and the checkpoint rank 0 writes holds them all; on resume each rank restores its own. A
    checkpoint written by another number of ranks restores nothing (with a warning): each rank
    keeps the streams it was seeded with.

    Args:
        transform: the training transform (a ``Compose``) whose random transforms are saved.
        sampler: the training ``DataLoader``'s sampler.
    """

    def __init__(self, transform=None, sampler=None) -> None:
        self.transform = transform
        self.sampler = sampler
        self._gathered: list[dict] | None = None

    def attach(self, engine: Engine, event=Events.EPOCH_COMPLETED) -> None:
        """Gather the ranks' states at ``event`` (all ranks must attach); nothing to do in one process."""
        if _distributed()[1] > 1:
            engine.add_event_handler(event, self.gather)

    def gather(self, engine: Engine | None = None) -> None:
        """Collect every rank's :meth:`local_state` (a collective: every rank calls it)."""
        states: list = [None] * _distributed()[1]
        dist.all_gather_object(states, self.local_state())
        self._gathered = states

    def _generator(self) -> torch.Generator | None:
        return getattr(self.sampler, "generator", None)

    def local_state(self) -> dict:
        """This process's streams."""
        version, internal, gauss_next = random.getstate()
        state = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state(np.random),
            "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
            # the generator unseeded MONAI transforms share, and each transform's own one
            "monai": _numpy_state(Randomizable.R),
            "transforms": {path: _numpy_state(t.R) for path, t in _random_transforms(self.transform).items() if "R" in vars(t)},
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state()
        generator = self._generator()
        if generator is not None:
            state["sampler"] = generator.get_state()
        return state

    def state_dict(self) -> dict:
        world = _distributed()[1]
        states = self._gathered if world > 1 and self._gathered is not None else [self.local_state()]
        return {"ranks": states}

    def load_state_dict(self, state_dict: dict) -> None:
        rank, world = _distributed()
        states = state_dict["ranks"]
        if len(states) != world:
            logger.warning(
                "the checkpoint holds the random state of %d process(es), this run has %d: random streams are not restored.", len(states), world
            )
            return
        state = states[rank]
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state(state["cuda"])
        _set_numpy_state(np.random, state["numpy"])
        python = state["python"]
        random.setstate((python["version"], tuple(int(v) for v in python["internal"]), python["gauss_next"]))
        _set_numpy_state(Randomizable.R, state["monai"])
        transforms = _random_transforms(self.transform)
        unknown = sorted(set(state["transforms"]) - set(transforms))
        if unknown:
            logger.warning("the checkpoint holds random states of transforms %s that the training transform lacks.", unknown)
        for path, saved in state["transforms"].items():
            if path in transforms:
                if "R" not in vars(transforms[path]):  # it still draws from the shared generator: give it its own
                    transforms[path].set_random_state(state=np.random.RandomState())
                _set_numpy_state(transforms[path].R, saved)
        generator = self._generator()
        if "sampler" in state and generator is not None:
            generator.set_state(state["sampler"])
