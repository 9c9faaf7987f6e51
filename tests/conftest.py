"""Shared fixtures and settings of the c2s_monai test suite.

Every test is CPU-only, small and seeded; torch runs on two threads so the suite
behaves the same on a 2-core CI runner and on a workstation.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(2)

# Networks small enough for a CPU test: the six BasicUNet widths.
TINY_FEATURES = (8, 8, 16, 32, 64, 8)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Fix the global RNGs before every test (tests that need a stream use their own generator)."""
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def one_thread():
    """Torch on one thread for the test: tiny networks run fastest so, and subprocesses of the
    tests run on one thread (OMP_NUM_THREADS=1), which in-process references must match."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_features():
    return TINY_FEATURES


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def disk_phantom(shape, radius_fraction: float = 0.35, value: float = 1.0, inner_value: float = 0.5) -> np.ndarray:
    """A piecewise-constant 2D/3D phantom: a bright ellipsoid with a darker core in an air (0) background."""
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in shape], indexing="ij")
    radius2 = sum(g**2 for g in grids)
    phantom = np.zeros(shape, dtype=np.float64)
    phantom[radius2 < (2 * radius_fraction) ** 2] = value
    phantom[radius2 < radius_fraction**2] = inner_value
    return phantom


def psnr(reference: np.ndarray, estimate: np.ndarray, mask: np.ndarray | None = None, data_range: float = 1.0) -> float:
    reference = np.asarray(reference, dtype=np.float64)
    estimate = np.asarray(estimate, dtype=np.float64)
    if mask is not None:
        reference, estimate = reference[mask], estimate[mask]
    mse = float(np.mean((reference - estimate) ** 2))
    return 10.0 * np.log10(data_range**2 / mse)


@pytest.fixture
def make_phantom():
    """The :func:`disk_phantom` factory (fixtures keep the helpers importable under any import mode)."""
    return disk_phantom


@pytest.fixture
def psnr_fn():
    """The :func:`psnr` helper."""
    return psnr


@pytest.fixture
def model_and_input(tmp_path):
    """A tiny slice-by-slice network (``model.pt`` with its ``model_config.json``) and a folder holding one small noisy NIfTI."""
    import json

    import nibabel as nib
    import torch

    from c2s_monai.networks import NoiseConditionedUNet

    features = [8, 8, 16, 32, 64, 8]
    torch.manual_seed(0)
    torch.save(NoiseConditionedUNet(features=features).state_dict(), tmp_path / "model.pt")
    (tmp_path / "model_config.json").write_text(json.dumps({"network": {"features": features, "context_slices": 0}}))
    image = np.random.default_rng(0).normal(1.0, 0.1, (16, 16, 3)).astype(np.float32)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    nib.save(nib.Nifti1Image(image, np.eye(4)), inputs / "scan.nii.gz")
    return tmp_path / "model.pt", inputs
