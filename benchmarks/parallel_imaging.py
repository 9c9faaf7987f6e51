"""Parallel-imaging benchmark (issue 18 item 3): spatially varying noise from a SENSE reconstruction.

    pip install -e ".[benchmark]"                                  # sigpy, BM3D and BM4D
    python -m benchmarks.parallel_imaging run --condition r3        # the target condition (resumable)
    python -m benchmarks.parallel_imaging run --condition r2
    python -m benchmarks.parallel_imaging report                    # the section of docs/benchmarks.md

Protocol. Clean object: the MNI152 2009a T1 (nilearn, 1 mm, brain only), scaled to [0, 1], the
axial slab z = 62..97 (36 slices), cropped in-plane to x = 8..187, y = 15..218 (180x204: the brain
and a margin of air around it). Each slice is acquired as 2D Cartesian SENSE (Pruessmann et al. 1999)
with ``sigpy.mri.birdcage_maps`` (8 coils, root-sum-of-squares 1): the coil images' 2D k-space
(orthonormal FFT) plus complex Gaussian noise whose coil covariance ``Psi`` (per real channel, times
``sigma0^2``) has correlation 0.25 between neighbouring coils (0.25^d at circular distance d) and
per-coil variances in 0.8..1.2 (seeded), undersampled regularly along the phase-encode axis (x) at
R = 3 (the target) or R = 2, no calibration lines: the coil maps are known exactly. The
reconstruction unfolds each set of R aliased pixels with the weighted least-squares SENSE solution
``(A^H Psi^-1 A)^-1 A^H Psi^-1``, exact for regular Cartesian undersampling. Its noise per real
channel is ``sigma(x) = sigma0 sqrt(diag((A^H Psi^-1 A)^-1))`` = ``sigma0 sqrt(R) g(x) / sqrt(s^H Psi^-1 s)``
(the **true noise map**, checked against pseudo-replicas in the tests), and the magnitude of the
reconstruction is Rician at that sigma. ``sigma0`` is chosen per condition so the median of the true
map inside the head is 5% of the max (a clinically typical SNR at either R). Ground truth: the
noise-free reconstruction's magnitude (the object). Noise: ``numpy.random.default_rng(slice index)``.

Scored slices: slab indices 2, 6, ..., 34 (every 4th, 9 slices; the supervised bound has the others
as targets). Scores: PSNR and SSIM (peak 1) inside ``clean > 0.1`` and PSNR over the whole image; the
**background bias**: the mean over the air (``clean == 0`` farther than 5 voxels from the head) of the
denoised image divided by the true map (Rician noise alone has a bias of sqrt(pi/2) = 1.25 sigma there).
The estimated map's median relative error inside the head (``clean > 0.1``) against the true map.

Rows: the noisy magnitude; NLM and BM3D slice by slice (``benchmarks.classical``, the scored slices) and BM4D on the volume,
all with one global sigma (the median of the true map inside the head); C2S (the bundle's network and
recipe, 2.5D K = 2, the Rician VST, 600 steps of 8 patches 96x96, one thread) with that uniform sigma,
with the true map, and with the map of ``c2s_monai.estimation.estimate_noise_map``; the supervised bound
(the same network and steps, clean targets except the scored slices, told the global sigma).

Results: ``benchmarks/results/parallel_imaging/<condition>/<method>.json`` (a rerun skips what is there).
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from scipy import ndimage

from benchmarks.common import TrainingClock, bundle_autocast, current_commit, scored_metrics, write_json
from benchmarks.parallel_imaging_report import write_report
from benchmarks.peers import EXCLUDED_TARGET, ContextSupervisedLoss

RESULTS = Path("benchmarks/results/parallel_imaging")
SLAB = (62, 98)  # 36 axial slices
CROP = ((8, 188), (15, 219))  # 180 x 204: the phase-encode axis (x, first) divisible by 2 and 3
SCORED = tuple(range(2, 36, 4))
COILS = 8
CORRELATION = 0.25  # between neighbouring coils
TARGET_MEDIAN = 0.05  # the true map's median inside the head, fraction of the max
AIR_MARGIN = 5  # voxels between the head and the air where the background bias is measured
CONDITIONS = {"r3": 3, "r2": 2}
ITERATIONS = 600
CURVE_EVERY = 100
CONTEXT_SLICES = 2
CLASSICAL = ("noisy", "nlm", "bm3d", "bm4d")
LEARNED = ("c2s_uniform", "c2s_true_map", "c2s_estimated_map", "supervised")
LABELS = {
    "c2s_uniform": "C2S 2.5D K = 2, Rician VST, uniform sigma",
    "c2s_true_map": "C2S 2.5D K = 2, Rician VST, true noise map",
    "c2s_estimated_map": "C2S 2.5D K = 2, Rician VST, estimated noise map",
    "supervised": "Supervised, K = 2 (bound)",
}


# ---------------------------------------------------------------------------------- simulation


def noise_covariance(coils: int = COILS, correlation: float = CORRELATION, seed: int = 0) -> np.ndarray:
    """The coils' noise covariance per real channel: ``correlation^d`` at circular distance ``d``, variances 0.8..1.2."""
    index = np.arange(coils)
    distance = np.abs(index[:, None] - index[None, :])
    distance = np.minimum(distance, coils - distance)
    scale = np.sqrt(np.random.default_rng(seed).uniform(0.8, 1.2, coils))
    return correlation**distance * scale[:, None] * scale[None, :]


