"""The C2S benchmark: quality against peers, a supervised bound and classical denoisers; speed.

    pip install -e ".[benchmark]"          # BM3D
    python -m benchmarks.run --quick        # <= 10 min on 2 cores: 6% Gaussian, a few methods
    python -m benchmarks.run                # full run (resumable: finished runs are kept)

Protocol (issue 4). Clean reference: the MNI152 2009a T1 from nilearn, scaled to [0, 1].
Training slices: 50 axial slices z = 40..138 step 2; held-out slices: z = 45..135 step 10
(never trained on). Noise: Gaussian or Rician, std 3/6/10% of the max, seed 0. Every learned
method trains on the noisy training slices only (the supervised bound also sees the clean
ones) with the same network, iterations, optimiser and schedule: the bundle's recipe, the defaults of
:func:`c2s_monai.engines.create_trainer` (Adam 8e-3, bfloat16 autocast where native), one CPU
thread per run, two runs side by side.
Metrics: PSNR and SSIM (peak 1) inside the head mask ``clean > 0.1`` and on the whole image,
on every fifth training slice and on the held-out slices. Results go to
``benchmarks/results/<mode>/`` (one JSON per run, reused on a rerun) and the report to
``docs/benchmarks.md`` (full) or ``benchmarks/results/quick/report.md`` (quick).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events

from benchmarks import classical
from benchmarks.common import (
    EXAMPLE_SLICE,
    RESULTS,
    TrainingClock,
    bundle_autocast,
    current_commit,
    make_data,
    metrics,
    parse_condition,
    speed_volume,
    write_json,
    write_volume,
)
from benchmarks.methods import LEARNED
from benchmarks.report import write_report
from c2s_monai.data import training_loader
from c2s_monai.engines import create_trainer
from c2s_monai.inferers import C2SInferer
from c2s_monai.networks import NoiseConditionedUNet

ESTIMATOR = {"gaussian": "mad", "rician": "background"}


@dataclass(frozen=True)
class Plan:
    """What one mode runs: learned runs per condition, classical methods, budget, speed sizes."""

    learned: dict[str, tuple[str, ...]]
    classical: tuple[str, ...]
    iterations: int
    curve_every: int
    speed_bm3d_slices: int


FULL = Plan(
    learned={
        "gaussian_6": ("c2s", "supervised", "noise2self", "neighbor2neighbor", "r2r", "noisier2noise",
                       "c2s_refine", "c2s_no_reparam", "c2s_no_weight", "c2s_no_cond", "c2s_estimated"),
        "rician_6": ("c2s", "c2s_rician", "c2s_vst", "supervised"),
        "gaussian_3": ("c2s",),
        "gaussian_10": ("c2s",),
        "rician_3": ("c2s", "c2s_vst"),
        "rician_10": ("c2s", "c2s_vst"),
    },
    classical=("noisy", "nlm", "bm3d"),
    iterations=600,
    curve_every=100,
    speed_bm3d_slices=100,
)
QUICK = Plan(
    learned={"gaussian_6": ("c2s", "noise2self", "supervised")},
    classical=("noisy", "nlm", "bm3d"),
    iterations=150,
    curve_every=50,
    speed_bm3d_slices=5,
)


# ------------------------------------------------------------------------------------ scoring


def evaluate(denoise, data: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Metrics of ``denoise(slices) -> slices`` on every fifth training slice and the held-out slices."""
    return {
        "train": metrics(denoise(data["train_noisy"][::5]), data["train_clean"][::5]),
        "held_out": metrics(denoise(data["held_out_noisy"]), data["held_out_clean"]),
    }


# ------------------------------------------------------------------------------------ one run


