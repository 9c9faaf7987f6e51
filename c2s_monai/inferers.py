"""Whole-image C2S inference: ``x_hat = D(y, s_d)``, one forward pass at the data level.

docs/method.md section 8. :class:`C2SInferer` is a MONAI ``Inferer``: ``inferer(inputs, network)``
with ``inputs`` a batch of noisy images in their own units, ``(B, C, H, W)`` or volumes
``(B, C, H, W, D)`` (channel 0 the target contrast, the rest guides). It does everything
the network needs beyond the image:

1. scale each sample to network units and set its noise level there
   (:class:`c2s_monai.transforms.ScaleNoisyImage`: given sigma or estimated);
2. for volumes, move the slice axis last (:func:`c2s_monai.context.resolve_slice_axis`: the
   axis of largest voxel spacing by default) and measure the noise correlation along every
   axis (:func:`c2s_monai.context.check_noise_independence`, a warning where it is high);
3. a 2D network (``spatial_dims`` 2): stack each slice with its ``K`` neighbours on each side
   (2.5D context, :mod:`c2s_monai.context`, ``K`` the network's ``context_slices``), move the
   slices into the batch and run them ``slice_batch`` at a time; pad each slice to a
   multiple of 16 (``BasicUNet``'s pooling) or, when larger than ``roi_size``, run MONAI's
   ``SlidingWindowInferer``. A 3D network: the whole volume, padded likewise, or MONAI's
   ``SlidingWindowInferer`` in ``volume_roi_size`` windows when it is larger (bounded memory);
4. append the noise-level channel and call the network, optionally averaging over the
   ``flips`` test-time flips (an ensemble beyond the paper; see docs/benchmarks.md); with
   ``autocast_dtype="auto"`` on a CPU without native bfloat16, the ``"auto"`` backend runs the
   network's ONNX export with ONNX Runtime (2-3x faster than eager float32 there; exported once per set of weights,
   :func:`c2s_monai.export.cached_onnx`);
5. decide the noise (:mod:`c2s_monai.noise_level`): the data's model (``noise_model``, ``"auto"``:
   magnitude data with an air background go through the VST of their Rician or noncentral-chi
   model, and the output comes back through its exact unbiased inverse) and the level, uniform
   or per voxel (``sigma_map``: ``"auto"`` estimates a map, or a map is given at call time);
   the network's level channel is that map;
6. undo the padding, the axis move and the scaling: the output is a float32 ``MetaTensor``
   in the input's units, shape ``(B, 1, *spatial)``, with the input's metadata.

What was found for each sample is written into the output's metadata, as MONAI's
``ClipIntensityPercentiles`` writes its values into ``img.meta``, so that it travels with
the item through decollation and post-processing and the inferer keeps no per-call state:
the sigma used (image units, ``c2s_sigma_data``; a map's median), where it came from (``"given"`` or
``"estimated (<estimator>)"``, ``c2s_sigma_source``), how the volume was denoised (mode,
context, slice axis, edge handling or 2D fallback, noise correlation; ``c2s_volume``, JSON), the
noise model chosen and why (``c2s_noise``, JSON) and the per-voxel level used, in image units
(``c2s_noise_map``, a ``(1, *spatial)`` tensor, constant where uniform; the writers save it as
``<output name>_noise_map.nii.gz``).
:func:`denoising_record` reads them back, from a batch or from one decollated item.

Multi-contrast joint mode (:mod:`c2s_monai.multicontrast`): ``network`` may be an
``nn.ModuleDict`` of one network per target contrast and ``sigma_data`` a mapping
``{contrast: sigma}``; each sample's target is then named by ``target_contrast`` (a MONAI
evaluator passes it from the batch with ``monai.engines.PrepareBatchExtraInput``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from monai.data import MetaTensor
from monai.inferers import Inferer, SlidingWindowInferer
from torch import nn
from tqdm import tqdm

from c2s_monai import defaults
from c2s_monai.context import (
    AUTO,
    check_context_slices,
    check_noise_independence,
    check_slice_axis,
    context_indices,
    context_stack,
    resolve_slice_axis,
    voxel_spacing,
)
from c2s_monai.errors import InputError
from c2s_monai.export import OnnxNetwork, cached_onnx, network_digest, onnx_available
from c2s_monai.intensity import check_contrast_sigmas, contrast_sigma_data
from c2s_monai.naming import NOISE_MAP_META_KEY
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.noise_level import (
    SIGMA_MAP_MODES,
    check_noise_map,
    check_num_coils,
    check_sigma_map,
    legacy_noise_model,
    resolve_noise_level,
    stabilise,
    unstabilise,
)
from c2s_monai.precision import autocast_dtype, check_autocast_dtype
from c2s_monai.settings import parse_flag
from c2s_monai.transforms import ScaleNoisyImage

BACKENDS = ("auto", "torch", "onnxruntime")
# Per-sample results in the output's metadata (see the module docstring).
SIGMA_KEY, SIGMA_SOURCE_KEY, VOLUME_KEY = "c2s_sigma_data", "c2s_sigma_source", "c2s_volume"
NOISE_KEY, NOISE_MAP_KEY = "c2s_noise", NOISE_MAP_META_KEY


def denoising_record(output, index: int = 0) -> dict:
    """What :class:`C2SInferer` recorded for sample ``index`` of ``output`` (a batch, or one decollated item).

    ``{"sigma_data": float (image units), "sigma_source": str, "volume": dict, "noise": dict}`` (JSON
    values; the map itself: :func:`denoising_noise_map`); ``{}`` for a tensor the inferer did not make.

    >>> import torch
    >>> from torch import nn
    >>> class Identity(nn.Module):
    ...     def forward(self, x):
    ...         return x[:, :1]
    >>> out = C2SInferer(sigma_data=0.1, check_noise=False)(torch.ones(1, 1, 32, 32), Identity())
    >>> record = denoising_record(out)
    >>> record["sigma_data"], record["sigma_source"], record["volume"]["context"]
    (0.1, 'given', 'none (slice by slice)')
    """
    meta = getattr(output, "meta", None) or {}
    if SIGMA_KEY not in meta:
        return {}

    def pick(value):
        return value[index] if isinstance(value, (list, tuple)) else value

    record = {"sigma_data": float(pick(meta[SIGMA_KEY])), "sigma_source": str(pick(meta[SIGMA_SOURCE_KEY]))}
    volume, noise = pick(meta.get(VOLUME_KEY)), pick(meta.get(NOISE_KEY))
    if volume:
        record["volume"] = json.loads(volume)
    if noise:
        record["noise"] = json.loads(noise)
    return record


def denoising_noise_map(output, index: int = 0) -> torch.Tensor | None:
    """The per-voxel noise std (image units, ``(1, *spatial)``) :class:`C2SInferer` denoised sample ``index`` of ``output`` with; ``None`` if unknown."""
    noise_map = (getattr(output, "meta", None) or {}).get(NOISE_MAP_KEY)
    if noise_map is None:
        return None
    return noise_map[index] if isinstance(noise_map, (list, tuple)) else noise_map


def _level_channel(images: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """The network's level channel for ``images`` ``(N, C, *spatial)``: ``sigma`` everywhere, or the map ``(N, 1, *spatial)`` given."""
    return sigma.to(images) if isinstance(sigma, torch.Tensor) else torch.full_like(images[:, :1], sigma)


