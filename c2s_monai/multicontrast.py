"""Multi-contrast C2S: co-registered contrasts of one subject as input channels (docs/method.md section 9).

Other contrasts of the same subject, on the target's voxel grid, enter as extra input
channels; only the target contrast (channel 0) is re-corrupted by the loss and predicted by
the network, the guides are passed as observed:

    x_tau = [y_target + tau z, y_guide_1, ..., y_guide_K, s_t],   D(x_tau) ~ E[x_target | x_tau]

(:class:`c2s_monai.losses.GDSMLoss`, :class:`c2s_monai.networks.NoiseConditionedUNet`).
Each channel is scaled by its own robust intensity scale; the noise level is the target's
(:class:`c2s_monai.transforms.ScaleNoisyImage`).

**Channel order.** The contrasts are named (``"t1"``, ``"t2"``, ``"flair"``) and configured in
a fixed order; the input of the network for target ``t`` is ``rotate_target(order, t)``:
``t`` first, then the other contrasts in the configured order. A network knows which guide
is which only by its position, so one network is trained per target contrast and the order
it was trained with is written beside its weights (``contrasts.json``,
:func:`write_channel_order`) and checked before it is used (:func:`check_channel_order`).
*Joint mode* denoises every contrast of a subject in turn, each with its own network,
guided by the others.

**Grids.** :class:`StackContrasts` stacks the contrasts into channels only when every guide
has the target's shape, voxel size and position (affine) within ``tolerance`` mm; otherwise
it raises :class:`~c2s_monai.errors.InputError` naming both files and what differs, or, with
``resample=True``, resamples the guide onto the target's grid with MONAI's
``ResampleToMatch`` (trilinear, from the scanner coordinates of the affines: the images
must already be aligned in the scanner's space, as the series of one session are).

**Missing guides.** A subject without one of the contrasts a network takes is refused with
an error naming the subject and the contrast: no channel is ever filled in or dropped.

**Datalists** (:func:`load_datalist`): JSON, a list of ``{"subject": "sub-01", "t1": path,
"t2": path, "flair": path}`` (or such a list under ``"subjects"``), or CSV with a header row
naming the columns (``subject,t1,t2,flair``). Relative paths are relative to the datalist's
folder; ``subject`` is optional (outputs then go to ``<output_dir>/<subject>/``).
"""

from __future__ import annotations

import copy
import csv
import json
import logging
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd
from monai.transforms import MapTransform, ResampleToMatch, Transform
from torch import nn

from c2s_monai.errors import InputError, input_name
from c2s_monai.io import write_text_atomic
from c2s_monai.naming import MODEL_FILE, output_stem
from c2s_monai.settings import parse_flag

__all__ = [
    "CHANNELS_FILE",
    "RESERVED_KEYS",
    "StackContrasts",
    "StackContrastsd",
    "channel_orders",
    "check_channel_order",
    "check_contrasts",
    "contrast_model_path",
    "datalist_contrasts",
    "denoising_targets",
    "grid_difference",
    "load_datalist",
    "networks_by_target",
    "read_channel_order",
    "record_channel_order",
    "require_contrasts",
    "rotate_target",
    "subject_label",
    "target_items",
    "write_channel_order",
]

logger = logging.getLogger(__name__)

CHANNELS_FILE = "contrasts.json"
# item keys that are not contrast names
RESERVED_KEYS = ("subject", "target_contrast", "source", "image", "label", "pred", "sigma_data", "intensity_scale")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def check_contrasts(contrasts) -> list[str]:
    """Validate contrast names: a non-empty list (or comma-separated text) of distinct folder-safe names."""
    if isinstance(contrasts, str):
        contrasts = [c for c in (part.strip() for part in contrasts.split(",")) if c]
    names = [str(c) for c in (contrasts or [])]
    if not names:
        raise InputError("contrasts is empty: name the contrasts of each subject in channel order, e.g. ['t1', 't2', 'flair'].")
    for name in names:
        if name in RESERVED_KEYS or not NAME_PATTERN.match(name):
            raise InputError(
                f"{name!r} cannot name a contrast (contrasts {names}): use letters, digits, '_', '-', '.' (it names a "
                f"model folder), and none of {list(RESERVED_KEYS)}."
            )
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"contrasts {names} names {duplicates} twice: give each contrast once.")
    return names


