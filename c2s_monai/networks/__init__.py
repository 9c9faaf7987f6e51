from c2s_monai.networks.nets import (
    CONDITIONINGS,
    FiLM,
    FiLMBasicUNet,
    NoiseConditionedUNet,
)

__all__ = ["CONDITIONINGS", "FiLM", "FiLMBasicUNet", "NoiseConditionedUNet"]
