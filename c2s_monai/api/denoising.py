"""Denoising files from Python: :func:`denoise` (one input) and :func:`denoise_files` (many, going on past bad ones).

Inputs are read as the bundle's ``configs/inference.json`` reads them
(:class:`~c2s_monai.io.readers.LoadVolume` then :class:`~c2s_monai.transforms.EnsureVolume`:
NIfTI, DICOM series, HDF5 dataset ``h5_key``) and written as its ``SaveDenoisedd`` writes them
(:mod:`c2s_monai.io.writers`: NIfTI, or with ``dicom_output`` a DICOM series for a DICOM input),
named by :func:`c2s_monai.naming.output_path`. The settings of a batch call are checked before
any input is read (:func:`check_settings`).
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import torch
from monai.data import MetaTensor

from c2s_monai import defaults
from c2s_monai.api.models import load_network, trained_noise_settings, training_setting
from c2s_monai.batch import BatchSummary
from c2s_monai.context import (
    AUTO,
)
from c2s_monai.errors import InputError
from c2s_monai.handlers.reports import write_report
from c2s_monai.inferers import C2SInferer, denoising_noise_map, denoising_record
from c2s_monai.io import (
    check_output_path,
    check_writable_folder,
)
from c2s_monai.io.readers import LoadVolume, list_inputs
from c2s_monai.io.writers import save_denoised, save_noise_map
from c2s_monai.naming import DENOISED_POSTFIX, NIFTI_OUTPUT_SUFFIX, NIFTI_SUFFIXES, input_kind, output_path
from c2s_monai.noise_level import SIGMA_MAP_MODES, check_noise_map, check_noise_model, check_num_coils, check_sigma_map, legacy_noise_model
from c2s_monai.settings import parse_flag
from c2s_monai.transforms import EnsureVolume

logger = logging.getLogger(__name__)

def denoise(
    input_file: str | os.PathLike,
    model: str | os.PathLike | torch.nn.Module,
    output_file: str | os.PathLike | None = None,
    sigma_data: float | str = defaults.SIGMA_DATA,
    flips: int = defaults.FLIPS,
    device: str = "cpu",
    each_volume: bool = False,
    autocast_dtype: str = defaults.AUTOCAST_DTYPE,
    rician_vst: bool | None = None,
    context_slices: int | str = defaults.CONTEXT_SLICES,
    slice_axis: int | str | None = None,
    h5_key: str = defaults.H5_KEY,
    dicom_output: bool = False,
    report: bool = True,
    noise_model: str | None = None,
    num_coils: int | str | None = None,
    sigma_map: str | os.PathLike | None = None,
) -> Path:
    """Denoise one volume and write ``<name>_denoised.nii.gz`` beside it (or ``output_file``).

    ``input_file`` is NIfTI (the output keeps its affine and header, float32 voxels), a DICOM
    series folder (or one file of it) or an HDF5 file (dataset ``h5_key``; the output has the
    reader's affine), read as the bundle reads it. ``dicom_output`` (DICOM input): write a DICOM
    series instead, the folder ``<series>_denoised/`` beside the series (or ``output_file``),
    as the bundle's ``dicom_output`` does (:func:`c2s_monai.io.writers.write_dicom_series`: a new
    ``SeriesInstanceUID``, the source's geometry and tags); for another input it logs a warning
    and writes NIfTI, as the bundle does. With ``each_volume``,
    a 4D series is denoised volume by volume (each at its own noise level) into one 4D
    output. Returns the output path; the input is never overwritten, and a bad input raises
    :class:`~c2s_monai.errors.InputError` before anything is written. ``rician_vst``: the 0.6 flag for ``noise_model="rician"``. ``context_slices``: ``"auto"`` (the network's context; a single 2D
    image falls back to zero context) or the network's ``K`` as an explicit request, refused
    for a 2D image; ``slice_axis``: ``"auto"`` (largest voxel spacing), 0, 1 or 2, ``None``:
    as trained (:class:`c2s_monai.C2SInferer`). Noise (:mod:`c2s_monai.noise_level`):
    ``noise_model`` (``"auto"``, ``"gaussian"``, ``"rician"``, ``"noncentral_chi"``), ``num_coils``
    and ``sigma_map`` (``"none"``, ``"auto"``: a per-voxel map estimated from the data, or a map
    file on the input's grid, image units), ``None``: as trained
    (:func:`~c2s_monai.api.models.trained_noise_settings`). The noise level used per voxel is
    written beside the output as ``<output name>_noise_map.nii.gz``. ``report`` (default true; ``c2s-monai denoise --report false`` to skip):
    also write, beside the output, the QA figure ``<output name>_qa.png`` and the JSON report
    ``<output name>.json`` the bundle writes (:func:`c2s_monai.handlers.reports.write_report`;
    for a 4D series with ``each_volume``, of its first volume, the report listing every
    volume's sigma). An existing output is overwritten, with a warning naming it.
    """
    started = time.perf_counter()
    dicom_output = bool(parse_flag(dicom_output, "dicom_output"))
    report = bool(parse_flag(report, "report"))
    writes_dicom = dicom_output and input_kind(input_file) == "dicom"
    if dicom_output and not writes_dicom:
        logger.warning("%s: DICOM output needs a DICOM input; writing NIfTI.", input_file)
    output_file = Path(output_file) if output_file is not None else denoised_path(input_file, None, dicom_output)
    if writes_dicom and output_file.name.lower().endswith(NIFTI_SUFFIXES):
        raise InputError(f"{output_file}: with dicom_output the output is a DICOM series folder; give a folder name, not a NIfTI file.")
    # a DICOM series is its folder: the output folder must not be it (nor one of its files)
    output_file = check_output_path(_series_folder(input_file) if writes_dicom else input_file, output_file)
    noise = noise_settings(model, noise_model, num_coils, sigma_map, rician_vst)
    map_file = noise["sigma_map"] if noise["sigma_map"] not in SIGMA_MAP_MODES else None
    if slice_axis is None:
        slice_axis = training_setting(model, "slice_axis", AUTO)
    inferer = C2SInferer(
        sigma_data=sigma_data, flips=flips, autocast_dtype=autocast_dtype, context_slices=context_slices, slice_axis=slice_axis,
        noise_model=noise["noise_model"], num_coils=noise["num_coils"], sigma_map="none" if map_file else noise["sigma_map"],
    )
    network = model if isinstance(model, torch.nn.Module) else load_network(model, device)
    check_writable_folder(output_file.parent, create=False)
    # the bundle's load_transforms: LoadVolumed then EnsureVolumed
    volumes = cast(MetaTensor, EnsureVolume(None if parse_flag(each_volume, "each_volume") else 1)(LoadVolume(h5_key=str(h5_key))(str(input_file))))
    given_map = None
    if map_file is not None:
        given_map = check_noise_map(LoadVolume(h5_key=str(h5_key))(str(map_file)), volumes[:1], str(input_file), str(map_file))
    denoised, records, maps = [], [], []
    for index in range(volumes.shape[0]):
        volume = volumes[index : index + 1]
        if volumes.shape[0] > 1:
            try:
                volume = EnsureVolume(num_channels=1)(volume)
            except InputError as error:
                raise InputError(f"{error} (volume {index} of the series)") from error
        output = inferer(volume.unsqueeze(0).to(device), network, sigma_map=None if given_map is None else [given_map.to(device)])
        denoised.append(output[0, 0])
        records.append(denoising_record(output))
        maps.append(cast(torch.Tensor, denoising_noise_map(output))[0])
        logger.info("%s: sigma_data = %.6g (image units)", input_file, records[-1]["sigma_data"])
    result = torch.stack(denoised, dim=-1) if len(denoised) > 1 else denoised[0]
    existed = output_file.exists()
    # the map first: an output that exists is complete with its map (a rerun skips it)
    save_noise_map(torch.stack(maps, dim=-1) if len(maps) > 1 else maps[0], input_file, output_file, volumes.meta.get("affine"))
    written = save_denoised(result, input_file, output_file, volumes.meta.get("affine"), writes_dicom)
    if existed:
        logger.warning("%s: exists, overwritten", written)
    if report:
        details = {
            "flips": len(getattr(inferer, "flips", ())) or None,
            "seconds_total": time.perf_counter() - started,
            "device": str(device),
            **({"model": str(Path(model).resolve())} if not isinstance(model, torch.nn.Module) else {}),
            **({"volumes_sigma_data": [r.get("sigma_data") for r in records]} if len(records) > 1 else {}),
            **({"overwritten": True} if existed else {}),
        }
        try:
            write_report(volumes, denoised[0], written, records[0], meta=volumes.meta, details=details, noise_map=maps[0])
        except Exception as error:  # noqa: BLE001  as in the bundle: a report must not lose the written output
            logger.warning("%s: the QA figure or JSON report failed (%s); the denoised output is kept.", written, error)
    return written


def noise_settings(model, noise_model=None, num_coils=None, sigma_map=None, rician_vst=None) -> dict:
    """The noise settings of a denoising: those given, the rest as ``model`` was trained (:func:`~c2s_monai.api.models.trained_noise_settings`).

    ``rician_vst`` (the 0.6 flag) is ``noise_model="rician"``. A ``sigma_map`` that is neither
    ``"none"`` nor ``"auto"`` is a map file, which must exist.
    """
    trained = trained_noise_settings(model)
    if rician_vst is not None and parse_flag(rician_vst, "rician_vst"):
        noise_model = legacy_noise_model(noise_model or AUTO, True)
    noise_model = check_noise_model(noise_model if noise_model is not None else trained["noise_model"])
    num_coils = check_num_coils(num_coils if num_coils is not None else trained["num_coils"])
    sigma_map = check_sigma_map(sigma_map if sigma_map is not None else trained["sigma_map"])
    if sigma_map not in SIGMA_MAP_MODES and not Path(sigma_map).exists():
        raise FileNotFoundError(f"{sigma_map}: the noise map (sigma_map) does not exist; give a map file, 'auto' or 'none'.")
    return {"noise_model": noise_model, "num_coils": num_coils, "sigma_map": sigma_map}


def denoised_path(input_file: str | os.PathLike, output_dir: str | os.PathLike | None = None, dicom_output: bool = False) -> Path:
    """Where :func:`denoise` writes ``input_file`` in ``output_dir`` (default: beside it), as the bundle's ``SaveDenoisedd`` names it.

    ``<name>_denoised.nii.gz``, or with ``dicom_output`` for a DICOM series the folder
    ``<series>_denoised`` (:func:`c2s_monai.naming.output_path`).
    """
    dicom = bool(parse_flag(dicom_output, "dicom_output")) and input_kind(input_file) == "dicom"
    return output_path(input_file, output_dir, DENOISED_POSTFIX, "" if dicom else NIFTI_OUTPUT_SUFFIX)


def _series_folder(input_file: str | os.PathLike) -> Path:
    path = Path(input_file)
    return path if path.is_dir() else path.parent


# Settings of the batch functions that the inferer checks, and the yes/no ones.
_INFERER_SETTINGS = ("sigma_data", "flips", "autocast_dtype", "context_slices", "slice_axis", "noise_model", "num_coils")


_FLAG_SETTINGS = ("each_volume", "rician_vst", "resample_guides", "dicom_output", "report")


def check_settings(function, options: Mapping, passed: Sequence[str]) -> None:
    """Check the settings a batch call forwards to ``function`` before any input is read.

    An unknown name (a typo) is one ``TypeError`` naming it and the known ones; a bad value
    (``flips=3``, ``sigma_data="guess"``) is the inferer's or :func:`parse_flag`'s one
    ``ValueError``, so a bad setting stops the run at once instead of failing every input.
    """
    known = [name for name in inspect.signature(function).parameters if name not in passed]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"{function.__name__}: unknown setting(s) {', '.join(unknown)}; the settings are {', '.join(known)}.")
    C2SInferer(**{name: options[name] for name in _INFERER_SETTINGS if options.get(name) is not None}, check_noise=False)
    if options.get("sigma_map") is not None:
        check_sigma_map(options["sigma_map"])
    for name in _FLAG_SETTINGS:
        if options.get(name) is not None:
            parse_flag(options[name], name)


def denoise_files(
    inputs: Sequence[str | os.PathLike],
    model: str | os.PathLike | torch.nn.Module,
    output_dir: str | os.PathLike | None = None,
    summary_file: str | os.PathLike | None = None,
    device: str = "cpu",
    **options,
) -> BatchSummary:
    """Denoise every input (files, DICOM series folders, folders of them), going on past bad ones.

    Each input is written as by :func:`denoise` into ``output_dir`` (default: beside it). A
    bad input is recorded and skipped, nothing written for it; at the end the outcome of every
    input is written to ``summary_file`` (default ``<output_dir>/summary.json``; none without
    either) and returned as a :class:`~c2s_monai.batch.BatchSummary`, whose ``check()`` raises
    if any input failed. A bad model, setting or output folder stops the run at once. The
    summary's paths are absolute, as the per-file reports'; an input whose output existed and
    was overwritten has ``"overwritten": true`` in it (and a warning is logged).

    Args:
        inputs: files and folders; a folder is expanded by :func:`c2s_monai.io.readers.list_inputs`.
        model, device, options: as :func:`denoise` (``sigma_data``, ``flips``, ``each_volume``, ``autocast_dtype``, ``noise_model``,
            ``num_coils``, ``sigma_map`` (``"none"`` or ``"auto"``; a map file only for a single input), ``rician_vst``,
            ``context_slices``, ``slice_axis``, ``h5_key``, ``dicom_output``: each DICOM series is written as a
            series folder ``<series>_denoised``; ``report``: the QA figure and JSON report of each output).
    """
    check_settings(denoise, options, passed=("input_file", "model", "output_file", "device"))
    # the network object below no longer knows how it was trained
    options.update(noise_settings(model, options.get("noise_model"), options.get("num_coils"), options.get("sigma_map"), options.pop("rician_vst", None)))
    if options.get("slice_axis") is None:
        options["slice_axis"] = training_setting(model, "slice_axis", AUTO)
    network = model if isinstance(model, torch.nn.Module) else load_network(model, device)
    if output_dir is not None:
        check_writable_folder(output_dir)
    summary_file = summary_file if summary_file is not None else (Path(output_dir) / "summary.json" if output_dir is not None else None)
    files, unlisted = [], []
    for item in inputs:
        if Path(item).is_dir():
            try:
                files.extend(list_inputs(item))
            except (InputError, FileNotFoundError) as error:
                unlisted.append((str(item), error))
        else:
            files.append(str(item))
    if len(files) > 1 and options["sigma_map"] not in SIGMA_MAP_MODES:
        raise ValueError(
            f"sigma_map {options['sigma_map']}: a map file fits one input's grid, and {len(files)} inputs were given; use "
            "sigma_map 'auto' (a map estimated per input), or denoise each input with its own map."
        )
    summary = BatchSummary(summary_file, inputs=[item for item, _ in unlisted] + files, absolute_paths=True)
    for item, list_error in unlisted:
        summary.failed(item, "list", list_error)
    for file in files:
        try:
            target = denoised_path(file, output_dir, options.get("dicom_output") or False)
            existed = target.exists()
            summary.denoised(file, denoise(file, network, target, device=device, **options), overwritten=existed)
        except Exception as error:  # noqa: BLE001  one input's failure is not the run's
            summary.failed(file, "denoise", error)
    summary.write()
    return summary
