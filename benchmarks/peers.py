"""Self-supervised peer methods of the C2S benchmark, as loss objects over one shared network.

Every loss here has the call signature of :class:`c2s_monai.losses.GDSMLoss`,

    loss(network, noisy, sigma_data, generator=None) -> scalar tensor

so :class:`c2s_monai.engines.GDSMIteration` trains any of them unchanged: swapping the
training signal is the one ``loss_function`` argument (the deepinv pattern: a method is a loss object).
``noisy`` is ``(B, C, H, W)`` in network units (channel 0 the target contrast, further channels
co-registered guides passed through untouched), ``sigma_data`` a scalar or ``(B,)`` tensor (> 0).
The network is the package's :class:`c2s_monai.networks.NoiseConditionedUNet` contract: it
takes ``cat([image channels, level map], dim=1)``, where the last channel is the noise level the
network is *told* (constant per sample), and returns the denoised target ``(B, 1, H, W)``.

Each loss also has ``denoise(network, noisy, sigma_data, generator=None)``, its method's
inference rule, so a harness calls ``peer.denoise(...)`` uniformly; C2S itself is
:func:`gdsm_denoise`. Inference rules (and the level each network is told):

- C2S (:func:`gdsm_denoise`): ``D(y)``, told ``s``;
- :class:`Noise2SelfLoss`: J-invariant ``f(Pi_J(y))_J`` over all grid phases, told ``s``;
- :class:`Neighbor2NeighborLoss`: ``f(y)``, told ``s``;
- :class:`Recorrupted2RecorruptedLoss`: ``1/K sum_k f(y + alpha s z_k)``, told ``s sqrt(1 + alpha^2)``;
- :class:`Noisier2NoiseLoss`: ``((1 + alpha^2) f(y) - y) / alpha^2``, told ``s sqrt(1 + alpha^2)``;
- :class:`SupervisedLoss`: ``f(y)``, told ``s``.

(``s`` = ``sigma_data``.) R2R and Noisier2Noise train the network only at the level
``s sqrt(1 + alpha^2)`` of their inputs, so that is the level they are told at inference too.
The noise model of R2R and Noisier2Noise is additive Gaussian (their derivations need it);
on magnitude MRI they use the Gaussian approximation, as the C2S paper does for its peers.

Ablations of C2S itself are :class:`~c2s_monai.losses.GDSMLoss` arguments (``tau_sampling="sigma"``:
no reparameterisation; ``sigma_target_ratio``; ``noise_model``), except "no noise conditioning",
which is :class:`UnconditionedNetwork` around a ``NoiseConditionedUNet(conditioning="map")``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PEER_LOSSES",
    "Neighbor2NeighborLoss",
    "Noise2SelfLoss",
    "Noisier2NoiseLoss",
    "Recorrupted2RecorruptedLoss",
    "SupervisedLoss",
    "UnconditionedNetwork",
    "gdsm_denoise",
]


# ---------------------------------------------------------------------------- shared helpers


def _sigma_per_sample(sigma_data: torch.Tensor | float, noisy: torch.Tensor) -> torch.Tensor:
    """``sigma_data`` as a ``(B,)`` tensor on ``noisy``'s device, or ``ValueError`` (same rule as GDSMLoss)."""
    batch = noisy.shape[0]
    sigma = torch.as_tensor(sigma_data, dtype=torch.float32, device=noisy.device).reshape(-1)
    sigma = sigma.expand(batch) if sigma.numel() == 1 else sigma
    if sigma.numel() != batch or not bool(torch.all(sigma > 0)):
        raise ValueError(f"sigma_data must be > 0, one value or one per sample; got {sigma.tolist()}.")
    return sigma


def _per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape ``(B,)`` so it broadcasts against ``like`` ``(B, ...)``."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def _told(network: nn.Module, image: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """Run ``network`` on ``image`` ``(B, C, ...)`` told the per-sample ``level`` ``(B,)``; float32 output."""
    level_map = _per_sample(level, image).to(image.dtype).expand_as(image[:, :1])
    return network(torch.cat([image, level_map], dim=1)).float()


def _randn_like(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``like``, drawn on the generator's device (CPU seeds work on GPU data)."""
    device = generator.device if generator is not None else like.device
    return torch.randn(like.shape, generator=generator, dtype=torch.float32, device=device).to(like.device)


