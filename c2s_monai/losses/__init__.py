from c2s_monai.losses.gdsm import GDSMLoss, gdsm_coefficients

__all__ = ["GDSMLoss", "gdsm_coefficients"]