def run_learned(condition_name: str, method_name: str, iterations: int, curve_every: int) -> dict:
    """Train one learned method on one condition (one thread) and evaluate it."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    condition, method = parse_condition(condition_name), LEARNED[method_name]
    data = make_data(condition)
    sigma_data = condition.level if method.sigma == "known" else ESTIMATOR[condition.noise_model]
    with tempfile.TemporaryDirectory() as folder:
        train_file = Path(folder) / "train.nii.gz"
        channels = (data["train_noisy"], data["train_clean"]) if method.supervised else (data["train_noisy"],)
        write_volume(train_file, *channels)
        # the clean target rides as a second channel in the noisy image's units
        loader = training_loader([str(train_file)], sigma_data, patch_size=96, batch_size=8, iterations_per_epoch=curve_every, seed=0,
                                 channel_scaling="target", rician_vst=method.rician_vst)
        network = NoiseConditionedUNet()
        loss = method.make_loss(condition.noise_model)
        trainer, ema = create_trainer(
            method.training_network(network), loss, loader, epochs=iterations // curve_every, iterations_per_epoch=curve_every
        )
        clock = TrainingClock().attach(trainer)
        curve = []

        def denoise(slices: np.ndarray, flips: int = 1) -> np.ndarray:
            inferer = C2SInferer(sigma_data=sigma_data, flips=flips, slice_batch=10, autocast_dtype="auto", rician_vst=method.rician_vst)
            inference = method.inference_network(loss, method.training_network(ema.ema_model))
            volume = torch.from_numpy(np.moveaxis(slices, 0, -1))[None, None]
            return np.moveaxis(inferer(volume, inference)[0, 0].numpy(), -1, 0)

        @trainer.on(Events.EPOCH_COMPLETED)
        def _curve(engine):
            psnr = metrics(denoise(data["train_noisy"][::5]), data["train_clean"][::5])["psnr_mask"]
            curve.append({"iteration": engine.state.iteration, "train_seconds": round(clock.seconds, 2), "psnr_mask": psnr})

        trainer.run()
        result = {
            "method": method_name,
            "label": method.label,
            "condition": condition_name,
            "iterations": iterations,
            "learning_rate": trainer.optimizer.defaults["lr"],
            "autocast_dtype": bundle_autocast(),
            "train_seconds": round(clock.seconds, 1),
            "iterations_per_second": round(iterations / clock.seconds, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "sigma_data": sigma_data,
            "curve": curve,
            "metrics": evaluate(denoise, data),
        }
        if method_name.startswith("c2s"):
            result["metrics_flips4"] = evaluate(lambda s: denoise(s, flips=4), data)
        example = denoise(data["held_out_noisy"][EXAMPLE_SLICE : EXAMPLE_SLICE + 1])[0]
    return result, example


def run_classical(condition_name: str, method_name: str) -> dict:
    """Evaluate the noisy input, NLM (h tuned on the clean training slices: an oracle) or BM3D."""
    condition = parse_condition(condition_name)
    data = make_data(condition)
    result = {"method": method_name, "condition": condition_name, "sigma_data": condition.level}
    if method_name == "noisy":
        result["metrics"] = evaluate(lambda s: s, data)
        return result, data["held_out_noisy"][EXAMPLE_SLICE]
    if method_name == "nlm":
        scores = {
            h: metrics(classical.nlm(data["train_noisy"][::5], condition.level, h), data["train_clean"][::5])["psnr_mask"]
            for h in classical.NLM_H_FACTORS
        }
        best = max(scores, key=scores.get)
        result["h_factor"] = best
        denoise = functools.partial(classical.nlm, sigma=condition.level, h_factor=best)
    else:
        denoise = functools.partial(classical.bm3d, sigma=condition.level)
    start = time.perf_counter()
    result["metrics"] = evaluate(denoise, data)
    slices = len(data["train_noisy"][::5]) + len(data["held_out_noisy"])
    result["seconds_per_slice"] = round((time.perf_counter() - start) / slices, 4)
    return result, denoise(data["held_out_noisy"][EXAMPLE_SLICE : EXAMPLE_SLICE + 1])[0]


def _job(kind: str, condition: str, method: str, plan: Plan, path: Path) -> str:
    run = run_learned(condition, method, plan.iterations, plan.curve_every) if kind == "learned" else run_classical(condition, method)
    result, example = run
    result["commit"] = current_commit()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".npy"), example.astype(np.float32))
    write_json(path, result)
    return f"{condition}/{method}"


# ---------------------------------------------------------------------------------- speed


def _seconds(function, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        function()
    return (time.perf_counter() - start) / repeats


def run_speed(bm3d_slices: int) -> dict:
    """Whole-volume inference time on a 256x256x100 volume (2 threads), training iterations/s."""
    torch.set_num_threads(2)
    noisy, volume = speed_volume()
    network = NoiseConditionedUNet().eval()
    result: dict = {"volume": "256x256x100", "threads": 2, "bundle_autocast": bundle_autocast()}
    for flips in (1, 4):
        for dtype in ("float32", "bfloat16"):
            inferer = C2SInferer(sigma_data=0.06, flips=flips, slice_batch=10, autocast_dtype=dtype)
            result[f"c2s_flips{flips}_{dtype}_s"] = round(_seconds(lambda inferer=inferer: inferer(volume, network)), 2)
    result["nlm_s"] = round(_seconds(lambda: classical.nlm(noisy, 0.06)), 2)
    bm3d_seconds = _seconds(lambda: classical.bm3d(noisy[:bm3d_slices], 0.06))
    result["bm3d_s"] = round(bm3d_seconds * 100 / bm3d_slices, 2)
    result["bm3d_slices_timed"] = bm3d_slices
    loss = LEARNED["c2s"].make_loss("gaussian")
    batch = torch.from_numpy(noisy[:8, 80:176, 80:176].copy())[:, None]
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    network.train()
    for dtype in ("float32", "bfloat16"):
        def step(dtype=dtype):
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
                value = loss(network, batch, 0.06)
            value.backward()
            optimizer.step()
        step()
        result[f"train_iterations_per_s_{dtype}"] = round(1 / _seconds(step, repeats=10), 2)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


# ------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description="C2S benchmark (see the module docstring).")
    parser.add_argument("--quick", action="store_true", help="the <= 10 minute subset")
    parser.add_argument("--workers", type=int, default=2, help="runs side by side, one thread each")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from saved results")
    parser.add_argument("--skip-runs", action="store_true", help="only the speed section (if not saved) and the report")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    plan = QUICK if args.quick else FULL
    folder = args.results / mode

    # condition by condition, classical methods first: an interrupted run still holds whole tables
    jobs = []
    for condition, methods in plan.learned.items():
        jobs += [("classical", condition, m) for m in plan.classical]
        jobs += [("learned", condition, m) for m in methods]
    pending = [(k, c, m) for k, c, m in jobs if not (folder / c / f"{m}.json").is_file()]
    if "bm3d" in plan.classical and importlib.util.find_spec("bm3d") is None:
        parser.error("BM3D needs the benchmark extra: pip install -e '.[benchmark]'")
    if not (args.report_only or args.skip_runs) and pending:
        print(f"{len(pending)} of {len(jobs)} runs to do; results in {folder}", flush=True)
        context = get_context("spawn")
        with ProcessPoolExecutor(max_workers=args.workers, mp_context=context, max_tasks_per_child=1) as pool:
            futures = [pool.submit(_job, k, c, m, plan, folder / c / f"{m}.json") for k, c, m in pending]
            for future in futures:
                print("done", future.result(), flush=True)
    speed_path = folder / "speed.json"
    if not args.report_only and not speed_path.is_file():
        speed_path.write_text(json.dumps(run_speed(plan.speed_bm3d_slices) | {"commit": current_commit()}, indent=2))
        print("done speed", flush=True)

    command = "python -m benchmarks.run" + (" --quick" if args.quick else "")
    target = Path("docs/benchmarks.md") if mode == "full" else folder / "report.md"
    write_report(folder, plan, target, command, current_commit())
    print(f"report: {target}")


if __name__ == "__main__":
    main()
