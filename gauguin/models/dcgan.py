"""DCGAN (Radford et al. 2016), unconditional or class-conditional, with the classic losses and aids.

Conditioning: G concatenates a learned label embedding to z (``g_conditioning=concat``) or uses
class-conditional batch norm, γ_y and β_y per class (``cbn``; de Vries et al. 2017, Miyato & Koyama
2018 §5); D is a projection discriminator (Miyato & Koyama 2018): D(x, y) = ψ(φ(x)) + ⟨e_y, φ(x)⟩
(``d_conditioning=projection``), or sees the label as one-hot planes beside the image (``concat``,
Mirza & Osindero 2014).
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .. import losses
from ..config import ConfigError, TrainConfig
from ..nn import MinibatchStddev
from ..nn.diffaugment import diff_augment, parse_policy
from .base import Batch, DataInfo, GANFamily, Logs
from .inference import Graph, InferenceSpec, Input

PENALTY_LOSSES = ("wgan-gp",)


@dataclasses.dataclass
class DCGANConfig(TrainConfig):
    """DCGAN defaults: Adam lr 2e-4, β=(0.5, 0.999), batch 128, z of 100 (Radford et al. 2016)."""

    positive: ClassVar[tuple[str, ...]] = ("z_dim", "g_width", "d_width")  # must be > 0

    out_dir: str = "runs/dcgan"
    conditional: bool = True
    z_dim: int = 100
    g_width: int = 64  # channels of G's last hidden layer (doubling towards 4x4)
    d_width: int = 64  # channels of D's first layer (doubling towards 4x4)
    d_norm: Literal["auto", "batch", "layer", "spectral", "none"] = "auto"  # auto: batch, or layer under WGAN-GP/R1
    g_conditioning: Literal["concat", "cbn"] = "concat"  # label embedding beside z, or class-conditional batch norm
    d_conditioning: Literal["projection", "concat"] = "projection"  # projection D, or one-hot label planes
    loss: Literal["minimax", "nonsaturating", "lsgan", "hinge", "wgan", "wgan-gp"] = "nonsaturating"
    gp_weight: float = 10.0  # λ of WGAN-GP (Gulrajani et al. 2017)
    r1_gamma: float = 0.0  # γ of the R1 penalty (Mescheder et al. 2018); 0 = off
    clip_value: float = 0.01  # weight clipping of loss=wgan (Arjovsky et al. 2017)
    label_smoothing: float = 0.0  # one-sided: real target 1 - s (Salimans et al. 2016)
    instance_noise: float = 0.0  # initial std of Gaussian noise on D's inputs, annealed to 0
    instance_noise_steps: int = 0  # steps over which it anneals (0 = the whole run)
    feature_matching: float = 0.0  # weight of the feature-matching term in G's loss
    minibatch_stddev: bool = False  # append a minibatch-stddev feature map in D (Karras et al. 2018)
    d_batches: Literal["separate", "joint"] = "separate"  # real and fake through D apart, or concatenated
    diffaugment: str = ""  # DiffAugment policy of everything D sees, e.g. "translation,cutout" (Zhao et al. 2020)

    def validate(self) -> None:
        super().validate()
        if self.image_size not in (28, 32, 64, 128):
            raise ConfigError(f"image_size must be 28, 32, 64 or 128 for dcgan, got {self.image_size}")
        if self.label_smoothing and self.loss in ("hinge", "wgan", "wgan-gp"):
            raise ConfigError(f"label_smoothing is undefined for loss={self.loss}; set label_smoothing=0")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        try:
            parse_policy(self.diffaugment)
        except ValueError as err:
            raise ConfigError(f"diffaugment: {err}") from None

    @property
    def discriminator_norm(self) -> str:
        """BatchNorm mixes samples, which breaks per-sample gradient penalties (Gulrajani et al. §4)."""
        if self.d_norm != "auto":
            return self.d_norm
        return "layer" if (self.loss in PENALTY_LOSSES or self.r1_gamma > 0) else "batch"


def _layout(image_size: int) -> tuple[int, int]:
    """Start resolution (7 for 28 px, else 4) and the number of 2x up/down-samplings."""
    start = 7 if image_size == 28 else 4
    return start, int(math.log2(image_size // start))


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm without its own affine, then γ_y, β_y of the label (de Vries et al. 2017, eq. 2)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.bias = nn.Embedding(num_classes, channels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


class Generator(nn.Module):
    """z (+ label embedding) → 1x1 → start×start → ... → image, ConvTranspose + BN (or CBN) + ReLU, tanh out."""

    def __init__(self, image_size: int, channels: int, z_dim: int, width: int, num_classes: int = 0,
                 conditioning: str = "concat"):
        super().__init__()
        start, ups = _layout(image_size)
        self.z_dim = z_dim
        conditional = num_classes > 1
        self.embed = nn.Embedding(num_classes, z_dim) if conditional and conditioning == "concat" else None
        self.cbn = conditional and conditioning == "cbn"
        c = width * 2 ** (ups - 1)
        in_dim = z_dim * (2 if self.embed is not None else 1)
        convs = [nn.ConvTranspose2d(in_dim, c, start, 1, 0, bias=False)]
        for _ in range(ups - 1):
            convs.append(nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False))
            c //= 2
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(ConditionalBatchNorm2d(conv.out_channels, num_classes) if self.cbn
                                   else nn.BatchNorm2d(conv.out_channels) for conv in convs)
        self.to_image = nn.ConvTranspose2d(c, channels, 4, 2, 1)
        self.apply(_dcgan_init)
        self._register_load_state_dict_pre_hook(self._rename_sequential_keys)

    def _rename_sequential_keys(self, state, prefix, *args) -> None:
        """Checkpoints before the CBN option held G as one Sequential: net.{3i} conv, net.{3i+1} BN, ..."""
        for key in [k for k in state if k.startswith(prefix + "net.")]:
            index, _, rest = key[len(prefix) + 4:].partition(".")
            block, part = divmod(int(index), 3)
            name = "to_image" if block == len(self.convs) else f"{('convs', 'norms')[part]}.{block}"
            state[f"{prefix}{name}.{rest}"] = state.pop(key)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if (self.embed is not None or self.cbn) and labels is None:
            raise ValueError("this generator is class-conditional: pass labels")
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels)], dim=1)
        h = z[:, :, None, None]
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h)
            h = torch.relu(norm(h, labels) if self.cbn else norm(h))
        return torch.tanh(self.to_image(h))


def norm_layer(kind: str, channels: int) -> nn.Module:
    """D's activation norm; spectral norm normalises the weights instead (Miyato et al. 2018)."""
    return {"batch": lambda: nn.BatchNorm2d(channels), "layer": lambda: nn.GroupNorm(1, channels),
            "spectral": nn.Identity, "none": nn.Identity}[kind]()


