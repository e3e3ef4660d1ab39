"""The SPADE / GauGAN networks: Park et al. 2019, "Semantic Image Synthesis with
Spatially-Adaptive Normalization" (appendix A, Fig. 12-14): the SPADE generator, the VAE style
encoder and the multi-scale PatchGAN discriminator, with the paper's widths (ngf = ndf = 64).

The generator's ``label_nc`` is the number of semantic channels it receives: the one-hot classes,
plus one for "don't care" where the dataset has it, plus one for the instance edge map where
instances are used (COCO-Stuff: 182 + 1 + 1 = 184). The discriminator sees that map concatenated
with the image (label_nc + 3 channels).
"""
from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn.patchgan import MultiscaleDiscriminator
from ..nn.spade import ParamFreeNorm, SegmapPyramid, SPADEResBlock
from ..nn.spectral import SpectralNormConv2d

UpsamplingLayers = Literal["normal", "more", "most"]
NUM_UP = {"normal": 5, "more": 6, "most": 7}

__all__ = [
    "ConvEncoder",
    "SPADEGenerator",
    "SPADENetworks",
    "build_spade_networks",
    "init_spade_weights_",
    "latent_size",
    "reparameterize",
]


def latent_size(crop_size: int, aspect_ratio: float = 1.0,
                num_upsampling_layers: UpsamplingLayers = "normal") -> tuple[int, int]:
    """(sh, sw) of the generator's first map: sw = crop_size / 2**num_up, sh = round(sw / aspect)."""
    if num_upsampling_layers not in NUM_UP:
        raise ValueError(f"num_upsampling_layers must be 'normal', 'more' or 'most', got {num_upsampling_layers!r}")
    num_up = NUM_UP[num_upsampling_layers]
    sw = crop_size // 2**num_up
    sh = round(sw / aspect_ratio)
    if sw < 1 or sh < 1 or sw * 2**num_up != crop_size:
        raise ValueError(
            f"crop_size {crop_size} must be a multiple of 2**{num_up} = {2**num_up} "
            f"(num_upsampling_layers={num_upsampling_layers!r}) with aspect_ratio {aspect_ratio} giving a height ≥ 1"
        )
    return sh, sw


