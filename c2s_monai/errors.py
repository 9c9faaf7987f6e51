"""The error a bad input raises: one message that names the file, says what is wrong and what to do.

Every check of an input file or setting (:mod:`c2s_monai.transforms`, :mod:`c2s_monai.io.readers`,
:mod:`c2s_monai.io`, :mod:`c2s_monai.intensity`, the checkpoint loaders of
:mod:`c2s_monai.handlers`) raises :class:`InputError`, a ``ValueError``, so callers that
process many inputs can tell "this input is bad" from a bug, record it and go on
(:mod:`c2s_monai.batch`). docs/bad-inputs.md lists every case and its message.
:func:`input_name`, :func:`describe` and :func:`root_cause` help write those messages and find
the error under the wrappers MONAI adds.

:func:`install_excepthook` (run when :mod:`c2s_monai` is imported) makes that message the last
line a failed command prints: ``python -m monai.bundle run`` wraps an error raised while a
config expression is evaluated or a component instantiated in ``RuntimeError("Failed to
evaluate ConfigExpression ...")`` / ``"Failed to instantiate component ..."``, which Python
prints after the error itself; :func:`report_error` prints the traceback as usual, then
``error: <message>``, and the exit status stays 1.
"""

from __future__ import annotations

import sys
from types import TracebackType

__all__ = ["InputError", "clear_error", "describe", "input_name", "install_excepthook", "report_error", "root_cause"]


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


def _raised_here(error: BaseException) -> bool:
    """Whether ``error`` was raised by this package's code (the innermost frame of its traceback)."""
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(tb.tb_frame.f_globals.get("__name__", "")).split(".")[0] == __name__.split(".")[0]


def clear_error(error: BaseException | None) -> BaseException | None:
    """The error of ``error``'s chain whose message is meant for the user, or ``None``.

    That is an :class:`InputError`, an error class of this package (``BatchFailedError``), or a
    ``ValueError``/``OSError`` (``FileNotFoundError``) raised by this package's code, found by
    walking ``__cause__``/``__context__`` from the outermost wrapper inwards; the first found
    (the outermost) is the one with the most context.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, InputError) or type(error).__module__.split(".")[0] == __name__.split(".")[0]:
            return error
        if isinstance(error, (ValueError, OSError)) and _raised_here(error):
            return error
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return None


_previous_hook = None


def report_error(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    """``sys.excepthook``: the usual traceback, then ``error: <message>`` when the chain holds a clear error.

    Other exceptions (bugs, ``KeyboardInterrupt``) go to the hook that was installed before,
    unchanged. The interpreter exits with status 1 after an uncaught exception either way.
    """
    previous = _previous_hook if _previous_hook is not None else sys.__excepthook__
    clear = clear_error(error) if isinstance(error, Exception) else None
    previous(kind, error, tb)
    if clear is not None:
        message = str(clear).strip() or type(clear).__name__
        try:
            sys.stderr.flush()
            print(f"error: {message}", file=sys.stderr, flush=True)
        except (OSError, ValueError):  # stderr closed: nothing more to say
            pass


def install_excepthook() -> None:
    """Install :func:`report_error` as ``sys.excepthook`` (idempotent; it chains to the hook it replaces)."""
    global _previous_hook
    if sys.excepthook is report_error:
        return
    _previous_hook = sys.excepthook
    sys.excepthook = report_error
