"""PGGAN (Karras et al. 2018): progressive growing of GANs.

G and D grow together from 4x4 to ``image_size``: stage 1 trains at 4x4 for ``stable_images``
images; every further stage doubles the resolution, fading its new layers in over ``fade_images``
images (α from 0 to 1, real images faded alike between the two resolutions), then trains stable
for ``stable_images``. The networks (``pggan_nets``) use an equalized learning rate, pixelwise
feature normalisation in G and minibatch stddev in D. Loss: WGAN-GP (λ 10) plus the drift term
ε·E[D(x)²] (ε 0.001); Adam lr 1e-3, β=(0, 0.99); EMA of G (0.999). The stage and α of every
iteration follow from the iteration number (:class:`GrowthSchedule`), so a run resumed anywhere,
mid-fade too, continues exactly; they are also kept in the networks' buffers and the checkpoint.
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..config import ConfigError, TrainConfig
from .base import Batch, DataInfo, GANFamily, Logs, Plan
from .inference import Graph, InferenceSpec, Input
from .pggan_nets import PGDiscriminator, PGGenerator, num_stages


@dataclasses.dataclass
class PGGANConfig(TrainConfig):
    """The paper's networks, loss and optimiser; images per phase and batch sizes sized for a CPU
    (the paper: 800k images per fade and per stable phase, batch 16)."""

    positive: ClassVar[tuple[str, ...]] = (  # must be > 0
        "z_dim", "fmap_base", "fmap_max", "fade_images", "stable_images", "mbstd_group_size")

    out_dir: str = "runs/pggan"
    image_size: int = 32  # the target resolution (Fashion-MNIST padded to 32)
    steps: int = 0  # 0: until the growth schedule ends
    z_dim: int = 512
    fmap_base: int = 8192  # nf(stage) = min(fmap_base / 2^stage, fmap_max): the paper's 512 up to 32x32
    fmap_max: int = 512
    fade_images: int = 600_000
    stable_images: int = 600_000
    stage_batch_sizes: tuple[int, ...] = ()  # per stage (4x4 first); () = batch_size at every stage
    batch_size: int = 16
    lr_g: float = 1e-3
    lr_d: float = 1e-3
    betas: tuple[float, float] = (0.0, 0.99)
    ema_decay: float = 0.999
    lambda_gp: float = 10.0
    drift: float = 0.001
    mbstd_group_size: int = 4

    def validate(self) -> None:
        try:
            stages = num_stages(self.image_size)
        except ValueError as err:
            raise ConfigError(f"image_size: {err}") from None
        if self.stage_batch_sizes and len(self.stage_batch_sizes) != stages:
            raise ConfigError(f"stage_batch_sizes needs one batch size per stage ({stages} from 4x4 to "
                              f"{self.image_size}x{self.image_size}), got {list(self.stage_batch_sizes)}")
        if self.fade_images < 1 or self.stable_images < 1:
            raise ConfigError("fade_images and stable_images must be at least 1")
        if self.steps == 0:
            self.steps = GrowthSchedule.of(self).total_steps
        super().validate()


@dataclasses.dataclass(frozen=True)
class GrowthSchedule:
    """Which stage and α each iteration trains at: stage 1 stable, then per stage a fade and a
    stable phase; a phase of I images at batch b lasts ⌈I / b⌉ iterations. After the last phase
    training stays at the final resolution with α = 1."""

    stages: int
    fade_images: int
    stable_images: int
    batch_sizes: tuple[int, ...]

    @classmethod
    def of(cls, cfg: PGGANConfig) -> "GrowthSchedule":
        stages = num_stages(cfg.image_size)
        return cls(stages, cfg.fade_images, cfg.stable_images, tuple(cfg.stage_batch_sizes) or (cfg.batch_size,) * stages)

    @property
    def phases(self) -> list[tuple[int, bool, int]]:
        """(stage, fading, iterations) in order."""
        out = [(1, False, math.ceil(self.stable_images / self.batch_sizes[0]))]
        for stage in range(2, self.stages + 1):
            batch = self.batch_sizes[stage - 1]
            out += [(stage, True, math.ceil(self.fade_images / batch)), (stage, False, math.ceil(self.stable_images / batch))]
        return out

    @property
    def total_steps(self) -> int:
        return sum(n for _, _, n in self.phases)

    def at(self, step: int) -> tuple[int, float, int]:
        """(stage, α, images shown before this iteration) of iteration ``step``."""
        start, shown = 0, 0
        for stage, fading, count in self.phases:
            batch = self.batch_sizes[stage - 1]
            if step < start + count:
                done = step - start
                return stage, (done / count if fading else 1.0), shown + done * batch
            start, shown = start + count, shown + count * batch
        return self.stages, 1.0, shown + (step - start) * self.batch_sizes[-1]

    def stage_ends(self) -> set[int]:
        """Iteration counts at which a stage's stable phase ends."""
        ends, start = set(), 0
        for _, fading, count in self.phases:
            start += count
            if not fading:
                ends.add(start)
        return ends


