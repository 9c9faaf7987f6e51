"""The noise-conditioned denoiser ``D(x, s)`` of C2S, built on MONAI's ``BasicUNet``.

The network is called with **one tensor** ``(B, C + 1, *spatial)``: ``C`` image channels
(channel 0 the target, the rest guides: the target's neighbouring slices with 2.5D context,
:mod:`c2s_monai.context`, and co-registered contrasts) and a last channel holding the total
noise level ``s`` of the target (a constant map, or a spatially varying one).
That keeps it a plain MONAI network for ``verify_net_in_out``, TorchScript and MONAI Label.

Preconditioning (Karras et al. 2022, "EDM", ``docs/method.md`` section 4), per voxel, with a
fixed data scale ``S``:

    D(x, s) = c_skip(s) x + c_out(s) F(c_in(s) x, log(s) / 4)
    c_skip = S^2 / (s^2 + S^2),  c_out = s S / sqrt(s^2 + S^2),  c_in = 1 / sqrt(s^2 + S^2)

``F`` is a ``BasicUNet``. The level reaches ``F`` by ``conditioning``:

- ``"map"``: ``log(s) / 4`` as an extra input channel;
- ``"film"``: feature-wise affine modulation (FiLM, Perez et al. 2018) of every encoder and
  decoder stage by an MLP embedding of the mean ``log(s) / 4`` of each sample;
- ``"map+film"``: both.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from monai.networks.nets import BasicUNet
from torch import nn

from c2s_monai import defaults

CONDITIONINGS = ("map", "film", "map+film")


class FiLM(nn.Module):
    """``x * (1 + scale(e)) + shift(e)`` per channel, from a level embedding ``e`` ``(B, E)``.

    Initialised to the identity (zero weights), so a FiLM network starts as its backbone.
    A disabled layer holds no parameter and returns ``x``.
    """

    def __init__(self, embedding_dim: int, channels: int, enabled: bool = True) -> None:
        super().__init__()
        self.enabled = enabled
        self.linear: nn.Module = nn.Identity()
        if enabled:
            linear = nn.Linear(embedding_dim, 2 * channels)
            nn.init.zeros_(linear.weight)
            nn.init.zeros_(linear.bias)
            self.linear = linear

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return x
        scale, shift = self.linear(embedding).chunk(2, dim=1)
        shape = [x.shape[0], x.shape[1]] + [1] * (x.ndim - 2)
        return x * (1.0 + scale.reshape(shape)) + shift.reshape(shape)


class FiLMBasicUNet(BasicUNet):
    """MONAI ``BasicUNet`` whose nine stages are modulated by :class:`FiLM` layers (when ``use_film``)."""

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        features: Sequence[int],
        embedding_dim: int,
        use_film: bool = True,
    ):
        super().__init__(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, features=features)
        fea = tuple(features)
        self.film_0 = FiLM(embedding_dim, fea[0], use_film)
        self.film_1 = FiLM(embedding_dim, fea[1], use_film)
        self.film_2 = FiLM(embedding_dim, fea[2], use_film)
        self.film_3 = FiLM(embedding_dim, fea[3], use_film)
        self.film_4 = FiLM(embedding_dim, fea[4], use_film)
        self.film_u4 = FiLM(embedding_dim, fea[3], use_film)
        self.film_u3 = FiLM(embedding_dim, fea[2], use_film)
        self.film_u2 = FiLM(embedding_dim, fea[1], use_film)
        self.film_u1 = FiLM(embedding_dim, fea[5], use_film)

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x0 = self.film_0(self.conv_0(x), embedding)
        x1 = self.film_1(self.down_1(x0), embedding)
        x2 = self.film_2(self.down_2(x1), embedding)
        x3 = self.film_3(self.down_3(x2), embedding)
        x4 = self.film_4(self.down_4(x3), embedding)
        u4 = self.film_u4(self.upcat_4(x4, x3), embedding)
        u3 = self.film_u3(self.upcat_3(u4, x2), embedding)
        u2 = self.film_u2(self.upcat_2(u3, x1), embedding)
        u1 = self.film_u1(self.upcat_1(u2, x0), embedding)
        return self.final_conv(u1)


class NoiseConditionedUNet(nn.Module):
    """Preconditioned, noise-conditioned U-Net ``D(x, s)`` (see the module docstring).

    Args:
        spatial_dims: 2 (slice-wise denoising, the default) or 3 (native 3D).
        in_channels: contrasts (1, or 1 + number of guide contrasts).
        context_slices: ``K`` neighbouring slices on each side of the target that each contrast
            brings as extra channels (2D only; :mod:`c2s_monai.context`). The network takes
            ``image_channels = in_channels (2K + 1)`` image channels plus the noise-level map.
        features: the six ``BasicUNet`` widths.
        conditioning: ``"map"``, ``"film"`` or ``"map+film"``.
        data_scale: ``S`` of the preconditioning (images scaled to about [0, 1]).
        embedding_dim: width of the level embedding (FiLM only).
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        context_slices: int = 0,
        features: Sequence[int] = defaults.FEATURES,
        conditioning: str = "map",
        data_scale: float = 0.5,
        embedding_dim: int = 64,
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {conditioning!r}.")
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}.")
        if context_slices < 0 or (context_slices and spatial_dims != 2):
            raise ValueError(f"context_slices must be >= 0, and 0 for a 3D network; got {context_slices} with spatial_dims {spatial_dims}.")
        if len(tuple(features)) != 6:
            raise ValueError(f"features must hold six BasicUNet widths, got {features!r}.")
        self.spatial_dims = int(spatial_dims)
        self.in_channels = int(in_channels)
        self.context_slices = int(context_slices)
        self.image_channels = self.in_channels * (2 * self.context_slices + 1)
        self.use_map = conditioning in ("map", "map+film")
        self.use_film = conditioning in ("film", "map+film")
        self.data_scale = float(data_scale)
        backbone_in = self.image_channels + (1 if self.use_map else 0)
        self.backbone = FiLMBasicUNet(spatial_dims, backbone_in, 1, features, embedding_dim, self.use_film)
        self.embedding: nn.Module = nn.Identity()
        if self.use_film:
            self.embedding = nn.Sequential(nn.Linear(1, embedding_dim), nn.SiLU(), nn.Linear(embedding_dim, embedding_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x[:, : self.image_channels]
        target = image[:, :1]
        sigma = x[:, self.image_channels :].clamp_min(1e-8)
        s2 = self.data_scale * self.data_scale
        norm = torch.sqrt(sigma * sigma + s2)
        c_skip = s2 / (sigma * sigma + s2)
        c_out = sigma * self.data_scale / norm
        c_in = 1.0 / norm
        log_level = torch.log(sigma) / 4.0

        channels = [target * c_in, image[:, 1:]]
        if self.use_map:
            channels.append(log_level)
        embedding = self.embedding(log_level.flatten(1).mean(dim=1, keepdim=True))
        residual = self.backbone(torch.cat(channels, dim=1), embedding)
        return c_skip * target + c_out * residual.to(target.dtype)
