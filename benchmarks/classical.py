"""Classical denoisers of the benchmark: non-local means (scikit-image) and BM3D (``bm3d``)."""

from __future__ import annotations

import numpy as np
from skimage.restoration import denoise_nl_means

NLM_H_FACTORS = (0.6, 0.8, 1.0, 1.2)


def nlm(slices: np.ndarray, sigma: float, h_factor: float = 0.8) -> np.ndarray:
    """Non-local means per slice: ``h = h_factor * sigma``, patch 5, search distance 6, fast mode."""
    return np.stack(
        [denoise_nl_means(s, h=h_factor * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True) for s in slices]
    ).astype(np.float32)


def bm3d(slices: np.ndarray, sigma: float) -> np.ndarray:
    """BM3D per slice with the true noise std (``bm3d`` package, all stages)."""
    import bm3d as bm3d_package

    return np.stack([bm3d_package.bm3d(s, sigma_psd=sigma) for s in slices]).astype(np.float32)
