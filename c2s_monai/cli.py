"""Command line: ``c2s-monai demo|train|denoise|train-multicontrast|denoise-multicontrast|estimate-sigma|export-onnx``.

    c2s-monai demo --output_dir runs/demo

    c2s-monai train scans/*.nii.gz --output_dir runs/t1 --epochs 20
    c2s-monai train dicom/series_01/ knee.h5 --h5_key reconstruction_rss --output_dir runs/t1
    c2s-monai denoise scans/ new_scan.nii.gz --model runs/t1/model.pt --output_dir denoised/
    c2s-monai denoise dicom/series_01/ --model runs/t1/model.pt --dicom_output true
    c2s-monai denoise dwi.nii.gz --model runs/t1/model.pt --each_volume true
    c2s-monai train-multicontrast subjects.csv --output_dir runs/mc --epochs 20
    c2s-monai denoise-multicontrast subjects.csv --model runs/mc --output_dir denoised/
    c2s-monai estimate-sigma scan.nii.gz --method background
    c2s-monai export-onnx runs/t1/model.pt --output runs/t1/model.onnx

(also ``python -m c2s_monai ...``). Inputs are read and outputs written as the bundle does
(:class:`~c2s_monai.io.readers.LoadVolumed`, :class:`~c2s_monai.io.writers.SaveDenoisedd`):
NIfTI files, DICOM series folders, HDF5 files (``--h5_key``, default ``reconstruction_rss``)
and folders of them; ``--dicom_output true`` writes a DICOM series input as the series folder
``<series>_denoised/``. ``denoise`` and ``denoise-multicontrast`` go on past a bad
input (subject), write a JSON summary of every input at the end and exit with status 1 if any
failed. A bad input, model or setting ends any command with one ``error: ...`` line (exit
status 1) instead of a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import fire

from c2s_monai import defaults
from c2s_monai.api import (
    denoise,
    denoise_files,
    denoise_subjects,
    load_network,
    train,
    train_multicontrast,
)
from c2s_monai.batch import BatchFailedError
from c2s_monai.errors import InputError, root_cause
from c2s_monai.estimation import estimate_sigma
from c2s_monai.export import ONNX_OPSET, export_onnx
from c2s_monai.io import default_output_path
from c2s_monai.io.readers import LoadVolume
from c2s_monai.io.sample_data import dipy_s0_path
from c2s_monai.transforms import EnsureVolume

SUMMARY_FILE = "c2s-monai-denoise-summary.json"


def _train(*files: str, output_dir: str = "runs/c2s", **options):
    """Train on noisy volumes: NIfTI or HDF5 files (``--h5_key``), DICOM series folders, folders of them; every keyword of ``c2s_monai.train`` is an option."""
    return str(train(list(files), output_dir, **options))


def _denoise(*inputs: str, model: str, output_dir: str | None = None, summary: str | None = None, **options):
    """Denoise each input (files or folders) with the weights ``model``; writes ``<name>_denoised.nii.gz``.

    ``--dicom_output true`` writes each DICOM series as a DICOM series folder ``<series>_denoised``
    (other inputs as NIfTI, with a warning); ``--h5_key`` names the HDF5 dataset. Every keyword
    of ``c2s_monai.denoise`` is an option.

    The summary goes to ``summary`` (default ``<output_dir>/summary.json``, or
    ``./c2s-monai-denoise-summary.json`` without an output_dir).
    """
    if not inputs:
        raise InputError("no input was given: c2s-monai denoise FILE_OR_FOLDER ... --model MODEL.")
    summary = summary or (str(Path(output_dir) / "summary.json") if output_dir else SUMMARY_FILE)
    result = denoise_files(list(inputs), model, output_dir=output_dir, summary_file=summary, **options)
    result.check()
    return [r["output"] for r in result.as_dict()["results"]]


def _train_multicontrast(datalist: str, output_dir: str = "runs/c2s_multicontrast", **options):
    """Train one network per target contrast on a datalist (JSON/CSV of each subject's contrasts): ``<output_dir>/<contrast>/model.pt``.

    Options: ``contrasts`` (channel order), ``targets``, ``sigma_data`` (one value or
    ``{contrast: value}``), ``resample_guides``, and every keyword of ``c2s_monai.train``.
    """
    return {target: str(path) for target, path in train_multicontrast(datalist, output_dir, **options).items()}


def _denoise_multicontrast(datalist: str, model: str, output_dir: str | None = None, summary: str | None = None, **options):
    """Denoise every contrast of every subject of a datalist, each guided by the others (joint mode).

    ``model`` is the folder ``train-multicontrast`` wrote (``<model>/<contrast>/model.pt``).
    Options: ``contrasts``, ``targets``, ``sigma_data``, ``flips``, ``resample_guides``, ``device``.
    """
    summary = summary or (str(Path(output_dir) / "summary.json") if output_dir else SUMMARY_FILE)
    result = denoise_subjects(datalist, model, output_dir=output_dir, summary_file=summary, **options)
    result.check()
    return [r["output"] for r in result.as_dict()["results"]]


def _estimate_sigma(file: str, method: str = "mad", h5_key: str = defaults.H5_KEY) -> float:
    """Print the noise std of ``file`` (NIfTI, DICOM series, HDF5 dataset ``h5_key``) in its own units (``mad`` or ``background``)."""
    return estimate_sigma(EnsureVolume(1)(LoadVolume(h5_key=str(h5_key))(file))[0], method)


def _export_onnx(model: str, output: str | None = None, opset: int = ONNX_OPSET) -> str:
    """Export the weights ``model`` (network from its ``model_config.json``, if any) to ONNX (default ``<model>.onnx``)."""
    target = output if output is not None else str(Path(model).with_suffix(".onnx"))
    return str(export_onnx(load_network(model), target, opset))


def _demo(output_dir: str = "runs/demo", epochs: int = 3, **options):
    """Train briefly on dipy's real noisy ``S0_10slices`` scan, then denoise it into ``output_dir``."""
    scan = dipy_s0_path()
    options = {"patch_size": 64, "iterations_per_epoch": 100, **options}
    model = train([scan], output_dir, epochs=epochs, **options)
    return str(denoise(scan, model, default_output_path(scan, output_dir)))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        fire.Fire(
            {
                "demo": _demo,
                "train": _train,
                "denoise": _denoise,
                "train-multicontrast": _train_multicontrast,
                "denoise-multicontrast": _denoise_multicontrast,
                "estimate-sigma": _estimate_sigma,
                "export-onnx": _export_onnx,
            }
        )
    except Exception as error:
        cause = root_cause(error)
        if isinstance(cause, (InputError, FileNotFoundError, BatchFailedError)):
            sys.exit(f"error: {cause}")
        raise


if __name__ == "__main__":
    main()
