"""The contract between a model family and the shared training loop."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import TrainConfig

Batch = tuple[torch.Tensor, torch.Tensor]  # images in [-1, 1], integer labels
Logs = dict[str, float]


class GANFamily:
    """A family owns its networks and losses; the loop owns everything else.

    The loop calls ``d_loss`` ``d_steps_per_g_step`` times and then ``g_loss``, each inside
    autocast; it does the backward passes, gradient averaging, optimizer steps, EMA,
    logging and checkpoints. In ``g_loss`` the discriminator's parameters are frozen.
    """

    name: str = ""
    config_class: type[TrainConfig] = TrainConfig

    def __init__(self, cfg: TrainConfig, num_classes: int):
        self.cfg = cfg
        self.num_classes = num_classes
        self.conditional = False  # whether the generator takes class labels
        self.generator: nn.Module
        self.discriminator: nn.Module

    # what the loop asks for
    def random_inputs(self, n: int, generator: torch.Generator | None = None, labels=None) -> dict[str, Any]:
        """Generator inputs for ``n`` samples (noise, labels ...) on CPU."""
        raise NotImplementedError

    def generate(self, G: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        return G(**inputs)

    def d_loss(self, G: nn.Module, D: nn.Module, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def g_loss(self, G: nn.Module, D: nn.Module, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def after_d_step(self) -> None:
        """Hook after each D optimizer step (e.g. WGAN weight clipping)."""

    def grid_labels(self, rows: int) -> torch.Tensor | None:
        """Labels of the sample grid: one row per class for conditional families."""
        return None
