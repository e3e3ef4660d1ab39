"""Exponential moving average of generator weights (Karras et al. 2018; Yazıcı et al. 2019)."""
from __future__ import annotations

import copy

import torch


class EMA:
    """θ_ema ← β θ_ema + (1 − β) θ, with β warmed up as min(β, (1 + t) / (10 + t)) so early
    averages are not dominated by the random initialisation. Buffers are copied."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        beta = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - beta)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates += 1
