"""The "Parallel imaging" section of docs/benchmarks.md, from the results of :mod:`benchmarks.parallel_imaging`."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.pages import write_section

START = "<!-- parallel-imaging:start -->"
END = "<!-- parallel-imaging:end -->"
CONDITIONS = ("r3", "r2")
CONDITION_TITLES = {"r3": "R = 3 (the target)", "r2": "R = 2"}
ORDER = ("noisy", "nlm", "bm3d", "bm4d", "c2s_uniform", "c2s_true_map", "c2s_estimated_map", "supervised")
LABELS = {
    "noisy": "noisy magnitude",
    "nlm": "NLM, slice by slice, global sigma",
    "bm3d": "BM3D, slice by slice, global sigma",
    "bm4d": "BM4D on the volume, global sigma",
}
BIAS_BOUND = 0.1  # |background bias| in true sigmas
MAP_BOUND = 0.10  # the estimated map's median relative error inside the head
MAP_GAIN = 1.0  # dB of the estimated map over the uniform sigma


def _load(folder: Path) -> dict[str, dict[str, dict]]:
    results: dict[str, dict[str, dict]] = {}
    for path in sorted(folder.glob("*/*.json")):
        results.setdefault(path.parent.name, {})[path.stem] = json.loads(path.read_text())
    return results


def _cost(result: dict) -> str:
    if "train_seconds" in result:
        return f"{result['iterations']} steps, {result['train_seconds']:.0f} s training; {result['inference_seconds_slab']:.1f} s inference"
    return f"{result.get('seconds', 0):.1f} s"


def _row(name: str, result: dict) -> str:
    metrics = result["metrics"]
    flips = result.get("metrics_flips4", {}).get("psnr_mask")
    return (f"| {result.get('label', LABELS.get(name, name))} | {metrics['psnr_mask']:.2f} | {metrics['ssim_mask']:.3f} | "
            f"{metrics['psnr_image']:.2f} | {metrics['background_bias_sigma']:+.2f} | {'' if flips is None else f'{flips:.2f}'} | {_cost(result)} |")


def _described(results: dict[str, dict]) -> dict | None:
    """The condition's simulation record, the noisy row's first (it is rerun cheaply, so it has every field)."""
    ordered = [results[name] for name in ("noisy", *sorted(results)) if name in results]
    return next((r["simulation"] for r in ordered if "simulation" in r), None)


def _simulation(results: dict[str, dict[str, dict]]) -> list[str]:
    lines = [
        "**Simulation** (from the saved results)",
        "",
        "| condition | volume | sigma0 | true sigma inside the head: median (min..max) | true sigma in the air: median | g-factor inside the head: mean (min..max) | air voxels scored |",
        "|---|---|---|---|---|---|---|",
    ]
    for condition in CONDITIONS:
        described = _described(results.get(condition, {}))
        if described is None:
            continue
        low, high = described["sigma_range_head"]
        g_low, g_high = described["g_range_head"]
        air = f"{described['sigma_median_air']:.4f}" if "sigma_median_air" in described else "-"
        lines.append(
            f"| {CONDITION_TITLES[condition]} | {'x'.join(map(str, described['shape']))}, {described['coils']} coils | "
            f"{described['sigma0']:.4f} | {described['sigma_median_head']:.4f} ({low:.4f}..{high:.4f}) | {air} | "
            f"{described['g_mean_head']:.2f} ({g_low:.2f}..{g_high:.2f}) | {described['air_voxels_scored']} |"
        )
    return lines + [""]


def _table(condition: str, results: dict[str, dict]) -> list[str]:
    lines = [
        f"**{CONDITION_TITLES.get(condition, condition)}**",
        "",
        "| method | PSNR head (dB) | SSIM head | PSNR image (dB) | background bias (true sigmas) | 4 flips, PSNR head | cost (one thread) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_row(name, results[name]) for name in ORDER if name in results]
    lines += [_row(name, results[name]) for name in sorted(results) if name not in ORDER]
    return lines + [""]


def _map_estimation(results: dict[str, dict]) -> dict | None:
    for name in ("noisy", "c2s_estimated_map"):
        record = results.get(name, {}).get("map_estimation")
        if record and record.get("available", True):
            return record
    return None


def _verdict(met: bool) -> str:
    return "**met**" if met else "**not met**"


def _bias_note(described: dict | None, record: dict | None) -> list[str]:
    """Where the rows' background bias comes from: the sigma the VST's inverse is given in the air, against the true one there."""
    if described is None or "sigma_median_air" not in described or record is None or "median_ratio_air" not in record:
        return []
    uniform_ratio = described["sigma_median_head"] / described["sigma_median_air"]
    return [(f"  In the air the uniform sigma is {uniform_ratio:.2f}x the true one and the estimated map {record['median_ratio_air']:.2f}x "
             "(medians); the VST's inverse is given that sigma there, so the true-map row is the one that measures the bias the "
             "network itself leaves in the air.")]


def _targets(results: dict[str, dict[str, dict]]) -> list[str]:
    """Issue 18's targets on R = 3, judged from the saved results (a missing result is said to be)."""
    table = results.get("r3", {})
    lines = ["**Targets** (issue 18, R = 3), judged from the results above:", ""]

    def psnr(name: str) -> float | None:
        return table.get(name, {}).get("metrics", {}).get("psnr_mask")

    estimated, uniform, bm4d = psnr("c2s_estimated_map"), psnr("c2s_uniform"), psnr("bm4d")
    if estimated is None or uniform is None:
        lines.append(f"- C2S with the estimated map >= C2S with a uniform sigma + {MAP_GAIN:.0f} dB: not run "
                     f"({'estimated map' if estimated is None else 'uniform sigma'} missing).")
    else:
        gain = estimated - uniform
        lines.append(f"- C2S with the estimated map >= C2S with a uniform sigma + {MAP_GAIN:.0f} dB: {estimated:.2f} against "
                     f"{uniform:.2f} dB, {gain:+.2f} dB, {_verdict(gain >= MAP_GAIN)}.")
    if estimated is None or bm4d is None:
        lines.append("- C2S with the estimated map >= BM4D: not run "
                     f"({'estimated map' if estimated is None else 'BM4D'} missing).")
    else:
        lines.append(f"- C2S with the estimated map >= BM4D: {estimated:.2f} against {bm4d:.2f} dB, {estimated - bm4d:+.2f} dB, "
                     f"{_verdict(estimated >= bm4d)}.")
    record = _map_estimation(table)
    if record is None:
        lines.append(f"- The estimated map within {MAP_BOUND:.0%} of the true one (median relative error inside the head): not run "
                     "(`c2s_monai.estimation.estimate_noise_map` was not available).")
    else:
        error = record["median_relative_error"]
        lines.append(f"- The estimated map within {MAP_BOUND:.0%} of the true one (median relative error inside the head): "
                     f"{error:.1%} (median ratio estimated / true {record['median_ratio']:.3f}), {_verdict(error < MAP_BOUND)}.")
    rows = [name for name in ("c2s_estimated_map", "c2s_true_map", "c2s_uniform") if name in table]
    if not rows:
        lines.append(f"- Background bias within {BIAS_BOUND} sigma: no C2S row run.")
    for name in rows:
        bias = table[name]["metrics"]["background_bias_sigma"]
        lines.append(f"- Background bias within {BIAS_BOUND} sigma, {table[name]['label']}: {bias:+.3f} sigma, "
                     f"{_verdict(abs(bias) < BIAS_BOUND)}.")
    lines += _bias_note(_described(table), record)
    if "bm4d" in table:
        noisy = table.get("noisy", {}).get("metrics", {}).get("background_bias_sigma")
        lines.append(f"  (For comparison, BM4D with the global sigma: {table['bm4d']['metrics']['background_bias_sigma']:+.3f} sigma"
                     + ("." if noisy is None else f"; the noisy magnitude: {noisy:+.3f}.") + ")")
    return lines + [""]


