"""The three-line Python API: train C2S on noisy files, denoise a file.

    from c2s_monai import train, denoise
    model = train(["sub-01_T1w.nii.gz", "sub-02_T1w.nii.gz"], "runs/t1")
    denoise("sub-03_T1w.nii.gz", model)            # writes sub-03_T1w_denoised.nii.gz

Multi-contrast (docs/method.md section 9, docs/multicontrast.md): one network per target
contrast, the subject's other contrasts as guides:

    from c2s_monai import train_multicontrast, denoise_subject
    train_multicontrast("subjects.csv", "runs/mc")          # runs/mc/<contrast>/model.pt
    denoise_subject({"t1": "t1.nii.gz", "t2": "t2.nii.gz", "flair": "flair.nii.gz"}, "runs/mc")

``train`` writes ``<output_dir>/model.pt`` (the EMA weights, a plain state dict as in a
MONAI bundle), ``<output_dir>/model_config.json`` (the network's arguments and the
training settings) and, every epoch, a full checkpoint in ``<output_dir>/checkpoints``
(network, EMA, optimiser, scheduler, trainer state, random streams) from which a killed run
resumes. ``denoise_files`` denoises many inputs, goes on past bad ones and writes a JSON
summary (:mod:`c2s_monai.batch`).
"""

from __future__ import annotations

import inspect
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from monai.utils import set_determinism

from c2s_monai import defaults
from c2s_monai.batch import BatchSummary
from c2s_monai.context import (
    AUTO,
    check_context_slices,
    check_slice_axis,
    check_spatial_dims,
    model_context_slices,
)
from c2s_monai.data import training_loader
from c2s_monai.engines import create_trainer
from c2s_monai.errors import InputError, describe
from c2s_monai.handlers import FIRST_CONV, load_pretrained, read_checkpoint
from c2s_monai.inferers import C2SInferer, denoising_record
from c2s_monai.intensity import (
    check_contrast_sigmas,
    contrast_sigma_data,
)
from c2s_monai.io import (
    atomic_write,
    check_output_path,
    check_writable_folder,
    default_output_path,
    load_volume,
    save_like,
    write_text_atomic,
)
from c2s_monai.io.readers import list_inputs
from c2s_monai.io.writers import save_nifti
from c2s_monai.losses import GDSMLoss
from c2s_monai.multicontrast import (
    StackContrastsd,
    check_channel_order,
    check_contrasts,
    contrast_model_path,
    datalist_contrasts,
    load_datalist,
    read_channel_order,
    record_channel_order,
    require_contrasts,
    rotate_target,
    target_items,
)
from c2s_monai.naming import CONFIG_FILE, MODEL_FILE, input_kind
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.settings import parse_flag
from c2s_monai.transforms import EnsureVolume

logger = logging.getLogger(__name__)

# The defaults (c2s_monai.defaults) under the names this module has exported.
DEFAULT_FEATURES = defaults.FEATURES
DEFAULT_FLIPS = defaults.FLIPS


