"""Volumetric benchmark (issue 14): C2S with the third dimension against BM4D and the bounds.

    pip install -e ".[benchmark]"                            # BM3D and BM4D
    python -m benchmarks.volumetric run                       # the table (resumable)
    python -m benchmarks.volumetric curve --method c2s_k2     # a 15-minute PSNR-vs-time curve, 2 threads
    python -m benchmarks.volumetric speed                     # inference seconds, 256x256x100
    python -m benchmarks.volumetric report                    # the section of docs/benchmarks.md

Protocol. Clean reference: the MNI152 2009a T1 (nilearn, 1 mm), scaled to [0, 1], the slab
z = 40..140 (197x233x101 voxels). Noise is drawn as one array over the whole slab with
``numpy.random.default_rng(0)``: Gaussian ``clean + s n`` at s = 3/6/10% of the max, or
Rician ``|clean + s (n1 + i n2)|`` at 6%. The thick-slice condition averages each 5
adjacent 1 mm slices (z = 40..139) into one 5 mm slice (197x233x20, voxels 1x1x5 mm), then
adds 6% Gaussian noise. Scored slices: z = 45, 55, ..., 135 (10 slices; the thick volume:
its odd slices 1, 3, ..., 19, so the supervised bound has the even ones as targets), PSNR and SSIM (peak 1) inside ``clean > 0.1`` and PSNR over the whole image.

Every self-supervised method trains on the noisy volume it denoises (the product's use: all
slices, scored ones included); the supervised bound trains on the same noisy volume with
the clean slices as targets *except the scored ones*, which it never sees as targets (its
inputs are noisy). Every learned method gets the same network (``NoiseConditionedUNet``,
the bundle's widths), data and steps, the bundle's recipe (Adam 8e-3, warm-up and cosine,
EMA, bfloat16 where native), one CPU thread per run, two runs side by side. 2D and 2.5D
methods train on batches of 8 patches 96x96; the 3D network on batches of 2 patches 48^3
(about the same voxels per step). Classical methods get the true sigma.

Results: ``benchmarks/results/volumetric/<condition>/<method>.json`` (a rerun skips what is
there), curves in ``benchmarks/results/volumetric/curves/``, speed in ``.../speed.json``.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from ignite.engine import Events
from torch import nn

from benchmarks.common import TrainingClock, bundle_autocast, current_commit, scored_metrics, write_json
from benchmarks.methods import PeerInference
from benchmarks.peers import EXCLUDED_TARGET, ContextSupervisedLoss, Recorrupted2RecorruptedLoss
from benchmarks.volumetric_report import write_report
from c2s_monai.context import check_noise_independence
from c2s_monai.data import training_loader
from c2s_monai.engines import create_trainer
from c2s_monai.inferers import C2SInferer
from c2s_monai.io.sample_data import mni152_contrast
from c2s_monai.losses import GDSMLoss
from c2s_monai.networks import NoiseConditionedUNet

RESULTS = Path("benchmarks/results/volumetric")
SLAB = (40, 141)
SCORED = tuple(range(5, 96, 10))  # slab indices of z = 45..135
THICK = 5
CONDITIONS = ("gaussian_6", "gaussian_3", "gaussian_10", "rician_6", "thick_6")
ITERATIONS = 600
CURVE_EVERY = 100


@dataclass(frozen=True)
class Volume:
    clean: np.ndarray  # (x, y, z)
    noisy: np.ndarray
    sigma: float
    noise_model: str
    spacing: tuple[float, float, float]
    scored: tuple[int, ...]


def make_volume(condition: str) -> Volume:
    """The clean and noisy slab of ``condition`` (see the module docstring), float32."""
    kind, percent = condition.split("_")
    sigma = int(percent) / 100
    clean = mni152_contrast("t1")[:, :, SLAB[0] : SLAB[1]].astype(np.float32)
    spacing, scored = (1.0, 1.0, 1.0), SCORED
    if kind == "thick":
        depth = clean.shape[-1] // THICK
        clean = clean[..., : depth * THICK].reshape(*clean.shape[:2], depth, THICK).mean(-1)
        spacing, scored = (1.0, 1.0, float(THICK)), tuple(range(1, depth, 2))
    rng = np.random.default_rng(0)
    if kind == "rician":
        noisy = np.abs(clean + sigma * rng.standard_normal(clean.shape) + 1j * sigma * rng.standard_normal(clean.shape))
    else:
        noisy = clean + sigma * rng.standard_normal(clean.shape)
    return Volume(clean, noisy.astype(np.float32), sigma, "rician" if kind == "rician" else "gaussian", spacing, scored)


def score(estimate: np.ndarray, volume: Volume) -> dict[str, float]:
    """PSNR/SSIM (peak 1) of ``estimate`` ``(x, y, z)`` on the scored slices: inside ``clean > 0.1`` and whole-image PSNR."""
    return scored_metrics(estimate, volume.clean, volume.scored)


# ------------------------------------------------------------------------------- learned methods


@dataclass(frozen=True)
class Method:
    label: str
    loss: str = "c2s"  # "c2s", "r2r", "supervised"
    context_slices: int = 0
    spatial_dims: int = 2
    patch_size: int = 96
    batch_size: int = 8
    rician_vst: bool = False
    extra: dict = field(default_factory=dict)

    def make_loss(self) -> nn.Module:
        if self.loss == "r2r":
            return Recorrupted2RecorruptedLoss()
        if self.loss == "supervised":
            return ContextSupervisedLoss(self.context_slices)
        return GDSMLoss()


METHODS: dict[str, Method] = {
    "c2s_2d": Method("C2S 2D (slice by slice)"),
    "c2s_k1": Method("C2S 2.5D, K = 1", context_slices=1),
    "c2s_k2": Method("C2S 2.5D, K = 2", context_slices=2),
    "c2s_k3": Method("C2S 2.5D, K = 3", context_slices=3),
    "c2s_3d": Method("C2S 3D", spatial_dims=3, patch_size=48, batch_size=2),
    "c2s_vst_2d": Method("C2S 2D on the Rician VST", rician_vst=True),
    "c2s_vst_k2": Method("C2S 2.5D K = 2 on the Rician VST", context_slices=2, rician_vst=True),
    "r2r_k2": Method("Recorrupted2Recorrupted, K = 2", loss="r2r", context_slices=2),
    "supervised_2d": Method("Supervised 2D (bound)", loss="supervised"),
    "supervised_k2": Method("Supervised, K = 2 (bound)", loss="supervised", context_slices=2),
}
CLASSICAL = ("noisy", "nlm", "bm3d", "bm4d")
PLAN: dict[str, tuple[str, ...]] = {
    "gaussian_6": ("c2s_2d", "c2s_k1", "c2s_k2", "c2s_k3", "c2s_3d", "r2r_k2", "supervised_2d", "supervised_k2"),
    "gaussian_3": ("c2s_2d", "c2s_k2", "supervised_k2"),
    "gaussian_10": ("c2s_2d", "c2s_k2", "supervised_k2"),
    "rician_6": ("c2s_vst_2d", "c2s_vst_k2", "supervised_k2"),
    "thick_6": ("c2s_2d", "c2s_k2", "supervised_k2"),
}


def _write(path: Path, volume: Volume, *channels: np.ndarray) -> None:
    data = np.stack(channels, -1) if len(channels) > 1 else channels[0]
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([*volume.spacing, 1.0])), str(path))


def _denoiser(method: Method, loss: nn.Module, network: nn.Module, volume: Volume):
    """``denoise(noisy (x, y, z), flips) -> (x, y, z)`` with the package's inferer."""
    inference = PeerInference(loss, network) if method.loss != "c2s" else network

    def denoise(noisy: np.ndarray, flips: int = 1) -> np.ndarray:
        inferer = C2SInferer(
            sigma_data=volume.sigma, flips=flips, slice_batch=8, autocast_dtype="auto", rician_vst=method.rician_vst,
            context_slices=method.context_slices, slice_axis=2, check_noise=False,
        )
        return inferer(torch.from_numpy(noisy)[None, None], inference)[0, 0].numpy()

    return denoise


