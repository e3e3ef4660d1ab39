"""Small layers shared by several families."""
from __future__ import annotations

import functools
import json
import platform
import time
from pathlib import Path

import torch
from torch import nn

from ..fileio import user_cache_dir, write_bytes_atomic

BF16_SPEED_MARGIN = 0.9  # without AMX, bf16 is picked when its timed conv step takes < 90 % of fp32's
BF16_PROBE_SECONDS = 0.6  # the timing's length (alternating bf16 and fp32 steps)


def native_bf16() -> bool:
    """Whether this CPU has bf16 kernels (AVX-512 BF16 / AMX); elsewhere bf16 is emulated, ~30× slower."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def amx() -> bool:
    """Whether this CPU has AMX tiles (bf16 convolutions 3-8x faster than fp32)."""
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


@functools.lru_cache(maxsize=None)
def bf16_pays_on_cpu() -> bool:
    """Whether bf16 autocast makes convolutions faster than fp32 on this CPU.

    Native bf16 alone does not say: AMX runs them 3-8x faster than fp32 (always bf16), AMD's AVX-512 BF16
    ~1.6-1.9x on whole training steps, some Intel AVX-512 BF16 parts without AMX slower than fp32. Without
    AMX the answer is timed (:func:`bf16_speed_ratio`) once per CPU model, torch version and thread count and
    kept in ``~/.cache/gauguin/precision.json``, so that every run on a machine decides alike (a close call
    timed afresh in each process could flip from one run to the next)."""
    if not native_bf16():
        return False
    if amx():
        return True
    key = f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads"
    path = user_cache_dir("precision.json")
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    entry = cached.get(key)
    if not (isinstance(entry, dict) and isinstance(entry.get("bf16_over_fp32"), (int, float))):
        entry = {"bf16_over_fp32": round(bf16_speed_ratio(), 4), "margin": BF16_SPEED_MARGIN}
        try:
            write_bytes_atomic(path, (json.dumps({**cached, key: entry}, indent=2) + "\n").encode())
        except OSError:
            pass  # a read-only cache: decide for this process only
    return entry["bf16_over_fp32"] < BF16_SPEED_MARGIN


def bf16_speed_ratio(seconds: float = BF16_PROBE_SECONDS) -> float:
    """Time of one small conv + transposed-conv forward and backward under bf16 autocast over its fp32 time:
    the two alternate for ``seconds`` (so a slow spell of the machine hits both) and the fastest of each counts."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.randn(8, 64, 16, 16).contiguous(memory_format=torch.channels_last)
        net = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(128, 64, 4, 2, 1))
        net = net.to(memory_format=torch.channels_last)

    def once(bf16: bool) -> float:
        started = time.perf_counter()
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            out = net(x)
        out.float().square().mean().backward()
        return time.perf_counter() - started

    once(True), once(False)  # warm-up: kernel creation
    best = {True: float("inf"), False: float("inf")}
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or best[True] == float("inf"):
        for bf16 in (True, False):
            best[bf16] = min(best[bf16], once(bf16))
    return best[True] / best[False]


def cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


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
