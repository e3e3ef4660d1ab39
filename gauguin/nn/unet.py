"""The pix2pix U-Net generator: Isola et al. 2017, "Image-to-Image Translation with Conditional
Adversarial Networks" (§3.2.1, appendix 6.1.1), after Ronneberger et al. 2015 (U-Net).

Encoder C64-C128-C256-C512-C512-C512-C512-C512 (4×4 convs, stride 2, LeakyReLU 0.2, no norm on
the first), decoder of 4×4 transposed convs, stride 2, ReLU, each fed with its own input
concatenated with the mirrored encoder layer's output; tanh out. pix2pix's noise z is only
dropout (§3.1), here kept on at test time by default (``dropout_at_test``).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .patchgan import norm_layer

GeneratorNorm = Literal["batch", "instance"]

__all__ = ["GeneratorNorm", "NoiseDropout", "UnetGenerator", "unet_depth"]


def unet_depth(image_size: int) -> int:
    """Number of stride-2 downsamplings that bring ``image_size`` to 1×1: log2(image_size)
    (256 → 8, pix2pix's unet_256; 128 → 7, its unet_128). The size must be a power of two ≥ 32:
    the first four levels have distinct widths (64, 128, 256, 512) and the fifth is the bottleneck."""
    if image_size < 32 or image_size & (image_size - 1):
        raise ValueError(f"image_size must be a power of two ≥ 32 (32, 64, 128, 256, ...), got {image_size}")
    return image_size.bit_length() - 1


class NoiseDropout(nn.Dropout):
    """Dropout that stays on in eval mode when ``at_test`` (pix2pix §3.1: "we provide noise only in
    the form of dropout, applied on several layers of our generator at both training and test time");
    with ``at_test=False`` it is ``nn.Dropout`` (off in eval mode, deterministic outputs)."""

    def __init__(self, p: float = 0.5, at_test: bool = True):
        super().__init__(p)
        self.at_test = at_test

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training or self.at_test, self.inplace)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", at_test={self.at_test}"


class UnetGenerator(nn.Module):
    """pix2pix U-Net generator (Isola et al. 2017, appendix 6.1.1) for ``image_size``² inputs.

    Level i = 0 ... depth − 1 (depth = log2(image_size), so the innermost map is 1×1) has width
    w_i = ngf·min(2ⁱ, 8). Encoder block i: [LeakyReLU(0.2) →] conv4×4/2 (→ w_i) [→ norm]; the first
    block has no activation before it and no norm, the innermost no norm (a norm of a 1×1 map is
    degenerate). Decoder block i: ReLU → convT4×4/2 (→ w_{i−1}, or ``out_channels`` then tanh for
    i = 0) → norm [→ dropout 0.5], fed with the innermost code (i = depth − 1) or with
    [encoder output i, decoder output i + 1] concatenated on channels.

    The ReLU of a decoder block acts on the concatenated skip as well (as in the official code, where
    the encoder's in-place LeakyReLU and the decoder's ReLU compose to ReLU on the skip features).

    ``dropout`` puts dropout 0.5 in the three decoder blocks just above the innermost one (the
    512-channel "CD" blocks of unet_256; at every size, so smaller U-Nets keep three noise layers).
    ``dropout_at_test`` (default True, the paper's choice) keeps it active in eval mode: outputs are
    then stochastic; set False for deterministic inference. pix2pix also normalises with the test
    batch's statistics at test time: for that keep the module in train mode, or use
    ``norm="instance"``.

    Conv biases follow the official code: only with instance norm (affine-free), except the last
    transposed conv, which always has one; so with batch norm the first and the innermost encoder
    convs have none although no norm follows them. Parameters for 256, ngf 64, 3 → 3: 54,413,955
    with batch norm, 54,409,603 with instance norm.
    """

    def __init__(self, in_channels: int, out_channels: int, image_size: int, ngf: int = 64,
                 norm: GeneratorNorm = "batch", dropout: bool = True, dropout_at_test: bool = True):
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
        self.depth = depth = unet_depth(image_size)
        self.image_size = image_size
        bias = norm == "instance"
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        innermost = depth - 1
        dropout_levels = {innermost - 1, innermost - 2, innermost - 3} if dropout else set()

        down: list[nn.Module] = []
        for i, w in enumerate(widths):
            conv = nn.Conv2d(in_channels if i == 0 else widths[i - 1], w, 4, stride=2, padding=1, bias=bias)
            if i == 0:
                down.append(nn.Sequential(conv))
            elif i == innermost:
                down.append(nn.Sequential(nn.LeakyReLU(0.2), conv))
            else:
                down.append(nn.Sequential(nn.LeakyReLU(0.2), conv, norm_layer(norm, w)))
        up: list[nn.Module] = []
        for i, w in enumerate(widths):
            fin = w if i == innermost else 2 * w
            if i == 0:
                up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(fin, out_channels, 4, stride=2, padding=1),
                                        nn.Tanh()))
                continue
            layers = [nn.ReLU(), nn.ConvTranspose2d(fin, widths[i - 1], 4, stride=2, padding=1, bias=bias),
                      norm_layer(norm, widths[i - 1])]
            if i in dropout_levels:
                layers.append(NoiseDropout(0.5, dropout_at_test))
            up.append(nn.Sequential(*layers))
        self.down = nn.ModuleList(down)
        self.up = nn.ModuleList(up)

    def forward(self, x: Tensor) -> Tensor:
        step = 2**self.depth
        if x.shape[-2] % step or x.shape[-1] % step:
            raise ValueError(f"input height and width must be multiples of 2**depth = {step}, "
                             f"got {tuple(x.shape[-2:])}")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        x = self.up[-1](skips.pop())
        for i in reversed(range(self.depth - 1)):
            x = self.up[i](torch.cat([skips[i], x], dim=1))
        return x
