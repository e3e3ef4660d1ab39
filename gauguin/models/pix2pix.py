"""pix2pix (Isola et al. 2017): paired image-to-image translation with a conditional GAN.

G is a U-Net whose dropout is its only noise; D is a PatchGAN that judges (input, output)
pairs patch by patch (70x70 for ``n_layers_d=3``). G's loss adds λ·‖y − G(x)‖₁ (λ 100, Eq. 4) to
the adversarial term; D's loss is halved (§3.3). Adam lr 2e-4, β=(0.5, 0.999), constant then
linearly decayed to 0. With ``input=labels`` G translates one-hot label maps (+ instance
boundaries) of a semantic dataset, the paper's labels → photo setting.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from .. import losses
from ..config import ConfigError
from ..nn.patchgan import PixelDiscriminator, pix2pix_patchgan
from ..nn.unet import UnetGenerator
from .base import Batch, DataInfo, GANFamily, Logs, Pix2PixSchedule, build_data
from .inference import Graph, InferenceSpec, Input
from .semantic import ConditionedFakes, LabelMapData, label_map_inputs, one_hot_input


@dataclasses.dataclass
class Pix2PixConfig(Pix2PixSchedule, LabelMapData):
    """The paper's defaults; the data default to Fashion-MNIST edges → clothing at 32 px."""

    positive: ClassVar[tuple[str, ...]] = ("ngf", "ndf", "n_layers_d")  # must be > 0

    # input=image: fashion-mnist (edges -> clothing) | folder:PATH (A|B files or A/ B/ folders);
    # input=labels: fashion-mnist (silhouettes) | coco-stuff:PATH | cityscapes:PATH | ade20k:PATH | folder:PATH
    input: Literal["image", "labels"] = "image"  # what G translates: images, or label maps one-hot
    out_dir: str = "runs/pix2pix"
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    image_size: int = 32  # crop size (the paper: 256)
    ngf: int = 64
    ndf: int = 64
    norm: Literal["batch", "instance"] = "batch"
    discriminator: Literal["patch", "pixel"] = "patch"
    n_layers_d: int = 3  # 3: the 70x70 PatchGAN; 1: 16x16; bigger: larger patches
    gan_loss: Literal["vanilla", "lsgan"] = "vanilla"
    lambda_l1: float = 100.0

    def validate(self) -> None:
        super().validate()
        if self.image_size < 32 or self.image_size & (self.image_size - 1):
            raise ConfigError(f"image_size must be a power of two >= 32 for the U-Net, got {self.image_size}")


class Pix2Pix(GANFamily):
    name = "pix2pix"
    config_class = Pix2PixConfig

    def __init__(self, cfg: Pix2PixConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.labels = cfg.input == "labels"
        if self.labels and not data.num_labels:
            raise ConfigError(f"input=labels needs a dataset of label maps, {cfg.dataset!r} has none")
        self.use_instances = self.labels and data.has_instances
        if self.labels:
            in_channels = data.num_labels + self.use_instances
        else:
            in_channels = data.input_channels or data.channels
        self.generator = UnetGenerator(in_channels, data.channels, cfg.image_size, cfg.ngf, cfg.norm)
        pair_channels = in_channels + data.channels
        if cfg.discriminator == "pixel":
            self.discriminator = PixelDiscriminator(pair_channels, cfg.ndf, cfg.norm)
        else:
            self.discriminator = pix2pix_patchgan(pair_channels, cfg.n_layers_d, cfg.ndf, cfg.norm)
        self.adversarial = losses.get_adversarial_loss("nonsaturating" if cfg.gan_loss == "vanilla" else "lsgan")

    @classmethod
    def build_dataset(cls, cfg: Pix2PixConfig, split: str = "train"):
        return build_data(cfg, "label_maps" if cfg.input == "labels" else "pairs", split, augment=split == "train")

    # ------------------------------------------------------------------ inputs
    def source(self, batch: dict[str, Any]) -> Tensor:
        """G's input: the input image, or the one-hot label map (+ instance edges)."""
        return one_hot_input(batch, self.data.num_labels, self.use_instances) if self.labels else batch["input"]

    @property
    def inference(self) -> InferenceSpec:
        """One U-Net graph on the input image (or label ids); sizes in multiples of 2^depth."""
        if self.labels:
            inputs = label_map_inputs(self.data.num_labels, self.use_instances)
        else:
            inputs = (Input("input", "image", self.data.input_channels or self.data.channels),)
        graph = Graph("generator", inputs, lambda G, x: G(self.source(x)), multiple=2**self.generator.depth,
                      direction=None if self.labels else self.cfg.direction)
        return InferenceSpec((graph,), (self.cfg.image_size,) * 2, self.data.channels,
                             {"input": self.cfg.input, "direction": self.cfg.direction})

    # ------------------------------------------------------------------ losses
    def fakes(self, G, batch: Batch, step: int) -> ConditionedFakes:
        source = self.source(batch)
        return ConditionedFakes(G(source), source)

    def d_loss(self, D, batch: Batch, fakes: ConditionedFakes, step: int) -> tuple[Tensor, Logs]:
        source, real = fakes.source, batch["image"]
        real_logits = D(torch.cat([source, real], 1))[-1]  # D returns its layers' outputs, the last is the map
        fake_logits = D(torch.cat([source, fakes.image.detach()], 1))[-1]
        loss = 0.5 * self.adversarial.d_loss(real_logits, fake_logits)  # halved: D learns slower than G (§3.3)
        return loss, {"d_loss": loss.item()}

    def g_loss(self, G, D, batch: Batch, fakes: ConditionedFakes, step: int) -> tuple[Tensor, Logs]:
        source, fake, real = fakes.source, fakes.image, batch["image"]
        adversarial = self.adversarial.g_loss(D(torch.cat([source, fake], 1))[-1])
        l1 = F.l1_loss(fake.float(), real.float())
        loss = adversarial + self.cfg.lambda_l1 * l1
        return loss, {"g_adv": adversarial.item(), "g_l1": l1.item(), "g_loss": loss.item()}