def optional_contrasts(value) -> list[str] | None:
    """:func:`check_contrasts` of ``value``, or ``None`` when none are named."""
    return None if value is None else check_contrasts(value)


def rotate_target(order: Sequence[str], target: str) -> list[str]:
    """The channel order of the network for ``target``: ``target`` first, then the others in ``order``."""
    order = list(order)
    if target not in order:
        raise InputError(f"target contrast {target!r} is not one of the contrasts {order}: set target_contrast to one of them.")
    return [target] + [name for name in order if name != target]


def channel_orders(contrasts: Sequence[str], targets: Sequence[str]) -> dict[str, list[str]]:
    """``{target: rotate_target(contrasts, target)}``: the input channels of each target's network."""
    return {target: rotate_target(contrasts, target) for target in targets}


def denoising_targets(contrasts: Sequence[str], target_contrast: str | None = None, joint: bool = False) -> list[str]:
    """The contrasts a run denoises: all of them in joint mode, else ``[target_contrast]``."""
    contrasts = check_contrasts(contrasts)
    if parse_flag(joint, "joint"):
        return contrasts
    if target_contrast is None:
        raise InputError(f"no target_contrast was given: name one of {contrasts}, or set joint true to denoise them all.")
    return [rotate_target(contrasts, str(target_contrast))[0]]


# ------------------------------------------------------------------ voxel grids


def _affine(image) -> np.ndarray:
    affine = getattr(image, "affine", None)
    array = np.eye(4) if affine is None else np.asarray(torch.as_tensor(affine).detach().cpu(), dtype=np.float64)
    return array if array.shape == (4, 4) else to_affine_nd(3, array)


def _mm(values) -> str:
    return "(" + ", ".join(f"{float(v):.4g}" for v in values) + ")"


def grid_difference(target: torch.Tensor, guide: torch.Tensor, tolerance: float = 1e-3) -> str | None:
    """How the voxel grid of ``guide`` differs from the target's, or ``None`` when they match.

    Both are channel-first ``(1, H, W, D)`` images with MONAI meta (``affine``). Checked in
    turn: the shape, the voxel size (column norms of the affine, mm) and the position: the
    largest distance (mm) between the scanner positions the two affines give the same corner
    voxel. Sizes and positions match when they differ by at most ``tolerance`` mm.
    """
    target_shape, guide_shape = tuple(target.shape[1:]), tuple(guide.shape[1:])
    if target_shape != guide_shape:
        return f"shape {guide_shape} vs {target_shape} voxels"
    target_affine, guide_affine = _affine(target), _affine(guide)
    target_spacing = np.linalg.norm(target_affine[:3, :3], axis=0)
    guide_spacing = np.linalg.norm(guide_affine[:3, :3], axis=0)
    if np.max(np.abs(target_spacing - guide_spacing)) > tolerance:
        return f"voxel size {_mm(guide_spacing)} vs {_mm(target_spacing)} mm"
    corners = np.array(np.meshgrid(*[[0, max(0, n - 1)] for n in target_shape[:3]], indexing="ij")).reshape(3, -1)
    corners = np.vstack([corners, np.ones(corners.shape[1])])
    distance = float(np.max(np.linalg.norm(((guide_affine - target_affine) @ corners)[:3], axis=0)))
    if distance > tolerance:
        return (
            f"the same voxel lies up to {distance:.3g} mm apart in the two (origin {_mm(guide_affine[:3, 3])} vs "
            f"{_mm(target_affine[:3, 3])} mm)"
        )
    return None