def train_and_score(condition: str, name: str, iterations: int | None = None, minutes: float | None = None,
                    threads: int = 1, evals: int = 6) -> dict:
    """Train ``name`` on ``condition`` for ``iterations`` steps or ``minutes`` of training; score it along the way."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    method, volume = METHODS[name], make_volume(condition)
    with tempfile.TemporaryDirectory() as folder:
        train_file = Path(folder) / "train.nii.gz"
        if method.loss == "supervised":
            targets = volume.clean.copy()
            targets[..., list(volume.scored)] = EXCLUDED_TARGET
            if len(volume.scored) >= volume.clean.shape[-1]:
                raise ValueError(f"{condition}: every slice is scored, so the supervised bound would have no target")
            _write(train_file, volume, volume.noisy, targets)
        else:
            _write(train_file, volume, volume.noisy)

        def loader(per_epoch: int):
            return training_loader(
                [str(train_file)], volume.sigma, method.patch_size, method.batch_size, per_epoch, seed=0,
                channel_scaling="target", rician_vst=method.rician_vst, context_slices=method.context_slices,
                spatial_dims=method.spatial_dims, slice_axis=2,
            )

        network = NoiseConditionedUNet(spatial_dims=method.spatial_dims, context_slices=method.context_slices)
        loss = method.make_loss()
        if minutes is not None:
            rate = _steps_per_second(network, loss, loader(35))
            iterations = max(evals, int(minutes * 60 * rate))
        per_eval = max(1, iterations // evals)
        trainer, ema = create_trainer(network, loss, loader(per_eval), epochs=evals, iterations_per_epoch=per_eval)
        budget = None if minutes is None else minutes * 60
        clock = TrainingClock(budget).attach(trainer)

        @trainer.on(Events.EPOCH_COMPLETED(once=1))
        def _resize(engine):
            """A time budget: size the schedule again from the first tenth's measured step rate (the calibration's is rough)."""
            if budget is None:
                return
            total = int(engine.state.iteration / clock.seconds * budget)
            engine.state.max_epochs = max(2, -(-total // per_eval))
            trainer.lr_scheduler.t_total = engine.state.max_epochs * per_eval

        denoise = _denoiser(method, loss, ema.ema_model, volume)
        curve = []

        @trainer.on(Events.EPOCH_COMPLETED)
        def _curve(engine):
            psnr = score(denoise(volume.noisy), volume)["psnr_mask"]
            curve.append({"iteration": engine.state.iteration, "train_seconds": round(clock.seconds, 1), "psnr_mask": round(psnr, 3)})
            print(f"{condition}/{name}: {engine.state.iteration} its, {clock.seconds:.0f} s, {psnr:.2f} dB", flush=True)

        trainer.run()
        if not curve or curve[-1]["iteration"] != trainer.state.iteration:
            _curve(trainer)
        start = time.perf_counter()
        estimate = denoise(volume.noisy)
        seconds = time.perf_counter() - start
        result = {
            "method": name,
            "label": method.label,
            "condition": condition,
            "iterations": trainer.state.iteration,
            "threads": threads,
            "minutes": minutes,
            "learning_rate": trainer.optimizer.defaults["lr"],
            "autocast_dtype": bundle_autocast(),
            "train_seconds": round(clock.seconds, 1),
            "inference_seconds_slab": round(seconds, 2),
            "curve": curve,
            "metrics": score(estimate, volume),
            "metrics_flips4": score(denoise(volume.noisy, flips=4), volume),
        }
    return result


def _steps_per_second(network, loss, loader, steps: int = 30, skipped: int = 5) -> float:
    """Step rate of a throwaway copy of the network, over ``steps`` steps after ``skipped`` (allocation, kernel choice).

    Timed from the start of the first counted step to the end of the last one: the trainer's
    start and end (about a second) would make a short calibration read slow, and a
    budget-sized schedule then end well before the budget.
    """
    trainer, _ = create_trainer(copy.deepcopy(network), loss, loader, epochs=1, iterations_per_epoch=steps + skipped)
    started, completed = [], []
    trainer.add_event_handler(Events.ITERATION_STARTED, lambda _: started.append(time.perf_counter()))
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda _: completed.append(time.perf_counter()))
    trainer.run()
    return steps / (completed[-1] - started[skipped])


# ----------------------------------------------------------------------------- classical methods


def run_classical(condition: str, name: str) -> dict:
    """The noisy input, NLM on the volume, BM3D slice by slice (scored slices), BM4D on the volume; true sigma."""
    volume = make_volume(condition)
    result = {"method": name, "condition": condition, "sigma": volume.sigma}
    start = time.perf_counter()
    if name == "noisy":
        estimate = volume.noisy
    elif name == "nlm":
        from skimage.restoration import denoise_nl_means

        estimate = denoise_nl_means(volume.noisy, h=0.8 * volume.sigma, sigma=volume.sigma, patch_size=3, patch_distance=3, fast_mode=True)
        result["settings"] = "scikit-image denoise_nl_means on the volume, h = 0.8 sigma, patch 3, distance 3, fast mode"
    elif name == "bm3d":
        import bm3d

        estimate = volume.noisy.copy()
        for k in volume.scored:
            estimate[..., k] = bm3d.bm3d(volume.noisy[..., k], sigma_psd=volume.sigma)
        result["settings"] = "bm3d.bm3d per slice (scored slices), true sigma"
    else:
        import bm4d

        estimate = np.asarray(bm4d.bm4d(volume.noisy, volume.sigma), dtype=np.float32)
        result["settings"] = "bm4d.bm4d(noisy, sigma) on the volume, true sigma"
    result["seconds"] = round(time.perf_counter() - start, 1)
    result["metrics"] = score(np.asarray(estimate, dtype=np.float32), volume)
    return result


def _save(path: Path, result: dict) -> None:
    result["commit"] = current_commit()
    write_json(path, result)


def _job(condition: str, name: str, path: str) -> str:
    torch.set_num_threads(1)
    result = run_classical(condition, name) if name in CLASSICAL else train_and_score(condition, name, iterations=ITERATIONS, evals=ITERATIONS // CURVE_EVERY)
    _save(Path(path), result)
    return f"{condition}/{name}"


# ----------------------------------------------------------------------------------------- speed


def speed_volume() -> torch.Tensor:
    """256x256x100: 100 MNI T1 slices padded to 256x256 with 6% Gaussian noise, ``(1, 1, 256, 256, 100)``."""
    clean = np.zeros((256, 256, 100), dtype=np.float32)
    clean[30:227, 11:244] = mni152_contrast("t1")[:, :, 40:140]
    noisy = clean + 0.06 * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    return torch.from_numpy(noisy)[None, None]


def run_speed(threads: int = 2) -> dict:
    """Inference seconds of each network mode on 256x256x100 (``threads`` threads, 1 flip, the noise check included).

    Eager float32 and bfloat16, and the ``onnxruntime`` backend (the network's cached ONNX export,
    float32): what ``backend: "auto"`` runs on a CPU without native bfloat16. Each is warmed up
    on a few slices first (the export happens there, once per set of weights).
    """
    torch.set_num_threads(threads)
    volume = speed_volume()
    result: dict = {"volume": "256x256x100", "threads": threads, "bundle_autocast": bundle_autocast(), "noise_check_included": True}
    modes = {"2d": {}, "k1": {"context_slices": 1}, "k2": {"context_slices": 2}, "k3": {"context_slices": 3}, "3d": {"spatial_dims": 3}}
    backends = {"float32": ("torch", "float32"), "bfloat16": ("torch", "bfloat16"), "onnxruntime": ("onnxruntime", "auto")}
    for mode, args in modes.items():
        network = NoiseConditionedUNet(**args).eval()
        for name, (backend, dtype) in backends.items():
            if backend == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
                continue
            inferer = C2SInferer(sigma_data=0.06, flips=1, autocast_dtype=dtype, backend=backend, slice_axis=2)
            inferer(volume[..., :8], network)
            start = time.perf_counter()
            inferer(volume, network)
            result[f"{mode}_{name}_s"] = round(time.perf_counter() - start, 2)
            print(mode, name, result[f"{mode}_{name}_s"], flush=True)
    start = time.perf_counter()
    check_noise_independence(volume[0, 0])
    result["noise_check_s"] = round(time.perf_counter() - start, 2)
    return result


def run_classical_speed() -> dict:
    """Seconds of NLM (volume), BM3D (slice by slice) and BM4D (volume) on the 256x256x100 volume, true sigma, one thread."""
    import bm3d
    import bm4d
    from skimage.restoration import denoise_nl_means

    noisy = speed_volume()[0, 0].numpy().astype(np.float64)
    timings = {
        "nlm": lambda: denoise_nl_means(noisy, h=0.048, sigma=0.06, patch_size=3, patch_distance=3, fast_mode=True),
        "bm3d": lambda: [bm3d.bm3d(noisy[..., k], sigma_psd=0.06) for k in range(noisy.shape[-1])],
        "bm4d": lambda: bm4d.bm4d(noisy, 0.06),
    }
    result: dict = {"volume": "256x256x100", "threads": 1}
    for name, run in timings.items():
        start = time.perf_counter()
        run()
        result[f"{name}_s"] = round(time.perf_counter() - start, 1)
        print(name, result[f"{name}_s"], flush=True)
    return result


# ------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    table = sub.add_parser("run", help="the table: classical and learned methods per condition (resumable)")
    table.add_argument("--conditions", nargs="*", default=list(CONDITIONS))
    table.add_argument("--methods", nargs="*", default=None, help="only these methods")
    table.add_argument("--workers", type=int, default=2)
    curve = sub.add_parser("curve", help="a PSNR-vs-time curve (minutes of training, threads)")
    curve.add_argument("--method", default="c2s_k2", choices=sorted(METHODS))
    curve.add_argument("--condition", default="gaussian_6")
    curve.add_argument("--minutes", type=float, default=15)
    curve.add_argument("--threads", type=int, default=2)
    curve.add_argument("--evals", type=int, default=10)
    speed = sub.add_parser("speed", help="inference seconds on 256x256x100")
    speed.add_argument("--classical", action="store_true", help="NLM, BM3D and BM4D instead of the networks (one thread)")
    sub.add_parser("report", help="write the volumetric section of docs/benchmarks.md")
    args = parser.parse_args()
    if args.command == "run":
        jobs = []
        for condition in args.conditions:
            names = list(CLASSICAL) + list(PLAN[condition])
            jobs += [(condition, n) for n in names if args.methods is None or n in args.methods]
        pending = [(c, n) for c, n in jobs if not (RESULTS / c / f"{n}.json").is_file()]
        if any(n == "bm4d" for _, n in pending) and importlib.util.find_spec("bm4d") is None:
            parser.error("BM4D and BM3D need the benchmark extra: pip install -e '.[benchmark]'")
        print(f"{len(pending)} of {len(jobs)} runs to do; results in {RESULTS}", flush=True)
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=get_context("spawn"), max_tasks_per_child=1) as pool:
            futures = [pool.submit(_job, c, n, str(RESULTS / c / f"{n}.json")) for c, n in pending]
            for future in futures:
                print("done", future.result(), flush=True)
    elif args.command == "curve":
        result = train_and_score(args.condition, args.method, minutes=args.minutes, threads=args.threads, evals=args.evals)
        _save(RESULTS / "curves" / f"{args.method}_{args.condition}_{args.minutes:g}min_{args.threads}t.json", result)
        print(json.dumps({k: result[k] for k in ("method", "iterations", "train_seconds", "metrics")}))
    elif args.command == "speed":
        torch.set_num_threads(1 if args.classical else 2)
        result = run_classical_speed() if args.classical else run_speed()
        _save(RESULTS / ("speed_classical.json" if args.classical else "speed.json"), result)
        print(json.dumps(result, indent=2))
    else:
        write_report(RESULTS, Path("docs/benchmarks.md"))


if __name__ == "__main__":
    main()
