"""Command line: ``c2s-monai demo|train|denoise|estimate-sigma`` (``python -m c2s_monai ...``).

    c2s-monai demo --output_dir runs/demo

    c2s-monai train scans/*.nii.gz --output_dir runs/t1 --epochs 20
    c2s-monai denoise scan.nii.gz --model runs/t1/model.pt
    c2s-monai estimate-sigma scan.nii.gz --method background
"""

from __future__ import annotations

import logging

import fire

from c2s_monai.api import denoise, train
from c2s_monai.estimation import estimate_sigma
from c2s_monai.io import default_output_path, load_volume
from c2s_monai.sample_data import dipy_s0_path


def _train(*files: str, output_dir: str = "runs/c2s", **options):
    """Train on noisy NIfTI files; every keyword of ``c2s_monai.train`` is an option."""
    return str(train(list(files), output_dir, **options))


def _denoise(*files: str, model: str, output_dir: str | None = None, **options):
    """Denoise each file with the weights ``model``; writes ``<name>_denoised.nii.gz``."""
    return [str(denoise(f, model, default_output_path(f, output_dir), **options)) for f in files]


def _estimate_sigma(file: str, method: str = "mad") -> float:
    """Print the noise std of ``file`` in its own units (``mad`` or ``background``)."""
    return estimate_sigma(load_volume(file)[0], method)


def _demo(output_dir: str = "runs/demo", epochs: int = 3, **options):
    """Train briefly on dipy's real noisy ``S0_10slices`` scan, then denoise it into ``output_dir``."""
    scan = dipy_s0_path()
    options = {"patch_size": 64, "iterations_per_epoch": 100, **options}
    model = train([scan], output_dir, epochs=epochs, **options)
    return str(denoise(scan, model, default_output_path(scan, output_dir)))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    fire.Fire({"demo": _demo, "train": _train, "denoise": _denoise, "estimate-sigma": _estimate_sigma})


if __name__ == "__main__":
    main()
