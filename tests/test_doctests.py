"""The ``>>>`` examples in the package's docstrings run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import c2s_monai

SKIP = {"c2s_monai.__main__", "c2s_monai.monailabel_adapter.server"}  # a program, and the MONAI Label app entry
MODULES = sorted(
    info.name for info in pkgutil.walk_packages(c2s_monai.__path__, prefix="c2s_monai.") if info.name not in SKIP
)
# the old module paths answer as their new modules: their examples run there
ALIASES = {"c2s_monai.readers", "c2s_monai.writers", "c2s_monai.sample_data"}


@pytest.mark.parametrize("name", [m for m in MODULES if m not in ALIASES])
def test_docstring_examples(name):
    if name.startswith("c2s_monai.monailabel_adapter"):
        pytest.importorskip("monailabel")
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed (run python -m doctest -v)"


def test_the_main_public_classes_show_an_example():
    from c2s_monai import C2SInferer, GDSMLoss
    from c2s_monai.transforms import ScaleNoisyImage

    for cls in (C2SInferer, GDSMLoss, ScaleNoisyImage):
        assert ">>>" in (cls.__doc__ or ""), f"{cls.__name__} has no >>> example"
