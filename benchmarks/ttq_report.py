"""The time-to-quality section of ``docs/benchmarks.md`` (issue 8), from ``benchmarks/results/ttq``.

Runs named ``screen*`` form the lever table (one recipe change each, equal wall-clock);
runs named ``main_*`` are the PSNR-vs-time curves against BM3D, NLM and the supervised bound.
The section sits between the markers below; the rest of the page is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.common import RESULTS
from benchmarks.pages import write_section
from benchmarks.recipes import DEFAULT, RECIPES

START, END = "<!-- ttq:start -->", "<!-- ttq:end -->"
SCREEN_BASE = "bf16"  # the recipe every screened lever is compared with
CLASSICAL = RESULTS / "full"  # the main benchmark's full run (benchmarks.run)


def _reference(condition: str, method: str) -> float | None:
    """PSNR in the brain on the training slices (the curves' slices) of NLM/BM3D from the full benchmark."""
    path = CLASSICAL / condition / f"{method}.json"
    return json.loads(path.read_text())["metrics"]["train"]["psnr_mask"] if path.is_file() else None


def first_time_above(curve: list[dict], threshold: float | None) -> float | None:
    """Training seconds of the first curve point above ``threshold`` (None if never)."""
    if threshold is None:
        return None
    return next((p["train_seconds"] for p in curve if p["psnr_mask"] > threshold), None)


def psnr_at(curve: list[dict], seconds: float) -> float | None:
    """PSNR of the last curve point reached within ``seconds`` of training."""
    reached = [p["psnr_mask"] for p in curve if p["train_seconds"] <= seconds + 1e-6]
    return reached[-1] if reached else None


def _change(run: dict, base: dict | None) -> str:
    """The settings in which ``run`` differs from the ``base`` run (the lever it screens)."""
    if base is None:
        return ", ".join(f"{k} = {v}" for k, v in RECIPES.get(run["recipe"], {}).items()) or "-"
    settings, reference = run["settings"], base["settings"]
    changed = [f"{k} = {settings[k]}" for k in settings if settings[k] != reference.get(k)]
    return ", ".join(changed) or "(the base recipe)"


def _minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _fmt(value, spec: str = ".2f", empty: str = "-") -> str:
    return empty if value is None else format(value, spec)


def _screen_table(runs: list[dict]) -> list[str]:
    base = next((r for r in runs if r["recipe"] == SCREEN_BASE), None)
    base_psnr = base["final"]["train_flips1"]["psnr_mask"] if base else None
    lines = [
        f"| recipe | change from {SCREEN_BASE} | steps | PSNR brain, train (dB) | vs {SCREEN_BASE} | held-out | held-out, 4 flips |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in sorted(runs, key=lambda r: -r["final"]["train_flips1"]["psnr_mask"]):
        psnr = run["final"]["train_flips1"]["psnr_mask"]
        delta = f"{psnr - base_psnr:+.2f}" if base_psnr is not None else "-"
        lines.append(
            f"| {run['recipe']} | {_change(run, base)} | {run['iterations']} | {psnr:.2f} | {delta} | "
            f"{run['final']['held_out_flips1']['psnr_mask']:.2f} | {run['final']['held_out_flips4']['psnr_mask']:.2f} |"
        )
    return lines


def _main_table(runs: list[dict]) -> list[str]:
    lines = [
        "| run | condition | start | threads | steps | 3 min | 5 min | 10 min | 15 min | final, 4 flips | held-out (4 flips) | first above BM3D | first above BM3D + 1 dB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        bm3d = _reference(run["condition"], "bm3d")
        curve = run["curve"]
        above = first_time_above(curve, bm3d)
        above1 = first_time_above(curve, bm3d + 1 if bm3d is not None else None)
        start = "pretrained" if run.get("init") else "scratch"
        lines.append(
            f"| {run['name']} | {run['condition']} | {start} | {run['threads']} | {run['iterations']} | "
            + " | ".join(_fmt(psnr_at(curve, minutes * 60)) for minutes in (3, 5, 10, 15))
            + f" | {run['final']['train_flips4']['psnr_mask']:.2f} | {run['final']['held_out_flips1']['psnr_mask']:.2f}"
            f" ({run['final']['held_out_flips4']['psnr_mask']:.2f}) | {_minutes(above)} | {_minutes(above1)} |"
        )
    return lines


def _run(runs: list[dict], name: str) -> dict | None:
    return next((r for r in runs if r["name"] == name), None)


def _targets(runs: list[dict], speed: dict | None) -> list[str]:
    """Issue 8's targets, each met or not, from the main runs and the inference timing."""
    lines = ["| target | measured | met |", "|---|---|---|"]

    def row(target: str, measured: str, met: bool | None) -> None:
        lines.append(f"| {target} | {measured} | {'-' if met is None else ('yes' if met else 'no')} |")

    for condition in ("gaussian_6", "rician_6"):
        bm3d = _reference(condition, "bm3d")
        for scratch in (r for r in runs if r["name"].startswith("main_scratch") and r["condition"] == condition):
            if bm3d is None:
                continue
            above = first_time_above(scratch["curve"], bm3d)
            final = scratch["curve"][-1]["psnr_mask"]
            row(f"from scratch, beats BM3D within 15 min ({condition}, Adam {scratch['settings']['learning_rate']:g})",
                f"{'after %.1f min' % (above / 60) if above is not None else 'not within the run'}; {final:.2f} vs BM3D {bm3d:.2f} dB at the end",
                above is not None and above <= 15 * 60)
        # every fine-tuning recipe run, each judged on its own
        for tuned in (r for r in runs if r["name"].startswith("main_finetune") and r["condition"] == condition):
            if bm3d is None:
                continue
            at3, at10 = psnr_at(tuned["curve"], 180), psnr_at(tuned["curve"], 600)
            recipe = f"{condition}, Adam {tuned['settings']['learning_rate']:g}"
            row(f"fine-tuned, beats BM3D within 3 min ({recipe})", f"{_fmt(at3)} dB at 3 min vs BM3D {bm3d:.2f}", at3 is not None and at3 > bm3d)
            row(f"fine-tuned, beats BM3D + 1 dB within 10 min ({recipe})", f"{_fmt(at10)} dB at 10 min vs {bm3d + 1:.2f}", at10 is not None and at10 > bm3d + 1)
    supervised = _run(runs, "main_supervised_gaussian_6")
    for scratch in (r for r in runs if r["name"].startswith("main_scratch") and r["condition"] == "gaussian_6"):
        if supervised is None:
            break
        seconds = min(scratch["train_seconds"], supervised["train_seconds"])
        gap = psnr_at(supervised["curve"], seconds) - psnr_at(scratch["curve"], seconds)
        row(f"gap to the supervised bound at equal wall-clock <= 0.5 dB (gaussian_6, Adam {scratch['settings']['learning_rate']:g})",
            f"{gap:.2f} dB at {seconds / 60:.0f} min", gap <= 0.5)
    if speed:
        label, seconds = next(iter(speed["seconds"].items()))
        row("inference of a 256x256x100 volume <= 10 s", f"{seconds:.1f} s ({label}, {speed['threads']} threads, {speed['cpu']})", seconds <= 10)
    return lines


def _speed_table(speed: dict) -> list[str]:
    lines = [
        (f"CPU: {speed['cpu']} ({speed['threads']} threads); native bfloat16: {'yes' if speed['native_bfloat16'] else 'no'}"
        f" (`\"auto\"` runs {speed['auto_resolves_to']}). Whole `C2SInferer` call, best of 2 after a warm-up:"),
        "",
        "| setting | seconds |",
        "|---|---|",
    ]
    lines += [f"| {label} | {seconds:.2f} |" for label, seconds in speed["seconds"].items()]
    return lines


def _figure(runs: list[dict], path: Path) -> bool:
    conditions = sorted({r["condition"] for r in runs})
    if not conditions:
        return False
    fig, axes = plt.subplots(1, len(conditions), figsize=(6.5 * len(conditions), 4.5), squeeze=False)
    for ax, condition in zip(axes[0], conditions):
        for run in (r for r in runs if r["condition"] == condition):
            curve = run["curve"]
            ax.plot([p["train_seconds"] / 60 for p in curve], [p["psnr_mask"] for p in curve], marker="o", label=run["name"])
        for method, style in (("nlm", ":"), ("bm3d", "--")):
            value = _reference(condition, method)
            if value is not None:
                ax.axhline(value, color="k", linestyle=style, label=method.upper())
        ax.set_xlabel("training time (min)")
        ax.set_ylabel("PSNR in the brain, training slices (dB)")
        ax.set_title(condition.replace("_", " ") + "% noise")
        ax.set_ylim(bottom=28)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(folder: Path, target: Path) -> None:
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json")) if p.name != "inference_speed.json"]
    screens = [r for r in runs if r["name"].startswith("screen")]
    mains = [r for r in runs if r["name"].startswith("main_")]
    base = next((r for r in screens if r["recipe"] == SCREEN_BASE), None)
    base_settings = base["settings"] if base else DEFAULT
    defaults = ", ".join(f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in base_settings.items())
    speed_path = folder / "inference_speed.json"
    speed = json.loads(speed_path.read_text()) if speed_path.is_file() else None
    lines = [START, "## Time to quality (issue 8)", ""]
    if mains or speed:
        lines += ["### Targets", "", *_targets(mains, speed), ""]
    if screens:
        minutes = sorted({r["minutes"] for r in screens})
        lines += [
            "### Levers, at equal wall-clock",
            "",
            f"    python -m benchmarks.time_to_quality run --recipe <recipe> --minutes {minutes[0]:g} --threads 1 --name screen_<recipe>",
            "",
            (f"{minutes[0]:g} minutes of training each, one thread, two runs side by side; 6% Gaussian; PSNR of the EMA weights in the brain"
            f" on the 10 evaluation training slices, no flips (held-out: the 10 slices never trained on). Base recipe ({SCREEN_BASE}): {defaults}."),
            "",
            *_screen_table(screens),
            "",
        ]
    if mains:
        lines += [
            "### PSNR against training time",
            "",
            "    python -m benchmarks.time_to_quality run --recipe <recipe> --condition <condition> --minutes <m> --threads <t> [--init bundle/models/model.pt] --name main_<...>",
            "",
            ("BM3D and NLM: the full benchmark's values on the same slices (BM3D with the true sigma)."
            " 'first above': training minutes until the curve (evaluated 10 times per run, no flips) first passes the line."),
            "",
            *_main_table(mains),
            "",
        ]
        if _figure(mains, target.parent / "figures" / "time_to_quality.png"):
            lines += ["![time to quality](figures/time_to_quality.png)", ""]
    if speed:
        lines += ["### Inference time (bundle defaults)", "", "    python -m benchmarks.inference_speed", "", *_speed_table(speed), ""]
    lines.append(END)
    write_section(target, lines)
