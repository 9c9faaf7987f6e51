"""Moved to :mod:`c2s_monai.io.writers` in 0.7; this old import path is that module, for a release."""

from c2s_monai.compat import alias_module

alias_module(__name__, "c2s_monai.io.writers")
