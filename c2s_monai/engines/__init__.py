from c2s_monai.engines.random_state import RandomState
from c2s_monai.engines.trainer import GDSMIteration, checkpoint_handler, create_trainer

__all__ = ["GDSMIteration", "RandomState", "checkpoint_handler", "create_trainer"]
