"""The one definition of every user-facing default.

The Python API (:mod:`c2s_monai.api`), the CLI (through the API), :class:`~c2s_monai.C2SInferer`,
the training engine (:func:`~c2s_monai.engines.create_trainer`, :class:`~c2s_monai.engines.GDSMIteration`),
:class:`~c2s_monai.GDSMLoss`, the data pipeline and the MONAI Label task (through the bundle)
read their defaults from here; the bundle's ``configs/inference.json`` and ``configs/train.json``
hold the same values as plain JSON, and ``tests/test_defaults.py`` checks that they agree.
Where a value comes from a measurement, the comment names the page that shows it.

>>> from c2s_monai import defaults
>>> defaults.FLIPS, defaults.AUTOCAST_DTYPE, defaults.AUTO_CONTEXT_SLICES
(1, 'auto', 2)
"""

from __future__ import annotations

# A setting that the data or the device decides (documented where it is read).
AUTO = "auto"

# ------------------------------------------------------------------------------- inference
# Noise std in the image's units, or how to estimate it (c2s_monai.estimation).
SIGMA_DATA = AUTO
# One forward pass per slice: the 10 s budget for a 256x256x100 volume on 2 CPU cores
# (4 flips: +0.2 dB for 4x the time; docs/benchmarks.md).
FLIPS = 1
# bfloat16 autocast where the device has native bfloat16 units, float32 elsewhere
# (c2s_monai.precision); the same for training and inference (docs/benchmarks.md, time to quality).
AUTOCAST_DTYPE = AUTO
# Which engine runs the network: eager torch, or ONNX Runtime where it pays (c2s_monai.inferers).
BACKEND = AUTO
SLICE_BATCH = 8
# In-plane size above which a 2D sliding window is used, its overlap, and the 3D window.
ROI_SIZE = (256, 256)
OVERLAP = 0.25
VOLUME_ROI_SIZE = (96, 96, 96)
# Intensity-scale percentile (c2s_monai.intensity.intensity_scale).
INTENSITY_PERCENTILE = 99.5
# The HDF5 dataset read from fastMRI/M4Raw-style files (c2s_monai.io.readers).
H5_KEY = "reconstruction_rss"
# The data's observation model: "auto" decides per volume (magnitude with an air background: the
# VST of its Rician or noncentral-chi model; signed data: Gaussian), c2s_monai.noise_level.
NOISE_MODEL = AUTO
# Coils of a root-sum-of-squares magnitude (noncentral chi); "auto" estimates them from the background.
NUM_COILS = AUTO
# One noise level per volume ("none"), a per-voxel map estimated from the data ("auto"), or a map file.
SIGMA_MAP = "none"
# Measure the noise correlation of every volume (c2s_monai.context.check_noise_independence).
CHECK_NOISE = True

# ------------------------------------------------------------------------- the third dimension
# "auto": the network's own context (inference) or AUTO_CONTEXT_SLICES (training), falling back
# to 2D for a single image; an integer is an explicit request (c2s_monai.context).
CONTEXT_SLICES = AUTO
# K slices on each side of the target (docs/benchmarks.md, "Volumetric").
AUTO_CONTEXT_SLICES = 2
# "auto": the spatial axis of largest voxel spacing.
SLICE_AXIS = AUTO
SPATIAL_DIMS = 2
# Probability that a training patch's context channels are zeroed, so a context network also
# denoises a lone 2D image.
CONTEXT_DROPOUT = 0.1

# ------------------------------------------------------------------------------- the network
FEATURES = (32, 32, 64, 128, 256, 32)
CONDITIONING = "map"

# --------------------------------------------------------------------- the loss (docs/method.md section 3)
# The re-corruption of the GDSM loss: Gaussian (magnitude data are stabilised first, NOISE_MODEL).
RECORRUPTION = "gaussian"
TAU_MAX = 1.0
SIGMA_TARGET_RATIO = 0.0
WEIGHT_EXPONENT = 0.0
MAX_WEIGHT = 4.0
TAU_SAMPLING = "tau"

# -------------------------------------------------------------- the training recipe (docs/benchmarks.md)
LEARNING_RATE = 8e-3
WARMUP_ITERATIONS = 200
EMA_MOMENTUM = 0.001
PATCH_SIZE = 96
BATCH_SIZE = 8
