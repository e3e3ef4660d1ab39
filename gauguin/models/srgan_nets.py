"""Super-resolution networks: SRResNet (Ledig et al. 2017, Fig. 4), the RRDB generator of ESRGAN
(Wang et al. 2018, §3.1), SRGAN's VGG-style discriminator (Ledig et al. Fig. 4) and the U-Net
discriminator with spectral norm of Real-ESRGAN (Wang et al. 2021, §3.3). Generators are fully
convolutional: any input size gives ``scale`` times the size."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm


def _steps(scale: int) -> int:
    steps = int(math.log2(scale))
    if 2**steps != scale or steps < 1:
        raise ValueError(f"scale must be a power of two >= 2, got {scale}")
    return steps


class ResidualBlock(nn.Module):
    """conv 3×3, BN, PReLU, conv 3×3, BN, + x (SRResNet's B blocks)."""

    def __init__(self, width: int, batch_norm: bool = True):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(width)) if batch_norm else nn.Identity
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), norm(), nn.PReLU(width),
                                  nn.Conv2d(width, width, 3, padding=1), norm())

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class SRResNet(nn.Module):
    """conv 9×9 + PReLU, ``blocks`` residual blocks, conv 3×3 + BN and the long skip, then per ×2
    conv 3×3 → 4·width, PixelShuffle(2), PReLU, and conv 9×9 to the image (linear output)."""

    def __init__(self, channels: int = 3, scale: int = 4, width: int = 64, blocks: int = 16, batch_norm: bool = True):
        super().__init__()
        self.scale = scale
        self.head = nn.Sequential(nn.Conv2d(channels, width, 9, padding=4), nn.PReLU(width))
        self.body = nn.Sequential(*[ResidualBlock(width, batch_norm) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, padding=1),
                                  nn.BatchNorm2d(width) if batch_norm else nn.Identity())
        up: list[nn.Module] = []
        for _ in range(_steps(scale)):
            up += [nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(width)]
        self.tail = nn.Sequential(*up, nn.Conv2d(width, channels, 9, padding=4))

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        return self.tail(h + self.body(h))


class DenseBlock(nn.Module):
    """Five 3×3 convs, each fed every earlier map (growth ``growth``), LeakyReLU 0.2 after the first
    four; out = x + β·conv5 (residual scaling β = 0.2, ESRGAN §3.1)."""

    def __init__(self, width: int, growth: int, beta: float):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(width + i * growth, growth if i < 4 else width, 3, padding=1)
                                   for i in range(5))
        self.beta = beta

    def forward(self, x: Tensor) -> Tensor:
        maps = [x]
        for i, conv in enumerate(self.convs):
            out = conv(torch.cat(maps, 1))
            if i < 4:
                maps.append(F.leaky_relu(out, 0.2))
        return x + self.beta * out


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks, out = x + β·(their chain)."""

    def __init__(self, width: int, growth: int, beta: float):
        super().__init__()
        self.blocks = nn.Sequential(*[DenseBlock(width, growth, beta) for _ in range(3)])
        self.beta = beta

    def forward(self, x: Tensor) -> Tensor:
        return x + self.beta * self.blocks(x)


class RRDBNet(nn.Module):
    """ESRGAN's generator: conv 3×3, ``blocks`` RRDBs + conv 3×3 with the long skip (no BatchNorm),
    per ×2 nearest upsampling + conv 3×3 + LeakyReLU, conv 3×3 + LeakyReLU, conv 3×3 to the image."""

    def __init__(self, channels: int = 3, scale: int = 4, width: int = 64, blocks: int = 23, growth: int = 32,
                 beta: float = 0.2):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*[RRDB(width, growth, beta) for _ in range(blocks)],
                                  nn.Conv2d(width, width, 3, padding=1))
        self.ups = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(_steps(scale)))
        self.hr = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        h = h + self.body(h)
        for conv in self.ups:
            h = F.leaky_relu(conv(F.interpolate(h, scale_factor=2, mode="nearest")), 0.2)
        return self.out(F.leaky_relu(self.hr(h), 0.2))


class VGGStyleDiscriminator(nn.Module):
    """SRGAN's D: conv 3×3 (width) + LeakyReLU, then seven conv 3×3 + BN + LeakyReLU with strides
    2, 1, 2, 1, 2, 1, 2 and widths doubling every second conv to 8·width, dense 1024, LeakyReLU,
    dense 1. Adaptive average pooling to 4×4 before the dense layers lets one D take any HR size."""

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2, True)]
        c = width
        for i in range(7):
            out = width * 2 ** ((i + 1) // 2)
            layers += [nn.Conv2d(c, out, 3, stride=2 if i % 2 == 0 else 1, padding=1, bias=False),
                       nn.BatchNorm2d(out), nn.LeakyReLU(0.2, True)]
            c = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c * 16, 1024), nn.LeakyReLU(0.2, True), nn.Linear(1024, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)


class UNetDiscriminator(nn.Module):
    """Real-ESRGAN's D: a U-Net of spectral-normalised 3×3 convs (three stride-2 downs to 8·width,
    three bilinear ups with skip additions, two more convs) giving one logit per pixel ``[N, H, W]``."""

    def __init__(self, channels: int = 3, width: int = 64):
        super().__init__()

        def conv(cin: int, cout: int, stride: int = 1) -> nn.Module:
            return spectral_norm(nn.Conv2d(cin, cout, 3 if stride == 1 else 4, stride, 1, bias=False))

        w = width
        self.first = nn.Conv2d(channels, w, 3, padding=1)
        self.downs = nn.ModuleList([conv(w, 2 * w, 2), conv(2 * w, 4 * w, 2), conv(4 * w, 8 * w, 2)])
        self.ups = nn.ModuleList([conv(8 * w, 4 * w), conv(4 * w, 2 * w), conv(2 * w, w)])
        self.last = nn.Sequential(conv(w, w), nn.LeakyReLU(0.2, True), conv(w, w), nn.LeakyReLU(0.2, True),
                                  nn.Conv2d(w, 1, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        skips = [F.leaky_relu(self.first(x), 0.2)]
        for down in self.downs:
            skips.append(F.leaky_relu(down(skips[-1]), 0.2))
        h = skips.pop()
        for up in self.ups:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = F.leaky_relu(up(h), 0.2) + skip
        return self.last(h).squeeze(1)