def coil_maps(shape: tuple[int, int], coils: int = COILS) -> np.ndarray:
    """``sigpy.mri.birdcage_maps`` ``(coils, *shape)`` (root-sum-of-squares 1)."""
    import sigpy.mri

    return sigpy.mri.birdcage_maps((coils, *shape)).astype(np.complex128)


@dataclass(frozen=True)
class Sense:
    """SENSE at acceleration ``R`` along axis 0 of ``(N, W)`` images: the unfolding and its noise.

    ``unfold`` ``(M, W, R, C)`` maps the folded coil pixels ``(C,)`` at ``(y, w)`` to the object at
    ``y + j M`` (``M = N / R``); ``sigma`` ``(N, W)`` is the reconstruction's noise per real channel
    for ``sigma0 = 1``; ``g`` ``(N, W)`` the g-factor.
    """

    maps: np.ndarray
    psi: np.ndarray
    acceleration: int
    unfold: np.ndarray
    sigma: np.ndarray
    g: np.ndarray


def _aliased(values: np.ndarray, acceleration: int) -> np.ndarray:
    """``(..., N, W)`` -> ``(M, W, ..., R)``: the R pixels that fold onto each ``(y, w)``."""
    folded = values.reshape(*values.shape[:-2], acceleration, values.shape[-2] // acceleration, values.shape[-1])
    return np.moveaxis(folded, (-2, -1, -3), (0, 1, -1))


def _unaliased(values: np.ndarray) -> np.ndarray:
    """``(M, W, R)`` -> ``(N, W)``, the inverse of :func:`_aliased` for one image."""
    return np.moveaxis(values, -1, 0).reshape(-1, values.shape[1])


def sense(maps: np.ndarray, psi: np.ndarray, acceleration: int) -> Sense:
    """The SENSE unfolding of ``maps`` ``(C, N, W)`` at ``acceleration`` (``N`` divisible by it) with noise covariance ``psi``."""
    if maps.shape[1] % acceleration:
        raise ValueError(f"the phase-encode size {maps.shape[1]} is not divisible by R = {acceleration}")
    sensitivities = _aliased(maps, acceleration)  # (M, W, C, R)
    psi_inv = np.linalg.inv(psi)
    encoding = sensitivities / np.sqrt(acceleration)  # the folded image of the orthonormal FFT
    normal = np.conj(np.swapaxes(encoding, -1, -2)) @ psi_inv @ encoding  # (M, W, R, R)
    covariance = np.linalg.inv(normal)
    unfold = covariance @ np.conj(np.swapaxes(encoding, -1, -2)) @ psi_inv  # (M, W, R, C)
    sigma = np.sqrt(np.real(np.diagonal(covariance, axis1=-2, axis2=-1)))  # (M, W, R)
    full = np.conj(np.swapaxes(sensitivities, -1, -2)) @ psi_inv @ sensitivities
    g = np.sqrt(np.real(np.diagonal(np.linalg.inv(full), axis1=-2, axis2=-1) * np.diagonal(full, axis1=-2, axis2=-1)))
    return Sense(maps, psi, acceleration, unfold, _unaliased(sigma), _unaliased(g))


def acquire(image: np.ndarray, operator: Sense, sigma0: float, rng: np.random.Generator | None) -> np.ndarray:
    """The complex SENSE reconstruction ``(N, W)`` of ``image`` from undersampled, noisy coil k-space.

    k-space: the orthonormal 2D FFT of each coil image, plus ``sigma0 (L z1 + i L z2)`` with
    ``L L^T = psi`` (none when ``rng`` is None); the lines ``ky = 0, R, 2R, ...`` of the phase-encode
    axis are kept, their orthonormal inverse FFT is the folded coil image (field of view N / R),
    which the SENSE weights unfold.
    """
    R = operator.acceleration
    kspace = np.fft.fft2(operator.maps * image, norm="ortho")[:, ::R]
    if rng is not None:
        cholesky = np.linalg.cholesky(operator.psi)
        white = rng.standard_normal((2, *kspace.shape))
        kspace = kspace + sigma0 * np.einsum("cd,d...->c...", cholesky, white[0] + 1j * white[1])
    folded = np.fft.ifft2(kspace, norm="ortho")  # (C, M, W)
    unfolded = np.einsum("mwrc,cmw->mwr", operator.unfold, folded)
    return _unaliased(unfolded)


def pseudo_replica_map(image: np.ndarray, operator: Sense, sigma0: float, replicas: int, seed: int = 0) -> np.ndarray:
    """The noise per real channel of the reconstruction from ``replicas`` noisy replicas (Robson et al. 2008)."""
    rng = np.random.default_rng(seed)
    reference = acquire(image, operator, sigma0, None)
    errors = np.stack([acquire(image, operator, sigma0, rng) - reference for _ in range(replicas)])
    return np.sqrt(np.concatenate([errors.real, errors.imag]).var(axis=0))


@dataclass(frozen=True)
class Volume:
    clean: np.ndarray  # (x, y, z), in [0, 1]
    noisy: np.ndarray  # the magnitude of the SENSE reconstruction
    sigma_map: np.ndarray  # the true noise map, image units (per real channel)
    g: np.ndarray  # the g-factor, (x, y)
    acceleration: int
    sigma0: float
    scored: tuple[int, ...]

    @property
    def head(self) -> np.ndarray:
        return self.clean > 0.1

    @property
    def air(self) -> np.ndarray:
        """``clean == 0`` farther than :data:`AIR_MARGIN` voxels from the head, slice by slice."""
        near = ndimage.binary_dilation(self.clean > 0, structure=np.ones((3, 3, 1), bool), iterations=AIR_MARGIN)
        return (self.clean == 0) & ~near

    @property
    def sigma(self) -> float:
        """The global sigma of the classical methods and the uniform C2S: the true map's median inside the head."""
        return float(np.median(self.sigma_map[self.head]))


def clean_slab() -> np.ndarray:
    (x0, x1), (y0, y1) = CROP
    return np.ascontiguousarray(_mni_t1()[x0:x1, y0:y1, SLAB[0] : SLAB[1]], dtype=np.float64)


def _mni_t1() -> np.ndarray:
    from c2s_monai.io.sample_data import mni152_contrast

    volume = mni152_contrast("t1").astype(np.float64)
    return volume / volume.max()


def sigma0_for(clean: np.ndarray, operator: Sense) -> float:
    """The ``sigma0`` that puts the true map's median inside the head at :data:`TARGET_MEDIAN`."""
    map_ = np.broadcast_to(operator.sigma[..., None], clean.shape)
    return TARGET_MEDIAN / float(np.median(map_[clean > 0.1]))


def make_volume(condition: str) -> Volume:
    """The clean slab and its SENSE reconstruction at the condition's R (see the module docstring)."""
    clean = clean_slab()
    operator = sense(coil_maps(clean.shape[:2]), noise_covariance(), CONDITIONS[condition])
    sigma0 = sigma0_for(clean, operator)
    noisy = np.stack([np.abs(acquire(clean[..., k], operator, sigma0, np.random.default_rng(k))) for k in range(clean.shape[-1])], -1)
    sigma_map = np.repeat(sigma0 * operator.sigma[..., None], clean.shape[-1], -1)
    return Volume(clean.astype(np.float32), noisy.astype(np.float32), sigma_map.astype(np.float32), operator.g.astype(np.float32),
                  operator.acceleration, sigma0, SCORED)


def describe(volume: Volume) -> dict:
    """The condition's numbers: sigma0, the map's median and range inside the head, the g-factor's range."""
    head, head2d = volume.head, volume.head.any(-1)
    return {
        "acceleration": volume.acceleration,
        "shape": list(volume.clean.shape),
        "coils": COILS,
        "coil_correlation": CORRELATION,
        "sigma0": volume.sigma0,
        "sigma_median_head": volume.sigma,
        "sigma_range_head": [float(volume.sigma_map[head].min()), float(volume.sigma_map[head].max())],
        "g_range_head": [float(volume.g[head2d].min()), float(volume.g[head2d].max())],
        "g_mean_head": float(volume.g[head2d].mean()),
        "g_range_image": [float(volume.g.min()), float(volume.g.max())],
        "air_voxels_scored": int(volume.air[..., list(volume.scored)].sum()),
        "sigma_median_air": float(np.median(volume.sigma_map[volume.air])),
    }


def score(estimate: np.ndarray, volume: Volume) -> dict[str, float]:
    """PSNR/SSIM (peak 1) inside the head and whole-image PSNR on the scored slices; the background bias in true sigmas."""
    scored = list(volume.scored)
    estimate = np.asarray(estimate, dtype=np.float32)
    air = volume.air[..., scored]
    bias = float((estimate[..., scored][air] / volume.sigma_map[..., scored][air]).mean())
    return {**scored_metrics(estimate, volume.clean, volume.scored), "background_bias_sigma": bias}


def map_error(estimated: np.ndarray, volume: Volume) -> dict[str, float]:
    """The estimated map against the true one inside the head (median relative error, median ratio) and in the air (median ratio)."""
    ratio = np.asarray(estimated, dtype=np.float64) / volume.sigma_map
    head = ratio[volume.head]
    return {"median_relative_error": float(np.median(np.abs(head - 1))), "median_ratio": float(np.median(head)),
            "median_ratio_air": float(np.median(ratio[volume.air]))}


# ----------------------------------------------------------------------------- classical methods


def run_classical(condition: str, name: str) -> dict:
    """The noisy input, NLM and BM3D slice by slice (scored slices), BM4D on the volume; one global sigma."""
    from benchmarks import classical

    volume = make_volume(condition)
    sigma = volume.sigma
    result = {"method": name, "condition": condition, "sigma": sigma, "simulation": describe(volume)}
    scored = list(volume.scored)
    start = time.perf_counter()
    estimate = volume.noisy.copy()
    if name == "nlm":
        estimate[..., scored] = np.moveaxis(classical.nlm(np.moveaxis(volume.noisy[..., scored], -1, 0), sigma), 0, -1)
        result["settings"] = "benchmarks.classical.nlm per slice (scored slices), h = 0.8 sigma, global sigma"
    elif name == "bm3d":
        estimate[..., scored] = np.moveaxis(classical.bm3d(np.moveaxis(volume.noisy[..., scored], -1, 0), sigma), 0, -1)
        result["settings"] = "benchmarks.classical.bm3d per slice (scored slices), global sigma"
    elif name == "bm4d":
        import bm4d

        estimate = np.asarray(bm4d.bm4d(volume.noisy, sigma), dtype=np.float32)
        result["settings"] = "bm4d.bm4d(noisy, sigma) on the volume, global sigma"
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["metrics"] = score(estimate, volume)
    if name == "noisy":
        result["map_estimation"] = _estimated_map_record(volume)
    return result


def _estimated_map_record(volume: Volume) -> dict:
    """The estimated map's error against the true one (when ``c2s_monai.estimation.estimate_noise_map`` exists)."""
    estimate = _estimate_map(volume)
    if estimate is None:
        return {"available": False}
    return {"available": True, **map_error(estimate, volume)}


def _estimate_map(volume: Volume) -> np.ndarray | None:
    from c2s_monai import estimation

    if not hasattr(estimation, "estimate_noise_map"):
        return None
    estimate = estimation.estimate_noise_map(volume.noisy)
    return np.asarray(estimate.numpy() if isinstance(estimate, torch.Tensor) else estimate, dtype=np.float32)


# ------------------------------------------------------------------------------- learned methods


def _write(path: Path, *channels: np.ndarray) -> str:
    data = np.stack(channels, -1) if len(channels) > 1 else channels[0]
    nib.save(nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.eye(4)), str(path))
    return str(path)


