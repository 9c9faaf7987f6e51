from c2s_monai.engines.trainer import GDSMIteration, create_trainer

__all__ = ["GDSMIteration", "create_trainer"]
