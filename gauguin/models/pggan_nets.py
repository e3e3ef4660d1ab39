"""PGGAN's growing networks (Karras et al. 2018, "Progressive Growing of GANs", Table 2).

Stage s = 1, 2, ... works at 4·2^(s−1) pixels with nf(s) = min(fmap_base / 2^s, fmap_max) feature
maps (the paper: fmap_base 8192, fmap_max 512: 512 up to 32x32, then halving). Every conv and
dense layer has an equalized learning rate; G normalises z and every conv output pixelwise.

G: z → PixelNorm → dense to 4x4·nf(1) (gain √2/4) → LReLU → PixelNorm → conv 3x3 → ...; each
further stage: nearest 2x upsample, two conv 3x3 (LReLU, PixelNorm); a 1x1 to-RGB per stage
(linear, gain 1). D mirrors it: a 1x1 from-RGB per stage, two conv 3x3 and 2x2 average pooling per
stage, and at 4x4 minibatch stddev, conv 3x3, dense nf(0), dense 1.

Fade-in (§2): while stage s fades in with α from 0 to 1, G outputs lerp(up(to_rgb_{s−1}(h_{s−1})),
to_rgb_s(h_s), α) and D starts from lerp(from_rgb_{s−1}(pool(x)), block_s(from_rgb_s(x)), α). Both
networks keep ``stage`` and ``alpha`` as buffers, so checkpoints and samplers know where growth is.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.labels import is_exporting
from ..nn.layers import EqualizedConv2d, EqualizedLinear, MinibatchStddev, PixelNorm


def stage_channels(stage: int, fmap_base: int = 8192, fmap_max: int = 512) -> int:
    """nf(stage) of the official configuration: min(fmap_base / 2^stage, fmap_max)."""
    return min(int(fmap_base / 2.0**stage), fmap_max)


def num_stages(resolution: int) -> int:
    """Stages from 4x4 up to ``resolution`` (a power of two ≥ 4): 32 → 4."""
    stages = int(math.log2(resolution)) - 1
    if resolution < 4 or 2 ** (stages + 1) != resolution:
        raise ValueError(f"PGGAN grows to a power of two ≥ 4, got resolution {resolution}")
    return stages


class GrowingNetwork(nn.Module):
    """The stage / α buffers both networks carry, and their checks."""

    def __init__(self, resolution: int):
        super().__init__()
        self.num_stages = num_stages(resolution)
        self.register_buffer("stage", torch.tensor(1, dtype=torch.long))
        self.register_buffer("alpha", torch.tensor(1.0))
        self._growth = (1, 1.0)  # the buffers' values as Python numbers, for traces (see growth)

    def set_growth(self, stage: int, alpha: float) -> None:
        if not 1 <= stage <= self.num_stages or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"stage must be in 1..{self.num_stages} and alpha in [0, 1], got {stage}, {alpha}")
        self.stage.fill_(stage)
        self.alpha.fill_(alpha if stage > 1 else 1.0)

    def growth(self) -> tuple[int, float]:
        """(stage, α). While torch.export traces, the values last read (a trace cannot read buffer
        values into Python; growth is fixed at inference anyway): ``eval()`` / ``train()`` read them."""
        if not is_exporting():
            self._growth = int(self.stage), float(self.alpha)
        return self._growth

    def train(self, mode: bool = True):
        self.growth()
        return super().train(mode)


class PGGenerator(GrowingNetwork):
    def __init__(self, resolution: int = 32, channels: int = 1, z_dim: int = 512, fmap_base: int = 8192,
                 fmap_max: int = 512):
        super().__init__(resolution)
        nf = [stage_channels(s, fmap_base, fmap_max) for s in range(self.num_stages + 1)]
        self.z_dim, self.nf = z_dim, nf
        self.norm = PixelNorm()
        self.dense = EqualizedLinear(z_dim, nf[1] * 16, gain=2**0.5 / 4)
        self.conv = EqualizedConv2d(nf[1], nf[1], 3)
        self.blocks = nn.ModuleList(
            nn.ModuleList([EqualizedConv2d(nf[s - 1], nf[s], 3), EqualizedConv2d(nf[s], nf[s], 3)])
            for s in range(2, self.num_stages + 1))
        self.to_rgb = nn.ModuleList(EqualizedConv2d(nf[s], channels, 1, gain=1.0)
                                    for s in range(1, self.num_stages + 1))

    def _act(self, x: Tensor) -> Tensor:
        return self.norm(F.leaky_relu(x, 0.2))

    def forward(self, z: Tensor) -> Tensor:
        """Images at the current stage's resolution, ``[B, channels, 4·2^(stage−1), ...]``."""
        stage, alpha = self.growth()
        # z.shape[0], not len(z): an exported graph keeps its batch axis dynamic
        x = self._act(self.dense(self.norm(z)).view(z.shape[0], self.nf[1], 4, 4))
        x = self._act(self.conv(x))
        previous = x
        for conv_a, conv_b in self.blocks[: stage - 1]:
            previous = x
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = self._act(conv_b(self._act(conv_a(x))))
        image = self.to_rgb[stage - 1](x)
        if stage > 1 and alpha < 1.0:
            skip = F.interpolate(self.to_rgb[stage - 2](previous), scale_factor=2, mode="nearest")
            image = torch.lerp(skip, image, alpha)
        return image


class PGDiscriminator(GrowingNetwork):
    def __init__(self, resolution: int = 32, channels: int = 1, fmap_base: int = 8192, fmap_max: int = 512,
                 group_size: int = 4):
        super().__init__(resolution)
        nf = [stage_channels(s, fmap_base, fmap_max) for s in range(self.num_stages + 1)]
        self.from_rgb = nn.ModuleList(EqualizedConv2d(channels, nf[s], 1) for s in range(1, self.num_stages + 1))
        self.blocks = nn.ModuleList(  # blocks[s - 2]: stage s down to stage s − 1
            nn.ModuleList([EqualizedConv2d(nf[s], nf[s], 3), EqualizedConv2d(nf[s], nf[s - 1], 3)])
            for s in range(2, self.num_stages + 1))
        self.stddev = MinibatchStddev(group_size)
        self.conv = EqualizedConv2d(nf[1] + 1, nf[1], 3)
        self.dense = EqualizedLinear(nf[1] * 16, nf[0])
        self.out = EqualizedLinear(nf[0], 1, gain=1.0)

    def _block(self, stage: int, x: Tensor) -> Tensor:
        conv_a, conv_b = self.blocks[stage - 2]
        return F.avg_pool2d(F.leaky_relu(conv_b(F.leaky_relu(conv_a(x), 0.2)), 0.2), 2)

    def forward(self, image: Tensor) -> Tensor:
        """Critic scores ``[B]`` of images at the current stage's resolution."""
        stage, alpha = self.growth()
        x = F.leaky_relu(self.from_rgb[stage - 1](image), 0.2)
        if stage > 1:
            x = self._block(stage, x)
            if alpha < 1.0:
                skip = F.leaky_relu(self.from_rgb[stage - 2](F.avg_pool2d(image, 2)), 0.2)
                x = torch.lerp(skip, x, alpha)
        for s in range(stage - 1, 1, -1):
            x = self._block(s, x)
        x = F.leaky_relu(self.conv(self.stddev(x)), 0.2)
        x = F.leaky_relu(self.dense(x.flatten(1)), 0.2)
        return self.out(x).squeeze(1)
