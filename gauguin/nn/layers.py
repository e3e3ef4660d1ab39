"""Small layers shared by several families."""
from __future__ import annotations

import functools
import time

import torch
from torch import nn

BF16_SPEED_MARGIN = 0.8  # bf16 is picked on a CPU when its timed conv step takes < 80 % of fp32's


def native_bf16() -> bool:
    """Whether this CPU has bf16 kernels (AVX-512 BF16 / AMX); elsewhere bf16 is emulated, ~30× slower."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


@functools.lru_cache(maxsize=None)
def bf16_pays_on_cpu() -> bool:
    """Whether bf16 autocast makes convolutions faster than fp32 on this CPU, by timing one small
    conv + transposed-conv forward and backward each way (about a second, once per process).
    Native bf16 alone does not say: AMX runs these 3-8x faster than fp32, AMD's AVX-512 BF16 ~2x,
    and some Intel AVX-512 BF16 parts without AMX slower than fp32."""
    if not native_bf16():
        return False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.randn(8, 64, 16, 16).contiguous(memory_format=torch.channels_last)
        net = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1))
        net = net.to(memory_format=torch.channels_last)

    def seconds(bf16: bool) -> float:
        best = float("inf")
        for _ in range(3):  # the first is a warm-up (kernel creation); the best of the others counts
            started = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = net(x)
            out.float().square().mean().backward()
            best = min(best, time.perf_counter() - started)
        return best

    return seconds(True) < BF16_SPEED_MARGIN * seconds(False)


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