def train(
    files: Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    sigma_data: float | str = defaults.SIGMA_DATA,
    noise_model: str = defaults.NOISE_MODEL,
    epochs: int = 20,
    iterations_per_epoch: int = 100,
    patch_size: int = defaults.PATCH_SIZE,
    batch_size: int = defaults.BATCH_SIZE,
    learning_rate: float = defaults.LEARNING_RATE,
    warmup_iterations: int = defaults.WARMUP_ITERATIONS,
    ema_momentum: float = defaults.EMA_MOMENTUM,
    features: Sequence[int] = defaults.FEATURES,
    conditioning: str = defaults.CONDITIONING,
    tau_max: float = defaults.TAU_MAX,
    sigma_target_ratio: float = defaults.SIGMA_TARGET_RATIO,
    max_weight: float = defaults.MAX_WEIGHT,
    autocast_dtype: str = defaults.AUTOCAST_DTYPE,
    device: str = "cpu",
    seed: int = 0,
    progress: bool = True,
    channels: Sequence[str] | None = None,
    resample_guides: bool = False,
    pretrained: str | os.PathLike | None = None,
    rician_vst: bool = False,
    context_slices: int | str = defaults.CONTEXT_SLICES,
    spatial_dims: int = defaults.SPATIAL_DIMS,
    slice_axis: int | str = defaults.SLICE_AXIS,
    context_dropout: float = defaults.CONTEXT_DROPOUT,
) -> Path:
    """Train a C2S denoiser on noisy volumes only; return the path of the EMA weights.

    All arguments are the method's knobs (``docs/method.md`` section 2-section 7 and section 9); ``sigma_data`` is the noise
    std in the images' units or ``"auto"`` (estimated per volume). Training resumes from
    ``<output_dir>/checkpoints`` when a checkpoint is there. ``pretrained`` (a ``model.pt``,
    e.g. the shipped ``bundle/models/model.pt``) starts from its weights instead of random
    ones: fine-tuning, for which ``learning_rate=4e-3`` with ``warmup_iterations=20`` was
    the fastest recipe measured (docs/benchmarks.md, time to quality). ``rician_vst`` (magnitude
    data with Rician noise, single contrast) trains on the variance-stabilised images
    (:mod:`c2s_monai.vst`, with ``noise_model="gaussian"``), the best Rician treatment in the
    benchmark; it is recorded beside the weights, and :func:`denoise` follows it.

    Volumes (:mod:`c2s_monai.context`): a 2D network sees the ``context_slices`` neighbouring
    slices on each side of its target slice (``"auto"``: the default
    :data:`~c2s_monai.context.DEFAULT_CONTEXT_SLICES`, which lets single 2D images through with
    zero context; an explicit number refuses them; 0: slice by slice), stacked along
    ``slice_axis`` (``"auto"``: the axis of largest voxel spacing); ``spatial_dims=3`` trains a
    native 3D network on ``patch_size``-cube patches instead. ``context_dropout``: the share of
    training patches whose context is zeroed, so the network also denoises a lone 2D image.

    Multi-contrast (:func:`train_multicontrast` calls it so): with ``channels`` (the target
    contrast, then its guides), ``files`` are subjects ``{contrast: file}`` and the network
    takes ``len(channels)`` image channels; ``sigma_data`` is the target's; the channel order
    is recorded beside the weights (``contrasts.json``).
    """
    output_dir = Path(output_dir)
    checkpoint_dir = output_dir / "checkpoints"
    rician_vst = bool(parse_flag(rician_vst, "rician_vst"))
    if rician_vst and noise_model != "gaussian":
        raise ValueError(f"rician_vst turns Rician noise into Gaussian noise: train it with noise_model 'gaussian', not {noise_model!r}.")
    set_determinism(seed)
    if channels is not None:
        channels = check_contrasts(channels)
    in_channels = len(channels) if channels else 1
    spatial_dims = check_spatial_dims(spatial_dims)
    context_slices = check_context_slices(context_slices)
    slice_axis = check_slice_axis(slice_axis)
    network_args = {
        "spatial_dims": spatial_dims,
        "in_channels": in_channels,
        "context_slices": model_context_slices(spatial_dims, context_slices),
        "features": list(features),
        "conditioning": conditioning,
    }
    network = load_pretrained(NoiseConditionedUNet(**network_args), pretrained).to(device)
    loss = GDSMLoss(tau_max=tau_max, sigma_target_ratio=sigma_target_ratio, max_weight=max_weight, noise_model=noise_model)
    # loads and checks every file first: a bad one stops the run before anything is written
    items = [str(f) for f in files] if channels is None else list(files)
    loader = training_loader(
        items, sigma_data, patch_size, batch_size, iterations_per_epoch, seed, channels=channels, resample_guides=resample_guides,
        rician_vst=rician_vst, context_slices=context_slices, spatial_dims=spatial_dims, slice_axis=slice_axis,
        context_dropout=context_dropout,
    )
    check_writable_folder(checkpoint_dir)
    if channels is not None:
        record_channel_order(output_dir / MODEL_FILE, channels)
    trainer, ema = create_trainer(
        network,
        loss,
        loader,
        epochs,
        iterations_per_epoch,
        learning_rate=learning_rate,
        warmup_iterations=warmup_iterations,
        ema_momentum=ema_momentum,
        device=device,
        autocast_dtype=autocast_dtype,
        checkpoint_dir=str(checkpoint_dir),
        progress=progress,
    )
    trainer.run()

    model_path = output_dir / MODEL_FILE
    atomic_write(model_path, lambda temporary: torch.save(ema.ema_model.state_dict(), temporary))
    settings = {
        "network": network_args,
        "training": {
            "sigma_data": sigma_data,
            "noise_model": noise_model,
            "rician_vst": rician_vst,
            "context_slices": context_slices,
            "slice_axis": slice_axis,
            "context_dropout": context_dropout,
            "epochs": epochs,
            "iterations_per_epoch": iterations_per_epoch,
            "patch_size": patch_size,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "ema_momentum": ema_momentum,
            "tau_max": tau_max,
            "sigma_target_ratio": sigma_target_ratio,
            "max_weight": max_weight,
            "seed": seed,
            "pretrained": None if pretrained is None else str(pretrained),
            **({"channels": channels, "resample_guides": bool(parse_flag(resample_guides))} if channels else {}),
        },
    }
    write_text_atomic(output_dir / CONFIG_FILE, json.dumps(settings, indent=2))
    return model_path