class Discriminator(nn.Module):
    """image (+ one-hot label planes) → strided Conv + norm + LeakyReLU(0.2) down to start×start →
    linear (+ projection)."""

    def __init__(self, image_size: int, channels: int, width: int, num_classes: int = 0,
                 norm: str = "batch", minibatch_stddev: bool = False, conditioning: str = "projection"):
        super().__init__()
        start, downs = _layout(image_size)
        self.label_planes = num_classes if num_classes > 1 and conditioning == "concat" else 0
        layers: list[nn.Module] = [nn.Conv2d(channels + self.label_planes, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = width
        for _ in range(downs - 1):
            layers += [nn.Conv2d(c, c * 2, 4, 2, 1, bias=norm in ("spectral", "none")), norm_layer(norm, c * 2),
                       nn.LeakyReLU(0.2, True)]
            c *= 2
        if minibatch_stddev:
            layers.append(MinibatchStddev())
            c += 1
        self.features = nn.Sequential(*layers, nn.Flatten())
        feature_dim = c * start * start
        self.head = nn.Linear(feature_dim, 1)
        self.embed = (nn.Embedding(num_classes, feature_dim) if num_classes > 1 and not self.label_planes else None)
        self.apply(_dcgan_init)
        if norm == "spectral":
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.Linear, nn.Embedding)):
                    spectral_norm(module)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None, return_features: bool = False):
        if (self.embed is not None or self.label_planes) and labels is None:
            raise ValueError("this discriminator is class-conditional: pass labels")
        if self.label_planes:
            planes = nn.functional.one_hot(labels, self.label_planes).to(x.dtype)[:, :, None, None]
            x = torch.cat([x, planes.expand(-1, -1, *x.shape[2:])], dim=1)
        h = self.features(x)
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(dim=1)
        return (out, h) if return_features else out