class StackContrasts(Transform):
    """Stack co-registered volumes ``(1, H, W, D)`` into one ``(C, H, W, D)`` image, the target first.

    ``images[0]`` is the target contrast, the rest its guides, named by ``names`` in the same
    order. Each guide must be on the target's voxel grid (:func:`grid_difference`); a guide
    that is not raises :class:`~c2s_monai.errors.InputError` naming both files and the
    difference, unless ``resample`` is set: it is then resampled onto the target's grid with
    MONAI's ``ResampleToMatch`` (trilinear; zero outside its field of view), which needs the
    two aligned in scanner coordinates. A resampled guide that covers less than
    ``min_coverage`` of the target's field of view is refused (another subject or session?).

    The result keeps the target's meta (its file, affine: outputs are written on its grid)
    and records ``contrasts`` (the channel names), ``target_contrast`` and ``contrast_files``.

    Args:
        resample: resample guides on another grid instead of refusing them.
        tolerance: largest difference of voxel size or position (mm) taken as the same grid.
        min_coverage: smallest fraction of the target's voxels a resampled guide must cover.
    """

    def __init__(self, resample: bool = False, tolerance: float = 1e-3, min_coverage: float = 0.5) -> None:
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0 (mm), got {tolerance!r}.")
        if not 0 <= min_coverage <= 1:
            raise ValueError(f"min_coverage must be in [0, 1], got {min_coverage!r}.")
        self.resample = parse_flag(resample, "resample_guides")
        self.tolerance = float(tolerance)
        self.min_coverage = float(min_coverage)
        self.resampler = ResampleToMatch(mode="bilinear", padding_mode="zeros", dtype=torch.float32)

    def __call__(self, images: Sequence[torch.Tensor], names: Sequence[str]) -> MetaTensor:
        if len(images) != len(names) or not images:
            raise ValueError(f"StackContrasts needs one name per image, got {len(images)} images and names {list(names)}.")
        target = images[0]
        channels = []
        for image, name in zip(images, names):
            if image.ndim != 4 or image.shape[0] != 1:
                raise ValueError(f"{input_name(image)} ({name}): expected one (1, H, W, D) volume, got shape {tuple(image.shape)}.")
            if image is not target:
                image = self._on_target_grid(image, name, target, names[0])
            channels.append(torch.as_tensor(image).float())
        meta = copy.deepcopy(dict(getattr(target, "meta", {}) or {}))
        meta["contrasts"] = list(names)
        meta["target_contrast"] = names[0]
        meta["contrast_files"] = [input_name(image) for image in images]
        return MetaTensor(torch.cat(channels), meta=meta)

    def _on_target_grid(self, guide: torch.Tensor, name: str, target: torch.Tensor, target_name: str) -> torch.Tensor:
        difference = grid_difference(target, guide, self.tolerance)
        if difference is None:
            return guide
        guide_file, target_file = input_name(guide), input_name(target)
        if not self.resample:
            raise InputError(
                f"{guide_file} ({name}) is not on the voxel grid of {target_file} ({target_name}): {difference}. The "
                "contrasts of a subject must share one grid: resample the guides onto the target's grid (bundle key "
                "`resample_guides true`, Python `resample_guides=True`; the images must be aligned in scanner "
                "coordinates), or give co-registered files on one grid."
            )
        if not isinstance(guide, MetaTensor) or not isinstance(target, MetaTensor):
            raise TypeError("resampling a guide needs MetaTensor images with their affines (load them with LoadVolumed).")
        both = torch.cat([guide, torch.ones_like(guide)])
        resampled = self.resampler(both, target)
        coverage = float((resampled[1] > 0.5).float().mean())
        if coverage < self.min_coverage:
            raise InputError(
                f"{guide_file} ({name}) covers only {coverage:.0%} of the field of view of {target_file} ({target_name}) "
                f"once resampled onto its grid ({difference}): are both from the same subject and session? Register "
                "the guide to the target first, or give co-registered files on one grid."
            )
        logger.info(
            "%s (%s) resampled onto the grid of %s (%s): %s; it covers %.0f%% of that field of view.",
            guide_file, name, target_file, target_name, difference, 100 * coverage,
        )
        return resampled[:1].as_tensor()


def subject_label(data: Mapping, contrasts: Sequence[str], subject_key: str = "subject") -> str:
    """How messages name a subject: ``subject <id>``, or ``the subject of <one of its files>``."""
    subject = data.get(subject_key)
    if subject:
        return f"subject {subject}"
    files = [input_name(data[n]) if isinstance(data[n], torch.Tensor) else str(data[n]) for n in contrasts if data.get(n) is not None]
    return f"the subject of {files[0]}" if files else "a subject"


