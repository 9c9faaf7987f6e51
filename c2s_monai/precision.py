"""Mixed precision: which autocast dtype to run the network in.

bfloat16 autocast is a large speed lever where the hardware has native bfloat16 matrix
units (Intel AMX on recent Xeons: 1.75x per training step, 1.35x per inference slice on this
project's CPUs, docs/benchmarks.md) and a loss where it is emulated. ``"auto"`` picks it only
where it is native: CUDA devices that report bfloat16 support, and CPUs with AMX tiles.
"""

from __future__ import annotations

import torch

AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
AUTOCAST_CHOICES = (*AUTOCAST_DTYPES, "auto")


def native_bfloat16(device_type: str) -> bool:
    """Whether ``device_type`` (``"cpu"``/``"cuda"``) has native bfloat16 matrix units."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        is_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(is_amx and is_amx())
    return False


def autocast_dtype(name: str, device_type: str) -> torch.dtype | None:
    """The autocast dtype for setting ``name`` on ``device_type`` (``None``: run in float32).

    ``name`` is ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (bfloat16 where
    :func:`native_bfloat16`, float32 elsewhere).
    """
    if name not in AUTOCAST_CHOICES:
        raise ValueError(f"autocast_dtype must be one of {AUTOCAST_CHOICES}, got {name!r}.")
    if name == "auto":
        return torch.bfloat16 if native_bfloat16(device_type) else None
    return AUTOCAST_DTYPES[name]