def _model_config(model_path: str | os.PathLike) -> dict:
    """The ``model_config.json`` :func:`train` wrote beside ``model_path`` (``{}`` where there is none)."""
    config_path = Path(model_path).parent / CONFIG_FILE
    if not config_path.is_file():
        return {}
    try:
        config = json.loads(config_path.read_text())
        if not isinstance(config, dict) or "network" not in config:
            raise KeyError("network")
    except (ValueError, KeyError) as error:
        raise InputError(f"{config_path}: not a model_config.json written by c2s_monai.train ({error}); restore or remove it.") from error
    return config


def _layout_of_weights(state: Mapping, in_channels: int) -> dict:
    """``spatial_dims``, ``context_slices`` and ``conditioning`` that weights of ``in_channels`` contrasts were trained with.

    Read off the first convolution, ``(width, C (2K + 1) [+ 1 level map], 3, 3[, 3])``, and
    the presence of FiLM layers; ``{}`` where it does not tell (the defaults then apply).
    """
    weight = state.get(FIRST_CONV) if isinstance(state, Mapping) else None
    if weight is None:
        return {}
    film = any(str(name).startswith("embedding.") for name in state)
    for conditioning, extra in ((("map+film", 1), ("film", 0)) if film else (("map", 1),)):
        image_channels = int(weight.shape[1]) - extra
        block, remainder = divmod(image_channels, in_channels)
        if not remainder and block % 2 == 1:
            return {"spatial_dims": weight.ndim - 2, "context_slices": (block - 1) // 2, "conditioning": conditioning}
    return {}


def load_network(model_path: str | os.PathLike, device: str = "cpu", in_channels: int | None = None) -> NoiseConditionedUNet:
    """Build the network described by ``model_config.json`` beside ``model_path`` and load its weights.

    Without a ``model_config.json`` (a bundle checkpoint, e.g. the shipped ``bundle/models/model.pt``)
    the network's dimensions, 2.5D context and conditioning are read off the weights, with the
    default widths; ``in_channels`` then says the contrasts (a multi-contrast bundle checkpoint,
    whose channels ``contrasts.json`` records).
    """
    model_path = Path(model_path)
    state = read_checkpoint(model_path, map_location=device)
    network_args = _model_config(model_path).get("network")
    if network_args is None:
        if in_channels is None:  # a multi-contrast bundle checkpoint records its channels beside it
            in_channels = len(read_channel_order(model_path) or [None])
        network_args = {"in_channels": int(in_channels), **_layout_of_weights(state, int(in_channels))}
    elif in_channels is not None:
        network_args = {"in_channels": int(in_channels), **network_args}
    network = NoiseConditionedUNet(**network_args)
    try:
        network.load_state_dict(state)
    except RuntimeError as error:
        raise InputError(
            f"{model_path}: the checkpoint does not fit the network {network_args or '(defaults)'} "
            f"({describe(error)}); put the model_config.json it was trained with beside it."
        ) from error
    return network.to(device).eval()


def _training_setting(model: str | os.PathLike | torch.nn.Module, name: str, default):
    """A training setting :func:`train` recorded beside the weights at ``model`` (``default`` for a module or none)."""
    if isinstance(model, torch.nn.Module):
        return default
    return _model_config(model).get("training", {}).get(name, default)


def trained_with_rician_vst(model: str | os.PathLike | torch.nn.Module) -> bool:
    """Whether the weights at ``model`` were trained on variance-stabilised data (``model_config.json``)."""
    return bool(_training_setting(model, "rician_vst", False))


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
) -> Path:
    """Denoise one volume and write ``<name>_denoised.nii.gz`` beside it (or ``output_file``).

    ``input_file`` is NIfTI (the output keeps its affine and header, float32 voxels), a DICOM
    series folder or an HDF5 file (the output has the reader's affine). With ``each_volume``,
    a 4D series is denoised volume by volume (each at its own noise level) into one 4D
    output. Returns the output path; the input is never overwritten, and a bad input raises
    :class:`~c2s_monai.errors.InputError` before anything is written. ``rician_vst``: denoise
    through the Rician VST (:mod:`c2s_monai.vst`); ``None`` follows what :func:`train` recorded
    beside the weights. ``context_slices``: ``"auto"`` (the network's context; a single 2D
    image falls back to zero context) or the network's ``K`` as an explicit request, refused
    for a 2D image; ``slice_axis``: ``"auto"`` (largest voxel spacing), 0, 1 or 2, ``None``:
    as trained (:class:`c2s_monai.C2SInferer`).
    """
    output_file = check_output_path(input_file, output_file if output_file is not None else default_output_path(input_file))
    rician_vst = trained_with_rician_vst(model) if rician_vst is None else bool(parse_flag(rician_vst, "rician_vst"))
    if slice_axis is None:
        slice_axis = _training_setting(model, "slice_axis", AUTO)
    inferer = C2SInferer(
        sigma_data=sigma_data, flips=flips, autocast_dtype=autocast_dtype, rician_vst=rician_vst, context_slices=context_slices,
        slice_axis=slice_axis,
    )
    network = model if isinstance(model, torch.nn.Module) else load_network(model, device)
    check_writable_folder(output_file.parent, create=False)
    volumes = load_volume(input_file, num_channels=None if parse_flag(each_volume, "each_volume") else 1)
    denoised = []
    for index in range(volumes.shape[0]):
        volume = volumes[index : index + 1]
        if volumes.shape[0] > 1:
            try:
                volume = EnsureVolume(num_channels=1)(volume)
            except InputError as error:
                raise InputError(f"{error} (volume {index} of the series)") from error
        output = inferer(volume.unsqueeze(0).to(device), network)
        denoised.append(output[0, 0])
        logger.info("%s: sigma_data = %.6g (image units)", input_file, denoising_record(output)["sigma_data"])
    result = torch.stack(denoised, dim=-1) if len(denoised) > 1 else denoised[0]
    if input_kind(input_file) == "nifti":
        return save_like(result, input_file, output_file)
    return save_nifti(result, volumes.meta["affine"], output_file)