class PGGAN(GANFamily):
    name = "pggan"
    config_class = PGGANConfig

    def __init__(self, cfg: PGGANConfig, data: DataInfo):
        super().__init__(cfg, data)
        channels = data.channels or cfg.channels
        self.generator = PGGenerator(cfg.image_size, channels, cfg.z_dim, cfg.fmap_base, cfg.fmap_max)
        self.discriminator = PGDiscriminator(cfg.image_size, channels, cfg.fmap_base, cfg.fmap_max,
                                             cfg.mbstd_group_size)
        self.schedule = GrowthSchedule.of(cfg)
        self._stage_ends = self.schedule.stage_ends() | {cfg.steps}  # training past the schedule ends the last stage later

    # ------------------------------------------------------------------ schedule
    def plan(self, step: int) -> Plan:
        """The stage's batch size; the end of each stage, and the last step, ends a phase (a sample grid and
        an evaluation, the paper's metrics)."""
        stage = self.schedule.at(step)[0]
        return Plan(self.cfg.d_steps_per_g_step, self.cfg.g_steps_per_iteration, self.schedule.batch_sizes[stage - 1],
                    ends_phase=step + 1 in self._stage_ends)

    def real_at(self, images: Tensor, stage: int, alpha: float) -> Tensor:
        """Real images at the stage's resolution (2x2 average pooling), faded during a fade-in
        between the previous resolution (pooled, then nearest-upsampled) and this one (as the paper)."""
        size = 4 * 2 ** (stage - 1)
        real = F.adaptive_avg_pool2d(images, size) if images.shape[-1] != size else images
        if stage > 1 and alpha < 1.0:
            lower = F.interpolate(F.avg_pool2d(real, 2), scale_factor=2, mode="nearest")
            real = torch.lerp(lower, real, alpha)
        return real

    # ------------------------------------------------------------------ inputs
    @property
    def inference(self) -> InferenceSpec:
        """z → images at G's current stage, upsampled (nearest) to ``image_size`` so every stage's
        samples compare at one size, clipped to [-1, 1] (G's output is linear)."""
        def run(G: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
            images = G(inputs["z"]).clamp(-1, 1)
            if images.shape[-1] != self.cfg.image_size:
                images = F.interpolate(images, size=self.cfg.image_size, mode="nearest")
            return images

        stage, alpha = self.generator.growth()
        return InferenceSpec((Graph("generator", (Input("z", "normal", self.cfg.z_dim),), run),),
                             (self.cfg.image_size,) * 2, self.data.channels or self.cfg.channels,
                             {"stage": stage, "alpha": alpha})

    # ------------------------------------------------------------------ losses
    def fakes(self, G, batch: Batch, step: int) -> Tensor:
        """G's images at the stage and α of iteration ``step`` (both networks set to them)."""
        stage, alpha, _ = self.schedule.at(step)
        G.set_growth(stage, alpha)
        self.discriminator.set_growth(stage, alpha)
        return G(torch.randn(len(batch["image"]), self.cfg.z_dim, device=batch["image"].device))

    def d_loss(self, D, batch: Batch, fakes: Tensor, step: int) -> tuple[Tensor, Logs]:
        stage, alpha, _ = self.schedule.at(step)
        real = self.real_at(batch["image"], stage, alpha)
        real_scores, fake_scores = D(real), D(fakes.detach())
        wasserstein = fake_scores.float().mean() - real_scores.float().mean()
        penalty = losses.gradient_penalty(D, real, fakes)
        drift = losses.drift_penalty(real_scores)
        loss = wasserstein + self.cfg.lambda_gp * penalty + self.cfg.drift * drift
        return loss, {"d_loss": loss.item(), "wasserstein": -wasserstein.item(), "gp": penalty.item(),
                      "stage": float(stage), "alpha": alpha}

    def g_loss(self, G, D, batch: Batch, fakes: Tensor, step: int) -> tuple[Tensor, Logs]:
        loss = -D(fakes).float().mean()
        return loss, {"g_loss": loss.item()}
