"""pix2pixHD (Wang et al. 2018): high-resolution image synthesis from label maps.

A coarse-to-fine generator (the global generator G1; with ``n_local_enhancers=1`` the local
enhancer G2 around it, trained alone for ``fix_global_steps`` steps, then jointly, §3.1), three
PatchGANs at image scales 1, 1/2, 1/4 (§3.2), the LSGAN loss, discriminator feature matching
(λ 10, Eq. 4, with the paper code's layer weight 4/(n_layers+1)) and, given VGG19 weights, the
perceptual loss (λ 10, §3.2). Instance maps enter as boundary maps (§3.3). With ``use_features``
the instance-wise feature encoder E (§3.4) adds per-instance average features of the real image to
G's input, so one label map can give several looks (from a style image at test time; the paper's
k-means sampling of feature clusters is not implemented). Adam 2e-4, β=(0.5, 0.999).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor, nn

from .. import losses
from ..config import ConfigError
from ..nn.labels import semantic_input
from .base import Batch, DataInfo, Logs
from .pix2pixhd_nets import InstanceFeatureEncoder, build_pix2pixhd_networks
from .semantic import SemanticConfig, SemanticFamily, paired_input

FEATURE_CHANNELS = 3  # the paper's instance feature width


@dataclasses.dataclass
class Pix2PixHDConfig(SemanticConfig):
    """The paper's networks, losses and schedule; the data default to Fashion-MNIST silhouettes at 32 px."""

    out_dir: str = "runs/pix2pixhd"
    # the schedule of base.Pix2PixSchedule, restated: a dataclass cannot take overridden defaults from two bases
    batch_size: int = 1
    steps: int = 20000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_start: float = 0.5
    ema_decay: float = 0.0
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 9  # residual blocks of the global generator
    n_local_enhancers: int = 0  # 1: the local enhancer G2 at twice G1's resolution
    n_blocks_local: int = 3
    fix_global_steps: int = 0  # with G2: train only G2 for this many steps first
    num_d: int = 3
    n_layers_d: int = 3
    use_features: bool = False  # the instance-wise feature encoder
    nef: int = 16

    def validate(self) -> None:
        super().validate()
        multiple = 2 ** (4 + self.n_local_enhancers)
        if self.image_size % multiple or self.image_size < 2 * multiple:
            raise ConfigError(f"image_size must be a multiple of {multiple} and at least {2 * multiple} for "
                              f"pix2pixHD with n_local_enhancers={self.n_local_enhancers}, got {self.image_size}")


class Pix2PixHDModel(nn.Module):
    """G, and with ``use_features`` the feature encoder E (trained with G's optimizer, as the paper)."""

    def __init__(self, generator: nn.Module, encoder: InstanceFeatureEncoder | None):
        super().__init__()
        self.generator = generator
        self.encoder = encoder

    def forward(self, segmap: Tensor, features: Tensor | None = None) -> Tensor:
        return self.generator(segmap if features is None else torch.cat([segmap, features.to(segmap.dtype)], 1))


class Pix2PixHD(SemanticFamily):
    name = "pix2pixhd"
    config_class = Pix2PixHDConfig

    def __init__(self, cfg: Pix2PixHDConfig, data: DataInfo):
        super().__init__(cfg, data)
        nets = build_pix2pixhd_networks(
            data.num_labels, instance_edges=self.use_instances,
            feature_channels=FEATURE_CHANNELS if cfg.use_features else 0, image_channels=data.channels,
            ngf=cfg.ngf, ndf=cfg.ndf, n_local_enhancers=cfg.n_local_enhancers, num_d=cfg.num_d,
            n_layers_d=cfg.n_layers_d, n_blocks_global=cfg.n_blocks, n_blocks_local=cfg.n_blocks_local, nef=cfg.nef)
        if nets.encoder is not None and data.channels != 3:  # E is built for RGB; grey images need one channel in
            nets.encoder = InstanceFeatureEncoder(data.channels, FEATURE_CHANNELS, cfg.nef)
        self.generator = Pix2PixHDModel(nets.generator, nets.encoder)
        self.discriminator = nets.discriminator
        self.lsgan = losses.get_adversarial_loss("lsgan")

    # ------------------------------------------------------------------ inputs
    def _features(self, G: Pix2PixHDModel, image: Tensor, batch: dict[str, Tensor]) -> Tensor | None:
        """Per-instance average features of ``image`` (instances: the instance map, else the label map)."""
        if G.encoder is None:
            return None
        return G.encoder(image, batch.get("instance", batch["label_map"]))

    def generate(self, G: nn.Module, inputs: dict[str, Any]) -> Tensor:
        segmap = semantic_input(inputs, self.data.num_labels, self.use_instances)
        features = None
        if G.encoder is not None:  # a style image's features, else the zero (mean) feature
            style = inputs.get("style")
            features = (self._features(G, style.expand(len(segmap), -1, -1, -1), inputs) if style is not None
                        else segmap.new_zeros(len(segmap), FEATURE_CHANNELS, *segmap.shape[2:]))
        return G(segmap, features)

    # ------------------------------------------------------------------ losses
    def d_loss(self, G, D, batch: Batch, step: int) -> tuple[Tensor, Logs]:
        if self.cfg.n_local_enhancers:
            G.generator.freeze_global(step < self.cfg.fix_global_steps)  # coarse-to-fine (§3.1)
        real = batch["image"]
        segmap = self.semantic(batch)
        fake = self.fakes_for_d(lambda: G(segmap, self._features(G, real, batch)))
        outputs = D(paired_input(segmap, fake.detach(), real))  # instance norm keeps the halves apart
        loss = 0.0
        for scale in outputs:
            fake_pred, real_pred = scale[-1].chunk(2)
            loss = loss + 0.5 * self.lsgan.d_loss(real_pred, fake_pred)
        loss = loss / len(outputs)
        return loss, {"d_loss": loss.item()}

    def g_loss(self, G, D, batch: Batch, step: int) -> tuple[Tensor, Logs]:
        real = batch["image"]
        segmap = self.semantic(batch)
        fake = self.fakes_for_g(lambda: G(segmap, self._features(G, real, batch)))
        fake_out = D(torch.cat([segmap, fake], 1))
        adversarial = sum(self.lsgan.g_loss(scale[-1]) for scale in fake_out) / len(fake_out)
        loss, logs = adversarial, {"g_adv": adversarial.item()}
        matching, matching_logs = self.matching_losses(D, segmap, real, fake, fake_out,
                                                       layer_weight=4.0 / (self.cfg.n_layers_d + 1))
        loss, logs = loss + matching, {**logs, **matching_logs}
        logs["g_loss"] = loss.item()
        return loss, logs
