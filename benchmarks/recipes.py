"""The training recipes of the time-to-quality study (issue 8): read by its driver and its report.

A *recipe* is a named set of training settings: :data:`DEFAULT` changed by one entry of
:data:`RECIPES` (:func:`recipe_settings`). :mod:`benchmarks.time_to_quality` trains with them;
:mod:`benchmarks.ttq_report` names what each screened recipe changes.
"""

from __future__ import annotations

# The recipe levers. "default" is the bundle's recipe before issue 8 (0.3.0); every other entry
# changes it. "c2s_lr8e-3" is the bundle's recipe since (0.4.0: the screens' winners); "c2s" (Adam
# 4e-3, the shipped checkpoint's), "supervised" and the fine-tuning recipes are the main curves'.
DEFAULT = {
    "method": "c2s",
    "learning_rate": 2e-3,
    "warmup_iterations": 200,
    "ema_momentum": 0.001,
    "autocast_dtype": "float32",
    "patch_size": 96,
    "batch_size": 8,
    "features": (32, 32, 64, 128, 256, 32),
    "loss": {},
}
RECIPES: dict[str, dict] = {
    "default": {},
    "bf16": {"autocast_dtype": "bfloat16"},
    "bf16_lr4e-3": {"autocast_dtype": "bfloat16", "learning_rate": 4e-3},
    "bf16_lr1e-3": {"autocast_dtype": "bfloat16", "learning_rate": 1e-3},
    "bf16_ema3e-3": {"autocast_dtype": "bfloat16", "ema_momentum": 3e-3},
    "bf16_weight16": {"autocast_dtype": "bfloat16", "loss": {"max_weight": 16.0}},
    "bf16_small_tau": {"autocast_dtype": "bfloat16", "loss": {"tau_sampling": "tau_squared"}},
    "bf16_taumax2": {"autocast_dtype": "bfloat16", "loss": {"tau_max": 2.0}},
    "bf16_patch64_b16": {"autocast_dtype": "bfloat16", "patch_size": 64, "batch_size": 16},
    "bf16_patch128_b4": {"autocast_dtype": "bfloat16", "patch_size": 128, "batch_size": 4},
    "bf16_width16": {"autocast_dtype": "bfloat16", "features": (16, 16, 32, 64, 128, 16)},
    "bf16_lr4e-3_weight16": {"autocast_dtype": "bfloat16", "learning_rate": 4e-3, "loss": {"max_weight": 16.0}},
    "bf16_lr8e-3": {"autocast_dtype": "bfloat16", "learning_rate": 8e-3},
    "bf16_lr8e-3_patch64_b16": {"autocast_dtype": "bfloat16", "learning_rate": 8e-3, "patch_size": 64, "batch_size": 16},
    "bf16_lr8e-3_patch128_b4": {"autocast_dtype": "bfloat16", "learning_rate": 8e-3, "patch_size": 128, "batch_size": 4},
    "bf16_lr8e-3_width16": {"autocast_dtype": "bfloat16", "learning_rate": 8e-3, "features": (16, 16, 32, 64, 128, 16)},
    "bf16_lr8e-3_width48": {"autocast_dtype": "bfloat16", "learning_rate": 8e-3, "features": (48, 48, 96, 192, 384, 48)},
    "supervised_bf16": {"method": "supervised", "autocast_dtype": "bfloat16"},
    "c2s": {"autocast_dtype": "auto", "learning_rate": 4e-3},
    "c2s_lr8e-3": {"autocast_dtype": "auto", "learning_rate": 8e-3},
    "supervised": {"method": "supervised", "autocast_dtype": "auto", "learning_rate": 4e-3},
    "finetune": {"autocast_dtype": "auto", "learning_rate": 1e-3, "warmup_iterations": 20},
    "finetune_lr4e-3": {"autocast_dtype": "auto", "learning_rate": 4e-3, "warmup_iterations": 20},
}


def recipe_settings(name: str) -> dict:
    if name not in RECIPES:
        raise SystemExit(f"unknown recipe {name!r}; one of {sorted(RECIPES)}")
    return {**DEFAULT, **RECIPES[name]}
