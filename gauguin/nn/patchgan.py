"""PatchGAN discriminators: Isola et al. 2017 (pix2pix, §3.2.2), in the multi-scale form of
Wang et al. 2018 (pix2pixHD, §3.2, "High-Resolution Image Synthesis and Semantic Manipulation
with Conditional GANs") that SPADE (Park et al. 2019, appendix A) uses with spectral norm, and
pix2pix's own variants (§4.4, Table 3): the 70×70 PatchGAN (:func:`pix2pix_patchgan`), the 1×1
PixelGAN (:class:`PixelDiscriminator`) and the whole-image ImageGAN (:func:`image_gan`).

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

__all__ = [
    "PatchNorm",
    "NLayerDiscriminator",
    "MultiscaleDiscriminator",
    "PixelDiscriminator",
    "image_gan",
    "patchgan_receptive_field",
    "pix2pix_patchgan",
]


def norm_layer(kind: PatchNorm, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be 'instance', 'batch' or 'none', got {kind!r}")


class LayerStack(nn.Module):
    """``self.layers`` applied in turn; ``forward`` returns every layer's output (the last is D's
    prediction map, the others are the features of feature matching)."""

    layers: nn.ModuleList

    def forward(self, x: Tensor) -> list[Tensor]:
        features = []
        for layer in self.layers:
            x = layer(x)
            features.append(x)
        return features


class NLayerDiscriminator(LayerStack):
    """PatchGAN with 4×4 kernels (pix2pixHD / SPADE layout).

    conv(in→ndf, stride 2) + LeakyReLU(0.2), no norm; then ``n_layers - 1`` convs doubling the
    width (capped at ``max_channels``, 512), stride 2 except the last (stride 1), each conv → norm → LeakyReLU(0.2);
    then conv(→1, stride 1). ``n_layers`` counts the convs before the 1-channel head: SPADE's
    ``n_layers_D=4`` is this ``n_layers=4``, and so is pix2pixHD's ``n_layers_D=3``; pix2pix's
    70×70 PatchGAN (``n_layers=3`` in its code) is ``n_layers=4, padding=1, norm="batch"``
    (:func:`pix2pix_patchgan` builds it with pix2pix's counting).

    ``spectral`` wraps the normalised convs in spectral norm (SPADE's "spectralinstance"; the
    first and last convs stay plain, as in the official code). ``bias`` of the normalised convs
    defaults to ``norm == "none"`` (SPADE drops it before a norm); pix2pixHD keeps it (True).
    ``max_channels`` caps the widths: 512 in pix2pixHD / SPADE, 8·ndf in pix2pix.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, norm: PatchNorm = "instance",
                 spectral: bool = True, padding: int = 2, bias: bool | None = None, max_channels: int = 512):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be at least 1, got {n_layers}")
        bias = norm == "none" if bias is None else bias
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(in_channels, ndf, 4, stride=2, padding=padding), nn.LeakyReLU(0.2))
        ]
        nf = ndf
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, max_channels)
            stride = 1 if n == n_layers - 1 else 2
            conv = spectral_conv(spectral, nf_prev, nf, 4, stride=stride, padding=padding, bias=bias)
            layers.append(nn.Sequential(conv, norm_layer(norm, nf), nn.LeakyReLU(0.2)))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=padding)))
        self.layers = nn.ModuleList(layers)



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


