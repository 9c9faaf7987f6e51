"""The methods of the benchmark: C2S, its ablations, the self-supervised peers and the bound.

A learned method is a loss over the shared :class:`~c2s_monai.networks.NoiseConditionedUNet`
(deepinv's pattern: swapping the training signal is one argument), plus how its network is
wrapped for training and how it is run at inference. Classical methods live in
:mod:`benchmarks.classical`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from benchmarks.peers import (
    Neighbor2NeighborLoss,
    Noise2SelfLoss,
    Noisier2NoiseLoss,
    Recorrupted2RecorruptedLoss,
    SupervisedLoss,
    UnconditionedNetwork,
)
from c2s_monai.losses import GDSMLoss


class PeerInference(nn.Module):
    """Expose a loss' inference rule as a network ``(B, C + 1, H, W) -> (B, 1, H, W)`` for ``C2SInferer``."""

    def __init__(self, loss: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.loss = loss
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = x[:, -1].flatten(1).mean(dim=1)
        return self.loss.denoise(self.network, x[:, :-1], sigma)


@dataclass(frozen=True)
class LearnedMethod:
    """A training signal over the shared network.

    Attributes:
        label: the name in tables.
        make_loss: builds the loss for a noise model (``"gaussian"``/``"rician"``).
        unconditioned: train and run the network told a constant level (C2S ablation).
        supervised: the training file also holds the clean image (last channel).
        sigma: ``"known"`` or an estimator name used for ``sigma_data``.
        uses_rule: inference through the loss' own ``denoise`` rule (peers).
        rician_vst: the package's ``rician_vst`` option: train and denoise on the variance-stabilised
            data (Gaussian GDSM there), map the output back with the exact unbiased inverse.
    """

    label: str
    make_loss: Callable[[str], nn.Module]
    unconditioned: bool = False
    supervised: bool = False
    sigma: str = "known"
    uses_rule: bool = False
    rician_vst: bool = False

    def training_network(self, network: nn.Module) -> nn.Module:
        return UnconditionedNetwork(network, level=0.1) if self.unconditioned else network

    def inference_network(self, loss: nn.Module, network: nn.Module) -> nn.Module:
        return PeerInference(loss, network) if self.uses_rule else network


LEARNED: dict[str, LearnedMethod] = {
    "c2s": LearnedMethod("C2S", lambda noise: GDSMLoss()),
    "c2s_refine": LearnedMethod("C2S + detail refinement (s_tgt = 0.2 s_d)", lambda noise: GDSMLoss(sigma_target_ratio=0.2)),
    "c2s_no_reparam": LearnedMethod("C2S, no reparameterisation (s_t uniform)", lambda noise: GDSMLoss(tau_sampling="sigma")),
    "c2s_no_weight": LearnedMethod("C2S, plain weight (max_weight 1)", lambda noise: GDSMLoss(max_weight=1.0)),
    "c2s_no_cond": LearnedMethod("C2S, no noise conditioning", lambda noise: GDSMLoss(), unconditioned=True),
    "c2s_estimated": LearnedMethod("C2S, sigma estimated", lambda noise: GDSMLoss(), sigma="estimated"),
    "c2s_rician": LearnedMethod("C2S, exact Rician re-corruption", lambda noise: GDSMLoss(noise_model="rician")),
    "c2s_vst": LearnedMethod("C2S on the Rician VST (Foi 2011), exact unbiased inverse", lambda noise: GDSMLoss(), rician_vst=True),
    "noise2self": LearnedMethod("Noise2Self", lambda noise: Noise2SelfLoss(), uses_rule=True),
    "neighbor2neighbor": LearnedMethod("Neighbor2Neighbor", lambda noise: Neighbor2NeighborLoss(), uses_rule=True),
    "r2r": LearnedMethod("Recorrupted2Recorrupted", lambda noise: Recorrupted2RecorruptedLoss(), uses_rule=True),
    "noisier2noise": LearnedMethod("Noisier2Noise", lambda noise: Noisier2NoiseLoss(), uses_rule=True),
    "supervised": LearnedMethod("Supervised (Noise2True, upper bound)", lambda noise: SupervisedLoss(), supervised=True, uses_rule=True),
}