def require_contrasts(data: Mapping, channels: Sequence[str], label: str) -> None:
    """Raise :class:`~c2s_monai.errors.InputError` if ``data`` lacks the target ``channels[0]`` or one of its guides."""
    target = channels[0]
    for name in channels:
        if data.get(name) is not None:
            continue
        if name == target:
            raise InputError(f"{label}: no {name!r} image to denoise; add the subject's {name} file to the datalist.")
        raise InputError(
            f"{label}: no {name!r} image, a guide of the {target!r} network (input channels {list(channels)}); add the "
            f"subject's {name} file to the datalist, or denoise its {target} image alone with a single-contrast model "
            "(docs/multicontrast.md, 'Missing guides')."
        )


class StackContrastsd(MapTransform):
    """Dictionary form of :class:`StackContrasts`: ``data[output_key] = stack([data[c] for c in channel order])``.

    ``keys`` are the contrast names in the configured order. The target is ``target``, or
    else ``data[target_key]``, or else the first key; the channel order is
    :func:`rotate_target` ``(keys, target)``. A subject lacking the target or one of its guides
    (key absent or ``None``) raises :class:`~c2s_monai.errors.InputError` naming the subject
    (``data[subject_key]``, or one of its files) and the contrast. The single-contrast keys
    are removed and ``data[target_key]`` is set to the target.

    Args:
        keys: contrast names, in the configured order.
        target: the target contrast of every item (``None``: per item, ``data[target_key]``).
        target_key, output_key, subject_key: item keys of the target's name, the stacked image, the subject id.
        resample, tolerance, min_coverage: see :class:`StackContrasts`.
    """

    def __init__(
        self,
        keys: KeysCollection,
        target: str | None = None,
        target_key: str = "target_contrast",
        output_key: str = "image",
        subject_key: str = "subject",
        resample: bool = False,
        tolerance: float = 1e-3,
        min_coverage: float = 0.5,
    ) -> None:
        super().__init__(keys, allow_missing_keys=True)
        self.contrasts = check_contrasts([str(k) for k in self.keys])
        if target is not None:
            rotate_target(self.contrasts, target)
        if output_key in self.contrasts:
            raise ValueError(f"output_key {output_key!r} is also a contrast name; choose another.")
        self.target = target
        self.target_key = target_key
        self.output_key = output_key
        self.subject_key = subject_key
        self.stacker = StackContrasts(resample, tolerance, min_coverage)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        target = self.target or d.get(self.target_key) or self.contrasts[0]
        channels = rotate_target(self.contrasts, str(target))
        require_contrasts(d, channels, subject_label(d, self.contrasts, self.subject_key))
        d[self.output_key] = self.stacker([d[name] for name in channels], channels)
        for name in self.contrasts:
            d.pop(name, None)
        d[self.target_key] = str(target)
        return d


# ------------------------------------------------------------------ datalists


def _json_entries(path: Path, data_list_key: str) -> list:
    try:
        content = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: not a JSON datalist ({error}); see docs/multicontrast.md for the format.") from error
    if isinstance(content, Mapping):
        if data_list_key not in content:
            raise InputError(
                f"{path}: a JSON object without a {data_list_key!r} list (keys: {sorted(content)}); give a list of "
                f"subjects, or put it under {data_list_key!r}."
            )
        content = content[data_list_key]
    if not isinstance(content, list):
        raise InputError(f"{path}: expected a list of subjects ({{contrast: file}} objects), got {type(content).__name__}.")
    return content