FLIP_ENSEMBLES = {
    1: ((),),
    2: ((), (-1,)),
    4: ((), (-1,), (-2,), (-2, -1)),
}


class C2SInferer(Inferer):
    """Slice-wise, batched, padded C2S denoising (see the module docstring).

    >>> import torch
    >>> from c2s_monai import NoiseConditionedUNet
    >>> network = NoiseConditionedUNet(features=(8, 8, 16, 32, 64, 8)).eval()
    >>> volume = 100 + 10 * torch.rand(1, 1, 40, 36, 3)  # (B, C, H, W, slices), scanner units
    >>> denoised = C2SInferer(sigma_data=10.0)(volume, network)
    >>> denoised.shape, denoising_record(denoised)["sigma_data"]
    (torch.Size([1, 1, 40, 36, 3]), 10.0)

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
        rician_vst: the 0.6 flag for ``noise_model="rician"`` (kept for a release).
        noise_model: ``"auto"``, ``"gaussian"``, ``"rician"`` or ``"noncentral_chi"``: the data's
            observation model (:mod:`c2s_monai.noise_level`; magnitude models go through their VST).
        num_coils: coils of a noncentral-chi magnitude, or ``"auto"`` (estimated from the background).
        sigma_map: ``"none"`` (one level per volume), ``"auto"`` (a per-voxel map estimated from
            the data); a given map is passed at call time, ``inferer(inputs, network, sigma_map=...)``.
        context_slices: ``"auto"`` (the network's own ``context_slices``; a single 2D image is
            denoised with zero context, the 2D fallback, and the report says so) or an explicit
            ``K``, which must be the network's and is refused for a single 2D image.
        slice_axis: ``"auto"`` (the spatial axis of largest voxel spacing) or 0, 1, 2.
        volume_roi_size: window of the 3D sliding-window inference (3D networks).
        check_noise: measure the noise correlation of every volume (recorded in the output's ``c2s_volume``).
        backend: ``"torch"`` (eager, with ``autocast_dtype``), ``"onnxruntime"`` (the network's ONNX
            export run by ONNX Runtime in float32, CPU) or ``"auto"``: with ``autocast_dtype="auto"``
            on a CPU without native bfloat16, ONNX Runtime when it is installed
            (``c2s-monai[export]``), eager torch otherwise.
    """

    def __init__(
        self,
        sigma_data: float | str | Mapping[str, float | str] = defaults.SIGMA_DATA,
        flips: int = defaults.FLIPS,
        slice_batch: int = defaults.SLICE_BATCH,
        roi_size: Sequence[int] = defaults.ROI_SIZE,
        overlap: float = defaults.OVERLAP,
        percentile: float = defaults.INTENSITY_PERCENTILE,
        autocast_dtype: str = defaults.AUTOCAST_DTYPE,
        progress: bool = False,
        rician_vst: bool = False,
        context_slices: int | str = defaults.CONTEXT_SLICES,
        slice_axis: int | str = defaults.SLICE_AXIS,
        volume_roi_size: Sequence[int] = defaults.VOLUME_ROI_SIZE,
        check_noise: bool = defaults.CHECK_NOISE,
        backend: str = defaults.BACKEND,
        noise_model: str = defaults.NOISE_MODEL,
        num_coils: int | str = defaults.NUM_COILS,
        sigma_map: str = defaults.SIGMA_MAP,
    ) -> None:
        super().__init__()
        if flips not in FLIP_ENSEMBLES:
            raise ValueError(f"flips must be one of {tuple(FLIP_ENSEMBLES)}, got {flips!r}.")
        if slice_batch < 1:
            raise ValueError(f"slice_batch must be >= 1, got {slice_batch!r}.")
        check_autocast_dtype(autocast_dtype)
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
        self.noise_model = legacy_noise_model(noise_model, parse_flag(rician_vst, "rician_vst"))
        self.num_coils = check_num_coils(num_coils)
        self.sigma_map = check_sigma_map(sigma_map)
        if self.sigma_map not in SIGMA_MAP_MODES:
            raise ValueError(f"C2SInferer's sigma_map is 'none' or 'auto'; pass a given map at call time (inferer(x, network, sigma_map=...)), got {sigma_map!r}.")
        self.context_slices = check_context_slices(context_slices)
        self.slice_axis = check_slice_axis(slice_axis)
        self.volume_roi_size = tuple(int(r) for r in volume_roi_size)
        # windows larger than a short axis are padded by replicating it, not with zeros (instance norms)
        self.volume_window = SlidingWindowInferer(
            roi_size=self.volume_roi_size, sw_batch_size=1, overlap=overlap, mode="gaussian", padding_mode="replicate"
        )
        self.check_noise = parse_flag(check_noise, "check_noise")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        self.backend = backend
        self._exported: dict[str, OnnxNetwork] = {}

    def _denoise_slices(self, network, slices: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Denoise ``(N, C, H, W)`` slices in network units at level ``sigma`` (a number, or a map ``(N, 1, H, W)``)."""
        height, width = slices.shape[-2:]
        inputs = torch.cat([slices, _level_channel(slices, sigma)], dim=1)
        use_window = height > self.roi_size[0] or width > self.roi_size[1]
        if not use_window:
            # BasicUNet pools four times: a multiple of 16, and at least 32 for its instance norms
            pad_h, pad_w = max(32, height + (-height) % 16) - height, max(32, width + (-width) % 16) - width
            inputs = F.pad(inputs, (0, pad_w, 0, pad_h), mode="replicate")
        run = (lambda x: self.sliding_window(x, network)) if use_window else network
        return self._flip_average(run, inputs)[..., :height, :width]

    def _flip_average(self, run, inputs: torch.Tensor) -> torch.Tensor:
        """``run(inputs)`` in the configured precision, averaged over the test-time ``flips``, float32."""
        total = torch.zeros_like(inputs[:, :1])
        dtype = autocast_dtype(self.autocast_setting, inputs.device.type)
        for dims in self.flips:
            flipped = inputs.flip(dims) if dims else inputs
            with torch.autocast(inputs.device.type, dtype=dtype, enabled=dtype is not None):
                out = run(flipped).float()
            total += out.flip(dims) if dims else out
        return total / len(self.flips)

    def _denoise_volume(self, network, volume: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """Denoise ``(1, C, H, W, D)`` with a 3D network at level ``sigma`` (or a map ``(1, 1, H, W, D)``): padded to a multiple of 16, windowed when large."""
        shape = volume.shape[2:]
        inputs = torch.cat([volume, _level_channel(volume, sigma)], dim=1)
        # BasicUNet pools four times: a multiple of 16, and at least 32 for its instance norms
        padding = [max(32, size + (-size) % 16) - size for size in shape]
        if any(padding):
            pad = [value for p in reversed(padding) for value in (0, p)]
            inputs = F.pad(inputs, pad, mode="replicate")
        use_window = any(size > roi for size, roi in zip(inputs.shape[2:], self.volume_roi_size))
        run = (lambda x: self.volume_window(x, network)) if use_window else network
        return self._flip_average(run, inputs)[..., : shape[0], : shape[1], : shape[2]]

    def _runner(self, network, device: torch.device) -> tuple[nn.Module, str]:
        """What runs ``network`` (itself, or its ONNX Runtime export; see ``backend``) and its description."""
        dtype = autocast_dtype(self.autocast_setting, device.type)
        eager = f"torch ({str(dtype or torch.float32).removeprefix('torch.')})"
        if self.backend == "torch" or device.type != "cpu" or isinstance(network, OnnxNetwork):
            return network, eager if not isinstance(network, OnnxNetwork) else "onnxruntime (float32)"
        if self.backend == "auto" and (
            self.autocast_setting != "auto" or dtype is not None or not onnx_available() or not isinstance(network, NoiseConditionedUNet)
        ):
            return network, eager
        digest = network_digest(network)  # one session per set of weights (joint multi-contrast mode: one per target)
        if digest not in self._exported:
            self._exported[digest] = OnnxNetwork(cached_onnx(network), threads=torch.get_num_threads())
        return self._exported[digest], "onnxruntime (float32)"

    def _context(self, network, depth: int, source: str) -> tuple[int, str]:
        """``(K, how)``: the context the 2D ``network`` takes and how a volume of ``depth`` slices meets it."""
        trained = int(getattr(network, "context_slices", 0 if self.context_slices == AUTO else self.context_slices))
        if self.context_slices != AUTO and int(self.context_slices) != trained:
            raise InputError(
                f"{source}: context_slices={self.context_slices} was asked for, but the network takes {trained} slices on each side "
                "of the target; use the network's own context ('auto') or a network trained with it."
            )
        if trained == 0:
            return 0, "none (slice by slice)"
        if depth == 1:
            if self.context_slices != AUTO:
                raise InputError(
                    f"{source}: a single 2D image, so there are no neighbouring slices for context_slices={trained}; "
                    "leave context_slices at 'auto' (2D fallback) or denoise a volume."
                )
            return trained, "2D fallback (a single slice: context channels zero)"
        if depth < 2 * trained + 1:
            return trained, f"reflected at the ends; {depth} slices, fewer than the {2 * trained + 1} of the context"
        return trained, "reflected at the ends"

    @staticmethod
    def _per_sample_meta(inputs) -> list[tuple[list[float] | None, str]]:
        """``(voxel spacing, file name)`` of each sample of a (batched) MONAI input; ``None``/a default where unknown."""
        meta = getattr(inputs, "meta", None) or {}
        affine, names = meta.get("affine"), meta.get("filename_or_obj")
        affines: list[torch.Tensor | None] = [None] * len(inputs)
        if affine is not None:
            affine = torch.as_tensor(affine)
            affines = list(affine) if affine.ndim == 3 else [affine] * len(inputs)
        names = list(names) if isinstance(names, (list, tuple)) else [names] * len(inputs)
        names += [None] * (len(inputs) - len(names))
        return [(voxel_spacing(a), str(n) if n else "the input image") for a, n in zip(affines, names)]

    def _scaler(self, sigma_data, target: str | None) -> ScaleNoisyImage:
        if sigma_data is None and self.scaler is not None:
            return self.scaler
        setting = self.sigma_by_contrast if sigma_data is None else sigma_data
        return ScaleNoisyImage(contrast_sigma_data(setting, target), self.percentile)

    @staticmethod
    def _network(network, target: str | None):
        if not isinstance(network, nn.ModuleDict):
            return network
        if target is None or target not in network:
            raise InputError(
                f"no network for the target contrast {target!r} (networks for {list(network.keys())}): name the target of "
                "each input (target_contrast) and give a network for it."
            )
        return network[target]

    @torch.no_grad()
    def __call__(
        self,
        inputs: torch.Tensor,
        network,
        sigma_data: float | str | Mapping | None = None,
        target_contrast: str | Sequence[str] | None = None,
        sigma_map: torch.Tensor | Sequence[torch.Tensor | None] | None = None,
    ) -> torch.Tensor:
        """Denoise ``inputs`` ``(B, C, H, W[, D])``.

        ``sigma_data`` overrides the configured one; ``target_contrast`` names each sample's
        target contrast (one name, or one per sample), which picks its network from an
        ``nn.ModuleDict`` and its sigma from a mapping. ``sigma_map``: given per-voxel noise std
        maps in the image's units, ``(B, 1, *spatial)`` or one per sample (``None`` for a sample
        without one), checked by :func:`c2s_monai.noise_level.check_noise_map`.
        """
        if inputs.ndim not in (4, 5):
            raise ValueError(f"C2SInferer needs (B, C, H, W) or (B, C, H, W, D) inputs, got shape {tuple(inputs.shape)}.")
        targets = [target_contrast] * len(inputs) if target_contrast is None or isinstance(target_contrast, str) else list(target_contrast)
        if len(targets) != len(inputs):
            raise ValueError(f"target_contrast names {len(targets)} targets for {len(inputs)} samples.")
        given_maps = [None] * len(inputs) if sigma_map is None else list(sigma_map)
        if len(given_maps) != len(inputs):
            raise ValueError(f"sigma_map holds {len(given_maps)} maps for {len(inputs)} samples.")
        was_training = network.training
        network.eval()
        outputs, sigmas, sources, volumes, noises, maps = [], [], [], [], [], []
        samples = zip(torch.as_tensor(inputs).float(), targets, self._per_sample_meta(inputs), given_maps)
        for sample, target, (spacing, source), given in samples:
            sample_network, backend = self._runner(self._network(network, target), sample.device)
            scaled, sigma, scale, sigma_source = self._scaler(sigma_data, target).measure(sample)
            given = None if given is None or isinstance(given, str) else check_noise_map(given, sample, source).to(sample.device) / scale
            level = resolve_noise_level(scaled, sigma, sigma_source, self.noise_model, self.num_coils, self.sigma_map, given, source)
            scaled = stabilise(scaled, level)
            sigmas.append(float(level.sigma * scale))
            sources.append(level.sigma_source)
            noises.append(json.dumps(level.record(scale)))
            # a plain tensor from here: MetaTensor's per-op bookkeeping would double the network's time
            volume = scaled.as_tensor() if isinstance(scaled, MetaTensor) else torch.as_tensor(scaled)
            flat = volume.ndim == 3
            volume = volume.unsqueeze(-1) if flat else volume
            level_map = None if level.sigma_map is None else level.sigma_map.reshape(1, *volume.shape[1:]).to(volume)
            axis = resolve_slice_axis(self.slice_axis, spacing, volume.shape[1:])
            volume = torch.movedim(volume, 1 + axis, -1)
            level_map = None if level_map is None else torch.movedim(level_map, 1 + axis, -1)
            spatial_dims = int(getattr(sample_network, "spatial_dims", 2))
            info = {"spatial_dims": spatial_dims, "slice_axis": axis, "slices": int(volume.shape[-1]), "backend": backend}
            if self.check_noise:
                info["noise_correlation"] = check_noise_independence(volume[0], source, slice_axis=2)
            if spatial_dims == 3:
                if volume.shape[-1] == 1:
                    raise InputError(f"{source}: a single 2D image; a 3D network needs a volume (use a 2D network for 2D images).")
                if self.context_slices not in (AUTO, 0):
                    raise InputError(f"context_slices={self.context_slices} is for 2D networks; this is a 3D network (use 'auto').")
                info.update(context_slices=0, context="native 3D")
                local = level.sigma if level_map is None else level_map.unsqueeze(0)
                denoised = self._denoise_volume(sample_network, volume.unsqueeze(0), local)[0]
            else:
                k, how = self._context(sample_network, volume.shape[-1], source)
                info.update(context_slices=k, context=how)
                rows = context_indices(volume.shape[-1], k)
                starts = range(0, volume.shape[-1], self.slice_batch)

                # the level of each batch of target slices: the uniform sigma, or their slices of the map, (N, 1, H, W)
                levels = [level.sigma if level_map is None else level_map[..., start : start + self.slice_batch].permute(3, 0, 1, 2) for start in starts]
                slice_batches = [
                    self._denoise_slices(sample_network, context_stack(volume, rows[start : start + self.slice_batch], k), local)
                    for start, local in tqdm(zip(starts, levels), total=len(starts), desc="denoising", unit="batch", disable=not self.progress)
                ]
                denoised = torch.cat(slice_batches).permute(1, 2, 3, 0)
            denoised = torch.movedim(denoised, -1, 1 + axis)
            level_map = None if level_map is None else torch.movedim(level_map, -1, 1 + axis)
            denoised = unstabilise(denoised, level, level_map)
            volumes.append(json.dumps(info))
            outputs.append((denoised[..., 0] if flat else denoised) * scale)
            maps.append(level.map_in_image_units(scale, outputs[-1]))
        network.train(was_training)
        meta = dict(inputs.meta) if isinstance(inputs, MetaTensor) else {}
        meta.update({SIGMA_KEY: sigmas, SIGMA_SOURCE_KEY: sources, VOLUME_KEY: volumes, NOISE_KEY: noises, NOISE_MAP_KEY: maps})
        output = MetaTensor(torch.stack(outputs), meta=meta)
        output.is_batch = isinstance(inputs, MetaTensor) and inputs.is_batch
        return output
