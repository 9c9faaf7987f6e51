"""Contrast names and channel order: the network for target ``t`` takes ``rotate_target(order, t)``.

See :mod:`c2s_monai.multicontrast` (channel order) and docs/method.md section 9.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from c2s_monai.errors import InputError
from c2s_monai.settings import parse_flag

# item keys that are not contrast names
RESERVED_KEYS = ("subject", "target_contrast", "source", "image", "label", "pred", "sigma_data", "intensity_scale", "sigma_map", "noise")


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