# ------------------------------------------------------------------------------ pix2pix variants
def patchgan_receptive_field(n_layers: int) -> int:
    """Receptive field (pixels per side) of :func:`pix2pix_patchgan` with ``n_layers``: 9·2ⁿ − 2.

    Kernels of 4 at strides 2 (n times), 1, 1 (the last conv and the head): RF = 1 + 3·Σ jumps,
    the jumps being 1, 2, ..., 2ⁿ⁻¹, 2ⁿ, 2ⁿ, so RF = 1 + 3·(3·2ⁿ − 1): 16, 34, 70, 142, 286.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    return 9 * 2**n_layers - 2


def pix2pix_patchgan(in_channels: int, n_layers: int = 3, ndf: int = 64,
                     norm: Literal["batch", "instance"] = "batch") -> NLayerDiscriminator:
    """The pix2pix PatchGAN (Isola et al. 2017, §3.2.2 and appendix 6.1.2): C64-C128-C256-C512 then
    a 1-channel conv, for ``n_layers=3`` (pix2pix's counting: the stride-2 convs) the 70×70 PatchGAN.

    4×4 kernels, padding 1, strides 2 (``n_layers`` times), 1, 1; widths ndf·min(2ⁿ, 8); LeakyReLU
    0.2; no norm on the first conv. Conv biases as in the official code: on the first conv and the
    head, and on the normalised convs only with instance norm (affine-free there; before batch norm
    a bias is cancelled by the mean subtraction). Receptive field :func:`patchgan_receptive_field`:
    16 (n_layers=1), 34, 70, 142, 286. In CycleGAN (Zhu et al. 2017, appendix 7.2) it is the same
    70×70 net with ``norm="instance"``.

    Returns :class:`NLayerDiscriminator` (``n_layers + 1`` in its counting), whose last output is the
    map of patch logits. Parameters for 6 input channels (pix2pix: input and output images
    concatenated), ndf 64, n_layers 3: batch norm 2,768,705 = convs 6,208 + 131,072 + 524,288 +
    2,097,152 + 8,193 and BN affines 2·(128 + 256 + 512) = 1,792 (running statistics are buffers);
    instance norm 2,767,809 = the same convs with biases 128 + 256 + 512 and no norm parameters.
    """
    if n_layers < 1:
        raise ValueError(f"n_layers must be at least 1, got {n_layers}")
    if norm not in ("batch", "instance"):
        raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
    return NLayerDiscriminator(in_channels, ndf, n_layers + 1, norm, spectral=False, padding=1,
                               bias=norm == "instance", max_channels=8 * ndf)


def image_gan(in_channels: int, image_size: int, ndf: int = 64,
              norm: Literal["batch", "instance"] = "batch") -> NLayerDiscriminator:
    """A whole-image discriminator, pix2pix's "ImageGAN" (Isola et al. 2017, §4.4, Table 3):
    :func:`pix2pix_patchgan` with the fewest ``n_layers`` for which *every* output's receptive field
    contains the whole ``image_size``² image, so each score judges the whole image.

    Chosen over averaging a shallow PatchGAN's scores (that average still only judges local
    patches) and stricter than the paper's 286×286 net on 256×256 images (``n_layers=5``, which
    :func:`pix2pix_patchgan` builds): with padding 1 its receptive fields are off-centre and its 6×6
    outputs each miss border rows and columns (one, for the central ones). Here 256 → ``n_layers=6``
    (a 2×2 output map), 128 → 5, 64 → 4, 32 → 3. Output j of the map covers the input pixels
    [j·2ⁿ − (3·2ⁿ − 1), j·2ⁿ + 6·2ⁿ − 2] (padding 1 on every conv); the map is ⌊S / 2ⁿ⌋ − 2 wide.
    """
    n_layers = 1
    while True:
        step = 2**n_layers
        width = image_size // step - 2  # n stride-2 convs halve (rounding down), the last two take 1 each
        if width < 1:
            raise ValueError(f"no PatchGAN depth gives outputs that all see a {image_size}×{image_size} image")
        first = -(3 * step - 1)  # the first output's receptive field starts here ...
        last_start = first + (width - 1) * step  # ... the last output's here
        if last_start <= 0 and first + patchgan_receptive_field(n_layers) - 1 >= image_size - 1:
            return pix2pix_patchgan(in_channels, n_layers, ndf, norm)
        n_layers += 1


class PixelDiscriminator(LayerStack):
    """The pix2pix "PixelGAN" (Isola et al. 2017, §4.4, Table 3): a 1×1 PatchGAN judging each pixel
    alone (its colour statistics), C64-C128 of 1×1 convs, LeakyReLU 0.2, then a 1×1 conv to one logit.

    No norm on the first conv; batch or instance norm on the second, whose bias follows
    :func:`pix2pix_patchgan` (only with instance norm). Returns the list of layer outputs like
    :class:`NLayerDiscriminator`, the last being the [B, 1, H, W] logit map.
    """

    def __init__(self, in_channels: int, ndf: int = 64, norm: Literal["batch", "instance"] = "batch"):
        super().__init__()
        if norm not in ("batch", "instance"):
            raise ValueError(f"norm must be 'batch' or 'instance', got {norm!r}")
        self.layers = nn.ModuleList([
            nn.Sequential(nn.Conv2d(in_channels, ndf, 1), nn.LeakyReLU(0.2)),
            nn.Sequential(nn.Conv2d(ndf, 2 * ndf, 1, bias=norm == "instance"), norm_layer(norm, 2 * ndf), nn.LeakyReLU(0.2)),
            nn.Sequential(nn.Conv2d(2 * ndf, 1, 1)),
        ])

