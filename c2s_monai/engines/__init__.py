from c2s_monai.engines.trainer import EMAWarmup, GDSMIteration, create_trainer, latest_checkpoint

__all__ = ["EMAWarmup", "GDSMIteration", "create_trainer", "latest_checkpoint"]
