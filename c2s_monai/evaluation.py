"""Measuring a denoiser: synthetic-noise pairs (with a clean reference) and no-reference checks.

- :class:`SimulateNoisyd`: from a clean reference volume make ``label`` (the reference scaled
  to a peak of 1) and ``image`` (``label`` plus Gaussian or Rician noise of std ``sigma``).
  The noise is a fixed function of the file name and ``seed``: one simulated acquisition per
  volume, the same at every epoch and in every run, so the transform is deterministic (MONAI
  caches it) and a self-supervised method never sees two noise draws of one image.
- :func:`slices_as_samples`: an ``output_transform`` that hands a 2D metric (SSIM) every slice
  of every volume as one sample.
- :func:`reference_metrics`: the metrics against the clean reference, one definition for
  validation during training (``train.json``) and evaluation (``evaluate.json``).
- :func:`no_reference_metrics`: what can be checked without a clean image: the residual
  ``noisy - denoised`` should look like the noise (its std close to ``sigma_data``, no
  correlation with the denoised image) and the denoised image should hold little noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from monai.handlers import IgniteMetricHandler, PeakSignalToNoiseRatio, from_engine
from monai.metrics import SSIMMetric

from c2s_monai.compat import moved
from c2s_monai.estimation import estimate_sigma_mad

__all__ = ["NO_REFERENCE_METRICS", "no_reference_metrics", "reference_metrics", "slices_as_samples"]

NO_REFERENCE_METRICS = ("residual_std_ratio", "residual_correlation", "remaining_noise_ratio")




def slices_as_samples(output: Sequence[Mapping] | Mapping, keys: Sequence[str] = ("pred", "label")) -> tuple[list, list]:
    """``output_transform`` for slice-wise 2D metrics: every ``(C, H, W)`` slice of every volume is a sample."""
    items = [output] if isinstance(output, Mapping) else list(output)
    first: list[torch.Tensor] = []
    second: list[torch.Tensor] = []
    for item in items:
        a, b = torch.as_tensor(item[keys[0]]), torch.as_tensor(item[keys[1]])
        if a.ndim == 3:
            a, b = a[..., None], b[..., None]
        first.extend(a[..., k] for k in range(a.shape[-1]))
        second.extend(b[..., k] for k in range(b.shape[-1]))
    return first, second


def reference_metrics(prefix: str = "", save_details: bool = False) -> tuple[dict, dict]:
    """The metrics against the clean reference ``label``, as ``(key metric, additional metrics)`` for a MONAI evaluator.

    Key: ``<prefix>psnr``, the PSNR (peak 1) of ``pred``. Additional: ``<prefix>ssim`` of
    ``pred`` (2D SSIM, every slice a sample: :func:`slices_as_samples`), and
    ``<prefix>noisy_psnr``/``<prefix>noisy_ssim`` of the noisy input ``image``, the baseline.
    ``save_details`` keeps the per-volume PSNRs (for ``MetricsSaver``).
    """

    def psnr(keys: list[str]) -> PeakSignalToNoiseRatio:
        return PeakSignalToNoiseRatio(max_val=1.0, save_details=save_details, output_transform=from_engine(keys))

    def ssim(keys: tuple[str, str]) -> IgniteMetricHandler:
        return IgniteMetricHandler(
            metric_fn=SSIMMetric(spatial_dims=2, data_range=1.0), output_transform=lambda output: slices_as_samples(output, keys=keys)
        )

    key = {f"{prefix}psnr": psnr(["pred", "label"])}
    additional = {
        f"{prefix}ssim": ssim(("pred", "label")),
        f"{prefix}noisy_psnr": psnr(["image", "label"]),
        f"{prefix}noisy_ssim": ssim(("image", "label")),
    }
    return key, additional


def no_reference_metrics(noisy, denoised, sigma_data: float) -> dict[str, float]:
    """No-reference quality checks of one denoised volume (image units; see the module docstring).

    Returns:
        ``residual_std_ratio``: std of ``noisy - denoised`` over ``sigma_data`` (about 1 when the
        noise, and only the noise, is removed; below 1: noise left, above 1: signal removed);
        ``residual_correlation``: Pearson correlation of the residual with the denoised image
        (about 0 when no structure leaks into the residual);
        ``remaining_noise_ratio``: wavelet-MAD noise estimate of the denoised image over
        ``sigma_data`` (small when little noise is left).
    """
    if not sigma_data > 0:
        raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}.")
    noisy_array = torch.as_tensor(noisy).detach().cpu().double().squeeze()
    denoised_array = torch.as_tensor(denoised).detach().cpu().double().squeeze()
    residual = noisy_array - denoised_array
    centred_r = residual - residual.mean()
    centred_d = denoised_array - denoised_array.mean()
    denominator = float(torch.sqrt((centred_r**2).sum() * (centred_d**2).sum()))
    correlation = float((centred_r * centred_d).sum()) / denominator if denominator > 0 else 0.0
    try:
        remaining = estimate_sigma_mad(denoised_array.numpy()) / sigma_data
    except ValueError:
        remaining = 0.0
    return {
        "residual_std_ratio": float(residual.std()) / sigma_data,
        "residual_correlation": correlation,
        "remaining_noise_ratio": float(remaining),
    }


# moved to c2s_monai.transforms in 0.7; the old path answers for a release
__getattr__ = moved(__name__, ('SimulateNoisyd',), "c2s_monai.transforms")
