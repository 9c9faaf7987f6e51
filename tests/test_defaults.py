"""One definition of every default (c2s_monai.defaults): the bundle, API, inferer, engine, loss and MONAI Label agree."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from c2s_monai import C2SInferer, GDSMLoss, api, defaults
from c2s_monai.data import patch_transforms, training_loader
from c2s_monai.engines import GDSMIteration, create_trainer
from c2s_monai.inferers import FLIP_ENSEMBLES
from c2s_monai.noise_level import resolve_noise_level
from c2s_monai.transforms import ResolveNoiseLeveld, ScaleNoisyImage

BUNDLE = Path(__file__).resolve().parents[1] / "bundle"

# bundle key -> the default it must equal
COMMON_KEYS = {
    "sigma_data": defaults.SIGMA_DATA,
    "noise_model": defaults.NOISE_MODEL,
    "num_coils": defaults.NUM_COILS,
    "sigma_map": defaults.SIGMA_MAP,
    "spatial_dims": defaults.SPATIAL_DIMS,
    "context_slices": defaults.CONTEXT_SLICES,
    "slice_axis": defaults.SLICE_AXIS,
    "features": list(defaults.FEATURES),
    "conditioning": defaults.CONDITIONING,
    "flips": defaults.FLIPS,
    "slice_batch": defaults.SLICE_BATCH,
    "roi_size": list(defaults.ROI_SIZE),
    "intensity_percentile": defaults.INTENSITY_PERCENTILE,
    "autocast_dtype": defaults.AUTOCAST_DTYPE,
    "backend": defaults.BACKEND,
    "h5_key": defaults.H5_KEY,
}
TRAIN_KEYS = {
    "batch_size": defaults.BATCH_SIZE,
    "patch_size": defaults.PATCH_SIZE,
    "learning_rate": defaults.LEARNING_RATE,
    "warmup_iterations": defaults.WARMUP_ITERATIONS,
    "ema_momentum": defaults.EMA_MOMENTUM,
    "tau_max": defaults.TAU_MAX,
    "sigma_target_ratio": defaults.SIGMA_TARGET_RATIO,
    "weight_exponent": defaults.WEIGHT_EXPONENT,
    "max_weight": defaults.MAX_WEIGHT,
    "tau_sampling": defaults.TAU_SAMPLING,
    "context_dropout": defaults.CONTEXT_DROPOUT,
}

# callable -> {parameter: the default it must have}
SIGNATURES = {
    C2SInferer: {
        "sigma_data": defaults.SIGMA_DATA, "flips": defaults.FLIPS, "slice_batch": defaults.SLICE_BATCH,
        "roi_size": defaults.ROI_SIZE, "overlap": defaults.OVERLAP, "percentile": defaults.INTENSITY_PERCENTILE,
        "autocast_dtype": defaults.AUTOCAST_DTYPE, "context_slices": defaults.CONTEXT_SLICES, "slice_axis": defaults.SLICE_AXIS,
        "volume_roi_size": defaults.VOLUME_ROI_SIZE, "check_noise": defaults.CHECK_NOISE, "backend": defaults.BACKEND,
        "noise_model": defaults.NOISE_MODEL, "num_coils": defaults.NUM_COILS, "sigma_map": defaults.SIGMA_MAP,
    },
    api.train: {
        "sigma_data": defaults.SIGMA_DATA, "noise_model": defaults.NOISE_MODEL, "patch_size": defaults.PATCH_SIZE,
        "batch_size": defaults.BATCH_SIZE, "learning_rate": defaults.LEARNING_RATE, "warmup_iterations": defaults.WARMUP_ITERATIONS,
        "ema_momentum": defaults.EMA_MOMENTUM, "features": defaults.FEATURES, "conditioning": defaults.CONDITIONING,
        "tau_max": defaults.TAU_MAX, "sigma_target_ratio": defaults.SIGMA_TARGET_RATIO, "max_weight": defaults.MAX_WEIGHT,
        "autocast_dtype": defaults.AUTOCAST_DTYPE, "context_slices": defaults.CONTEXT_SLICES,
        "spatial_dims": defaults.SPATIAL_DIMS, "slice_axis": defaults.SLICE_AXIS, "context_dropout": defaults.CONTEXT_DROPOUT,
        "num_coils": defaults.NUM_COILS, "sigma_map": defaults.SIGMA_MAP,
    },
    api.denoise: {
        "sigma_data": defaults.SIGMA_DATA, "flips": defaults.FLIPS, "autocast_dtype": defaults.AUTOCAST_DTYPE,
        "context_slices": defaults.CONTEXT_SLICES,
    },
    api.denoise_subject: {"sigma_data": defaults.SIGMA_DATA, "flips": defaults.FLIPS, "autocast_dtype": defaults.AUTOCAST_DTYPE},
    create_trainer: {
        "learning_rate": defaults.LEARNING_RATE, "warmup_iterations": defaults.WARMUP_ITERATIONS,
        "ema_momentum": defaults.EMA_MOMENTUM, "autocast_dtype": defaults.AUTOCAST_DTYPE,
    },
    GDSMIteration: {"autocast_dtype": defaults.AUTOCAST_DTYPE},
    ResolveNoiseLeveld: {"noise_model": defaults.NOISE_MODEL, "num_coils": defaults.NUM_COILS, "sigma_map": defaults.SIGMA_MAP},
    training_loader: {"noise_model": defaults.NOISE_MODEL, "num_coils": defaults.NUM_COILS, "sigma_map": defaults.SIGMA_MAP},
    resolve_noise_level: {"noise_model": defaults.NOISE_MODEL, "num_coils": defaults.NUM_COILS},
    GDSMLoss: {
        "tau_max": defaults.TAU_MAX, "sigma_target_ratio": defaults.SIGMA_TARGET_RATIO, "weight_exponent": defaults.WEIGHT_EXPONENT,
        "max_weight": defaults.MAX_WEIGHT, "noise_model": defaults.RECORRUPTION, "tau_sampling": defaults.TAU_SAMPLING,
    },
    patch_transforms: {
        "patch_size": defaults.PATCH_SIZE, "patches_per_volume": defaults.BATCH_SIZE, "context_dropout": defaults.CONTEXT_DROPOUT,
    },
    ScaleNoisyImage: {"sigma_data": defaults.SIGMA_DATA, "percentile": defaults.INTENSITY_PERCENTILE},
}


@pytest.mark.parametrize(
    "config, expected",
    [
        ("inference.json", COMMON_KEYS),
        ("train.json", {**{k: v for k, v in COMMON_KEYS.items() if k != "backend"}, **TRAIN_KEYS}),  # validation runs eager torch
    ],
)
def test_the_bundle_holds_the_package_defaults(config, expected):
    content = json.loads((BUNDLE / "configs" / config).read_text())
    differing = {key: (content.get(key), value) for key, value in expected.items() if content.get(key) != value}
    assert not differing, f"bundle/configs/{config} differs from c2s_monai.defaults (bundle, package): {differing}"


@pytest.mark.parametrize("function", list(SIGNATURES), ids=lambda f: f.__qualname__)
def test_every_entry_point_takes_its_defaults_from_the_one_definition(function):
    parameters = inspect.signature(function).parameters
    differing = {
        name: (parameters[name].default, value)
        for name, value in SIGNATURES[function].items()
        if name not in parameters or parameters[name].default != value
    }
    assert not differing, f"{function.__qualname__}: defaults differ from c2s_monai.defaults (signature, defaults): {differing}"


def test_the_monai_label_task_denoises_with_the_defaults():
    pytest.importorskip("monailabel")
    from c2s_monai.monailabel_adapter.task import BundleDenoiseTask

    inferer = BundleDenoiseTask(BUNDLE).inferer({})
    assert inferer.flips == FLIP_ENSEMBLES[defaults.FLIPS]
    assert inferer.autocast_setting == defaults.AUTOCAST_DTYPE
    assert inferer.slice_batch == defaults.SLICE_BATCH
    assert (inferer.noise_model, inferer.num_coils, inferer.sigma_map) == (defaults.NOISE_MODEL, defaults.NUM_COILS, defaults.SIGMA_MAP)


def test_inferer_and_engine_accept_the_same_precisions():
    for bad in ("float16", "half"):
        with pytest.raises(ValueError, match="autocast_dtype"):
            C2SInferer(autocast_dtype=bad)
        with pytest.raises(ValueError, match="autocast_dtype"):
            GDSMIteration(autocast_dtype=bad)
    for good in ("float32", "bfloat16", "auto"):
        C2SInferer(autocast_dtype=good)
        GDSMIteration(autocast_dtype=good)


def test_the_bundle_names_outputs_by_the_package_rule():
    from c2s_monai import naming

    inference = json.loads((BUNDLE / "configs" / "inference.json").read_text())
    assert inference["output_postfix"] == naming.DENOISED_POSTFIX
