"""The package type-checks (mypy, with ``[tool.mypy]`` in pyproject.toml) and the repository lints clean (ruff).

mypy and ruff are in the ``test`` extra: a missing one fails here with how to install it,
instead of skipping the check.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    assert importlib.util.find_spec(module) is not None, (
        f"{module} is not installed: it is a test dependency, install it with `pip install -e \".[test]\"`."
    )
    return subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_mypy_passes():
    # no arguments: the files and settings are pyproject.toml's [tool.mypy]
    result = _run_module("mypy")
    assert result.returncode == 0, f"mypy found errors (exit {result.returncode}):\n{result.stdout}{result.stderr}"


def test_ruff_passes():
    result = _run_module("ruff", "check", ".")
    assert result.returncode == 0, f"ruff check found problems (exit {result.returncode}):\n{result.stdout}{result.stderr}"