def _csv_entries(path: Path, contrasts: Sequence[str] | None) -> tuple[list, list[str]]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = [{k: (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None} for row in reader]
    if not header:
        raise InputError(f"{path}: the CSV datalist is empty; its first row names the columns, e.g. subject,t1,t2,flair.")
    missing = [c for c in (contrasts or []) if c not in header]
    if missing:
        raise InputError(
            f"{path}: no column {missing} (the columns are {header}); the first row must name one column per "
            "contrast, e.g. subject,t1,t2,flair, or set contrasts to the columns' names."
        )
    return rows, header


def datalist_contrasts(entries: Sequence[Mapping]) -> list[str]:
    """The contrast names used by ``entries``, in first-seen order (every key but :data:`RESERVED_KEYS`)."""
    names: list[str] = []
    for entry in entries:
        names += [str(k) for k in entry if str(k) not in RESERVED_KEYS and str(k) not in names]
    return names


def load_datalist(
    path, contrasts: Sequence[str] | str | None = None, data_list_key: str = "subjects"
) -> list[dict[str, str]]:
    """Read a multi-contrast datalist (JSON or CSV, see the module docstring) into one dict per subject.

    Each subject becomes ``{"subject": id or "", contrast: absolute path, ...}`` with only the
    contrasts it has (an absent key, ``null`` or an empty cell is a missing contrast: the
    subjects that need it are refused when they are stacked). ``contrasts`` selects and orders
    the contrasts (default: every column / key, in file order). ``path`` may also be the list
    of entries itself (relative paths are then relative to the working directory).

    Raises:
        FileNotFoundError: no file at ``path``.
        InputError: naming the file, for unreadable content, a missing column, a contrast no
            subject has, an entry that is not an object or names no contrast, a bad or repeated
            subject id, or no subject at all.
    """
    header = None
    if isinstance(path, Sequence) and not isinstance(path, (str, bytes)):
        entries, origin, base = list(path), "the datalist", Path.cwd()
    else:
        if path is None or not str(path).strip():
            raise InputError("no datalist was given: set datalist_file to a JSON or CSV file listing each subject's contrasts.")
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such datalist file; check datalist_file.")
        origin, base = str(path), path.parent
        suffix = path.suffix.lower()
        if suffix == ".json":
            entries = _json_entries(path, data_list_key)
        elif suffix in (".csv", ".tsv"):
            entries, header = _csv_entries(path, None if contrasts is None else check_contrasts(contrasts))
        else:
            raise InputError(f"{path}: a datalist is a .json or .csv file; see docs/multicontrast.md for the format.")
    return _subjects(entries, header, contrasts, origin, base)


def _subjects(entries: list, header: list[str] | None, contrasts, origin: str, base: Path) -> list[dict[str, str]]:
    """Check and normalise the datalist ``entries`` read from ``origin`` (see :func:`load_datalist`)."""
    if not entries:
        raise InputError(f"{origin}: lists no subject; give one entry per subject with its contrasts' files.")
    for row, entry in enumerate(entries, 1):
        if not isinstance(entry, Mapping):
            raise InputError(f"{origin}: subject {row} is {entry!r}, not an object of contrast names and files.")
    if contrasts is not None:
        names = check_contrasts(contrasts)
    else:
        names = check_contrasts([h for h in header if h not in RESERVED_KEYS] if header else datalist_contrasts(entries))
    subjects: list[dict[str, str]] = []
    for row, entry in enumerate(entries, 1):
        subject = str(entry.get("subject") or "").strip()
        if subject and (subject in (".", "..") or "/" in subject or "\\" in subject):
            raise InputError(f"{origin}: subject {row} has the id {subject!r}; an id names an output folder: no '/', '\\', '.' or '..'.")
        item = {"subject": subject}
        for name in names:
            value = entry.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if not isinstance(value, (str, os.PathLike)):
                raise InputError(f"{origin}: subject {row}, {name}: expected a file path, got {value!r}.")
            file = Path(value).expanduser()
            item[name] = str(file if file.is_absolute() else base / file)
        if len(item) == 1:
            raise InputError(f"{origin}: subject {row} names none of the contrasts {names}; give at least one file.")
        subjects.append(item)
    for name in names:
        if not any(name in s for s in subjects):
            used = header if header else datalist_contrasts(entries)
            raise InputError(f"{origin}: no subject has a {name!r} file (the datalist names {used}); set contrasts to names the datalist uses.")
    ids = [s["subject"] for s in subjects if s["subject"]]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise InputError(f"{origin}: the subject ids {repeated} occur more than once; give each subject one entry and its own id.")
    return subjects


def target_items(subjects: Sequence[Mapping], targets: Sequence[str], check_outputs: bool = False) -> list[dict[str, str]]:
    """One dataset item per subject and target: the subject's files plus ``target_contrast`` and ``source``.

    ``source`` (what a batch summary lists) is the target's file, or ``"<subject>: no <target>
    image"`` for a subject without it (its item then fails when stacked, with that message).
    With ``check_outputs``, outputs written into one folder must have distinct names: two
    subjects without a ``subject`` id whose target files share a name are refused (give ids:
    their outputs then go to one folder each).
    """
    items = []
    for subject in subjects:
        for target in targets:
            label = subject.get("subject") or next((str(v) for k, v in subject.items() if k != "subject"), "a subject")
            source = subject.get(target) or f"{label}: no {target} image"
            items.append({**subject, "subject": subject.get("subject", ""), "target_contrast": target, "source": str(source)})
    if check_outputs:
        seen: dict[tuple[str, str], tuple[str, int]] = {}
        for index, item in enumerate(items):
            if item["target_contrast"] not in item:
                continue
            key = (item["subject"], output_stem(item[item["target_contrast"]]))
            subject = index // max(1, len(targets))
            if key in seen and seen[key][0] != item["source"]:
                advice = (
                    "rename one of them" if seen[key][1] == subject
                    else "give each subject an id (`subject` in the datalist; outputs then go to <output_dir>/<subject>/)"
                )
                raise InputError(f"{seen[key][0]} and {item['source']} would be written to one output ({key[1]}_denoised): {advice}.")
            seen[key] = (item["source"], subject)
    return items


# ------------------------------------------------------------------ models


def contrast_model_path(folder, target: str) -> Path:
    """``<folder>/<target>/model.pt``: where the network for ``target`` is written and read."""
    return Path(folder) / target / MODEL_FILE


def write_channel_order(model_path, channels: Sequence[str]) -> Path:
    """Write ``contrasts.json`` beside ``model_path``: the target and the input channel order it was trained with."""
    channels = check_contrasts(channels)
    record = {"target_contrast": channels[0], "channels": channels}
    return write_text_atomic(Path(model_path).parent / CHANNELS_FILE, json.dumps(record, indent=2))


def read_channel_order(model_path) -> list[str] | None:
    """The channel order recorded beside ``model_path`` (``None`` without a ``contrasts.json``)."""
    record_path = Path(model_path).parent / CHANNELS_FILE
    if not record_path.is_file():
        return None
    try:
        return check_contrasts(json.loads(record_path.read_text())["channels"])
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(f"{record_path}: not a channel-order record ({error}); restore it or remove it.") from error


def record_channel_order(model_path, channels: Sequence[str], replace: bool = False) -> Path:
    """A training run's first step: refuse a folder holding a model of another channel order (unless ``replace``), then record ``channels``.

    Resuming a run with the guides in another order would mix two meanings of each channel
    in one network.
    """
    channels = check_contrasts(channels)
    recorded = read_channel_order(model_path)
    if recorded is not None and recorded != channels and not parse_flag(replace, "replace"):
        raise InputError(
            f"{Path(model_path).parent}: holds a run trained with the input channels {recorded} ({CHANNELS_FILE}), this "
            f"run stacks {channels}: train into another folder (bundle_root, output_dir), or start over there (bundle: "
            "--resume false)."
        )
    return write_channel_order(model_path, channels)


def check_channel_order(model_path, channels: Sequence[str]) -> list[str]:
    """Refuse a network whose recorded input channels (``contrasts.json``) differ from ``channels``.

    Without a record the order cannot be checked: a warning says so. Returns ``channels``.
    """
    channels = list(channels)
    recorded = read_channel_order(model_path)
    if recorded is None:
        logger.warning("%s: no %s beside it; the order of its input channels cannot be checked (this run stacks %s).", model_path, CHANNELS_FILE, channels)
    elif recorded != channels:
        raise InputError(
            f"{model_path}: trained with the input channels {recorded} ({CHANNELS_FILE} beside it), but this run stacks "
            f"{channels}: list the guides in the order it was trained with ({recorded[1:]}), or use a model trained "
            "for this order."
        )
    return channels


def networks_by_target(network: nn.Module, targets: Sequence[str]) -> nn.ModuleDict:
    """One copy of ``network`` per target contrast (the first is ``network`` itself), for joint mode."""
    targets = list(targets)
    return nn.ModuleDict({t: network if i == 0 else copy.deepcopy(network) for i, t in enumerate(targets)})
