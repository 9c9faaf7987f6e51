"""Every C2S transform, in one namespace (the layout of ``monai.transforms``).

- :mod:`.array`: :class:`EnsureVolume` (one checked channel-first volume), :class:`ScaleNoisyImage`
  (network units and the noise level), :class:`MoveSliceAxis`, :class:`RicianVST`, :class:`AddNoise`;
- :mod:`.dictionary`: their dictionary forms, the volumetric-context training transforms
  (:class:`CheckContextd`, :class:`RandContextSliced`, :class:`RandDropContextd`) and
  :class:`SimulateNoisyd` (synthetic-noise pairs), each with MONAI's ``D``/``Dict`` aliases.

Also reachable here, defined beside what they read or write: :class:`LoadVolume`/:class:`LoadVolumed`
(:mod:`c2s_monai.io.readers`), :class:`SaveDenoisedd` (:mod:`c2s_monai.io.writers`) and
:class:`StackContrasts`/:class:`StackContrastsd` (:mod:`c2s_monai.multicontrast`).

>>> import torch
>>> from c2s_monai.transforms import EnsureVolume
>>> EnsureVolume()(torch.rand(1, 16, 16)).shape  # a 2D image becomes a one-slice volume
torch.Size([1, 16, 16, 1])
"""

from __future__ import annotations

import importlib

from c2s_monai.transforms.array import MIN_IN_PLANE, AddNoise, EnsureVolume, MoveSliceAxis, RicianVST, ScaleNoisyImage
from c2s_monai.transforms.dictionary import (
    AddNoiseD,
    AddNoised,
    AddNoiseDict,
    CheckContextD,
    CheckContextd,
    CheckContextDict,
    EnsureVolumeD,
    EnsureVolumed,
    EnsureVolumeDict,
    LoadNoiseMapD,
    LoadNoiseMapd,
    LoadNoiseMapDict,
    MoveSliceAxisD,
    MoveSliceAxisd,
    MoveSliceAxisDict,
    RandContextSliceD,
    RandContextSliced,
    RandContextSliceDict,
    RandDropContextD,
    RandDropContextd,
    RandDropContextDict,
    ResolveNoiseLevelD,
    ResolveNoiseLeveld,
    ResolveNoiseLevelDict,
    RicianVSTD,
    RicianVSTd,
    RicianVSTDict,
    ScaleNoisyImageD,
    ScaleNoisyImaged,
    ScaleNoisyImageDict,
    SimulateNoisyD,
    SimulateNoisyd,
    SimulateNoisyDict,
)

# Defined beside what they read or write; imported on first use (their modules import this package).
_ELSEWHERE = {
    "LoadVolume": "c2s_monai.io.readers",
    "LoadVolumed": "c2s_monai.io.readers",
    "SaveDenoisedd": "c2s_monai.io.writers",
    "StackContrasts": "c2s_monai.multicontrast",
    "StackContrastsd": "c2s_monai.multicontrast",
}


def __getattr__(name: str):
    if name in _ELSEWHERE:
        return getattr(importlib.import_module(_ELSEWHERE[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MIN_IN_PLANE",
    "AddNoise",
    "AddNoiseD",
    "AddNoiseDict",
    "AddNoised",
    "CheckContextD",
    "CheckContextDict",
    "CheckContextd",
    "EnsureVolume",
    "EnsureVolumeD",
    "EnsureVolumeDict",
    "EnsureVolumed",
    "MoveSliceAxis",
    "MoveSliceAxisD",
    "MoveSliceAxisDict",
    "MoveSliceAxisd",
    "RandContextSliceD",
    "RandContextSliceDict",
    "RandContextSliced",
    "RandDropContextD",
    "RandDropContextDict",
    "RandDropContextd",
    "LoadNoiseMapD",
    "LoadNoiseMapDict",
    "LoadNoiseMapd",
    "ResolveNoiseLevelD",
    "ResolveNoiseLevelDict",
    "ResolveNoiseLeveld",
    "RicianVST",
    "RicianVSTD",
    "RicianVSTDict",
    "RicianVSTd",
    "ScaleNoisyImage",
    "ScaleNoisyImageD",
    "ScaleNoisyImageDict",
    "ScaleNoisyImaged",
    "SimulateNoisyD",
    "SimulateNoisyDict",
    "SimulateNoisyd",
    *_ELSEWHERE,
]
