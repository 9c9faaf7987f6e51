"""Mixed precision: which autocast dtype to run the network in.

bfloat16 autocast is a large speed lever where the hardware has native bfloat16 units
(Intel AMX on recent Xeons: 1.75x per training step, 1.35x per inference slice; AVX512-BF16
on AMD Zen 4: 1.8x per training step, 1.5-1.9x per inference slice; docs/benchmarks.md) and
a loss where it is emulated. ``"auto"`` picks it only where it is native: CUDA devices that
report bfloat16 support, and CPUs with AMX tiles or the AVX512-BF16 instructions.
float16 is not offered: training in it needs a gradient scaler, which the engine does not
run, and the network's outputs are read in float32 anyway.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

NATIVE_BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    """The CPU feature flags the Linux kernel reports (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()

AUTOCAST_DTYPES = {"float32": None, "bfloat16": torch.bfloat16}
AUTOCAST_CHOICES = (*AUTOCAST_DTYPES, "auto")


def check_autocast_dtype(name: str) -> str:
    """``name`` if it is one of :data:`AUTOCAST_CHOICES`; one clear ``ValueError`` otherwise."""
    if name not in AUTOCAST_CHOICES:
        raise ValueError(f"autocast_dtype must be one of {AUTOCAST_CHOICES}, got {name!r}.")
    return name


def native_bfloat16(device_type: str) -> bool:
    """Whether ``device_type`` (``"cpu"``/``"cuda"``) has native bfloat16 matrix units."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device_type == "cpu":
        is_amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(is_amx and is_amx()) or bool(NATIVE_BF16_CPU_FLAGS & _cpu_flags())
    return False


def autocast_dtype(name: str, device_type: str) -> torch.dtype | None:
    """The autocast dtype for setting ``name`` on ``device_type`` (``None``: run in float32).

    ``name`` is ``"float32"``, ``"bfloat16"`` or ``"auto"`` (bfloat16 where
    :func:`native_bfloat16`, float32 elsewhere).
    """
    if check_autocast_dtype(name) == "auto":
        return torch.bfloat16 if native_bfloat16(device_type) else None
    return AUTOCAST_DTYPES[name]
