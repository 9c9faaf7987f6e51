"""Reading user settings as typed on a command line or in a bundle config.

>>> parse_flag("false"), parse_flag("Yes"), parse_flag(1)
(False, True, True)
"""

from __future__ import annotations

import numpy as np


def parse_flag(value, name: str = "flag") -> bool:
    """A yes/no setting: a bool, or a string as typed on a command line (``true``/``false``, ``1``/``0``, ``yes``/``no``).

    ``python -m monai.bundle run --key false`` passes the *string* ``"false"``, which Python
    would take as true.
    """
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "none", "null", ""):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}.")
