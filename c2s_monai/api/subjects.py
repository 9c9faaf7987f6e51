"""Multi-contrast denoising from Python (docs/multicontrast.md): :func:`denoise_subject` and :func:`denoise_subjects`.

Each target contrast is denoised by its own network with the subject's other contrasts as
guides, in the channel order recorded beside the network.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from c2s_monai import defaults
from c2s_monai.api.denoising import check_settings
from c2s_monai.api.models import load_network, training_setting
from c2s_monai.batch import BatchSummary
from c2s_monai.context import (
    AUTO,
)
from c2s_monai.errors import InputError
from c2s_monai.inferers import C2SInferer, denoising_record
from c2s_monai.intensity import (
    check_contrast_sigmas,
)
from c2s_monai.io import (
    check_output_path,
    check_writable_folder,
    default_output_path,
    load_volume,
    save_like,
)
from c2s_monai.io.writers import save_nifti
from c2s_monai.multicontrast import (
    StackContrastsd,
    check_channel_order,
    contrast_model_path,
    datalist_contrasts,
    load_datalist,
    optional_contrasts,
    read_channel_order,
    require_contrasts,
    rotate_target,
    target_items,
)
from c2s_monai.naming import input_kind

logger = logging.getLogger(__name__)

def _contrast_network(model, target: str, contrasts: list[str] | None, fallback: list[str], device: str):
    """The network for ``target``, its input channel order (the recorded one unless ``contrasts`` is given) and its slice axis."""
    entry = model.get(target) if isinstance(model, Mapping) else contrast_model_path(model, target)
    if entry is None:
        raise InputError(f"no model for the target contrast {target!r} (models for {sorted(model)}); give one, or leave {target} out (targets).")
    expected = rotate_target(contrasts if contrasts is not None else fallback, target)
    if isinstance(entry, torch.nn.Module):
        return entry.to(device).eval(), expected, AUTO
    path = Path(entry)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no {target} model; train it (c2s_monai.train_multicontrast, c2s-monai train-multicontrast) or "
            f"leave {target} out of this run (targets)."
        )
    recorded = read_channel_order(path)
    channels = recorded if contrasts is None and recorded is not None else check_channel_order(path, expected)
    if channels[0] != target:
        raise InputError(f"{path}: a {channels[0]} model ({channels}), not a {target} one; give the {target} model.")
    network = load_network(path, device, in_channels=len(channels))
    if getattr(network, "in_channels", len(channels)) != len(channels):
        raise InputError(f"{path}: takes {network.in_channels} image channels, this run stacks {len(channels)} ({channels}).")
    return network, channels, training_setting(path, "slice_axis", AUTO)


def _plan(model, targets: list[str], contrasts: list[str] | None, fallback: list[str], device: str) -> dict:
    return {t: _contrast_network(model, t, contrasts, fallback, device) for t in targets}


def _denoise_planned(
    files: Mapping[str, str], plan: dict, output_dir, subject: str, sigma_data, flips: int, device: str, resample_guides: bool,
    autocast_dtype: str = defaults.AUTOCAST_DTYPE,
) -> dict[str, Path]:
    """Denoise every target of ``plan`` for one subject, then write the outputs (all or none)."""
    label = f"subject {subject}" if subject else f"the subject of {next(iter(files.values()), '?')}"
    for _, channels, _ in plan.values():
        require_contrasts(files, channels, label)
    folder = (Path(output_dir) / subject if subject else Path(output_dir)) if output_dir is not None else None
    outputs = {t: check_output_path(files[t], default_output_path(files[t], folder)) for t in plan}
    if len(set(outputs.values())) < len(outputs):
        raise InputError(f"{label}: two of its target files share a name, so their outputs would too ({sorted(map(str, outputs.values()))}); rename one.")
    check_writable_folder(folder if folder is not None else Path(files[next(iter(plan))]).parent, create=False)
    needed = list(dict.fromkeys(c for _, channels, _ in plan.values() for c in channels))
    volumes = {c: load_volume(files[c]) for c in needed}
    results = {}
    for target, (network, channels, slice_axis) in plan.items():
        inferer = C2SInferer(sigma_data=sigma_data, flips=flips, autocast_dtype=autocast_dtype, slice_axis=slice_axis)
        image = StackContrastsd(channels, target=target, resample=resample_guides)(volumes)["image"]
        output = inferer(image.unsqueeze(0).to(device), network, target_contrast=target)
        results[target] = output[0, 0]
        record = denoising_record(output)
        logger.info("%s (%s): sigma_data = %.6g (image units, %s), channels %s", files[target], target, record["sigma_data"], record["sigma_source"], channels)
    written = {}
    for target, result in results.items():
        if input_kind(files[target]) == "nifti":
            written[target] = save_like(result, files[target], outputs[target])
        else:
            written[target] = save_nifti(result, volumes[target].meta["affine"], outputs[target])
    return written


def denoise_subject(
    files: Mapping[str, str | os.PathLike],
    model: str | os.PathLike | Mapping[str, str | os.PathLike | torch.nn.Module],
    output_dir: str | os.PathLike | None = None,
    contrasts: Sequence[str] | str | None = None,
    targets: Sequence[str] | str | None = None,
    sigma_data: float | str | Mapping[str, float | str] = defaults.SIGMA_DATA,
    flips: int = defaults.FLIPS,
    device: str = "cpu",
    resample_guides: bool = False,
    subject: str | None = None,
    autocast_dtype: str = defaults.AUTOCAST_DTYPE,
) -> dict[str, Path]:
    """Denoise the contrasts of one subject, each guided by the others (joint mode); return ``{target: output}``.

    Each target ``t`` is denoised by its own network (``<model>/<t>/model.pt`` as
    :func:`train_multicontrast` writes them, or ``model[t]``: a path or a module) at its own
    ``sigma_data`` and written as ``<name>_denoised.nii.gz`` with its input's affine and header,
    beside it or in ``output_dir`` (``output_dir/<subject>`` with ``subject``). The inputs are
    never overwritten, and outputs are written only when every target is denoised.

    Args:
        files: ``{contrast: file}`` of one subject (NIfTI, DICOM series folders, HDF5).
        contrasts: the channel order; by default each network's recorded order
            (``contrasts.json``), else ``files``' order. Given, it must match the recorded one.
        targets: the contrasts to denoise (default: every contrast with a file, or the keys of ``model``).
        sigma_data: one setting, or ``{contrast: sigma or "auto"}`` (image units).
        resample_guides: resample guides on another grid onto each target's (else they are refused).

    Raises:
        InputError: before anything is written, for a missing target or guide (naming the
            subject and contrast), files off the target's grid, a model of another channel order.
    """
    present = {str(c): str(p) for c, p in files.items() if p}
    names = optional_contrasts(contrasts)
    default_targets = [t for t in (names or list(present)) if not isinstance(model, Mapping) or t in model]
    targets = optional_contrasts(targets) or default_targets
    check_contrast_sigmas(sigma_data)
    plan = _plan(model, targets, names, list(present) if names is None else names, device)
    return _denoise_planned(present, plan, output_dir, subject or "", sigma_data, flips, device, resample_guides, autocast_dtype)


def denoise_subjects(
    subjects: str | os.PathLike | Sequence[Mapping[str, str]],
    model: str | os.PathLike | Mapping[str, str | os.PathLike | torch.nn.Module],
    output_dir: str | os.PathLike | None = None,
    summary_file: str | os.PathLike | None = None,
    contrasts: Sequence[str] | str | None = None,
    targets: Sequence[str] | str | None = None,
    device: str = "cpu",
    **options,
) -> BatchSummary:
    """Denoise every subject of a datalist (:func:`denoise_subject`), going on past a bad subject.

    A subject that fails (a missing guide, files off-grid, a bad file) is recorded for each of
    its targets and nothing is written for it; the summary (``summary_file``, default
    ``<output_dir>/summary.json``) lists every target file, and its ``check()`` raises if
    any failed. With an ``output_dir``, subjects whose files share names need ids (``subject``):
    their outputs go to ``<output_dir>/<subject>/``.

    Args:
        subjects: a datalist file or its entries (:func:`c2s_monai.multicontrast.load_datalist`).
        model, contrasts, targets, device, options: as :func:`denoise_subject` (``sigma_data``, ``flips``, ``resample_guides``, ``autocast_dtype``).
    """
    check_settings(denoise_subject, options, passed=("files", "model", "output_dir", "contrasts", "targets", "device", "subject"))
    subject_list = load_datalist(subjects, contrasts)
    names = optional_contrasts(contrasts)
    order = names or datalist_contrasts(subject_list)
    targets = optional_contrasts(targets) or [t for t in order if not isinstance(model, Mapping) or t in model]
    items = target_items(subject_list, targets, check_outputs=output_dir is not None)
    plan = _plan(model, targets, names, order, device)
    if output_dir is not None:
        check_writable_folder(output_dir)
    summary_file = summary_file if summary_file is not None else (Path(output_dir) / "summary.json" if output_dir is not None else None)
    summary = BatchSummary(summary_file, inputs=[item["source"] for item in items])
    flips, sigma_data = options.get("flips", defaults.FLIPS), options.get("sigma_data", defaults.SIGMA_DATA)
    resample_guides, autocast = options.get("resample_guides", False), options.get("autocast_dtype", defaults.AUTOCAST_DTYPE)
    for index, subject in enumerate(subject_list):
        files = {c: p for c, p in subject.items() if c != "subject"}
        try:
            written = _denoise_planned(files, plan, output_dir, subject["subject"], sigma_data, flips, device, resample_guides, autocast)
        except Exception as error:  # noqa: BLE001  one subject's failure is not the run's
            for item in items[index * len(targets) : (index + 1) * len(targets)]:  # target_items: subject by subject
                summary.failed(item["source"], "denoise", error)
            continue
        for target, path in written.items():
            summary.denoised(files[target], path)
    summary.write()
    return summary
