"""Time to quality: PSNR against wall-clock training time, beside BM3D and NLM (issue 8).

    python -m benchmarks.time_to_quality run --recipe default --minutes 15 --threads 2
    python -m benchmarks.time_to_quality run --recipe default --init bundle/models/model.pt --minutes 10
    python -m benchmarks.time_to_quality report

The setting is the benchmark's (:mod:`benchmarks.run`): the 50 noisy MNI T1 training slices
of a condition (6% Gaussian by default), PSNR inside the brain on every fifth of them (10
slices, the self-supervised single-volume use case) and, at the end, on the held-out
slices. A *recipe* is a named set of training settings (:data:`benchmarks.recipes.RECIPES`);
the schedule is sized to the budget: a few calibration steps measure the step rate, the run
gets ``minutes x rate`` iterations (warm-up then cosine), and it stops at the budget whatever
the count. Only training steps are on the clock; the curve's evaluations are not. Results go to
``benchmarks/results/ttq/<name>.json``; ``report`` writes the tables and the figure into
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Events

from benchmarks.common import (
    TTQ_RESULTS,
    TrainingClock,
    make_data,
    metrics,
    parse_condition,
    write_json,
    write_volume,
)
from benchmarks.methods import LEARNED
from benchmarks.recipes import RECIPES, recipe_settings
from benchmarks.ttq_report import write_report
from c2s_monai.data import training_loader
from c2s_monai.engines import create_trainer
from c2s_monai.inferers import C2SInferer
from c2s_monai.losses import GDSMLoss
from c2s_monai.networks import NoiseConditionedUNet

RESULTS = TTQ_RESULTS  # benchmarks/results/ttq


def make_loss(settings: dict, noise_model: str) -> torch.nn.Module:
    if settings["method"] == "c2s":
        return GDSMLoss(**settings["loss"])
    return LEARNED[settings["method"]].make_loss(noise_model)


def _steps_per_second(network, loss, loader, settings: dict, steps: int = 8) -> float:
    """Step rate of a throwaway copy of the network (first step excluded: allocation)."""
    network = copy.deepcopy(network)
    trainer, _ = create_trainer(network, loss, loader, epochs=1, iterations_per_epoch=steps + 1,
                                autocast_dtype=settings["autocast_dtype"])
    times = []

    @trainer.on(Events.ITERATION_STARTED)
    def _start(engine):
        times.append(time.perf_counter())

    trainer.run()
    return steps / (time.perf_counter() - times[1])


def run(recipe: str, condition_name: str, minutes: float, threads: int, init: str | None, evals: int, name: str) -> dict:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    settings = recipe_settings(recipe)
    condition = parse_condition(condition_name)
    data = make_data(condition)
    supervised = settings["method"] == "supervised"
    sigma_data = condition.level
    network = NoiseConditionedUNet(features=settings["features"])
    if init:
        checkpoint = torch.load(init, map_location="cpu", weights_only=True)
        network.load_state_dict(checkpoint.get("ema_network", checkpoint.get("network", checkpoint)))
    loss = make_loss(settings, condition.noise_model)
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"ttq_{name}_{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    train_file = folder / "train.nii.gz"
    write_volume(train_file, *((data["train_noisy"], data["train_clean"]) if supervised else (data["train_noisy"],)))

    def loader(iterations_per_epoch: int):
        return training_loader([str(train_file)], sigma_data, settings["patch_size"], settings["batch_size"],
                               iterations_per_epoch=iterations_per_epoch, seed=0, channel_scaling="target")

    budget = minutes * 60
    rate = _steps_per_second(network, loss, loader(9), settings)
    iterations = max(evals, int(budget * rate))
    per_eval = max(1, iterations // evals)
    trainer, ema = create_trainer(network, loss, loader(per_eval), epochs=evals, iterations_per_epoch=per_eval,
                                  learning_rate=settings["learning_rate"], warmup_iterations=settings["warmup_iterations"],
                                  ema_momentum=settings["ema_momentum"], autocast_dtype=settings["autocast_dtype"])
    clock = TrainingClock(budget).attach(trainer)

    def denoise(slices: np.ndarray, flips: int = 1, model=None) -> np.ndarray:
        inferer = C2SInferer(sigma_data=sigma_data, flips=flips, slice_batch=10, autocast_dtype="float32")
        volume = torch.from_numpy(np.moveaxis(slices, 0, -1))[None, None]
        return np.moveaxis(inferer(volume, model or ema.ema_model)[0, 0].numpy(), -1, 0)

    evaluation = (data["train_noisy"][::5], data["train_clean"][::5])
    curve = [{"iteration": 0, "train_seconds": 0.0, "psnr_mask": metrics(denoise(evaluation[0], model=network), evaluation[1])["psnr_mask"]}] if init else []

    @trainer.on(Events.EPOCH_COMPLETED)
    def _curve(engine):
        psnr = metrics(denoise(evaluation[0]), evaluation[1])["psnr_mask"]
        curve.append({"iteration": engine.state.iteration, "train_seconds": round(clock.seconds, 1), "psnr_mask": round(psnr, 3)})
        print(f"{name}: {engine.state.iteration} its, {clock.seconds:.0f} s, {psnr:.2f} dB", flush=True)

    trainer.run()
    if not curve or curve[-1]["iteration"] != trainer.state.iteration:
        _curve(trainer)
    result = {
        "name": name,
        "recipe": recipe,
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()},
        "condition": condition_name,
        "init": init,
        "minutes": minutes,
        "threads": threads,
        "iterations": trainer.state.iteration,
        "planned_iterations": iterations,
        "train_seconds": round(clock.seconds, 1),
        "curve": curve,
        "final": {
            "train_flips1": metrics(denoise(evaluation[0]), evaluation[1]),
            "train_flips4": metrics(denoise(evaluation[0], flips=4), evaluation[1]),
            "held_out_flips1": metrics(denoise(data["held_out_noisy"]), data["held_out_clean"]),
            "held_out_flips4": metrics(denoise(data["held_out_noisy"], flips=4), data["held_out_clean"]),
        },
    }
    if not supervised and init is None and settings["method"] == "c2s":
        result["sigma_data"] = sigma_data
    write_json(RESULTS / f"{name}.json", result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("run", help="one training run with a PSNR-vs-time curve")
    one.add_argument("--recipe", default="default", choices=sorted(RECIPES))
    one.add_argument("--condition", default="gaussian_6")
    one.add_argument("--minutes", type=float, default=15)
    one.add_argument("--threads", type=int, default=2)
    one.add_argument("--init", default=None, help="checkpoint to fine-tune from (e.g. bundle/models/model.pt)")
    one.add_argument("--evals", type=int, default=10, help="curve points")
    one.add_argument("--name", default=None, help="result name (default: recipe_condition_minutes)")
    sub.add_parser("report", help="write the time-to-quality section of docs/benchmarks.md")
    args = parser.parse_args()
    if args.command == "run":
        name = args.name or f"{args.recipe}_{args.condition}_{args.minutes:g}min{'_ft' if args.init else ''}"
        result = run(args.recipe, args.condition, args.minutes, args.threads, args.init, args.evals, name)
        print(json.dumps({k: result[k] for k in ("name", "iterations", "train_seconds")} | {"final": result["final"]["train_flips1"]["psnr_mask"]}))
    else:
        write_report(RESULTS, Path("docs/benchmarks.md"))


if __name__ == "__main__":
    main()
