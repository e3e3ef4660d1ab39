"""Small layers shared by several families."""
from __future__ import annotations

import torch
from torch import nn


def autocast_dtype(device_type: str, default: torch.dtype) -> torch.dtype:
    """The dtype autocast computes in on ``device_type`` where it is enabled, else ``default``."""
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else default


class MinibatchStddev(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, PGGAN §3).

    Splits the batch into groups of ``group_size``, takes the standard deviation of every
    feature over each group, averages it to one number per group and appends it as an extra
    constant feature map, so D can see the diversity of a batch: output has C + 1 channels.
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:  # largest group size that divides the batch
            g -= 1
        y = x.float().reshape(g, -1, c, h, w)  # [G, B/G, C, H, W]
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [B/G, C, H, W]
        stat = std.mean(dim=(1, 2, 3)).to(x.dtype)  # [B/G]
        stat = stat.repeat(g).view(b, 1, 1, 1).expand(b, 1, h, w)
        return torch.cat([x, stat], dim=1)


class PixelNorm(nn.Module):
    """Pixelwise feature vector normalisation (Karras et al. 2018 §4.2, Eq. 3): each pixel's
    feature vector divided by its root mean square over channels, b = a / sqrt(mean_c(a²) + ε)."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.float().square().mean(dim=1, keepdim=True) + self.eps).to(x.dtype)


class EqualizedLinear(nn.Module):
    """Linear layer with an equalized learning rate (Karras et al. 2018 §4.1): weights stored as
    N(0, 1) and scaled at run time by He's constant gain / sqrt(fan_in), so every weight learns at
    the same speed under Adam; zero biases."""

    def __init__(self, in_features: int, out_features: int, gain: float = 2**0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = gain / in_features**0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.scale, self.bias)


class EqualizedConv2d(nn.Module):
    """Conv layer ("same" padding, stride 1) with an equalized learning rate, see :class:`EqualizedLinear`;
    fan_in = in_channels · k²."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gain: float = 2**0.5):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.scale = gain / (in_channels * kernel_size**2) ** 0.5
        self.padding = kernel_size // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)
