"""The CycleGAN ResNet generator: Zhu et al. 2017, "Unpaired Image-to-Image Translation using
Cycle-Consistent Adversarial Networks" (appendix 7.2), after Johnson et al. 2016 ("Perceptual Losses
for Real-Time Style Transfer and Super-Resolution").

c7s1-64, d128, d256, R256 × n_blocks, u128, u64, c7s1-3 (9 blocks for 256×256 images, 6 for
128×128): c7s1-k a 7×7 conv-norm-ReLU with k filters, stride 1; dk a 3×3 conv-norm-ReLU, stride 2;
Rk a residual block of two 3×3 convs; uk a 3×3 fractionally-strided conv-norm-ReLU, stride ½.
"""
from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from .patchgan import norm_layer
from .unet import GeneratorNorm

Padding = Literal["reflect", "replicate", "zero"]

__all__ = ["Padding", "ResnetBlock", "ResnetGenerator"]


def _pad_conv(padding: Padding, fin: int, fout: int, kernel: int, bias: bool) -> list[nn.Module]:
    """A stride-1 "same" conv, its padding as a layer (reflect / replicate) or in the conv (zero)."""
    p = kernel // 2
    if padding == "zero":
        return [nn.Conv2d(fin, fout, kernel, padding=p, bias=bias)]
    pad = nn.ReflectionPad2d(p) if padding == "reflect" else nn.ReplicationPad2d(p)
    return [pad, nn.Conv2d(fin, fout, kernel, bias=bias)]


class ResnetBlock(nn.Module):
    """Residual block (Johnson et al. 2016; CycleGAN's Rk): x + [pad → conv3×3 → norm → ReLU
    (→ dropout 0.5) → pad → conv3×3 → norm](x), no ReLU after the addition (as the official code)."""

    def __init__(self, channels: int, norm: GeneratorNorm = "instance", dropout: bool = False,
                 padding: Padding = "reflect", bias: bool | None = None):
        super().__init__()
        bias = norm == "instance" if bias is None else bias
        layers = _pad_conv(padding, channels, channels, 3, bias) + [norm_layer(norm, channels), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += _pad_conv(padding, channels, channels, 3, bias) + [norm_layer(norm, channels)]
        self.branch = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.branch(x)


class ResnetGenerator(nn.Module):
    """CycleGAN generator (Zhu et al. 2017, appendix 7.2): c7s1-ngf, d(2·ngf), d(4·ngf),
    R(4·ngf) × ``n_blocks``, u(2·ngf), u(ngf), c7s1-``out_channels`` (no norm), tanh.

    Reflection padding (``padding``) around the 7×7 convs and in the residual blocks, as the paper
    ("reflection padding was used to reduce artifacts") and the official code; the two stride-2
    convs pad with zeros (padding 1) as the official code does. The transposed convs are 3×3,
    stride 2, padding 1, output_padding 1 (exact 2× upsampling). Norm: instance (affine-free, as the
    official code) or batch; conv biases only with instance norm, plus the last conv's.
    ``dropout`` adds dropout 0.5 inside each residual block (off in CycleGAN).

    Height and width must be multiples of 4 (two 2× downsamplings, then back); instance norm needs
    maps of at least 2×2, so inputs from 8×8 up work (32×32: 8×8 residual maps). Parameters for
    ngf 64, 3 → 3, instance norm: 11,378,179 (9 blocks), 7,837,699 (6 blocks).
    """

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9,
                 norm: GeneratorNorm = "instance", dropout: bool = False, padding: Padding = "reflect"):
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
        if padding not in ("reflect", "replicate", "zero"):
            raise ValueError(f"padding must be 'reflect', 'replicate' or 'zero', got {padding!r}")
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be ≥ 0, got {n_blocks}")
        bias = norm == "instance"
        self.head = nn.Sequential(*_pad_conv(padding, in_channels, ngf, 7, bias), norm_layer(norm, ngf), nn.ReLU())
        self.down = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1, bias=bias),
                          norm_layer(norm, ngf * m * 2), nn.ReLU())
            for m in (1, 2)
        ))
        self.blocks = nn.Sequential(*(ResnetBlock(4 * ngf, norm, dropout, padding, bias) for _ in range(n_blocks)))
        self.up = nn.Sequential(*(
            nn.Sequential(nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, stride=2, padding=1, output_padding=1,
                                             bias=bias),
                          norm_layer(norm, ngf * m // 2), nn.ReLU())
            for m in (4, 2)
        ))
        self.tail = nn.Sequential(*_pad_conv(padding, ngf, out_channels, 7, True), nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] % 4 or x.shape[-1] % 4:
            raise ValueError(f"input height and width must be multiples of 4, got {tuple(x.shape[-2:])}")
        return self.tail(self.up(self.blocks(self.down(self.head(x)))))