def write_report(folder: Path, target: Path, notes: list[str] | None = None) -> None:
    """Write the section between :data:`START` and :data:`END` of ``target``."""
    results = _load(folder)
    commits = sorted({r.get("commit", "?") for by_method in results.values() for r in by_method.values()})
    lines = [START, "## Parallel imaging: spatially varying noise (issue 18)", ""]
    lines += [
        ("Protocol (`benchmarks/parallel_imaging.py`, its docstring has the details): the MNI152 2009a T1 (1 mm, brain only, "
         "scaled to [0, 1]), the axial slab z = 62..97 cropped in-plane to 180x204 (the brain and a margin of air), each slice "
         "acquired as 2D Cartesian SENSE with `sigpy.mri.birdcage_maps` (8 coils), complex Gaussian k-space noise with a "
         "correlated coil covariance (0.25 between neighbours), regular undersampling of the phase-encode axis at R = 3 or 2 "
         "without calibration lines, and the exact SENSE unfolding (Pruessmann 1999) with the known maps and covariance. "
         "The magnitude of the reconstruction is Rician with the spatially varying sigma(x) = sigma0 sqrt(R) g(x) / "
         "sqrt(s^H Psi^-1 s): the true noise map, analytic from the unfolding (checked against pseudo-replicas in "
         "`tests/test_parallel_imaging_benchmark.py`). sigma0 is set per condition so the map's median inside the head is "
         "5% of the max. Scored: slab slices 2, 6, ..., 34 (every 4th; the supervised bound has the others as targets), "
         "PSNR and SSIM inside `clean > 0.1`, PSNR over the whole image, and the background bias: the mean of the output in the "
         "air (`clean == 0`, more than 5 voxels from the head) in units of the local true sigma (the Rician noise alone: "
         "sqrt(pi/2) = 1.25). Classical methods and the uniform C2S get one global sigma, the median of the true map inside the "
         "head. C2S: the bundle's network and recipe, 2.5D K = 2, the Rician VST (`noise_model=\"rician\"`), 600 steps of 8 "
         "patches 96x96, one thread, trained on the noisy slab it denoises; with a map, the patches carry it and the inferer "
         "is given it (`sigma_map=`). The estimated map: `c2s_monai.estimation.estimate_noise_map` of the noisy magnitude. "
         f"Results at commit(s) {', '.join(commits) or '-'}."),
        "",
        "Commands: `python -m benchmarks.parallel_imaging run --condition r3`, `python -m benchmarks.parallel_imaging run "
        "--condition r2` (resumable: a rerun skips the saved results), `python -m benchmarks.parallel_imaging report`.",
        "",
    ]
    lines += _simulation(results)
    for condition in CONDITIONS:
        if condition in results:
            lines += _table(condition, results[condition])
            record = _map_estimation(results[condition])
            if record is not None:
                air = f"; in the air, median ratio {record['median_ratio_air']:.3f}" if "median_ratio_air" in record else ""
                lines += [f"Estimated noise map, {CONDITION_TITLES[condition]}: median relative error inside the head "
                          f"{record['median_relative_error']:.1%}, median ratio estimated / true {record['median_ratio']:.3f}{air}.", ""]
    lines += _targets(results)
    older = [f"{condition}/{name}" for condition, by_method in sorted(results.items()) for name, result in sorted(by_method.items())
             if result.get("api") == "rician_vst"]
    if older:
        lines += [(f"Run on the checkout before the noise-map API (the loader's and inferer's `rician_vst` flag; the supervised bound "
                   f"trains without a VST either way): {', '.join(older)}."), ""]
    lines += list(notes or [])
    lines.append(END)
    write_section(target, lines)
