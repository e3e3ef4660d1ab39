"""SimGAN (Shrivastava et al. 2017): refine simulator images with unlabelled real ones.

A fully convolutional ResNet refiner R (3×3 conv to 64 maps, N ResNet blocks, 1×1 conv, tanh;
§3.1) is trained against a local discriminator D that gives one real/refined decision per
receptive-field patch (§2.2); R's loss is the patch-wise cross-entropy of "real" on R(x) plus the
self-regularization λ·‖ψ(R(x)) − ψ(x)‖₁ (Eq. 4) that keeps the simulator's annotations, D sees half
of each refined batch from a history buffer of past refinements (§2.3). Schedule (Algorithm 1):
R pretrained with the self-regularization alone, then D alone, then K_g refiner updates per K_d
discriminator updates (``g_steps_per_iteration``, ``d_steps_per_g_step``).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..config import ConfigError, TrainConfig
from ..nn.image_pool import HistoryBuffer
from ..nn.resnet_generator import ResnetBlock
from .base import Batch, DataInfo, GANFamily, Logs, Plan
from .inference import Graph, InferenceSpec, Input


@dataclasses.dataclass
class SimGANConfig(TrainConfig):
    """The paper's networks and schedule; the data default to Fashion-MNIST renders (synthetic) and
    the other half of the training split (real, unlabelled)."""

    positive: ClassVar[tuple[str, ...]] = (  # must be > 0
        "refiner_blocks", "refiner_width", "regularization_pool", "buffer_size")

    synthetic: str = ""  # folder of labelled synthetic images, one sub-folder per class ("" = renders)
    real: str = ""  # folder of unlabelled real images ("" = the second half of Fashion-MNIST train)
    out_dir: str = "runs/simgan"
    image_size: int = 28
    batch_size: int = 64
    steps: int = 3000  # iterations, pretraining included
    lr_g: float = 1e-4  # Adam; the paper's SGD at 0.001 (optimizer=sgd) barely moves D in a short run
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    d_steps_per_g_step: int = 1  # K_d
    g_steps_per_iteration: int = 2  # K_g
    ema_decay: float = 0.0  # R is used as trained
    refiner_blocks: int = 4
    refiner_width: int = 64
    lambda_reg: float = 1.0  # self-regularization weight (on the mean absolute difference)
    self_regularization: Literal["identity", "channel_mean", "avg_pool"] = "identity"  # ψ
    regularization_pool: int = 4  # ψ = avg_pool: the pooling window
    buffer_size: int = 2048  # refined images kept for D
    pretrain_refiner_steps: int = 1000
    pretrain_discriminator_steps: int = 200

    def validate(self) -> None:
        super().validate()
        if self.buffer_size < self.batch_size:
            raise ConfigError(f"buffer_size={self.buffer_size} is smaller than batch_size={self.batch_size}: the "
                              "history buffer must hold at least one batch; raise buffer_size")
        if self.dataset != TrainConfig.dataset:
            raise ConfigError("SimGAN reads synthetic=DIR and real=DIR (gauguin train simgan --synthetic DIR --real "
                              "DIR), not dataset=")
        if bool(self.synthetic) != bool(self.real):
            raise ConfigError("SimGAN needs both synthetic=DIR (labelled, one sub-folder per class) and real=DIR "
                              "(unlabelled), or neither for the Fashion-MNIST default")
        if self.pretrain_refiner_steps < 0 or self.pretrain_discriminator_steps < 0:
            raise ConfigError("pretraining steps must be ≥ 0")


class Refiner(nn.Module):
    """R: conv 3×3 → ``width`` maps, ReLU, ``blocks`` ResNet blocks (two 3×3 convs of ``width`` maps,
    no normalisation), conv 1×1 → ``channels``, tanh; any input size, output the same size."""

    def __init__(self, channels: int = 1, width: int = 64, blocks: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU())
        self.blocks = nn.Sequential(*[ResnetBlock(width, norm="none", padding="zero", bias=True)
                                      for _ in range(blocks)])
        self.head = nn.Conv2d(width, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.head(self.blocks(self.stem(x))))


class LocalDiscriminator(nn.Sequential):
    """D of the paper's eye-gaze experiment: conv 3×3/2 (96), conv 3×3/2 (64), max-pool 3×3/1, conv
    3×3 (32), conv 1×1 (32), conv 1×1 (2); ReLUs between. Output: logits ``[B, 2, H/4, W/4]``, one
    (refined, real) pair per patch."""

    def __init__(self, channels: int = 1):
        super().__init__(
            nn.Conv2d(channels, 96, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(96, 64, 3, stride=2, padding=1), nn.ReLU(),
            nn.MaxPool2d(3, stride=1, padding=1),
            nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 1), nn.ReLU(),
            nn.Conv2d(32, 2, 1))


def self_regularization_map(kind: str, pool: int = 4) -> Callable[[Tensor], Tensor]:
    """ψ of Eq. 4: ``identity`` (pixels), ``channel_mean`` (per-pixel mean over channels) or
    ``avg_pool`` (average pooling over ``pool``×``pool`` windows: coarse structure only)."""
    if kind == "identity":
        return lambda x: x
    if kind == "channel_mean":
        return lambda x: x.mean(1, keepdim=True)
    if kind == "avg_pool":
        return lambda x: F.avg_pool2d(x, pool, ceil_mode=True)
    raise ValueError(f"unknown self-regularization map {kind!r} (identity, channel_mean, avg_pool)")


class SimGAN(GANFamily):
    name = "simgan"
    config_class = SimGANConfig

    def __init__(self, cfg: SimGANConfig, data: DataInfo):
        super().__init__(cfg, data)
        channels = data.channels or cfg.channels
        self.generator = Refiner(channels, cfg.refiner_width, cfg.refiner_blocks)
        self.discriminator = LocalDiscriminator(channels)
        self.buffer = HistoryBuffer(cfg.buffer_size)
        # ψ; from Python any feature map may replace it: ``trainer.family.psi = my_function``
        self.psi: Callable[[Tensor], Tensor] = self_regularization_map(cfg.self_regularization,
                                                                       cfg.regularization_pool)

    @classmethod
    def build_dataset(cls, cfg: SimGANConfig, split: str = "train"):
        from ..data.simulated import build_simulated_dataset

        return build_simulated_dataset(cfg.synthetic, cfg.real, image_size=cfg.image_size, channels=cfg.channels,
                                       root=cfg.data_root or None, seed=cfg.seed)

    # ------------------------------------------------------------------ schedule
    def plan(self, step: int) -> Plan:
        """Algorithm 1: R alone (self-regularization only), then D alone, then K_d D and K_g R updates."""
        cfg = self.cfg
        if step < cfg.pretrain_refiner_steps:
            updates = 0, 1
        elif step < cfg.pretrain_refiner_steps + cfg.pretrain_discriminator_steps:
            updates = 1, 0
        else:
            updates = cfg.d_steps_per_g_step, cfg.g_steps_per_iteration
        return Plan(*updates, cfg.batch_size)

    # ------------------------------------------------------------------ inputs
    @property
    def inference(self) -> InferenceSpec:
        """The refiner: fully convolutional, any size."""
        graph = Graph("generator", (Input("synthetic", "image", self.data.channels or self.cfg.channels),),
                      lambda G, x: G(x["synthetic"]), multiple=1, direction="AtoB")
        return InferenceSpec((graph,), (self.cfg.image_size,) * 2, self.data.channels or self.cfg.channels)

    def training_state(self) -> dict[str, HistoryBuffer]:
        return {"buffer": self.buffer}

    # ------------------------------------------------------------------ losses
    def self_regularization(self, refined: Tensor, synthetic: Tensor) -> Tensor:
        """‖ψ(R(x)) − ψ(x)‖₁, averaged over ψ's elements."""
        return (self.psi(refined.float()) - self.psi(synthetic.float())).abs().mean()

    def fakes(self, G, batch: Batch, step: int) -> Tensor:
        return G(batch["synthetic"])

    def d_loss(self, D, batch: Batch, fakes: Tensor, step: int) -> tuple[Tensor, Logs]:
        shown = self.buffer.mix(fakes.detach())  # half current, half past refinements once it can
        logits = D(torch.cat([batch["image"], shown]))
        real_logits, refined_logits = logits[: len(batch["image"])], logits[len(batch["image"]) :]
        loss = losses.local_adversarial_loss(real_logits, real=True) + losses.local_adversarial_loss(
            refined_logits, real=False)
        with torch.no_grad():
            p_real = real_logits.float().softmax(1)[:, 1].mean().item()
            p_refined = refined_logits.float().softmax(1)[:, 1].mean().item()
        return loss, {"d_loss": loss.item(), "d_real_prob_real": p_real, "d_real_prob_refined": p_refined}

    def g_loss(self, G, D, batch: Batch, fakes: Tensor, step: int) -> tuple[Tensor, Logs]:
        synthetic, refined = batch["synthetic"], fakes
        regularization = self.self_regularization(refined, synthetic)
        loss, logs = self.cfg.lambda_reg * regularization, {"g_reg": regularization.item()}
        if step >= self.cfg.pretrain_refiner_steps:  # pretraining: the self-regularization alone
            adversarial = losses.local_adversarial_loss(D(refined), real=True)
            loss = loss + adversarial
            logs["g_adv"] = adversarial.item()
        logs["g_loss"] = loss.item()
        return loss, logs
