"""Multi-contrast datalists (JSON or CSV, one subject per entry) and the items they give.

See :mod:`c2s_monai.multicontrast` (datalists).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from c2s_monai.errors import InputError
from c2s_monai.multicontrast.channels import RESERVED_KEYS, check_contrasts
from c2s_monai.naming import output_stem
from c2s_monai.noise_level import map_file


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
        names += [str(k) for k in entry if str(k) not in RESERVED_KEYS and not is_map_key(str(k)) and str(k) not in names]
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
        names = check_contrasts([h for h in header if h not in RESERVED_KEYS and not is_map_key(h)] if header else datalist_contrasts(entries))
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
        for key, noise_map in entry.items():
            # noise maps (docs/multicontrast.md): `sigma_map_<contrast>`, or `sigma_map` with one target
            if is_map_key(str(key)) and isinstance(noise_map, (str, os.PathLike)) and str(noise_map).strip():
                noise_file = Path(noise_map).expanduser()
                item[str(key)] = str(noise_file if noise_file.is_absolute() else base / noise_file)
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


# The datalist key of a noise map (of the target, or `sigma_map_<contrast>`), and an item's.
MAP_KEY = "sigma_map"


def is_map_key(key: str) -> bool:
    """Whether a datalist key names a noise map: ``sigma_map`` or ``sigma_map_<contrast>``."""
    return key == MAP_KEY or key.startswith(MAP_KEY + "_")


def target_items(subjects: Sequence[Mapping], targets: Sequence[str], check_outputs: bool = False, sigma_map=None) -> list[dict[str, str]]:
    """One dataset item per subject and target: the subject's files plus ``target_contrast`` and ``source``.

    Noise maps (:mod:`c2s_monai.noise_level`): an item's ``sigma_map`` is its subject's
    ``sigma_map_<target>``, or the subject's ``sigma_map`` when one target is denoised (with
    several, a plain ``sigma_map`` would be applied to contrasts it is not the map of: refused).
    A ``sigma_map`` file setting (one map for the whole run) is refused: maps go in the datalist.

    ``source`` (what a batch summary lists) is the target's file, or ``"<subject>: no <target>
    image"`` for a subject without it (its item then fails when stacked, with that message).
    With ``check_outputs``, outputs written into one folder must have distinct names: two
    subjects without a ``subject`` id whose target files share a name are refused (give ids:
    their outputs then go to one folder each).
    """
    if map_file(sigma_map) is not None:
        raise ValueError(
            f"sigma_map {sigma_map}: multi-contrast runs take noise maps from the datalist (each subject's "
            "sigma_map_<contrast>), not one map file for the run; use sigma_map 'auto' or 'none' here."
        )
    items = []
    for subject in subjects:
        files = {k: v for k, v in subject.items() if not is_map_key(str(k))}
        for target in targets:
            label = subject.get("subject") or next((str(v) for k, v in files.items() if k != "subject"), "a subject")
            source = subject.get(target) or f"{label}: no {target} image"
            item = {**files, "subject": subject.get("subject", ""), "target_contrast": target, "source": str(source)}
            if MAP_KEY in subject and len(targets) > 1:
                raise InputError(
                    f"{label}: a sigma_map without its contrast, and {len(targets)} contrasts are denoised; name the contrast it "
                    f"is the noise map of (sigma_map_{targets[0]}, ...)."
                )
            noise_map = subject.get(f"{MAP_KEY}_{target}", subject.get(MAP_KEY))
            if noise_map:
                item[MAP_KEY] = str(noise_map)
            items.append(item)
    if check_outputs:
        seen: dict[tuple[str, str], tuple[str, int]] = {}
        for index, item in enumerate(items):
            if item["target_contrast"] not in item:
                continue
            key = (item["subject"], output_stem(item[item["target_contrast"]]))
            subject_index = index // max(1, len(targets))
            if key in seen and seen[key][0] != item["source"]:
                advice = (
                    "rename one of them" if seen[key][1] == subject_index
                    else "give each subject an id (`subject` in the datalist; outputs then go to <output_dir>/<subject>/)"
                )
                raise InputError(f"{seen[key][0]} and {item['source']} would be written to one output ({key[1]}_denoised): {advice}.")
            seen[key] = (item["source"], subject_index)
    return items
