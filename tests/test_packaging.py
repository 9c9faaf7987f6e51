"""The package builds as a wheel and an sdist that pass the metadata checks, and the wheel installs and denoises on its own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*command, cwd=None, env=None) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """``python -m build`` of a copy of the tracked files (no build isolation: no network)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source))
    return out


def test_the_wheel_and_sdist_pass_the_metadata_checks(dist):
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    assert "PASSED" in _run(sys.executable, "-m", "twine", "check", "--strict", *map(str, wheels + sdists))


def test_the_wheel_installs_in_a_fresh_venv_and_denoises(dist, tmp_path):
    """A venv (dependencies from this environment) with the wheel installed, away from the repository."""
    home = tmp_path / "venv"
    venv.create(home, system_site_packages=True, with_pip=True)
    python = home / "bin" / "python"
    wheel = next(dist.glob("*.whl"))
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(wheel))
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = """
import json, sys, torch
import c2s_monai
from c2s_monai.io.sample_data import dipy_s0_path
from c2s_monai.networks import NoiseConditionedUNet
assert "site-packages" in c2s_monai.__file__, c2s_monai.__file__
torch.manual_seed(0)
torch.save(NoiseConditionedUNet(features=(8, 8, 16, 32, 64, 8), context_slices=2).state_dict(), "model.pt")
json.dump({"network": {"features": [8, 8, 16, 32, 64, 8], "context_slices": 2}}, open("model_config.json", "w"))
out = c2s_monai.denoise(dipy_s0_path(), "model.pt", "denoised.nii.gz")
print(json.dumps({"module": c2s_monai.__file__, "output": str(out)}))
"""
    report = json.loads(_run(python, "-c", script, cwd=work, env=env).strip().splitlines()[-1])
    assert str(REPO) not in report["module"]
    assert (work / "denoised.nii.gz").is_file()
    assert (home / "bin" / "c2s-monai").is_file(), "the console script is installed with the wheel"
