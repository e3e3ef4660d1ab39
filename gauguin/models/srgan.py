"""SRGAN / ESRGAN-style super-resolution (Ledig et al. 2017; Wang et al. 2018).

G is SRResNet or the RRDB network (``srgan_nets``); D the VGG-style discriminator of SRGAN or the
U-Net discriminator with spectral norm of Real-ESRGAN. Schedule (ESRGAN §4.1): a PSNR-oriented
phase, G alone on the pixel loss for ``pretrain_steps`` (this is SRResNet), then the GAN phase
from it: λ_pix·pixel + λ_perc·perceptual + λ_adv·adversarial, the adversarial term standard or
relativistic average (ESRGAN Eq. 1-2), the perceptual term an L1 distance of VGG19 conv5_4
features before activation (ESRGAN §3.3), only when ``vgg_weights`` names a file (none can be
downloaded here). Without it the defaults are SRGAN's pixel-content recipe (λ_pix 1, λ_adv 1e-3);
with it ESRGAN's weights are λ_pix 1e-2, λ_perc 1, λ_adv 5e-3 (configs/srgan_esrgan.yaml).
Adam, β=(0.9, 0.999), lr 2e-4 for G (ESRGAN's PSNR phase) and 1e-4 for D; G's EMA samples.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from ..config import ConfigError, TrainConfig
from ..nn.vgg import VGGLoss, load_vgg19
from .base import Batch, DataInfo, GANFamily, Logs, Plan, build_data
from .inference import Graph, InferenceSpec, Input
from .srgan_nets import RRDBNet, SRResNet, UNetDiscriminator, VGGStyleDiscriminator


@dataclasses.dataclass
class SRGANConfig(TrainConfig):
    """The papers' networks, losses and optimiser; crops, steps and batch sized for a CPU; the data
    default to Fashion-MNIST at ×2 (14 → 28 px). ``image_size`` is the HR crop."""

    positive: ClassVar[tuple[str, ...]] = ("scale", "crops_per_photo", "width", "blocks", "growth", "d_width")  # must be > 0

    out_dir: str = "runs/srgan"
    image_size: int = 28  # HR crop (SRGAN 96, ESRGAN 128)
    scale: int = 2  # 2 or 4
    crops_per_photo: int = 16  # photo folders: HR crops per photo per epoch
    generator: Literal["srresnet", "rrdb"] = "srresnet"
    width: int = 64
    blocks: int = 16  # residual blocks (SRResNet 16) or RRDBs (ESRGAN 23)
    growth: int = 32  # RRDB: channels each dense conv adds
    residual_scale: float = 0.2  # RRDB: β
    batch_norm: bool = True  # SRResNet's BatchNorm (ESRGAN removes it)
    discriminator: Literal["vgg", "unet"] = "vgg"
    d_width: int = 64
    pixel_loss: Literal["l1", "mse"] = "l1"
    adversarial: Literal["standard", "relativistic"] = "relativistic"
    lambda_pixel: float = 1.0  # in the GAN phase (the PSNR phase uses the pixel loss alone)
    lambda_perceptual: float = 1.0  # only with vgg_weights
    lambda_adv: float = 1e-3
    vgg_weights: str = ""  # torchvision VGG19 weights (.pth or .safetensors)
    pretrain_steps: int = 1000  # the PSNR-oriented phase
    steps: int = 3000
    batch_size: int = 16
    lr_g: float = 2e-4  # ESRGAN's PSNR-oriented phase (its GAN phase: 1e-4)
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    ema_decay: float = 0.999

    def validate(self) -> None:
        super().validate()
        if self.scale not in (2, 4):
            raise ConfigError(f"scale must be 2 or 4, got {self.scale}")
        if self.image_size % self.scale:
            raise ConfigError(f"image_size (the HR crop, {self.image_size}) must divide by scale={self.scale}")
        if self.pretrain_steps > self.steps:
            raise ConfigError(f"pretrain_steps={self.pretrain_steps} > steps={self.steps}: the GAN phase would "
                              "never start; set steps >= pretrain_steps (equal: the PSNR-oriented model alone)")


class SRGAN(GANFamily):
    name = "srgan"
    config_class = SRGANConfig

    def __init__(self, cfg: SRGANConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.channels = c = data.channels or cfg.channels
        if cfg.generator == "rrdb":
            self.generator = RRDBNet(c, cfg.scale, cfg.width, cfg.blocks, cfg.growth, cfg.residual_scale)
        else:
            self.generator = SRResNet(c, cfg.scale, cfg.width, cfg.blocks, cfg.batch_norm)
        self.discriminator = (UNetDiscriminator if cfg.discriminator == "unet" else VGGStyleDiscriminator)(c, cfg.d_width)
        self.perceptual = (VGGLoss(load_vgg19(cfg.vgg_weights, through="conv5_4"))
                           if cfg.vgg_weights and cfg.lambda_perceptual > 0 else None)
        self.nonsaturating = losses.get_adversarial_loss("nonsaturating")

    @classmethod
    def build_dataset(cls, cfg: SRGANConfig, split: str = "train"):
        return build_data(cfg, "sr", split, augment=split == "train")

    def plan(self, step: int) -> Plan:
        """The PSNR-oriented phase (G alone), then D and G updates; the phase's end writes a grid and
        evaluates."""
        if step < self.cfg.pretrain_steps:
            return Plan(0, 1, self.cfg.batch_size, ends_phase=step + 1 == self.cfg.pretrain_steps)
        return Plan(self.cfg.d_steps_per_g_step, self.cfg.g_steps_per_iteration, self.cfg.batch_size)

    @property
    def inference(self) -> InferenceSpec:
        """LR images → ``scale``× images, clipped to [-1, 1] (G's output is linear); any size."""
        graph = Graph("generator", (Input("input", "image", self.channels),),
                      lambda G, x: G(x["input"]).clamp(-1, 1), multiple=1, scale=self.cfg.scale)
        lr = self.cfg.image_size // self.cfg.scale
        return InferenceSpec((graph,), (lr, lr), self.channels,
                             {"scale": self.cfg.scale, "generator": self.cfg.generator})

    # ------------------------------------------------------------------ losses
    def fakes(self, G, batch: Batch, step: int) -> Tensor:
        return G(batch["input"])

    def _adversarial(self, D, real: Tensor, fake: Tensor, for_d: bool) -> Tensor:
        if self.cfg.adversarial == "relativistic":
            with torch.set_grad_enabled(for_d):
                real_logits = D(real)
            return losses.relativistic_average_losses(real_logits, D(fake))[0 if for_d else 1]
        return self.nonsaturating.d_loss(D(real), D(fake)) if for_d else self.nonsaturating.g_loss(D(fake))

    def d_loss(self, D, batch: Batch, fakes: Tensor, step: int) -> tuple[Tensor, Logs]:
        loss = self._adversarial(D, batch["image"], fakes.detach(), for_d=True)
        return loss, {"d_loss": loss.item()}

    def g_loss(self, G, D, batch: Batch, fakes: Tensor, step: int) -> tuple[Tensor, Logs]:
        real = batch["image"]
        distance = F.l1_loss if self.cfg.pixel_loss == "l1" else F.mse_loss
        pixel = distance(fakes.float(), real.float())
        logs = {"g_pixel": pixel.item()}
        if step < self.cfg.pretrain_steps:  # PSNR-oriented: the pixel loss alone
            logs["g_loss"] = pixel.item()
            return pixel, logs
        adversarial = self._adversarial(D, real, fakes, for_d=False)
        loss = self.cfg.lambda_pixel * pixel + self.cfg.lambda_adv * adversarial
        logs["g_adv"] = adversarial.item()
        if self.perceptual is not None:
            self.perceptual.to(fakes.device)
            perceptual = self.perceptual(fakes.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1))  # grey as RGB
            loss = loss + self.cfg.lambda_perceptual * perceptual
            logs["g_perceptual"] = perceptual.item()
        logs["g_loss"] = loss.item()
        return loss, logs
