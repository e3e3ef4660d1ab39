"""CycleGAN (Zhu et al. 2017): unpaired translation between two image domains A and B.

Two ResNet generators G_AB, G_BA and two PatchGANs D_A, D_B trained with the LSGAN loss (§4),
the cycle-consistency loss λ_A‖G_BA(G_AB(a)) − a‖₁ + λ_B‖G_AB(G_BA(b)) − b‖₁ (Eq. 2, λ 10) and
the identity loss 0.5·λ·(‖G_AB(b) − b‖₁ + ‖G_BA(a) − a‖₁) (§5.2). D sees generated images from a
history pool of 50 (Shrivastava et al. 2017); its loss is halved. Adam lr 2e-4, β=(0.5, 0.999),
constant then linearly decayed to 0.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal

import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..nn.image_pool import ImagePool
from ..nn.patchgan import pix2pix_patchgan
from ..nn.resnet_generator import ResnetGenerator
from .base import Batch, DataInfo, GANFamily, Logs, Pix2PixSchedule, build_data
from .inference import Graph, InferenceSpec, Input


@dataclasses.dataclass
class CycleGANConfig(Pix2PixSchedule):
    """The paper's defaults; the data default to two Fashion-MNIST classes at 32 px."""

    positive: ClassVar[tuple[str, ...]] = ("ngf", "ndf", "n_blocks", "n_layers_d")  # must be > 0

    # dataset: fashion-mnist (two classes) | folder:PATH (trainA/, trainB/)
    domain_a: str = "Sneaker"  # fashion-mnist: the classes that are the two domains
    domain_b: str = "Ankle boot"
    out_dir: str = "runs/cyclegan"
    image_size: int = 32  # crop size (the paper: 256)
    load_size: int = 0  # folders: resize before cropping (0 = the dataset's default)
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 6  # residual blocks: 6 for 128 px and below, 9 for 256 px (the paper)
    norm: Literal["instance", "batch"] = "instance"
    n_layers_d: int = 3
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5  # times λ; 0 = no identity loss
    pool_size: int = 50


class CycleGenerators(nn.Module):
    """G_AB and G_BA, optimised together (as the paper's one optimizer over both)."""

    def __init__(self, ab: nn.Module, ba: nn.Module):
        super().__init__()
        self.ab, self.ba = ab, ba

    def forward(self, a: Tensor | None = None, b: Tensor | None = None) -> Tensor:
        """A → B when given ``a``, else B → A."""
        return self.ab(a) if a is not None else self.ba(b)


class CycleDiscriminators(nn.Module):
    """D_A (judges domain A) and D_B (judges domain B)."""

    def __init__(self, d_a: nn.Module, d_b: nn.Module):
        super().__init__()
        self.d_a, self.d_b = d_a, d_b


class CycleGAN(GANFamily):
    name = "cyclegan"
    config_class = CycleGANConfig

    def __init__(self, cfg: CycleGANConfig, data: DataInfo):
        super().__init__(cfg, data)
        c = data.channels
        self.generator = CycleGenerators(*(ResnetGenerator(c, c, cfg.ngf, cfg.n_blocks, cfg.norm) for _ in range(2)))
        self.discriminator = CycleDiscriminators(*(pix2pix_patchgan(c, cfg.n_layers_d, cfg.ndf, cfg.norm)
                                                   for _ in range(2)))
        self.lsgan = losses.get_adversarial_loss("lsgan")
        self.pool_a, self.pool_b = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)

    @classmethod
    def build_dataset(cls, cfg: CycleGANConfig, split: str = "train"):
        return build_data(cfg, "domains", split, augment=split == "train")

    # ------------------------------------------------------------------ inputs
    @property
    def inference(self) -> InferenceSpec:
        """One graph per direction (``a`` → B, ``b`` → A); sizes in multiples of 4, at least 8."""
        c = self.data.channels

        def direction(name: str, source: str, net: str) -> Graph:
            return Graph(f"generator_{name}", (Input(source, "image", c),), lambda G, x: getattr(G, net)(x[source]),
                         multiple=4, min_blocks=2, direction=name)

        return InferenceSpec((direction("AtoB", "a", "ab"), direction("BtoA", "b", "ba")), (self.cfg.image_size,) * 2,
                             c, {"domain_a": self.cfg.domain_a, "domain_b": self.cfg.domain_b})

    def training_state(self) -> dict[str, ImagePool]:
        """The history pools, so that a resumed run shows D the same old fakes."""
        return {"pool_a": self.pool_a, "pool_b": self.pool_b}

    # ------------------------------------------------------------------ losses
    def _d_half(self, D: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        return 0.5 * self.lsgan.d_loss(D(real)[-1], D(fake)[-1])

    def fakes(self, G, batch: Batch, step: int) -> tuple[Tensor, Tensor]:
        """(G_AB(a), G_BA(b))."""
        return G.ab(batch["a"]), G.ba(batch["b"])

    def d_loss(self, D, batch: Batch, fakes, step: int) -> tuple[Tensor, Logs]:
        fake_b, fake_a = fakes
        loss_b = self._d_half(D.d_b, batch["b"], self.pool_b.query(fake_b.detach()))
        loss_a = self._d_half(D.d_a, batch["a"], self.pool_a.query(fake_a.detach()))
        return loss_a + loss_b, {"d_a": loss_a.item(), "d_b": loss_b.item()}

    def g_loss(self, G, D, batch: Batch, fakes, step: int) -> tuple[Tensor, Logs]:
        cfg, a, b = self.cfg, batch["a"], batch["b"]
        fake_b, fake_a = fakes
        adversarial = self.lsgan.g_loss(D.d_b(fake_b)[-1]) + self.lsgan.g_loss(D.d_a(fake_a)[-1])
        cycle = cfg.lambda_a * _l1(G.ba(fake_b), a) + cfg.lambda_b * _l1(G.ab(fake_a), b)
        loss, logs = adversarial + cycle, {"g_adv": adversarial.item(), "g_cycle": cycle.item()}
        if cfg.lambda_identity > 0:
            identity = cfg.lambda_identity * (cfg.lambda_b * _l1(G.ab(b), b) + cfg.lambda_a * _l1(G.ba(a), a))
            loss = loss + identity
            logs["g_identity"] = identity.item()
        logs["g_loss"] = loss.item()
        return loss, logs


def _l1(x: Tensor, y: Tensor) -> Tensor:
    return F.l1_loss(x.float(), y.float())
