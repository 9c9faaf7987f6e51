"""Old import paths, kept for a release: names that moved answer from their old module.

>>> import c2s_monai.context
>>> c2s_monai.context.CheckContextd is __import__("c2s_monai.transforms").transforms.CheckContextd
True
"""

from __future__ import annotations

import importlib
import sys


def moved(module: str, names: tuple[str, ...], new_home: str):
    """A module ``__getattr__`` (PEP 562) that finds ``names`` in ``new_home``, imported on first use."""

    def __getattr__(name: str):
        if name in names:
            return getattr(importlib.import_module(new_home), name)
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__


def alias_module(module: str, new_home: str) -> None:
    """Make the old module path ``module`` the very module ``new_home`` (same objects, same state)."""
    sys.modules[module] = importlib.import_module(new_home)