class SPADEGenerator(nn.Module):
    """SPADE generator (Park et al. 2019, Fig. 12): a stack of SPADE residual blocks with 2×
    nearest upsampling, from a sh×sw map to the image; LeakyReLU(0.2), conv3×3, tanh out.

    The first map is a linear projection of z ~ N(0, I) when ``use_vae`` (the style path, §3.3),
    else a conv3×3 of the semantic map downsampled to sh×sw. Widths (×ngf): 16 (head_0,
    G_middle_0, G_middle_1), then 8, 4, 2, 1 (up_0 ... up_3), and ngf/2 (up_4) for "most".
    "more"/"most" add an upsampling between G_middle_0 and G_middle_1 ("most" also up_4).
    """

    def __init__(self, label_nc: int, ngf: int = 64, num_upsampling_layers: UpsamplingLayers = "normal",
                 crop_size: int = 256, aspect_ratio: float = 1.0, use_vae: bool = False, z_dim: int = 256,
                 out_channels: int = 3, param_free_norm: ParamFreeNorm = "syncbatch", spectral: bool = True):
        super().__init__()
        self.label_nc, self.z_dim, self.use_vae = label_nc, z_dim, use_vae
        self.num_upsampling_layers = num_upsampling_layers
        self.sh, self.sw = latent_size(crop_size, aspect_ratio, num_upsampling_layers)
        nf = ngf
        if use_vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(label_nc, 16 * nf, 3, padding=1)

        def block(fin: int, fout: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, label_nc, spectral=spectral, param_free_norm=param_free_norm)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, 1 * nf)
        final_nc = nf
        if num_upsampling_layers == "most":
            self.up_4 = block(1 * nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, out_channels, 3, padding=1)

    @staticmethod
    def up(x: Tensor) -> Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def forward(self, segmap: Tensor | SegmapPyramid, z: Tensor | None = None) -> Tensor:
        """``segmap`` [B, label_nc, H, W] (one-hot + extra channels; or its pyramid, e.g. with the label ids)
        → image [B, out_channels, H, W] in [-1, 1]."""
        seg = segmap if isinstance(segmap, SegmapPyramid) else SegmapPyramid(segmap)  # one resize per size
        if seg.shape[1] != self.label_nc:
            raise ValueError(f"segmap has {seg.shape[1]} channels, this generator expects label_nc={self.label_nc}")
        if self.use_vae:
            if z is None:
                z = torch.randn(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
            x = self.fc(z).view(-1, self.fc.out_features // (self.sh * self.sw), self.sh, self.sw)
        else:
            if z is not None:
                raise ValueError("this generator has no style input (use_vae=False): pass z=None")
            x = self.fc(seg.at((self.sh, self.sw)))
        x = self.head_0(x, seg)
        x = self.up(x)
        x = self.G_middle_0(x, seg)
        if self.num_upsampling_layers in ("more", "most"):
            x = self.up(x)
        x = self.G_middle_1(x, seg)
        for block in (self.up_0, self.up_1, self.up_2, self.up_3):
            x = block(self.up(x), seg)
        if self.num_upsampling_layers == "most":
            x = self.up_4(self.up(x), seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x)


class ConvEncoder(nn.Module):
    """VAE style encoder (Park et al. 2019, Fig. 14): six conv3×3 stride 2 (widths ndf, 2, 4, 8, 8,
    8 ×ndf), each spectral-normed, without bias, then InstanceNorm and LeakyReLU(0.2); a 4×4 map
    flattened into two linear heads giving μ and log σ² of z.

    Images are first resized (bilinear) to ``input_size``² as in the official code, so the six
    convs end at 4×4 for any crop (64, 128, 256, 512×256, ...); ``input_size=None`` keeps the
    input size and average-pools the last map to 4×4 instead (inputs should be at least 256 px:
    InstanceNorm of a 1×1 map is 0 and erases the image).
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, z_dim: int = 256, input_size: int | None = 256):
        super().__init__()
        self.input_size = input_size
        widths = [in_channels, ndf, 2 * ndf, 4 * ndf, 8 * ndf, 8 * ndf, 8 * ndf]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths, widths[1:]):
            layers += [SpectralNormConv2d(cin, cout, 3, stride=2, padding=1, bias=False),
                       nn.InstanceNorm2d(cout, affine=False), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(8 * ndf * 4 * 4, z_dim)
        self.fc_var = nn.Linear(8 * ndf * 4 * 4, z_dim)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``image`` [B, C, H, W] → (mu, logvar), each [B, z_dim]."""
        if self.input_size is not None and tuple(image.shape[-2:]) != (self.input_size, self.input_size):
            image = F.interpolate(image, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        x = F.adaptive_avg_pool2d(self.features(image), 4).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """z = μ + σ·ε with σ = exp(½ log σ²), ε ~ N(0, I) (Kingma & Welling 2014, §2.4)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


def init_spade_weights_(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """The official SPADE initialisation: Xavier-normal weights (gain 0.02) for every conv and
    linear layer, zero biases; BatchNorm scales from N(1, 0.02). Spectral-normed layers are
    re-initialised through their unnormalised weight and get fresh power-iteration vectors.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, SpectralNormConv2d):
                m.reset_power_iteration()
        elif isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm)) and m.affine:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return module


@dataclasses.dataclass
class SPADENetworks:
    """What :func:`build_spade_networks` returns; ``encoder`` is None without the VAE."""

    generator: SPADEGenerator
    discriminator: MultiscaleDiscriminator
    encoder: ConvEncoder | None
    semantic_nc: int  # the generator's label_nc; the discriminator takes semantic_nc + image channels


def build_spade_networks(
    num_labels: int, *, dont_care: bool = False, instance_edges: bool = False, ngf: int = 64, ndf: int = 64,
    num_upsampling_layers: UpsamplingLayers = "normal", crop_size: int = 256, aspect_ratio: float = 1.0,
    use_vae: bool = False, z_dim: int = 256, image_channels: int = 3, param_free_norm: ParamFreeNorm = "syncbatch",
    num_d: int = 2, n_layers_d: int = 4, init_gain: float | None = 0.02,
) -> SPADENetworks:
    """Generator, multi-scale discriminator and (with ``use_vae``) encoder with the paper's settings.

    ``num_labels`` is the number of classes; ``dont_care`` and ``instance_edges`` add one semantic
    channel each. ``init_gain`` applies :func:`init_spade_weights_` (None: PyTorch's default init).
    """
    semantic_nc = num_labels + int(dont_care) + int(instance_edges)
    generator = SPADEGenerator(semantic_nc, ngf, num_upsampling_layers, crop_size, aspect_ratio, use_vae, z_dim,
                               image_channels, param_free_norm)
    discriminator = MultiscaleDiscriminator(semantic_nc + image_channels, num_d, ndf, n_layers_d)
    encoder = ConvEncoder(image_channels, ndf, z_dim) if use_vae else None
    if init_gain is not None:
        for net in (generator, discriminator, encoder):
            if net is not None:
                init_spade_weights_(net, init_gain)
    return SPADENetworks(generator, discriminator, encoder, semantic_nc)
