"""Compare noise-conditioning designs of NoiseConditionedUNet at an equal iteration budget.

Setting (docs/benchmarks.md, top): MNI152 T1 from nilearn scaled to [0, 1], 50 axial slices
(z = 40..138 step 2), Gaussian noise std 0.06, fixed seed; C2S trains on the noisy slices only
with the package's defaults; PSNR (peak 1) inside ``clean > 0.1`` on every fifth slice, EMA
weights, no flip ensembling.

    python -m benchmarks.conditioning --iterations 600 --designs map film map+film
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from c2s_monai import denoise, train
from c2s_monai.io.sample_data import noisy_mni152_slices


def psnr_in_mask(estimate: np.ndarray, clean: np.ndarray, mask: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((estimate[mask] - clean[mask]) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=600)
    parser.add_argument("--designs", nargs="+", default=["map", "film", "map+film"])
    parser.add_argument("--sigma", type=float, default=0.06)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/conditioning.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clean, noisy = noisy_mni152_slices(args.sigma, "gaussian", seed=0)
    evaluation = slice(0, None, 5)
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    with tempfile.TemporaryDirectory() as folder:
        noisy_path = Path(folder) / "noisy.nii.gz"
        nib.save(nib.Nifti1Image(np.moveaxis(noisy, 0, -1), np.eye(4)), noisy_path)
        mask = clean[evaluation] > 0.1
        results["noisy"] = psnr_in_mask(noisy[evaluation], clean[evaluation], mask)
        for design in args.designs:
            start = time.perf_counter()
            model = train([noisy_path], Path(folder) / design, sigma_data=args.sigma, epochs=args.iterations // 100,
                          iterations_per_epoch=100, conditioning=design, progress=False)
            seconds = time.perf_counter() - start
            output = denoise(noisy_path, model, Path(folder) / f"{design}.nii.gz", sigma_data=args.sigma, flips=1)
            denoised = np.moveaxis(np.asarray(nib.load(output).dataobj), -1, 0)
            results[design] = {
                "psnr": psnr_in_mask(denoised[evaluation], clean[evaluation], mask),
                "iterations": args.iterations,
                "train_seconds": round(seconds, 1),
                "threads": args.threads,
            }
            print(design, results[design], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
