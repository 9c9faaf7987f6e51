"""Magnitude data with the default settings (issue 18): is the background bias gone?

    python -m benchmarks.magnitude run       # the shipped checkpoint, default settings against noise_model "gaussian"
    python -m benchmarks.magnitude report    # the section of docs/benchmarks.md

Protocol. Clean reference: the MNI152 2009a T1 (nilearn, 1 mm), scaled to a peak of 1, the axial
slab z = 40..139 (197x233x100 voxels, the model card's slab). Noise, one seeded draw per condition
(``c2s_monai.noise.add_noise``): Rician ``|x + s (n1 + i n2)|`` at s = 3, 6 and 10% of the peak,
and the root-sum-of-squares magnitude of 8 coils (noncentral chi, 16 degrees of freedom) at 6%
per channel. Each volume is denoised by the shipped checkpoint (``bundle/models/model.pt``)
through :func:`c2s_monai.denoise`'s path (:class:`c2s_monai.C2SInferer` with the package defaults:
``sigma_data``, ``noise_model`` and ``num_coils`` all ``"auto"``, 1 flip), and again with
``noise_model="gaussian"`` (the 0.7 default: no VST).

Scores: the **background bias**, the mean of the denoised image in the air (clean == 0, at least
5 voxels from any tissue) in units of the true sigma (target: within 0.1 of 0, the true level);
PSNR (peak 1) inside the head (clean > 0.1) and over the whole slab; what "auto" chose and why.
Results: ``benchmarks/results/magnitude/<condition>.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import binary_dilation

from benchmarks.common import current_commit, write_json
from benchmarks.magnitude_report import write_report
from c2s_monai.api import load_network
from c2s_monai.inferers import C2SInferer, denoising_record
from c2s_monai.io.sample_data import mni152_t1_path
from c2s_monai.noise import add_noise
from c2s_monai.vst import expected_forward_at_zero, magnitude_vst

RESULTS = Path("benchmarks/results/magnitude")
MODEL = Path("bundle/models/model.pt")
SLAB = (40, 140)
CONDITIONS = {"rician_3": ("rician", 0.03, 1), "rician_6": ("rician", 0.06, 1), "rician_10": ("rician", 0.10, 1), "chi8_6": ("noncentral_chi", 0.06, 8)}
AIR_MARGIN = 5  # voxels between the air scored and any tissue


def make_volume(condition: str) -> tuple[np.ndarray, np.ndarray, float, int]:
    """``(clean, noisy, sigma, coils)`` of ``condition``, (x, y, z) float32."""
    import nibabel as nib

    clean = np.asarray(nib.load(str(mni152_t1_path())).dataobj, dtype=np.float32)[..., SLAB[0] : SLAB[1]]
    clean = clean / clean.max()
    model, sigma, coils = CONDITIONS[condition]
    generator = torch.Generator().manual_seed(sorted(CONDITIONS).index(condition))
    noisy = add_noise(torch.from_numpy(clean), sigma, model, generator, num_coils=coils).numpy()
    return clean, noisy, sigma, coils


def _psnr(estimate: np.ndarray, clean: np.ndarray, mask: np.ndarray | None = None) -> float:
    error = (estimate - clean)[mask] if mask is not None else estimate - clean
    return float(10 * np.log10(1.0 / np.mean(error**2)))


def score(estimate: np.ndarray, clean: np.ndarray, sigma: float) -> dict[str, float]:
    air = ~binary_dilation(clean > 0, iterations=AIR_MARGIN)
    return {
        "background_bias_sigma": float(estimate[air].mean() / sigma),
        "air_voxels": int(air.sum()),
        "psnr_head": _psnr(estimate, clean, clean > 0.1),
        "psnr_whole": _psnr(estimate, clean),
    }


def run(condition: str, threads: int = 2) -> dict:
    torch.set_num_threads(threads)
    clean, noisy, sigma, coils = make_volume(condition)
    network = load_network(MODEL)
    result: dict = {"condition": condition, "sigma": sigma, "num_coils_true": coils, "model": str(MODEL), "commit": current_commit()}
    result["noisy"] = score(noisy, clean, sigma)
    for label, settings in (("default", {}), ("gaussian", {"noise_model": "gaussian"})):
        started = time.perf_counter()
        output = C2SInferer(**settings)(torch.from_numpy(noisy)[None, None], network)
        seconds = time.perf_counter() - started
        record = denoising_record(output)
        result[label] = {
            **score(output[0, 0].numpy(), clean, sigma),
            "seconds": round(seconds, 2),
            "sigma_data": record["sigma_data"],
            "sigma_source": record["sigma_source"],
            "noise": record.get("noise"),
        }
        print(f"{condition} {label}: {result[label]}", flush=True)
    result["default"]["stabilised_air"] = stabilised_air(noisy, clean, network, result["default"])
    return result


def stabilised_air(noisy: np.ndarray, clean: np.ndarray, network, default: dict) -> dict[str, float]:
    """Where the default's background bias comes from: the network's output ``D`` on the stabilised volume, in the air.

    ``D`` should equal ``E[f(m) | 0]`` there (then the unbiased inverse gives 0); its mean offset and
    spread are in units of sigma (the exact inverse is flat at 0, so a spread ``s`` alone gives a
    bias of about ``0.6 sqrt(s)`` sigma; docs/benchmarks.md).
    """
    noise = default["noise"]
    sigma, coils = default["sigma_data"], int(noise["num_coils"])
    stabilised = magnitude_vst(noisy, sigma, coils)
    inferer = C2SInferer(sigma_data=sigma, noise_model="gaussian")
    output = inferer(torch.from_numpy(stabilised)[None, None], network)[0, 0].numpy()
    air = ~binary_dilation(clean > 0, iterations=AIR_MARGIN)
    offset = (output[air] - expected_forward_at_zero(coils) * sigma) / sigma
    return {"offset_mean_sigma": float(offset.mean()), "offset_std_sigma": float(offset.std())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("run", help="denoise every condition (skips those with results)")
    run_parser.add_argument("--condition", nargs="*", default=list(CONDITIONS))
    run_parser.add_argument("--threads", type=int, default=2)
    run_parser.add_argument("--again", action="store_true", help="rerun conditions that have results")
    commands.add_parser("report", help="write the section of docs/benchmarks.md")
    args = parser.parse_args()
    if args.command == "run":
        for condition in args.condition:
            path = RESULTS / f"{condition}.json"
            if path.exists() and not args.again:
                print(f"{path}: exists, skipped")
                continue
            write_json(path, run(condition, args.threads))
    write_report(RESULTS, Path("docs/benchmarks.md"))
    print(json.dumps({p.stem: json.loads(p.read_text())["default"]["background_bias_sigma"] for p in sorted(RESULTS.glob("*.json"))}))


if __name__ == "__main__":
    main()
