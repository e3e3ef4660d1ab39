"""Small layers shared by several families."""
from __future__ import annotations

import torch
from torch import nn


class MinibatchStddev(nn.Module):
    """Minibatch standard deviation (Karras et al. 2018, PGGAN §3).

    Splits the batch into groups of ``group_size``, takes the standard deviation of every
    feature over each group, averages it to one number per group and appends it as an extra
    constant feature map, so D can see the diversity of a batch: output has C + 1 channels.
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:  # largest group size that divides the batch
            g -= 1
        y = x.float().reshape(g, -1, c, h, w)  # [G, B/G, C, H, W]
        std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt()  # [B/G, C, H, W]
        stat = std.mean(dim=(1, 2, 3)).to(x.dtype)  # [B/G]
        stat = stat.repeat(g).view(b, 1, 1, 1).expand(b, 1, h, w)
        return torch.cat([x, stat], dim=1)
