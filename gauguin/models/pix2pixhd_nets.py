"""The pix2pixHD networks: Wang et al. 2018, "High-Resolution Image Synthesis and Semantic
Manipulation with Conditional GANs" (§3.1-3.4 and appendix): the global generator G1, the local
enhancer G2 (coarse-to-fine, 2× resolution), the instance-wise feature encoder E and the 3-scale
PatchGAN discriminator, with the paper's widths (G1 64, G2 32, E 16, D 64).

The generator's input is the one-hot label map, plus the instance boundary map (one channel,
:func:`gauguin.nn.labels.instance_edges`) and the encoder's instance-averaged features (3
channels) where used: Cityscapes 35 + 1 + 3 = 39 channels. The discriminator sees the label and
edge channels concatenated with the image (35 + 1 + 3 = 39), not the features.

Normalisation is instance norm without learned affine parameters (or batch norm); convolutions
keep their bias, as in the official implementation, so the parameter counts are the paper's
networks'. Spatial sizes must be multiples of 2**n_downsampling (2**(n_downsampling + 1) with the
local enhancer) and leave a bottleneck of at least 2×2: a 1×1 map would be erased by instance
norm (and cannot be reflection-padded), so smaller inputs are a ValueError.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.patchgan import MultiscaleDiscriminator, norm_layer
from ..nn.resnet_generator import ResnetBlock

GenNorm = Literal["instance", "batch"]

__all__ = [
    "GenNorm",
    "GlobalGenerator",
    "InstanceFeatureEncoder",
    "LocalEnhancer",
    "Pix2PixHDNetworks",
    "build_pix2pixhd_networks",
    "init_pix2pixhd_weights_",
    "instance_average",
]


def _c7s1(cin: int, cout: int, norm: GenNorm) -> list[nn.Module]:
    """c7s1-k: reflection pad 3, 7×7 conv stride 1, norm, ReLU (pix2pixHD appendix)."""
    return [nn.ReflectionPad2d(3), nn.Conv2d(cin, cout, 7), norm_layer(norm, cout), nn.ReLU(True)]


def _down(cin: int, cout: int, norm: GenNorm) -> list[nn.Module]:
    """dk: 3×3 conv stride 2, norm, ReLU: halves the size."""
    return [nn.Conv2d(cin, cout, 3, stride=2, padding=1), norm_layer(norm, cout), nn.ReLU(True)]


def _up(cin: int, cout: int, norm: GenNorm) -> list[nn.Module]:
    """uk: 3×3 transposed conv stride 2 (padding 1, output padding 1), norm, ReLU: doubles the size."""
    return [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), norm_layer(norm, cout), nn.ReLU(True)]


def _to_image(cin: int, cout: int) -> nn.Sequential:
    """c7s1-3 without norm, then tanh: the image in [-1, 1]."""
    return nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(cin, cout, 7), nn.Tanh())


def _check_input(x: Tensor, channels: int, factor: int, what: str) -> None:
    """x must be [B, channels, H, W] with H, W multiples of ``factor`` and H/factor, W/factor ≥ 2."""
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{what} expects input [B, {channels}, H, W], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % factor or w % factor or h < 2 * factor or w < 2 * factor:
        raise ValueError(
            f"{what} needs height and width that are multiples of {factor} and at least {2 * factor} "
            f"(a bottleneck of at least 2×2: instance norm of a 1×1 map is 0), got {h}×{w}"
        )


class GlobalGenerator(nn.Module):
    """G1, the global generator (pix2pixHD §3.1, appendix): c7s1-64, d128, d256, d512, d1024,
    nine R1024, u512, u256, u128, u64, c7s1-3, tanh.

    ``body`` is everything up to the last u64 (its output feeds the local enhancer); ``to_image``
    is the final c7s1-3 + tanh. Widths: ngf·2**i after the i-th downsampling.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 64, n_downsampling: int = 4,
                 n_blocks: int = 9, norm: GenNorm = "instance"):
        super().__init__()
        if n_downsampling < 0 or n_blocks < 0:
            raise ValueError(f"n_downsampling and n_blocks must be ≥ 0, got {n_downsampling}, {n_blocks}")
        self.in_channels, self.out_channels, self.ngf = in_channels, out_channels, ngf
        self.n_downsampling = n_downsampling
        layers = _c7s1(in_channels, ngf, norm)
        for i in range(n_downsampling):
            layers += _down(ngf * 2**i, ngf * 2 ** (i + 1), norm)
        layers += [ResnetBlock(ngf * 2**n_downsampling, norm, bias=True) for _ in range(n_blocks)]
        for i in reversed(range(n_downsampling)):
            layers += _up(ngf * 2 ** (i + 1), ngf * 2**i, norm)
        self.body = nn.Sequential(*layers)
        self.to_image = _to_image(ngf, out_channels)

    @property
    def size_factor(self) -> int:
        """Height and width must be multiples of this (and at least twice it)."""
        return 2**self.n_downsampling

    def forward(self, x: Tensor) -> Tensor:
        """``x`` [B, in_channels, H, W] → image [B, out_channels, H, W] in [-1, 1]."""
        _check_input(x, self.in_channels, self.size_factor, "GlobalGenerator")
        return self.to_image(self.body(x))


