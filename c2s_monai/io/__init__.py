"""Everything that touches files: reading noisy volumes, writing denoised ones, listing inputs, sample data.

- :mod:`c2s_monai.io.readers`: :class:`~c2s_monai.io.readers.LoadVolume` (NIfTI through MONAI's
  ``LoadImage``, DICOM series, HDF5) and :func:`~c2s_monai.io.readers.list_inputs` (the inputs of
  a folder, never an output);
- :mod:`c2s_monai.io.writers`: NIfTI and DICOM-series output, the bundle's ``SaveDenoisedd``;
- :mod:`c2s_monai.io.sample_data`: the public scans the bundle, tests and benchmarks use;
- this module: one checked volume in (:func:`load_volume`), atomic writes, output paths.

Volumes are read with :class:`~c2s_monai.io.readers.LoadVolume` and checked by
:class:`~c2s_monai.transforms.EnsureVolume`, as channel-first ``MetaTensor`` of shape
``(1, H, W, D)`` in float32: a 2D image gets ``D = 1`` and a 4D file whose fourth axis has
length 1 is squeezed. Denoised volumes are written as NIfTI with the input's affine and
header (data type float32), atomically (a temporary file in the output folder, then a
rename: a file appears complete or not at all), and never over the input. Output names
follow :mod:`c2s_monai.naming`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor

from c2s_monai.errors import InputError
from c2s_monai.io.readers import LoadVolume
from c2s_monai.naming import output_path
from c2s_monai.transforms import EnsureVolume


def load_volume(path: str | os.PathLike, num_channels: int | None = 1) -> MetaTensor:
    """Load one noisy volume as a validated float32 ``MetaTensor`` ``(1, H, W, D)``.

    Any input :class:`~c2s_monai.io.readers.LoadVolume` reads (NIfTI, a DICOM series folder, HDF5),
    checked by :class:`~c2s_monai.transforms.EnsureVolume`; ``num_channels=None`` accepts a 4D
    series as ``(volumes, H, W, D)``. A bad file raises :class:`~c2s_monai.errors.InputError`
    (``FileNotFoundError`` for a missing one) naming it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file; check the path.")
    # LoadVolume gives a MetaTensor and EnsureVolume's torch operations keep it one
    return cast(MetaTensor, EnsureVolume(num_channels)(LoadVolume()(str(path))))


def default_output_path(input_path: str | os.PathLike, output_dir: str | os.PathLike | None = None) -> Path:
    """``<output_dir or input folder>/<name>_denoised.nii.gz`` (:func:`c2s_monai.naming.output_path`)."""
    return output_path(input_path, output_dir)


def check_output_path(input_path: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Refuse an output that is the input itself; return the output as a ``Path``."""
    output_path = Path(output_path)
    if output_path.resolve() == Path(input_path).resolve():
        raise InputError(f"{output_path}: the output would overwrite the input; choose another output path or output_dir.")
    return output_path


def check_writable_folder(folder: str | os.PathLike, create: bool = True) -> Path:
    """Check that files can be written in ``folder`` (created if ``create``); return it as a ``Path``.

    Run before any work, so that an unwritable output folder stops a run at once instead of
    failing every input after its denoising. With ``create=False`` a missing folder is not made:
    its nearest existing parent is checked instead, and nothing is left behind.
    """
    folder = Path(folder)
    probe_in = folder
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        else:
            while not probe_in.exists() and probe_in.parent != probe_in:
                probe_in = probe_in.parent
            if not probe_in.is_dir():
                raise NotADirectoryError(20, "Not a directory", str(probe_in))
        handle, probe = tempfile.mkstemp(prefix=".tmp_write_check_", dir=probe_in)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise InputError(
            f"{folder}: outputs cannot be written here ({error.strerror or error}); choose a writable output folder "
            "(output_dir)."
        ) from error
    return folder


def save_like(volume: torch.Tensor | np.ndarray, reference_path: str | os.PathLike, output_path: str | os.PathLike) -> Path:
    """Write ``volume`` as NIfTI with ``reference_path``'s affine and header, atomically.

    ``volume`` is ``(1, H, W, D)`` or ``(H, W, D)`` in the reference's voxel order; a
    trailing ``D = 1`` is dropped again when the reference is 2D.
    """
    output_path = check_output_path(reference_path, output_path)
    reference = cast(nib.Nifti1Image, nib.load(str(reference_path)))  # a NIfTI (its header is copied); nib.load is annotated with the base class
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
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes 0600 files; give the mode a plain open would
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def current_umask() -> int:
    """The process's file-mode creation mask (``os.umask`` can only be read by setting it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through :func:`atomic_write` (reports and summaries)."""
    return atomic_write(path, lambda temporary: Path(temporary).write_text(text))