# Settings of the batch functions that the inferer checks, and the yes/no ones.
_INFERER_SETTINGS = ("sigma_data", "flips", "autocast_dtype", "context_slices", "slice_axis")
_FLAG_SETTINGS = ("each_volume", "rician_vst", "resample_guides")


def _check_settings(function, options: Mapping, passed: Sequence[str]) -> None:
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
    if any input failed. A bad model, setting or output folder stops the run at once.

    Args:
        inputs: files and folders; a folder is expanded by :func:`c2s_monai.io.readers.list_inputs`.
        model, device, options: as :func:`denoise` (``sigma_data``, ``flips``, ``each_volume``, ``autocast_dtype``, ``rician_vst``,
            ``context_slices``, ``slice_axis``).
    """
    _check_settings(denoise, options, passed=("input_file", "model", "output_file", "device"))
    if options.get("rician_vst") is None:
        options["rician_vst"] = trained_with_rician_vst(model)  # the network object below no longer knows
    if options.get("slice_axis") is None:
        options["slice_axis"] = _training_setting(model, "slice_axis", AUTO)
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
    summary = BatchSummary(summary_file, inputs=[item for item, _ in unlisted] + files)
    for item, error in unlisted:
        summary.failed(item, "list", error)
    for file in files:
        try:
            summary.denoised(file, denoise(file, network, default_output_path(file, output_dir), device=device, **options))
        except Exception as error:  # noqa: BLE001  one input's failure is not the run's
            summary.failed(file, "denoise", error)
    summary.write()
    return summary


# ------------------------------------------------------------------ multi-contrast


def _names(value) -> list[str] | None:
    return None if value is None else check_contrasts(value)


def train_multicontrast(
    subjects: str | os.PathLike | Sequence[Mapping[str, str]],
    output_dir: str | os.PathLike,
    contrasts: Sequence[str] | str | None = None,
    targets: Sequence[str] | str | None = None,
    sigma_data: float | str | Mapping[str, float | str] = "auto",
    resample_guides: bool = False,
    **options,
) -> dict[str, Path]:
    """Train one multi-contrast network per target contrast; return ``{target: <output_dir>/<target>/model.pt}``.

    The network for target ``t`` takes the channels ``rotate_target(contrasts, t)``: ``t``
    (re-corrupted and predicted) then the other contrasts as guides (docs/method.md section 9).
    One network per target, because a network knows each guide only by its position; the
    order is recorded beside the weights (``contrasts.json``) and checked when it is used.

    Args:
        subjects: a datalist file (JSON/CSV, :func:`c2s_monai.multicontrast.load_datalist`) or its entries.
        output_dir: one sub-folder per target (weights, ``model_config.json``, ``contrasts.json``, checkpoints).
        contrasts: the channel order (default: the datalist's order).
        targets: the contrasts to train a network for (default: all of them, for joint mode).
        sigma_data: one setting for every contrast, or ``{contrast: sigma or "auto"}`` (image units).
        resample_guides: resample guides on another grid onto the target's (else they are refused).
        options: the keywords of :func:`train` (``epochs``, ``features``, ``patch_size``, ...).
    """
    subject_list = load_datalist(subjects, contrasts)
    names = check_contrasts(contrasts) if contrasts is not None else datalist_contrasts(subject_list)
    targets = _names(targets) or names
    check_contrast_sigmas(sigma_data)
    models = {}
    for target in targets:
        channels = rotate_target(names, target)
        logger.info("training the %s network (input channels %s)", target, channels)
        models[target] = train(
            subject_list, Path(output_dir) / target, sigma_data=contrast_sigma_data(sigma_data, target),
            channels=channels, resample_guides=resample_guides, **options,
        )
    return models


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
    return network, channels, _training_setting(path, "slice_axis", AUTO)


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
    names = _names(contrasts)
    default_targets = [t for t in (names or list(present)) if not isinstance(model, Mapping) or t in model]
    targets = _names(targets) or default_targets
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
    _check_settings(denoise_subject, options, passed=("files", "model", "output_dir", "contrasts", "targets", "device", "subject"))
    subject_list = load_datalist(subjects, contrasts)
    names = _names(contrasts)
    order = names or datalist_contrasts(subject_list)
    targets = _names(targets) or [t for t in order if not isinstance(model, Mapping) or t in model]
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
