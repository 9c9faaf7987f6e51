"""Inference time of the bundle's defaults on a 256x256x100 volume, on this machine (issue 8).

    python -m benchmarks.inference_speed [--threads 2]

The volume is the benchmark's (:func:`benchmarks.common.speed_volume`: 100 MNI T1 slices padded to
256x256, 6% Gaussian noise). Timed: the whole :class:`c2s_monai.C2SInferer` call (scaling,
padding, the network, flips) with the bundle's ``flips``, ``slice_batch`` and
``autocast_dtype`` (``bundle/configs/inference.json``), and the same with 4 flips and in
float32, best of ``--repeats`` after one warm-up call. The CPU model and whether ``"auto"``
chose bfloat16 are recorded beside the times: the budget depends on the hardware. Result:
``benchmarks/results/ttq/inference_speed.json`` (read by the time-to-quality report).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from benchmarks.common import TTQ_RESULTS, speed_volume
from c2s_monai.inferers import C2SInferer
from c2s_monai.networks import NoiseConditionedUNet
from c2s_monai.precision import autocast_dtype, native_bfloat16

COMMON = Path("bundle/configs/inference.json")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _best_seconds(call, repeats: int) -> float:
    call()  # warm-up: allocations, oneDNN kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    common = json.loads(COMMON.read_text())
    flips, slice_batch, precision = common["flips"], common["slice_batch"], common["autocast_dtype"]
    _, volume = speed_volume()
    network = NoiseConditionedUNet(features=common["features"]).eval()
    result = {
        "volume": "256x256x100",
        "threads": threads,
        "cpu": _cpu_model(),
        "native_bfloat16": native_bfloat16("cpu"),
        "bundle_defaults": {"flips": flips, "slice_batch": slice_batch, "autocast_dtype": precision},
        "auto_resolves_to": str(autocast_dtype("auto", "cpu") or torch.float32).replace("torch.", ""),
        "seconds": {},
    }
    settings = {
        f"flips {flips}, {precision} (bundle default)": (flips, precision),
        f"flips 4, {precision}": (4, precision),
        f"flips {flips}, float32": (flips, "float32"),
    }
    for label, (n_flips, dtype) in settings.items():
        inferer = C2SInferer(sigma_data=0.06, flips=n_flips, slice_batch=slice_batch, autocast_dtype=dtype)
        with torch.inference_mode():
            result["seconds"][label] = round(_best_seconds(lambda inferer=inferer: inferer(volume, network), repeats), 2)
        print(label, result["seconds"][label], "s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    result = measure(args.threads, args.repeats)
    TTQ_RESULTS.mkdir(parents=True, exist_ok=True)
    (TTQ_RESULTS / "inference_speed.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