def _new_api() -> bool:
    """Whether the package has the noise-map API (``training_loader(..., noise_model=, sigma_map=)``)."""
    from c2s_monai.data import training_loader

    return {"noise_model", "sigma_map"} <= set(inspect.signature(training_loader).parameters)


def train_and_score(condition: str, name: str, iterations: int = ITERATIONS, evals: int = ITERATIONS // CURVE_EVERY) -> dict:
    """Train ``name`` on the condition's noisy volume (the supervised bound: with clean targets), score it along the way."""
    from ignite.engine import Events

    from benchmarks.methods import PeerInference
    from c2s_monai.data import training_loader
    from c2s_monai.engines import create_trainer
    from c2s_monai.inferers import C2SInferer
    from c2s_monai.losses import GDSMLoss
    from c2s_monai.networks import NoiseConditionedUNet

    torch.set_num_threads(1)
    torch.manual_seed(0)
    volume = make_volume(condition)
    supervised = name == "supervised"
    new_api = _new_api()
    if name in ("c2s_true_map", "c2s_estimated_map") and not new_api:
        raise RuntimeError(f"{name} needs training_loader(..., sigma_map=...), which this checkout does not have yet")
    estimated = _estimate_map(volume) if name == "c2s_estimated_map" else None
    if name == "c2s_estimated_map" and estimated is None:
        raise RuntimeError("c2s_estimated_map needs c2s_monai.estimation.estimate_noise_map")
    sigma_map = {"c2s_true_map": volume.sigma_map, "c2s_estimated_map": estimated}.get(name)
    with tempfile.TemporaryDirectory() as folder:
        train_file = Path(folder) / "train.nii.gz"
        if supervised:
            targets = volume.clean.copy()
            targets[..., list(volume.scored)] = EXCLUDED_TARGET
            _write(train_file, volume.noisy, targets)
        else:
            _write(train_file, volume.noisy)
        options: dict = {"context_slices": CONTEXT_SLICES, "slice_axis": 2, "channel_scaling": "target"}
        if new_api:
            options["noise_model"] = "gaussian" if supervised else "rician"
            if sigma_map is not None:
                options["sigma_map"] = [_write(Path(folder) / "map.nii.gz", sigma_map)]
        else:
            options["rician_vst"] = not supervised

        def loader(per_epoch: int):
            return training_loader([str(train_file)], volume.sigma, 96, 8, per_epoch, seed=0, **options)

        network = NoiseConditionedUNet(spatial_dims=2, context_slices=CONTEXT_SLICES)
        loss = ContextSupervisedLoss(CONTEXT_SLICES) if supervised else GDSMLoss()
        per_eval = max(1, iterations // evals)
        trainer, ema = create_trainer(network, loss, loader(per_eval), epochs=evals, iterations_per_epoch=per_eval)
        inference = PeerInference(loss, ema.ema_model) if supervised else ema.ema_model
        clock = TrainingClock().attach(trainer)

        def denoise(flips: int = 1) -> np.ndarray:
            kwargs: dict = {"sigma_data": volume.sigma, "flips": flips, "slice_batch": 8, "autocast_dtype": "auto",
                            "context_slices": CONTEXT_SLICES, "slice_axis": 2, "check_noise": False}
            if new_api:
                kwargs["noise_model"] = "gaussian" if supervised else "rician"
            else:
                kwargs["rician_vst"] = not supervised
            inferer = C2SInferer(**kwargs)
            call = {} if sigma_map is None else {"sigma_map": torch.from_numpy(np.asarray(sigma_map, dtype=np.float32))[None, None]}
            return inferer(torch.from_numpy(volume.noisy)[None, None], inference, **call)[0, 0].float().numpy()

        curve = []


        @trainer.on(Events.EPOCH_COMPLETED)
        def _curve(engine):
            psnr = score(denoise(), volume)["psnr_mask"]
            curve.append({"iteration": engine.state.iteration, "train_seconds": round(clock.seconds, 1), "psnr_mask": round(psnr, 3)})
            print(f"{condition}/{name}: {engine.state.iteration} its, {clock.seconds:.0f} s, {psnr:.2f} dB", flush=True)

        trainer.run()
        start = time.perf_counter()
        estimate = denoise()
        seconds = time.perf_counter() - start
        result = {
            "method": name,
            "label": LABELS[name],
            "condition": condition,
            "sigma": volume.sigma,
            "simulation": describe(volume),
            "api": "noise_model/sigma_map" if new_api else "rician_vst",
            "training_options": {k: (v if k != "sigma_map" else "map file") for k, v in options.items()},
            "iterations": trainer.state.iteration,
            "threads": 1,
            "learning_rate": trainer.optimizer.defaults["lr"],
            "autocast_dtype": bundle_autocast(),
            "train_seconds": round(clock.seconds, 1),
            "inference_seconds_slab": round(seconds, 2),
            "curve": curve,
            "metrics": score(estimate, volume),
            "metrics_flips4": score(denoise(flips=4), volume),
        }
        if estimated is not None:
            result["map_estimation"] = map_error(estimated, volume)
    return result


# ------------------------------------------------------------------------------------------ main


def _save(path: Path, result: dict) -> None:
    result["commit"] = current_commit()
    write_json(path, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("run", help="the table of one condition, one method after the other (resumable)")
    table.add_argument("--condition", nargs="*", default=["r3"], choices=sorted(CONDITIONS))
    table.add_argument("--methods", nargs="*", default=None, help="only these methods (default: all)")
    sub.add_parser("report", help="write the parallel-imaging section of docs/benchmarks.md")
    args = parser.parse_args()
    if args.command == "report":
        write_report(RESULTS, Path("docs/benchmarks.md"))
        return
    torch.set_num_threads(1)
    jobs = [(c, n) for c in args.condition for n in CLASSICAL + LEARNED if args.methods is None or n in args.methods]
    pending = [(c, n) for c, n in jobs if not (RESULTS / c / f"{n}.json").is_file()]
    if any(n in ("bm3d", "bm4d") for _, n in pending) and importlib.util.find_spec("bm4d") is None:
        parser.error("BM4D and BM3D need the benchmark extra: pip install -e '.[benchmark]'")
    print(f"{len(pending)} of {len(jobs)} runs to do; results in {RESULTS}", flush=True)
    for condition, name in pending:
        start = time.perf_counter()
        try:
            result = run_classical(condition, name) if name in CLASSICAL else train_and_score(condition, name)
        except RuntimeError as error:  # a method the checkout cannot run yet: said, and left for a rerun
            print(f"skipped {condition}/{name}: {error}", flush=True)
            continue
        _save(RESULTS / condition / f"{name}.json", result)
        print(f"done {condition}/{name} in {time.perf_counter() - start:.0f} s: {result['metrics']}", flush=True)


if __name__ == "__main__":
    main()