def _dcgan_init(m: nn.Module) -> None:
    """Weights from N(0, 0.02); norm scales from N(1, 0.02) (Radford et al. 2016 §4)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
    elif isinstance(m, ConditionalBatchNorm2d):  # after its embeddings (apply visits children first)
        nn.init.normal_(m.gain.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias.weight)


class DCGAN(GANFamily):
    name = "dcgan"
    config_class = DCGANConfig

    def __init__(self, cfg: DCGANConfig, data: DataInfo):
        super().__init__(cfg, data)
        classes = data.num_classes if cfg.conditional else 0
        self.conditional = classes > 1
        self.generator = Generator(cfg.image_size, cfg.channels, cfg.z_dim, cfg.g_width, classes, cfg.g_conditioning)
        self.discriminator = Discriminator(cfg.image_size, cfg.channels, cfg.d_width, classes,
                                           cfg.discriminator_norm, cfg.minibatch_stddev, cfg.d_conditioning)
        self.adversarial = losses.get_adversarial_loss("wgan" if cfg.loss == "wgan-gp" else cfg.loss)
        self.real_target = 1.0 - cfg.label_smoothing
        self.augment_policy = parse_policy(cfg.diffaugment)

    @property
    def inference(self) -> InferenceSpec:
        inputs = (Input("z", "normal", self.cfg.z_dim),) + ((Input("labels", "class", self.num_classes),)
                                                            if self.conditional else ())
        return InferenceSpec((Graph("generator", inputs, lambda G, x: G(**x)),),
                             (self.cfg.image_size,) * 2, self.cfg.channels)

    def fakes(self, G, batch: Batch, step: int) -> torch.Tensor:
        real = batch["image"]
        z = torch.randn(real.shape[0], self.cfg.z_dim, device=real.device)
        return G(z, batch["label"] if self.conditional else None)

    def _d_input(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """What D sees of an image: DiffAugment's transforms, then instance noise."""
        return self._instance_noise(diff_augment(x, self.augment_policy), step)

    def _instance_noise(self, x: torch.Tensor, step: int) -> torch.Tensor:
        """Gaussian instance noise (Sønderby et al. 2017; Arjovsky & Bottou 2017), σ annealed linearly to 0."""
        if self.cfg.instance_noise <= 0:
            return x
        horizon = self.cfg.instance_noise_steps or self.cfg.steps
        sigma = self.cfg.instance_noise * max(0.0, 1.0 - step / horizon)
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    def _d_pair(self, D, real, fake, y):
        if self.cfg.d_batches == "joint":
            both = D(torch.cat([real, fake]), None if y is None else torch.cat([y, y]))
            return both.split(real.shape[0])
        return D(real, y), D(fake, y)

    def _clip(self, D) -> None:
        """WGAN's weight clipping (Arjovsky et al. 2017, Algorithm 1 clips after each critic update);
        clipped before every use of D instead, which is the same: clipping is idempotent and nothing
        reads D's weights between an update and the next use."""
        if self.cfg.loss == "wgan":
            losses.weight_clip_(D, self.cfg.clip_value)

    def d_loss(self, D, batch: Batch, fakes: torch.Tensor, step: int) -> tuple[torch.Tensor, Logs]:
        self._clip(D)
        real = batch["image"]
        y = batch["label"] if self.conditional else None
        real = self._d_input(real, step)
        fake = self._d_input(fakes.detach(), step)
        if self.cfg.r1_gamma > 0:
            real = real.detach().requires_grad_(True)
        real_logits, fake_logits = self._d_pair(D, real, fake, y)
        loss = self.adversarial.d_loss(real_logits, fake_logits, real_target=self.real_target)
        logs = {"d_loss": loss.item(), "d_real": real_logits.float().mean().item(), "d_fake": fake_logits.float().mean().item()}
        if self.cfg.loss == "wgan-gp":
            gp = losses.gradient_penalty(lambda x: D(x, y), real.detach(), fake)
            loss = loss + self.cfg.gp_weight * gp
            logs["gp"] = gp.item()
        if self.cfg.r1_gamma > 0:
            r1 = losses.r1_penalty(real_logits, real)
            loss = loss + 0.5 * self.cfg.r1_gamma * r1
            logs["r1"] = r1.item()
        return loss, logs

    def g_loss(self, G, D, batch: Batch, fakes: torch.Tensor, step: int) -> tuple[torch.Tensor, Logs]:
        self._clip(D)
        real = batch["image"]
        y = batch["label"] if self.conditional else None
        fake = self._d_input(fakes, step)
        fake_logits, fake_features = D(fake, y, return_features=True)
        loss = self.adversarial.g_loss(fake_logits)
        logs = {"g_loss": loss.item()}
        if self.cfg.feature_matching > 0:
            with torch.no_grad():
                _, real_features = D(self._d_input(real, step), y, return_features=True)
            fm = losses.feature_matching_loss(real_features, fake_features)
            loss = loss + self.cfg.feature_matching * fm
            logs["feature_matching"] = fm.item()
        return loss, logs
