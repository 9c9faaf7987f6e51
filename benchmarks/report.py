"""Turn saved benchmark results into markdown tables and PNG figures.

The generated part of ``docs/benchmarks.md`` sits between the two markers below; the rest
of the page (hand-written sections) is kept as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from benchmarks.common import EXAMPLE_SLICE, HELD_OUT_SLICES
from benchmarks.methods import LEARNED
from benchmarks.pages import write_section

START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
CLASSICAL_LABELS = {"noisy": "noisy input", "nlm": "NLM (scikit-image, oracle-tuned h)", "bm3d": "BM3D (true sigma)"}
SELF_SUPERVISED_PEERS = ("noise2self", "neighbor2neighbor", "r2r", "noisier2noise")


def _load(folder: Path) -> dict[str, dict[str, dict]]:
    results: dict[str, dict[str, dict]] = {}
    for path in sorted(folder.glob("*/*.json")):
        results.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return results


def _label(method: str) -> str:
    return LEARNED[method].label if method in LEARNED else CLASSICAL_LABELS[method]


def _quality_table(runs: dict[str, dict]) -> list[str]:
    lines = [
        "| method | PSNR brain, held-out | SSIM brain, held-out | PSNR image, held-out | PSNR brain, train | SSIM brain, train | with 4 flips (PSNR brain, held-out) | train s (1 thread) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    order = [m for m in ("noisy", "nlm", "bm3d") if m in runs] + [m for m in LEARNED if m in runs]
    for method in order:
        run = runs[method]
        held, train = run["metrics"]["held_out"], run["metrics"]["train"]
        flips = f"{run['metrics_flips4']['held_out']['psnr_mask']:.2f}" if "metrics_flips4" in run else ""
        seconds = f"{run['train_seconds']:.0f}" if "train_seconds" in run else ""
        lines.append(
            f"| {_label(method)} | {held['psnr_mask']:.2f} | {held['ssim_mask']:.3f} | {held['psnr_image']:.2f} | "
            f"{train['psnr_mask']:.2f} | {train['ssim_mask']:.3f} | {flips} | {seconds} |"
        )
    return lines


def _psnr(runs: dict[str, dict], method: str, flips: bool = False) -> float | None:
    run = runs.get(method)
    if run is None:
        return None
    key = "metrics_flips4" if flips and "metrics_flips4" in run else "metrics"
    return run[key]["held_out"]["psnr_mask"]


def _sweep_table(results: dict[str, dict[str, dict]]) -> list[str]:
    columns = [("noisy", False), ("nlm", False), ("bm3d", False), ("c2s", False), ("c2s", True), ("c2s_vst", False), ("supervised", False)]
    header = ["noisy", "NLM", "BM3D", "C2S", "C2S + 4 flips", "C2S on the Rician VST", "supervised"]
    lines = ["| condition | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for condition in sorted(results, key=lambda c: (c.split("_")[0], int(c.split("_")[1]))):
        runs = results[condition]
        cells = [_psnr(runs, m, f) for m, f in columns]
        lines.append(f"| {condition.replace('_', ' ')}% | " + " | ".join("" if c is None else f"{c:.2f}" for c in cells) + " |")
    return lines


def _first_time_above(curve: list[dict], threshold: float) -> float | None:
    return next((point["train_seconds"] for point in curve if point["psnr_mask"] > threshold), None)


def _targets(results: dict[str, dict[str, dict]], speed: dict) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]
    runs = results.get("gaussian_6", {})
    c2s, c2s_flips = _psnr(runs, "c2s"), _psnr(runs, "c2s", flips=True)
    if c2s is not None:
        peers = {m: _psnr(runs, m) for m in SELF_SUPERVISED_PEERS if m in runs}
        if peers:
            best = max(peers, key=peers.get)
            margin = c2s - peers[best]
            lines.append(f"| C2S >= best self-supervised peer + 0.5 dB (6% Gaussian, held-out) | {margin:+.2f} dB vs {_label(best)} | {'yes' if margin >= 0.5 else 'no'} |")
        if "bm3d" in runs:
            margin = c2s - _psnr(runs, "bm3d")
            margin_flips = c2s_flips - _psnr(runs, "bm3d")
            lines.append(f"| C2S >= BM3D + 1.5 dB | {margin:+.2f} dB ({margin_flips:+.2f} with 4 flips) | {'yes' if margin >= 1.5 else 'no'} |")
        if "supervised" in runs:
            gap = _psnr(runs, "supervised") - c2s
            lines.append(f"| C2S within 0.5 dB of the supervised bound | {gap:.2f} dB below | {'yes' if gap <= 0.5 else 'no'} |")
    if speed:
        default = speed.get("bundle_autocast", "float32")
        seconds = speed[f"c2s_flips1_{default}_s"]
        lines.append(
            f"| denoise 256x256x100 in <= 10 s on the CPU | {seconds:.1f} s (bundle default: no flips, {default}; fp32 {speed['c2s_flips1_float32_s']:.1f} s,"
            f" bf16 {speed['c2s_flips1_bfloat16_s']:.1f} s) | {'yes' if seconds <= 10 else 'no'} |"
        )
        ratio = speed["bm3d_s"] / seconds
        lines.append(f"| >= 5x faster than BM3D | {ratio:.1f}x | {'yes' if ratio >= 5 else 'no'} |")
    return lines


def _figures(folder: Path, results: dict[str, dict[str, dict]], figures: Path) -> list[str]:
    figures.mkdir(parents=True, exist_ok=True)
    names = []
    runs = results.get("gaussian_6", {})
    curve_methods = [m for m in LEARNED if m in runs and runs[m].get("curve")]
    if curve_methods:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for method in curve_methods:
            curve = runs[method]["curve"]
            ax.plot([p["train_seconds"] for p in curve], [p["psnr_mask"] for p in curve], marker="o", label=_label(method))
        for method, style in (("nlm", ":"), ("bm3d", "--")):
            if method in runs:
                ax.axhline(runs[method]["metrics"]["train"]["psnr_mask"], color="k", linestyle=style, label=_label(method))
        ax.set_xlabel("training time (s, one thread)")
        ax.set_ylabel("PSNR in the brain, training slices (dB)")
        ax.set_title("6% Gaussian noise: PSNR against training time")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(figures / "benchmark_curves.png", dpi=110)
        plt.close(fig)
        names.append("benchmark_curves.png")
    shown = [m for m in ("noisy", "nlm", "bm3d", "noise2self", "c2s", "supervised") if (folder / "gaussian_6" / f"{m}.npy").is_file()]
    if shown:
        from c2s_monai.io.sample_data import mni152_t1_slices

        clean = mni152_t1_slices(*HELD_OUT_SLICES)[EXAMPLE_SLICE]
        fig, axes = plt.subplots(1, len(shown) + 1, figsize=(2.4 * (len(shown) + 1), 3))
        for ax, (title, image) in zip(axes, [("clean", clean)] + [(_label(m).split(" (")[0], np.load(folder / "gaussian_6" / f"{m}.npy")) for m in shown]):
            ax.imshow(np.rot90(image), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(figures / "benchmark_examples.png", dpi=110)
        plt.close(fig)
        names.append("benchmark_examples.png")
    return names


def _missing(results: dict[str, dict[str, dict]], plan) -> list[str]:
    """A line naming the planned runs with no result yet (an interrupted, resumable run)."""
    missing = [
        f"{condition}/{method}"
        for condition, methods in plan.learned.items()
        for method in (*plan.classical, *methods)
        if method not in results.get(condition, {})
    ]
    if not missing:
        return []
    return [f"**Incomplete run**: {len(missing)} planned runs have no result yet ({', '.join(missing)}); rerun the same command to finish them.", ""]


def _recipe(results: dict[str, dict[str, dict]]) -> str:
    """The optimiser and precision the learned runs recorded (one phrase per distinct recipe)."""
    recipes = {
        (run.get("learning_rate", 2e-3), run.get("autocast_dtype", "float32"))
        for runs in results.values()
        for run in runs.values()
        if "train_seconds" in run
    }
    return " / ".join(f"Adam {lr:g}, {dtype} autocast" for lr, dtype in sorted(recipes)) or "no learned runs"


def _commits(results: dict[str, dict[str, dict]], speed: dict, current: str) -> str:
    """Which commit each saved result came from (runs saved before commits were recorded: ``current``)."""
    counts: dict[str, int] = {}
    for run in [r for runs in results.values() for r in runs.values()] + ([speed] if speed else []):
        counts[run.get("commit", current)] = counts.get(run.get("commit", current), 0) + 1
    if len(counts) <= 1:
        return f"at commit `{next(iter(counts), current)}`"
    return "at commits " + ", ".join(
        f"`{commit}` ({count} result{'s' if count > 1 else ''})" for commit, count in sorted(counts.items(), key=lambda item: -item[1])
    )


def write_report(folder: Path, plan, target: Path, command: str, commit: str) -> None:
    results = _load(folder)
    speed_path = folder / "speed.json"
    speed = json.loads(speed_path.read_text()) if speed_path.is_file() else {}
    figures = target.parent / "figures" if target.name == "benchmarks.md" else folder / "figures"
    lines = [
        START,
        f"## Benchmark ({'full' if 'quick' not in command else 'quick'} run)",
        "",
        f"Produced by `{command}` {_commits(results, speed, commit)} (2 CPU cores; learned runs one thread each, two side by side).",
        (f"Budget of every learned method: {plan.iterations} iterations of batch 8, 96x96 patches, {_recipe(results)},"
        " warm-up for min(200, a fifth of the run) iterations then cosine to zero, EMA; the same `NoiseConditionedUNet` (BasicUNet 32-32-64-128-256-32)."
        " Sigma known unless the row says estimated (wavelet MAD for Gaussian noise, Rayleigh background for Rician)."
        " PSNR/SSIM peak 1; 'brain' = inside `clean > 0.1`; held-out = 10 slices never trained on; train = every fifth training slice."),
        "",
        *_missing(results, plan),
        "### Targets",
        "",
        *_targets(results, speed),
        "",
    ]
    for condition in ("gaussian_6", "rician_6"):
        if condition in results:
            lines += [f"### {condition.replace('_', ' ')}% noise: every method", "", *_quality_table(results[condition]), ""]
    lines += ["### Noise levels (PSNR in the brain, held-out slices, dB)", "", *_sweep_table(results), ""]
    runs = results.get("gaussian_6", {})
    if "c2s" in runs and "nlm" in runs:
        nlm = runs["nlm"]["metrics"]["train"]["psnr_mask"]
        seconds = _first_time_above(runs["c2s"]["curve"], nlm)
        when = f"{seconds:.0f} s of one-thread training" if seconds is not None else "not within the budget"
        lines += [f"C2S first beats NLM's PSNR ({nlm:.2f} dB, training slices) after {when} (evaluated every {plan.curve_every} iterations).", ""]
    if speed:
        lines += [
            "### Speed (256x256x100 volume, 2 threads)",
            "",
            f"| what | seconds | vs C2S (bundle default: no flips, {speed.get('bundle_autocast', 'float32')}) |",
            "|---|---|---|",
        ]
        base = speed[f"c2s_flips1_{speed.get('bundle_autocast', 'float32')}_s"]
        for key, label in (
            ("c2s_flips1_float32_s", "C2S, no flips, fp32"),
            ("c2s_flips1_bfloat16_s", "C2S, no flips, bfloat16 autocast"),
            ("c2s_flips4_float32_s", "C2S, 4 flips, fp32"),
            ("c2s_flips4_bfloat16_s", "C2S, 4 flips, bfloat16 autocast"),
            ("nlm_s", "NLM"),
            ("bm3d_s", f"BM3D (timed on {speed['bm3d_slices_timed']} slices, scaled to 100)"),
        ):
            lines.append(f"| {label} | {speed[key]:.1f} | {speed[key] / base:.1f}x |")
        lines += [
            "",
            (f"Training: {speed['train_iterations_per_s_float32']:.2f} iterations/s fp32, {speed['train_iterations_per_s_bfloat16']:.2f} bf16"
            f" (batch 8 of 96x96, 2 threads). Peak memory of the speed run: {speed['peak_rss_mib']:.0f} MiB;"
            f" of a training run: {max((r.get('peak_rss_mib', 0) for rs in results.values() for r in rs.values()), default=0):.0f} MiB."),
            "",
        ]
    for name in _figures(folder, results, figures):
        lines += [f"![{name}](figures/{name})", ""]
    lines.append(END)
    write_section(target, lines)
