"""PatchGAN discriminators: Isola et al. 2017 (pix2pix, §3.2.2), in the multi-scale form of
Wang et al. 2018 (pix2pixHD, §3.2, "High-Resolution Image Synthesis and Semantic Manipulation
with Conditional GANs") that SPADE (Park et al. 2019, appendix A) uses with spectral norm.

Each discriminator returns the list of all its layer outputs, the last being the patch
prediction map [B, 1, h, w] (raw logits): the earlier ones feed the feature-matching loss
(pix2pixHD Eq. 4; :func:`gauguin.losses.multiscale_feature_matching_loss`).
"""
from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from .spectral import spectral_conv

PatchNorm = Literal["instance", "batch", "none"]

__all__ = ["PatchNorm", "NLayerDiscriminator", "MultiscaleDiscriminator"]


def _norm(kind: PatchNorm, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


class NLayerDiscriminator(nn.Module):
    """PatchGAN with 4×4 kernels (pix2pixHD / SPADE layout).

    conv(in→ndf, stride 2) + LeakyReLU(0.2), no norm; then ``n_layers - 1`` convs doubling the
    width (capped at 512), stride 2 except the last (stride 1), each conv → norm → LeakyReLU(0.2);
    then conv(→1, stride 1). ``n_layers`` counts the convs before the 1-channel head: SPADE's
    ``n_layers_D=4`` is this ``n_layers=4``, and so is pix2pixHD's ``n_layers_D=3``; pix2pix's
    70×70 PatchGAN (``n_layers=3`` in its code) is ``n_layers=4, padding=1, norm="batch"``.

    ``spectral`` wraps the normalised convs in spectral norm (SPADE's "spectralinstance"; the
    first and last convs stay plain, as in the official code). ``bias`` of the normalised convs
    defaults to ``norm == "none"`` (SPADE drops it before a norm); pix2pixHD keeps it (True).
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, norm: PatchNorm = "instance",
                 spectral: bool = True, padding: int = 2, bias: bool | None = None):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        bias = norm == "none" if bias is None else bias
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=padding), nn.LeakyReLU(0.2))
        ]
        nf = ndf
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            conv = spectral_conv(spectral, nf_prev, nf, 4, stride=stride, padding=padding, bias=bias)
            layers.append(nn.Sequential(conv, _norm(norm, nf), nn.LeakyReLU(0.2)))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=padding)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs of the same layout on the input at scales 1, 1/2, 1/4, ... (pix2pixHD
    §3.2): each downsampling is a 3×3 average pool, stride 2, padding 1, not counting the padding.

    Returns one feature list per scale, finest first; keyword arguments go to
    :class:`NLayerDiscriminator`. In SPADE the input is the semantic map (one-hot, plus the
    don't-care and instance-edge channels) concatenated with the image.
    """

    def __init__(self, in_channels: int, num_d: int = 2, ndf: int = 64, n_layers: int = 4,
                 norm: PatchNorm = "instance", spectral: bool = True, padding: int = 2, bias: bool | None = None):
        super().__init__()
        self.discriminators = nn.ModuleList(
            NLayerDiscriminator(in_channels, ndf, n_layers, norm, spectral, padding, bias) for _ in range(num_d)
        )

    @staticmethod
    def downsample(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        results = []
        for i, discriminator in enumerate(self.discriminators):
            if i > 0:
                x = self.downsample(x)
            results.append(discriminator(x))
        return results
