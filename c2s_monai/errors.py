"""The error a bad input raises: one message that names the file, says what is wrong and what to do.

Every check of an input file or setting (:mod:`c2s_monai.transforms`, :mod:`c2s_monai.io.readers`,
:mod:`c2s_monai.io`, :mod:`c2s_monai.intensity`, the checkpoint loaders of
:mod:`c2s_monai.handlers`) raises :class:`InputError`, a ``ValueError``, so callers that
process many inputs can tell "this input is bad" from a bug, record it and go on
(:mod:`c2s_monai.batch`). docs/bad-inputs.md lists every case and its message.
:func:`input_name`, :func:`describe` and :func:`root_cause` help write those messages and find
the error under the wrappers MONAI adds.
"""

from __future__ import annotations

__all__ = ["InputError", "describe", "input_name", "root_cause"]


class InputError(ValueError):
    """A bad input file or setting; the message names it, says what is wrong and what to do."""


def root_cause(error: BaseException) -> BaseException:
    """The exception under MONAI's ``RuntimeError("applying transform ...")`` wrappers."""
    while error.__cause__ is not None and str(error).startswith("applying transform"):
        error = error.__cause__
    return error


def describe(error: BaseException) -> str:
    """``Type: first line`` of an error, with its first detail line when the first ends with a colon
    (``load_state_dict``'s "Error(s) in loading state_dict for ...:" then the first mismatch)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()] or [""]
    text = f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]
    return f"{type(error).__name__}: {text}"


def input_name(image) -> str:
    """The file an image was read from (its MONAI ``filename_or_obj``), for messages."""
    meta = getattr(image, "meta", None) or {}
    return str(meta.get("filename_or_obj", "the input image"))
