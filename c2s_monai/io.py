"""Reading noisy volumes and writing denoised ones.

Volumes are read with MONAI's ``LoadImage`` (NIfTI through nibabel) as channel-first
``MetaTensor`` of shape ``(1, H, W, D)`` in float32: a 2D image gets ``D = 1`` and a 4D
file whose fourth axis has length 1 is squeezed. Denoised volumes are written as NIfTI
with the input's affine and header (data type float32), atomically (a temporary file in
the output folder, then a rename), and never over the input.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import LoadImage

from c2s_monai.transforms import EnsureVolume

DENOISED_POSTFIX = "_denoised"
NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _stem(path: Path) -> str:
    name = path.name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def load_volume(path: str | os.PathLike) -> MetaTensor:
    """Load one noisy volume as a validated float32 ``MetaTensor`` ``(1, H, W, D)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file.")
    try:
        image = LoadImage(image_only=True, ensure_channel_first=True, dtype=None)(str(path))
    except Exception as error:  # the readers raise many types; one message names the file
        raise ValueError(f"{path}: cannot be read as an image ({error}).") from error
    if image.shape[0] != 1:
        raise ValueError(
            f"{path}: expected one 2D or 3D volume, got {image.shape[0]} volumes (channel-first shape "
            f"{tuple(image.shape)}); split the 4D series into 3D volumes first."
        )
    return EnsureVolume()(image)


def default_output_path(input_path: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> Path:
    """``<output_dir or input folder>/<name>_denoised.nii.gz``."""
    input_path = Path(input_path)
    folder = Path(output_dir) if output_dir is not None else input_path.parent
    return folder / f"{_stem(input_path)}{DENOISED_POSTFIX}.nii.gz"


def check_output_path(input_path: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Refuse an output that is the input itself; return the output as a ``Path``."""
    output_path = Path(output_path)
    if output_path.resolve() == Path(input_path).resolve():
        raise ValueError(f"{output_path}: the output would overwrite the input; choose another output path.")
    return output_path


def save_like(volume: torch.Tensor | np.ndarray, reference_path: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Write ``volume`` as NIfTI with ``reference_path``'s affine and header, atomically.

    ``volume`` is ``(1, H, W, D)`` or ``(H, W, D)`` in the reference's voxel order; a
    trailing ``D = 1`` is dropped again when the reference is 2D.
    """
    output_path = check_output_path(reference_path, output_path)
    reference = nib.load(str(reference_path))
    data = np.asarray(volume.detach().cpu() if isinstance(volume, torch.Tensor) else volume, dtype=np.float32)
    data = data.reshape(data.shape[1:]) if data.ndim == 4 and data.shape[0] == 1 else data
    data = data.reshape(reference.shape) if data.size == int(np.prod(reference.shape)) else data
    header = reference.header.copy()
    header.set_data_dtype(np.float32)
    header["scl_slope"], header["scl_inter"] = 1.0, 0.0
    image = nib.Nifti1Image(data, reference.affine, header)
    return atomic_write(output_path, lambda temporary: nib.save(image, temporary))


def atomic_write(path: str | os.PathLike, write: Callable[[str], object]) -> Path:
    """Call ``write(temporary)`` on a temporary file beside ``path``, then rename it to ``path``.

    The file appears complete or not at all, even if the process is killed; the temporary
    keeps ``path``'s suffixes (``.nii.gz``, ``.pt``) so writers that look at them still work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    handle, temporary = tempfile.mkstemp(suffix=suffix, prefix=".tmp_", dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path
