"""Whole-image C2S inference: ``x_hat = D(y, s_d)``, one forward pass at the data level.

method.md section 4. :class:`C2SInferer` is a MONAI ``Inferer``: ``inferer(inputs, network)``
with ``inputs`` a batch of noisy images in their own units, ``(B, C, H, W)`` or volumes
``(B, C, H, W, D)`` (channel 0 the target contrast, the rest guides). It does everything
the network needs beyond the image:

1. scale each sample to network units and set its noise level there
   (:class:`c2s_monai.intensity.ScaleNoisyImage`: given sigma or estimated);
2. for volumes, move the slices (last axis) into the batch and run them ``slice_batch``
   at a time; pad each slice to a multiple of 16 (``BasicUNet``'s pooling) or, when larger
   than ``roi_size``, run MONAI's ``SlidingWindowInferer``;
3. append the noise-level channel and call the network, optionally averaging over the
   ``flips`` test-time flips (an ensemble beyond the paper; see docs/benchmarks.md);
4. with ``rician_vst`` (a network trained on variance-stabilised Rician data), stabilise the
   target channel after step 1 and map the output back with the exact unbiased inverse;
5. undo the padding and the scaling: the output is float32 in the input's units, shape
   ``(B, 1, *spatial)``.

The sigma used for each sample (image units) is kept in ``inferer.sigma_used``, and where it
came from (``"given"`` or ``"estimated (<estimator>)"``) in ``inferer.sigma_source``.

Multi-contrast joint mode (:mod:`c2s_monai.multicontrast`): ``network`` may be an
``nn.ModuleDict`` of one network per target contrast and ``sigma_data`` a mapping
``{contrast: sigma}``; each sample's target is then named by ``target_contrast`` (a MONAI
evaluator passes it from the batch with ``monai.engines.PrepareBatchExtraInput``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.inferers import Inferer, SlidingWindowInferer
from torch import nn
from tqdm import tqdm

from c2s_monai.errors import InputError
from c2s_monai.intensity import (
    ScaleNoisyImage,
    check_contrast_sigmas,
    contrast_sigma_data,
)
from c2s_monai.precision import autocast_dtype
from c2s_monai.vst import RicianVST, rician_vst_inverse
from c2s_monai.writers import parse_flag

FLIP_ENSEMBLES = {
    1: ((),),
    2: ((), (-1,)),
    4: ((), (-1,), (-2,), (-2, -1)),
}


class C2SInferer(Inferer):
    """Slice-wise, batched, padded C2S denoising (see the module docstring).

    Args:
        sigma_data: noise std in the image's units, or ``"auto"``/``"mad"``/``"background"``;
            or a mapping of those by target contrast name.
        flips: 1 (no ensembling), 2 or 4 test-time flips of the in-plane axes.
        slice_batch: slices per forward pass.
        roi_size: in-plane size above which a sliding window is used.
        overlap: sliding-window overlap.
        percentile: intensity-scale percentile (:func:`c2s_monai.intensity.intensity_scale`).
        autocast_dtype: ``"float32"``, ``"bfloat16"`` or ``"auto"`` (bfloat16 where the
            device has native bfloat16 units, :mod:`c2s_monai.precision`).
        progress: show a tqdm bar over slice batches.
        rician_vst: for a network trained on variance-stabilised Rician data: stabilise the
            target channel before the network, apply the exact unbiased inverse after it
            (:mod:`c2s_monai.vst`).
    """

    def __init__(
        self,
        sigma_data: float | str | Mapping[str, float | str] = "auto",
        flips: int = 4,
        slice_batch: int = 8,
        roi_size: Sequence[int] = (256, 256),
        overlap: float = 0.25,
        percentile: float = 99.5,
        autocast_dtype: str = "float32",
        progress: bool = False,
        rician_vst: bool = False,
    ) -> None:
        super().__init__()
        if flips not in FLIP_ENSEMBLES:
            raise ValueError(f"flips must be one of {tuple(FLIP_ENSEMBLES)}, got {flips!r}.")
        if slice_batch < 1:
            raise ValueError(f"slice_batch must be >= 1, got {slice_batch!r}.")
        if autocast_dtype not in ("float32", "bfloat16", "auto"):
            raise ValueError(f"autocast_dtype must be 'float32', 'bfloat16' or 'auto', got {autocast_dtype!r}.")
        sigma_data = check_contrast_sigmas(sigma_data)
        self.percentile = percentile
        # one setting: its scaler, reused; per contrast: resolved per sample
        self.scaler = None if isinstance(sigma_data, Mapping) else ScaleNoisyImage(sigma_data, percentile)
        self.sigma_by_contrast = sigma_data if isinstance(sigma_data, Mapping) else None
        self.flips = FLIP_ENSEMBLES[flips]
        self.slice_batch = int(slice_batch)
        self.roi_size = tuple(int(r) for r in roi_size)
        self.sliding_window = SlidingWindowInferer(roi_size=self.roi_size, sw_batch_size=self.slice_batch, overlap=overlap, mode="gaussian")
        self.autocast_setting = autocast_dtype
        self.progress = progress
        self.rician_vst = parse_flag(rician_vst, "rician_vst")
        self.sigma_used: list[float] = []
        self.sigma_source: list[str] = []

    def _denoise_slices(self, network, slices: torch.Tensor, sigma: float) -> torch.Tensor:
        """Denoise ``(N, C, H, W)`` slices in network units at level ``sigma``."""
        height, width = slices.shape[-2:]
        level = torch.full_like(slices[:, :1], sigma)
        inputs = torch.cat([slices, level], dim=1)
        use_window = height > self.roi_size[0] or width > self.roi_size[1]
        if not use_window:
            # BasicUNet pools four times: a multiple of 16, and at least 32 for its instance norms
            pad_h, pad_w = max(32, height + (-height) % 16) - height, max(32, width + (-width) % 16) - width
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h), mode="replicate")
        total = torch.zeros_like(inputs[:, :1])
        dtype = autocast_dtype(self.autocast_setting, inputs.device.type)
        for dims in self.flips:
            flipped = inputs.flip(dims) if dims else inputs
            with torch.autocast(inputs.device.type, dtype=dtype, enabled=dtype is not None):
                out = self.sliding_window(flipped, network) if use_window else network(flipped)
            out = out.float()
            total += out.flip(dims) if dims else out
        return (total / len(self.flips))[..., :height, :width]

    def _scaler(self, sigma_data, target: str | None) -> ScaleNoisyImage:
        if sigma_data is None and self.scaler is not None:
            return self.scaler
        setting = self.sigma_by_contrast if sigma_data is None else sigma_data
        return ScaleNoisyImage(contrast_sigma_data(setting, target), self.percentile)

    @staticmethod
    def _network(network, target: str | None):
        if not isinstance(network, nn.ModuleDict):
            return network
        if target not in network:
            raise InputError(
                f"no network for the target contrast {target!r} (networks for {list(network.keys())}): name the target of "
                "each input (target_contrast) and give a network for it."
            )
        return network[target]

    @torch.no_grad()
    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network,
        sigma_data: float | str | Mapping | None = None,
        target_contrast: str | Sequence[str] | None = None,
    ) -> torch.Tensor:
        """Denoise ``inputs`` ``(B, C, H, W[, D])``.

        ``sigma_data`` overrides the configured one; ``target_contrast`` names each sample's
        target contrast (one name, or one per sample), which picks its network from an
        ``nn.ModuleDict`` and its sigma from a mapping.
        """
        if inputs.ndim not in (4, 5):
            raise ValueError(f"C2SInferer needs (B, C, H, W) or (B, C, H, W, D) inputs, got shape {tuple(inputs.shape)}.")
        targets = [target_contrast] * len(inputs) if target_contrast is None or isinstance(target_contrast, str) else list(target_contrast)
        if len(targets) != len(inputs):
            raise ValueError(f"target_contrast names {len(targets)} targets for {len(inputs)} samples.")
        was_training = network.training
        network.eval()
        outputs, self.sigma_used, self.sigma_source = [], [], []
        for sample, target in zip(torch.as_tensor(inputs).float(), targets):
            sample_network = self._network(network, target)
            scaler = self._scaler(sigma_data, target)
            scaled, sigma, scale = scaler(sample)
            if self.rician_vst:
                scaled = RicianVST()(scaled, sigma)
            self.sigma_used.append(sigma * scale)
            self.sigma_source.append(scaler.sigma_source)
            volume = scaled if scaled.ndim == 4 else scaled.unsqueeze(-1)
            slices = volume.permute(3, 0, 1, 2)
            starts = range(0, slices.shape[0], self.slice_batch)
            denoised = [
                self._denoise_slices(sample_network, slices[start : start + self.slice_batch], sigma)
                for start in tqdm(starts, desc="denoising", unit="batch", disable=not self.progress)
            ]
            denoised = torch.cat(denoised).permute(1, 2, 3, 0)
            if self.rician_vst:
                denoised = rician_vst_inverse(denoised, sigma)
            outputs.append((denoised if scaled.ndim == 4 else denoised[..., 0]) * scale)
        network.train(was_training)
        return torch.stack(outputs)