def _randint(high: int, shape: tuple[int, ...], device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    source = generator.device if generator is not None else device
    return torch.randint(0, high, shape, generator=generator, device=source).to(device)


def _check_2d(noisy: torch.Tensor, method: str) -> None:
    if noisy.ndim != 4:
        raise ValueError(f"{method} works on 2D batches (B, C, H, W); got shape {tuple(noisy.shape)}. Denoise slice-wise.")


def gdsm_denoise(network: nn.Module, noisy: torch.Tensor, sigma_data: torch.Tensor | float) -> torch.Tensor:
    """C2S inference (docs/method.md section 8): one pass ``D(y, s_d)`` at the data level."""
    with torch.no_grad():
        return _told(network, noisy, _sigma_per_sample(sigma_data, noisy))


class UnconditionedNetwork(nn.Module):
    """The "no noise conditioning" ablation: ``network`` always told the constant ``level``.

    Wraps a ``NoiseConditionedUNet(conditioning="map")``; ``forward`` replaces the last
    (level) channel of its input by ``level`` before calling ``network``, so the level the
    loss computes never reaches it, in training or inference. The EDM preconditioning then
    also runs at this fixed level, as a plain (unconditioned) denoiser's would.

    Args:
        network: a network obeying the ``(B, C + 1, ...)`` contract.
        level: the constant level (> 0) in network units.
    """

    def __init__(self, network: nn.Module, level: float = 0.1) -> None:
        super().__init__()
        if not level > 0:
            raise ValueError(f"level must be > 0, got {level!r}.")
        self.network = network
        self.level = float(level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        constant = torch.full_like(x[:, -1:], self.level)
        return self.network(torch.cat([x[:, :-1], constant], dim=1))


# ---------------------------------------------------------------------------- Noise2Self


class Noise2SelfLoss(nn.Module):
    r"""Noise2Self: J-invariant training by masking (Batson & Royer, ICML 2019).

    A grid ``J`` of one pixel in ``grid_spacing^2`` (random phase per sample, the paper's
    ``Masker``) is hidden: those target pixels are replaced by the weighted mean of their eight
    neighbours (kernel ``[[.5, 1, .5], [1, 0, 1], [.5, 1, .5]]``, normalised where it leaves
    the image), giving :math:`\Pi_J(y)`. Only the hidden pixels are scored,

    .. math::

        L = \frac{1}{|J|} \sum_{j \in J} \big( f(\Pi_J(y), s)_j - y_j \big)^2,

    so the network never sees the value it is asked to predict (with spacing >= 2 no hidden
    pixel is a neighbour of another). Told level: ``s`` (visible pixels keep their noise).
    Inference: the J-invariant prediction, each pixel taken from ``f(Pi_J(y), s)`` for the grid
    phase that hides it (``grid_spacing^2`` passes). One pass on the unmasked image (the
    paper's shortcut) fails with the shared preconditioned network: its skip path
    ``c_skip ~ 1`` copies the visible noisy centre pixel, which training never showed it.

    Args:
        grid_spacing: ``k`` (>= 2); ``1/k^2`` of the pixels are hidden per draw.
    """

    INTERPOLATION_KERNEL = ((0.5, 1.0, 0.5), (1.0, 0.0, 1.0), (0.5, 1.0, 0.5))

    def __init__(self, grid_spacing: int = 4) -> None:
        super().__init__()
        if int(grid_spacing) != grid_spacing or grid_spacing < 2:
            raise ValueError(f"grid_spacing must be an integer >= 2, got {grid_spacing!r}.")
        self.grid_spacing = int(grid_spacing)

    def sample_mask(self, noisy: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Boolean ``(B, 1, H, W)`` grid mask with a random phase per sample."""
        _check_2d(noisy, "Noise2Self")
        batch, _, height, width = noisy.shape
        phase = _randint(self.grid_spacing, (batch, 2), noisy.device, generator)
        rows = torch.arange(height, device=noisy.device).reshape(1, height, 1)
        cols = torch.arange(width, device=noisy.device).reshape(1, 1, width)
        on_rows = (rows - phase[:, 0].reshape(-1, 1, 1)) % self.grid_spacing == 0
        on_cols = (cols - phase[:, 1].reshape(-1, 1, 1)) % self.grid_spacing == 0
        return (on_rows & on_cols).unsqueeze(1)

    def interpolate(self, target: torch.Tensor) -> torch.Tensor:
        """Neighbour mean of every pixel of ``target`` ``(B, 1, H, W)``, the centre excluded."""
        kernel = torch.tensor(self.INTERPOLATION_KERNEL, dtype=target.dtype, device=target.device).reshape(1, 1, 3, 3)
        weight_sum = F.conv2d(torch.ones_like(target[:1]), kernel, padding=1)
        return F.conv2d(target, kernel, padding=1) / weight_sum

    def mask_input(self, noisy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``Pi_J(y)``: the target channel with the ``mask`` pixels replaced by their neighbour mean."""
        target = noisy[:, :1]
        hidden = torch.where(mask, self.interpolate(target), target)
        return torch.cat([hidden, noisy[:, 1:]], dim=1)

    def forward(
        self,
        network: nn.Module,
        noisy: torch.Tensor,
        sigma_data: torch.Tensor | float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        sigma = _sigma_per_sample(sigma_data, noisy)
        mask = self.sample_mask(noisy, generator)
        denoised = _told(network, self.mask_input(noisy, mask), sigma)
        squared = (denoised - noisy[:, :1].float()) ** 2
        return (squared * mask).sum() / mask.sum()

    def denoise(self, network: nn.Module, noisy: torch.Tensor, sigma_data: torch.Tensor | float,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """J-invariant prediction: every pixel from the pass whose grid hides it."""
        _check_2d(noisy, "Noise2Self")
        sigma = _sigma_per_sample(sigma_data, noisy)
        height, width = noisy.shape[-2:]
        rows = torch.arange(height, device=noisy.device).reshape(height, 1)
        cols = torch.arange(width, device=noisy.device).reshape(1, width)
        denoised = torch.zeros_like(noisy[:, :1])
        with torch.no_grad():
            for row_phase in range(self.grid_spacing):
                for col_phase in range(self.grid_spacing):
                    mask = ((rows - row_phase) % self.grid_spacing == 0) & ((cols - col_phase) % self.grid_spacing == 0)
                    mask = mask.expand(noisy.shape[0], 1, height, width)
                    output = _told(network, self.mask_input(noisy, mask), sigma)
                    denoised = torch.where(mask, output.to(denoised.dtype), denoised)
        return denoised


# ---------------------------------------------------------------------------- Neighbor2Neighbor


class Neighbor2NeighborLoss(nn.Module):
    r"""Neighbor2Neighbor (Huang, Li, Jia, Lu & Liu, CVPR 2021).

    A random neighbour sub-sampler picks, in every 2x2 cell, two *adjacent* pixels (one of the
    8 ordered horizontal/vertical pairs, drawn per cell and sample): ``g1(y)``, ``g2(y)`` are
    half-size images whose paired pixels are neighbours. With ``f(y)`` computed without gradient,

    .. math::

        L = \lVert f(g_1(y)) - g_2(y) \rVert^2
          + \gamma \lVert f(g_1(y)) - g_2(y) - (g_1(f(y)) - g_2(f(y))) \rVert^2

    (both terms averaged over pixels). The paper ramps ``gamma`` linearly up to 2 over training;
    here it is constant (default 2). Guide channels are sub-sampled with ``g1`` like the target.
    Told level: ``s`` (sub-sampling keeps the per-pixel noise). Inference: ``f(y, s)``, one pass.
    Needs even ``H, W``; sub-images are half size (a ``NoiseConditionedUNet`` is happiest with
    multiples of 16 there, so patches in multiples of 32).

    Args:
        gamma: weight of the regulariser (>= 0).
    """

    # Positions in a 2x2 cell: 0 = (0, 0), 1 = (0, 1), 2 = (1, 0), 3 = (1, 1).
    NEIGHBOUR_PAIRS = ((0, 1), (0, 2), (1, 3), (2, 3), (1, 0), (2, 0), (3, 1), (3, 2))

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}.")
        self.gamma = float(gamma)

    def sample_neighbours(
        self, noisy: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell positions ``(index_1, index_2)``, each ``(B, H/2, W/2)`` in ``0..3``, of an adjacent pair."""
        _check_2d(noisy, "Neighbor2Neighbor")
        batch, _, height, width = noisy.shape
        if height % 2 or width % 2:
            raise ValueError(f"Neighbor2Neighbor needs even image sizes, got {height}x{width}; crop or pad the patches.")
        pairs = torch.tensor(self.NEIGHBOUR_PAIRS, device=noisy.device)
        choice = _randint(len(self.NEIGHBOUR_PAIRS), (batch, height // 2, width // 2), noisy.device, generator)
        return pairs[choice, 0], pairs[choice, 1]

    @staticmethod
    def subsample(image: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The half-size image taking, in each 2x2 cell, the pixel at cell position ``index`` ``(B, H/2, W/2)``."""
        batch, channels, height, width = image.shape
        cells = image.reshape(batch, channels, height // 2, 2, width // 2, 2).permute(0, 1, 2, 4, 3, 5)
        cells = cells.reshape(batch, channels, height // 2, width // 2, 4)
        index = index.unsqueeze(1).unsqueeze(-1).expand(batch, channels, height // 2, width // 2, 1)
        return torch.gather(cells, -1, index).squeeze(-1)

    def forward(
        self,
        network: nn.Module,
        noisy: torch.Tensor,
        sigma_data: torch.Tensor | float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        sigma = _sigma_per_sample(sigma_data, noisy)
        index_1, index_2 = self.sample_neighbours(noisy, generator)
        with torch.no_grad():
            full = _told(network, noisy, sigma)
        g1_noisy = self.subsample(noisy, index_1)
        g2_target = self.subsample(noisy[:, :1], index_2).float()
        denoised = _told(network, g1_noisy, sigma)
        residual = denoised - g2_target
        full_difference = self.subsample(full, index_1) - self.subsample(full, index_2)
        return (residual**2).mean() + self.gamma * ((residual - full_difference) ** 2).mean()

    def denoise(self, network: nn.Module, noisy: torch.Tensor, sigma_data: torch.Tensor | float,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``f(y, s)``."""
        return gdsm_denoise(network, noisy, sigma_data)


# ---------------------------------------------------------------------------- Recorrupted2Recorrupted


class Recorrupted2RecorruptedLoss(nn.Module):
    r"""Recorrupted-to-Recorrupted (Pang, Zheng, Quan & Ji, CVPR 2021), Gaussian case ``D = alpha I``.

    From one observation ``y = x + s n`` and ``z ~ N(0, I)``,

    .. math::

        \hat y = y + \alpha s z,\qquad \tilde y = y - \frac{s}{\alpha} z,\qquad
        L = \lVert f(\hat y, s\sqrt{1+\alpha^2}) - \tilde y \rVert^2 ;

    the noises ``s(n + alpha z)`` and ``s(n - z/alpha)`` have covariance ``s^2 - s^2 = 0``, so
    for Gaussian noise they are independent, this is Noise2Noise on a synthetic pair and ``f``
    learns ``E[x | y_hat]``. The network is told the level of its
    input, ``s sqrt(1 + alpha^2)``. Inference is the paper's Monte-Carlo average
    ``x_hat = 1/K sum_k f(y + alpha s z_k, s sqrt(1 + alpha^2))``.

    Args:
        alpha: the recorruption strength (> 0), 0.5 in the paper for Gaussian noise.
        inference_draws: ``K`` (>= 1).
    """

    def __init__(self, alpha: float = 0.5, inference_draws: int = 4) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}.")
        if int(inference_draws) != inference_draws or inference_draws < 1:
            raise ValueError(f"inference_draws must be an integer >= 1, got {inference_draws!r}.")
        self.alpha = float(alpha)
        self.inference_draws = int(inference_draws)

    def input_level(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma * math.sqrt(1.0 + self.alpha**2)

    def recorrupt_pair(
        self, target: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y_hat, y_tilde)`` from ``target`` ``(B, 1, ...)`` at per-sample level ``sigma`` ``(B,)``, one shared ``z``."""
        scaled = _per_sample(sigma, target) * _randn_like(target, generator)
        target = target.float()
        return target + self.alpha * scaled, target - scaled / self.alpha

    def forward(
        self,
        network: nn.Module,
        noisy: torch.Tensor,
        sigma_data: torch.Tensor | float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        sigma = _sigma_per_sample(sigma_data, noisy)
        y_hat, y_tilde = self.recorrupt_pair(noisy[:, :1], sigma, generator)
        denoised = _told(network, torch.cat([y_hat.to(noisy.dtype), noisy[:, 1:]], dim=1), self.input_level(sigma))
        return ((denoised - y_tilde) ** 2).mean()

    def denoise(self, network: nn.Module, noisy: torch.Tensor, sigma_data: torch.Tensor | float,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``1/K sum_k f(y + alpha s z_k, s sqrt(1 + alpha^2))``."""
        sigma = _sigma_per_sample(sigma_data, noisy)
        level = self.input_level(sigma)
        total = torch.zeros_like(noisy[:, :1], dtype=torch.float32)
        with torch.no_grad():
            for _ in range(self.inference_draws):
                y_hat, _ = self.recorrupt_pair(noisy[:, :1], sigma, generator)
                total += _told(network, torch.cat([y_hat.to(noisy.dtype), noisy[:, 1:]], dim=1), level)
        return total / self.inference_draws


# ---------------------------------------------------------------------------- Noisier2Noise


class Noisier2NoiseLoss(nn.Module):
    r"""Noisier2Noise (Moran, Schmidt, Zhong & Coady, CVPR 2020), Gaussian noise.

    Train on a noisier copy, with the noisy image as the target:

    .. math::

        z = y + \alpha s n,\qquad L = \lVert f(z, s\sqrt{1+\alpha^2}) - y \rVert^2,

    so ``f(z) = E[y | z]``. Because ``E[y | z] = (z + alpha^2 E[x | z]) / (1 + alpha^2)``,

    .. math::

        E[x \mid z] = \frac{(1+\alpha^2)\, E[y \mid z] - z}{\alpha^2}
        \quad (\alpha = 1:\ 2 f(z) - z).

    Inference (chosen): the paper's practical variant, the correction applied to the observed
    image itself, ``x_hat = ((1 + alpha^2) f(y) - y) / alpha^2`` with ``f`` told the only level it
    was trained at, ``s sqrt(1 + alpha^2)``. (The exact rule evaluates the same formula at a
    fresh ``z = y + alpha s n``, i.e. estimates ``x`` from a noisier image than the one observed.)

    Args:
        alpha: the extra-noise ratio (> 0), 1 in the paper's main results.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha!r}.")
        self.alpha = float(alpha)

    def input_level(self, sigma: torch.Tensor) -> torch.Tensor:
        return sigma * math.sqrt(1.0 + self.alpha**2)

    def correct(self, network_output: torch.Tensor, network_input: torch.Tensor) -> torch.Tensor:
        """``((1 + alpha^2) f - input) / alpha^2``: from ``E[y | z]`` to ``E[x | z]``."""
        return ((1.0 + self.alpha**2) * network_output - network_input) / self.alpha**2

    def forward(
        self,
        network: nn.Module,
        noisy: torch.Tensor,
        sigma_data: torch.Tensor | float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        sigma = _sigma_per_sample(sigma_data, noisy)
        target = noisy[:, :1].float()
        noisier = target + self.alpha * _per_sample(sigma, target) * _randn_like(target, generator)
        denoised = _told(network, torch.cat([noisier.to(noisy.dtype), noisy[:, 1:]], dim=1), self.input_level(sigma))
        return ((denoised - target) ** 2).mean()

    def denoise(self, network: nn.Module, noisy: torch.Tensor, sigma_data: torch.Tensor | float,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``((1 + alpha^2) f(y, s sqrt(1 + alpha^2)) - y) / alpha^2``."""
        sigma = _sigma_per_sample(sigma_data, noisy)
        with torch.no_grad():
            output = _told(network, noisy, self.input_level(sigma))
        return self.correct(output, noisy[:, :1].float())


# ---------------------------------------------------------------------------- supervised


class SupervisedLoss(nn.Module):
    r"""Supervised training with clean targets ("Noise2True"), the upper bound of the benchmark.

    The training iteration passes one tensor, so the clean image travels as the **last
    channel** of the batch: ``noisy[:, :-1]`` are the network's image channels (channel 0
    the noisy target, then any guides) and ``noisy[:, -1:]`` is the clean target ``x``. For a
    single contrast the batch is ``(B, 2, H, W)``: channel 0 noisy, channel 1 clean. Then

    .. math::

        L = \lVert f(y, s) - x \rVert^2,

    and the network (``in_channels`` = number of image channels, 1 for a single contrast)
    never sees the clean channel. Inference: ``f(y, s)`` on a batch *without* the clean channel.
    """

    def forward(
        self,
        network: nn.Module,
        noisy: torch.Tensor,
        sigma_data: torch.Tensor | float,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        if noisy.shape[1] < 2:
            raise ValueError(
                f"SupervisedLoss needs the clean image as the last channel (B, C + 1, ...); got shape {tuple(noisy.shape)}."
            )
        sigma = _sigma_per_sample(sigma_data, noisy)
        denoised = _told(network, noisy[:, :-1], sigma)
        return ((denoised - noisy[:, -1:].float()) ** 2).mean()

    def denoise(self, network: nn.Module, noisy: torch.Tensor, sigma_data: torch.Tensor | float,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """``f(y, s)``; ``noisy`` holds the image channels only."""
        return gdsm_denoise(network, noisy, sigma_data)


PEER_LOSSES: dict[str, type[nn.Module]] = {
    "noise2self": Noise2SelfLoss,
    "neighbor2neighbor": Neighbor2NeighborLoss,
    "r2r": Recorrupted2RecorruptedLoss,
    "noisier2noise": Noisier2NoiseLoss,
    "supervised": SupervisedLoss,
}
"""Peer name -> loss class; C2S itself is :class:`~c2s_monai.losses.GDSMLoss` with :func:`gdsm_denoise`."""


# The supervised bound's clean channel on scored slices: never a target.
EXCLUDED_TARGET = -1.0


class ContextSupervisedLoss(nn.Module):
    """The supervised bound with 2.5D context: batch ``[noisy block (2K+1), clean block (2K+1)]``.

    Its input is the noisy block, its target the centre of the clean block; samples whose
    clean centre holds :data:`EXCLUDED_TARGET` (the scored slices) are left out. The level is
    one per sample, or a per-voxel map (then each sample's mean level).
    """

    def __init__(self, context_slices: int) -> None:
        super().__init__()
        self.block = 2 * context_slices + 1
        self.supervised = SupervisedLoss()

    def forward(self, network, noisy, sigma_data, generator=None):
        clean = noisy[:, self.block : self.block + 1]
        keep = clean.flatten(1).amin(dim=1) > EXCLUDED_TARGET / 2
        if not bool(keep.any()):
            return (network(torch.cat([noisy[:, : self.block], torch.full_like(clean, 0.05)], 1)) * 0).sum()
        sigma = torch.as_tensor(sigma_data, dtype=noisy.dtype).reshape(-1)
        sigma = sigma.expand(len(noisy)) if sigma.numel() == 1 else sigma.reshape(len(noisy), -1).mean(1)
        return self.supervised(network, torch.cat([noisy[keep, : self.block], clean[keep]], 1), sigma[keep], generator)

    def denoise(self, network, noisy, sigma_data, generator=None):
        return self.supervised.denoise(network, noisy, sigma_data, generator)
