"""SPADE / GauGAN (Park et al. 2019): semantic image synthesis from label maps.

Losses (§3, appendix A): hinge adversarial loss on a 2-scale spectral-norm PatchGAN, D's feature
matching (λ_FM 10, summed over layers as the official code does), a VGG19 perceptual loss (λ_VGG
10, only when VGG19 weights are given), and with the style encoder the KL divergence of its
posterior to N(0, I) (λ_KL 0.05). TTUR: Adam β=(0, 0.999), lr G 1e-4, D 4e-4, linear decay over
the second half.

The training step differs from the official code only in cost, not in what it computes:
G runs forward once per iteration (the D step and the G step share the fakes), D sees real and
fake in one batch, D's weight gradients are not computed in the G step, and the label map is
resized once per resolution for all SPADE layers.
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from .. import losses
from ..config import ConfigError
from ..nn.labels import checked_label_ids, instance_edges
from ..nn.spade import SegmapPyramid
from .base import Batch, DataInfo, Logs
from .inference import Graph, Input
from .semantic import ConditionedFakes, SemanticConfig, SemanticFamily, paired_input
from .spade_nets import ConvEncoder, SPADEGenerator, build_spade_networks, reparameterize


@dataclasses.dataclass
class SPADEConfig(SemanticConfig):
    """The paper's networks, losses and schedule; the data defaults to Fashion-MNIST silhouettes at
    32 px (configs/spade_*.yaml hold the paper's COCO-Stuff / ADE20K / Cityscapes settings)."""

    positive: ClassVar[tuple[str, ...]] = (  # must be > 0
        "ngf", "ndf", "num_d", "n_layers_d", "z_dim", "encoder_input_size")

    out_dir: str = "runs/spade"
    batch_size: int = 32  # the paper's global batch (over 8 GPUs)
    steps: int = 20000
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas: tuple[float, float] = (0.0, 0.999)
    lr_decay_start: float = 0.5  # niter = niter_decay in the paper's schedule
    ema_decay: float = 0.0  # the paper samples from G itself
    ngf: int = 64
    ndf: int = 64
    num_upsampling_layers: Literal["normal", "more", "most"] = "normal"
    norm_g: Literal["syncbatch", "batch", "instance"] = "syncbatch"  # SPADE's parameter-free norm
    num_d: int = 2
    n_layers_d: int = 4
    use_vae: bool = False  # the style encoder (multimodal and style-guided synthesis)
    z_dim: int = 256
    encoder_input_size: int = 256  # the encoder resizes its input to this square
    lambda_kl: float = 0.05

    def validate(self) -> None:
        super().validate()
        if self.encoder_input_size < 128:  # six stride-2 convs: below 128 px the last map is 1x1 and
            # instance norm erases it
            raise ConfigError(f"encoder_input_size must be >= 128, got {self.encoder_input_size}")


class SPADEModel(nn.Module):
    """What the loop optimises as "the generator": SPADE's G and, with ``use_vae``, its encoder E
    (the paper trains them with one optimizer)."""

    def __init__(self, generator: SPADEGenerator, encoder: ConvEncoder | None):
        super().__init__()
        self.generator = generator
        self.encoder = encoder

    def forward(self, segmap: Tensor | SegmapPyramid, z: Tensor | None = None, style: Tensor | None = None) -> Tensor:
        """Image for ``segmap``; style from ``z``, or the mean code of a ``style`` image, or random."""
        if style is not None:
            z = self.encode(style)[0]
        return self.generator(segmap, z)

    def encode(self, images: Tensor) -> tuple[Tensor, Tensor]:
        if self.encoder is None:
            raise ValueError("this model has no style encoder (trained with use_vae=false): it takes no style image")
        return self.encoder(images)


class SPADE(SemanticFamily):
    name = "spade"
    config_class = SPADEConfig

    def __init__(self, cfg: SPADEConfig, data: DataInfo):
        super().__init__(cfg, data)
        norm = cfg.norm_g
        if norm == "syncbatch" and not torch.cuda.is_available():
            norm = "batch"  # PyTorch synchronises BatchNorm only on GPUs; one process needs no sync
        nets = build_spade_networks(
            data.num_labels, instance_edges=self.use_instances, ngf=cfg.ngf, ndf=cfg.ndf,
            num_upsampling_layers=cfg.num_upsampling_layers, crop_size=cfg.image_size,
            aspect_ratio=cfg.aspect_ratio, use_vae=cfg.use_vae, z_dim=cfg.z_dim, image_channels=data.channels,
            param_free_norm=norm, num_d=cfg.num_d, n_layers_d=cfg.n_layers_d)
        if nets.encoder is not None:
            nets.encoder.input_size = cfg.encoder_input_size
        self.generator = SPADEModel(nets.generator, nets.encoder)
        self.discriminator = nets.discriminator
        self.hinge = losses.get_adversarial_loss("hinge")

    # ------------------------------------------------------------------ inputs
    @property
    def inference(self):
        """The generator on label ids (+ a style code ``z`` with the style encoder), and the encoder
        as its own graph: its mean code of a style image is that image's ``z``."""
        if self.generator.encoder is None:
            return self.spec((), use_vae=False)
        encoder = Graph("style_encoder", (Input("style", "image", self.data.channels),),
                        lambda G, x: G.encode(x["style"]), outputs=("mu", "logvar"), replaces="z")
        return self.spec((Input("z", "normal", self.cfg.z_dim),), encoder, takes_style=True, use_vae=True,
                         encoder_input_size=self.cfg.encoder_input_size)

    def inference_semantic(self, inputs: dict[str, Tensor]) -> SegmapPyramid:
        """The label ids' pyramid: SPADE's first convs look their outputs up (``one_hot_conv``); no one-hot."""
        extra = instance_edges(inputs["instance"]) if self.use_instances else None
        return SegmapPyramid.from_ids(checked_label_ids(inputs["label_map"], self.data.num_labels),
                                      self.data.num_labels, extra)

    def generate(self, G: nn.Module, segmap: Tensor | SegmapPyramid, inputs: dict[str, Any]) -> Tensor:
        return G(segmap, z=inputs.get("z"), style=inputs.get("style"))

    # ------------------------------------------------------------------ losses
    def fakes(self, G: SPADEModel, batch: Batch, step: int) -> ConditionedFakes:
        """The fake images, their one-hot label maps and, with the style encoder, its posterior (mu,
        logvar) of the real images."""
        segmap, posterior, z = self.semantic(batch), None, None
        if G.encoder is not None:
            posterior = G.encode(batch["image"])
            z = reparameterize(*posterior)
        return ConditionedFakes(G.generator(segmap, z), segmap, posterior)

    def d_loss(self, D, batch: Batch, fakes: ConditionedFakes, step: int) -> tuple[Tensor, Logs]:
        outputs = D(paired_input(fakes.source, fakes.image.detach(), batch["image"]))  # one batch: instance
        loss = 0.0  # norm keeps the samples apart
        for scale in outputs:
            fake_pred, real_pred = scale[-1].chunk(2)
            loss = loss + self.hinge.d_loss(real_pred, fake_pred)
        loss = loss / len(outputs)
        return loss, {"d_loss": loss.item()}

    def g_loss(self, G, D, batch: Batch, fakes: ConditionedFakes, step: int) -> tuple[Tensor, Logs]:
        real, (fake, segmap, posterior) = batch["image"], fakes
        fake_out = D(torch.cat([segmap, fake], 1))
        adversarial = sum(self.hinge.g_loss(scale[-1]) for scale in fake_out) / len(fake_out)
        loss, logs = adversarial, {"g_adv": adversarial.item()}
        matching, matching_logs = self.matching_losses(D, segmap, real, fake, fake_out)
        loss, logs = loss + matching, {**logs, **matching_logs}
        if posterior is not None:
            kl = losses.kl_divergence(*posterior)
            loss = loss + self.cfg.lambda_kl * kl
            logs["g_kl"] = kl.item()
        logs["g_loss"] = loss.item()
        return loss, logs
