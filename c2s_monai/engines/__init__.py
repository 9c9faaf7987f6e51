from c2s_monai.engines.trainer import GDSMIteration

__all__ = ["GDSMIteration"]