class LocalEnhancer(nn.Module):
    """G2 = local enhancer + G1 (pix2pixHD §3.1, Fig. 3) at twice G1's resolution.

    G1's ``body`` runs on the input downsampled by 2 (3×3 average pool, stride 2, padding 1, not
    counting the padding) and gives ngf_global = 2·ngf channels; the local front-end c7s1-ngf,
    d(2·ngf) runs on the full-resolution input; their element-wise sum goes through
    ``n_blocks_local`` residual blocks, u(ngf), c7s1-3 and tanh. G1's ``to_image`` is not used
    (and not part of this module). ``global_generator`` is shared, not copied: pass a trained
    G1 (or load one later with :meth:`load_global_state_dict`); None builds a fresh one with
    n_downsampling 4 and 9 blocks.

    Coarse-to-fine training (§3.1): optimise :meth:`local_parameters` alone for the first steps
    (or :meth:`freeze_global`), then all parameters jointly.
    """

    def __init__(self, in_channels: int, out_channels: int = 3, ngf: int = 32, n_blocks_local: int = 3,
                 global_generator: GlobalGenerator | None = None, norm: GenNorm = "instance"):
        super().__init__()
        if global_generator is None:
            global_generator = GlobalGenerator(in_channels, out_channels, 2 * ngf, norm=norm)
        if global_generator.in_channels != in_channels or global_generator.ngf != 2 * ngf:
            raise ValueError(
                f"the global generator must take in_channels={in_channels} with ngf = 2 × {ngf} = {2 * ngf}, "
                f"got in_channels={global_generator.in_channels}, ngf={global_generator.ngf}"
            )
        self.in_channels, self.out_channels, self.ngf = in_channels, out_channels, ngf
        self.global_n_downsampling = global_generator.n_downsampling
        self.global_body = global_generator.body
        self.local_down = nn.Sequential(*_c7s1(in_channels, ngf, norm), *_down(ngf, 2 * ngf, norm))
        self.local_blocks = nn.Sequential(*[ResnetBlock(2 * ngf, norm, bias=True) for _ in range(n_blocks_local)])
        self.local_up = nn.Sequential(*_up(2 * ngf, ngf, norm))
        self.to_image = _to_image(ngf, out_channels)

    @property
    def size_factor(self) -> int:
        """Height and width must be multiples of this (and at least twice it)."""
        return 2 ** (self.global_n_downsampling + 1)

    @staticmethod
    def downsample(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` [B, in_channels, H, W] → image [B, out_channels, H, W] in [-1, 1]."""
        _check_input(x, self.in_channels, self.size_factor, "LocalEnhancer")
        features = self.local_down(x) + self.global_body(self.downsample(x))
        return self.to_image(self.local_up(self.local_blocks(features)))

    def global_parameters(self) -> Iterator[nn.Parameter]:
        """G1's parameters (its body; its final c7s1-3 is not part of G2)."""
        return self.global_body.parameters()

    def local_parameters(self) -> Iterator[nn.Parameter]:
        """Every parameter of the local enhancer that is not G1's."""
        return (p for name, p in self.named_parameters() if not name.startswith("global_body."))

    def freeze_global(self, frozen: bool = True) -> None:
        """Stop (or restart) gradients to G1's parameters, for the local-only phase of §3.1."""
        self.global_body.requires_grad_(not frozen)

    def load_global_state_dict(self, state_dict: Mapping[str, Tensor], strict: bool = True) -> None:
        """Load a trained :class:`GlobalGenerator`'s state dict (its ``to_image`` entries are ignored)."""
        body = {k[len("body."):]: v for k, v in state_dict.items() if k.startswith("body.")}
        self.global_body.load_state_dict(body, strict=strict)


def instance_means(features: Tensor, instance_map: Tensor) -> tuple[Tensor, Tensor]:
    """The mean features of each instance: ``(means [M, C], segment [B·H·W])`` where instances are
    the (image, id) pairs of ``instance_map`` [B, H, W] (any integer ids, e.g. Cityscapes' 16-bit
    26001) and ``segment`` gives each pixel's instance, pixels in (B, H, W) order. One ``index_add``,
    summed in float32."""
    if instance_map.ndim == 4 and instance_map.shape[1] == 1:
        instance_map = instance_map[:, 0]
    b, c, h, w = features.shape
    if instance_map.shape != (b, h, w):
        raise ValueError(f"instance_map must be [{b}, {h}, {w}] for features {tuple(features.shape)}, "
                         f"got {tuple(instance_map.shape)}")
    if instance_map.dtype.is_floating_point or instance_map.dtype == torch.bool:
        raise ValueError(f"instance_map must hold integer ids, got {instance_map.dtype}")
    ids = instance_map.long()
    ids = ids - ids.amin()  # ≥ 0, so (batch, id) ↦ batch · (max + 1) + id is one-to-one
    keys = torch.arange(b, device=ids.device).view(b, 1, 1) * (ids.amax() + 1) + ids
    _, segment, counts = torch.unique(keys.flatten(), return_inverse=True, return_counts=True)
    flat = features.permute(0, 2, 3, 1).reshape(-1, c).float()  # [B·H·W, C], pixel order of keys
    sums = flat.new_zeros(counts.numel(), c).index_add(0, segment, flat)
    return sums / counts.unsqueeze(1).to(sums.dtype), segment


def instance_average(features: Tensor, instance_map: Tensor) -> Tensor:
    """Each pixel's features replaced by the mean over its instance (pix2pixHD §3.4): pixels of the
    same image with the same id in ``instance_map`` [B, H, W] share one value."""
    b, c, h, w = features.shape
    means, segment = instance_means(features, instance_map)
    return means[segment].view(b, h, w, c).permute(0, 3, 1, 2).to(features.dtype)


class InstanceFeatureEncoder(nn.Module):
    """E, the instance-wise feature encoder (pix2pixHD §3.4): c7s1-ngf, ``n_downsampling``
    stride-2 downsamplings doubling the width, as many upsamplings back, c7s1-out_channels, tanh;
    its output is averaged within each instance (:func:`instance_average`).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 16, n_downsampling: int = 4,
                 norm: GenNorm = "instance"):
        super().__init__()
        self.in_channels, self.out_channels, self.n_downsampling = in_channels, out_channels, n_downsampling
        layers = _c7s1(in_channels, ngf, norm)
        for i in range(n_downsampling):
            layers += _down(ngf * 2**i, ngf * 2 ** (i + 1), norm)
        for i in reversed(range(n_downsampling)):
            layers += _up(ngf * 2 ** (i + 1), ngf * 2**i, norm)
        self.body = nn.Sequential(*layers)
        self.to_features = _to_image(ngf, out_channels)

    def forward(self, image: Tensor, instance_map: Tensor) -> Tensor:
        """``image`` [B, in_channels, H, W], ``instance_map`` [B, H, W] integer ids → features
        [B, out_channels, H, W], constant within each instance (its mean)."""
        return instance_average(self.pixel_features(image), instance_map)

    def pixel_features(self, image: Tensor) -> Tensor:
        """E's output before the per-instance average."""
        _check_input(image, self.in_channels, 2**self.n_downsampling, "InstanceFeatureEncoder")
        return self.to_features(self.body(image))


def init_pix2pixhd_weights_(module: nn.Module, std: float = 0.02) -> nn.Module:
    """Convolution weights from N(0, std), zero biases; batch-norm scales from N(1, std), zero
    shifts (the Gaussian initialisation of pix2pix, Isola et al. 2017 §6.1, which pix2pixHD keeps)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


@dataclasses.dataclass
class Pix2PixHDNetworks:
    """What :func:`build_pix2pixhd_networks` returns; ``encoder`` is None without features."""

    generator: GlobalGenerator | LocalEnhancer
    discriminator: MultiscaleDiscriminator
    encoder: InstanceFeatureEncoder | None
    semantic_nc: int  # label + edge channels; D takes semantic_nc + image channels
    generator_in_channels: int  # semantic_nc + feature channels


def build_pix2pixhd_networks(
    num_labels: int, *, instance_edges: bool, feature_channels: int = 0, image_channels: int = 3, ngf: int = 64,
    ndf: int = 64, n_local_enhancers: int = 0, num_d: int = 3, n_layers_d: int = 3, n_blocks_global: int = 9,
    n_blocks_local: int = 3, nef: int = 16, norm: GenNorm = "instance", init_std: float | None = 0.02,
) -> Pix2PixHDNetworks:
    """Generator, discriminator and (``feature_channels`` > 0, the paper's 3) encoder with the paper's settings.

    ``ngf`` is G1's width; with ``n_local_enhancers=1`` the generator is a :class:`LocalEnhancer`
    of width ngf // 2 around a fresh G1. ``n_layers_d`` counts as pix2pixHD's ``n_layers_D``
    (3: convs of 64, 128, 256, 512 then the 1-channel head), which is
    :class:`~gauguin.nn.patchgan.NLayerDiscriminator`'s ``n_layers = n_layers_d + 1``; D is plain
    (no spectral norm), instance-normed, keeps its conv biases and pads by 2. ``init_std`` applies
    :func:`init_pix2pixhd_weights_` (None: PyTorch's default initialisation).
    """
    if n_local_enhancers not in (0, 1):
        raise ValueError(f"n_local_enhancers must be 0 or 1, got {n_local_enhancers}")
    if feature_channels < 0:
        raise ValueError(f"feature_channels must be ≥ 0, got {feature_channels}")
    semantic_nc = num_labels + int(instance_edges)
    g_in = semantic_nc + feature_channels
    generator: GlobalGenerator | LocalEnhancer
    if n_local_enhancers == 0:
        generator = GlobalGenerator(g_in, image_channels, ngf, n_blocks=n_blocks_global, norm=norm)
    else:
        if ngf % 2:
            raise ValueError(f"ngf must be even with a local enhancer (its width is ngf // 2), got {ngf}")
        global_generator = GlobalGenerator(g_in, image_channels, ngf, n_blocks=n_blocks_global, norm=norm)
        generator = LocalEnhancer(g_in, image_channels, ngf // 2, n_blocks_local, global_generator, norm)
    discriminator = MultiscaleDiscriminator(semantic_nc + image_channels, num_d, ndf, n_layers_d + 1,
                                            norm="instance", spectral=False, padding=2, bias=True)
    encoder = InstanceFeatureEncoder(image_channels, feature_channels, nef, norm=norm) if feature_channels else None
    if init_std is not None:
        for net in (generator, discriminator, encoder):
            if net is not None:
                init_pix2pixhd_weights_(net, init_std)
    return Pix2PixHDNetworks(generator, discriminator, encoder, semantic_nc, g_in)
