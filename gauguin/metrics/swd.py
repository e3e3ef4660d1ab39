"""Sliced Wasserstein distance between two image sets (Rabin et al. 2011; used as a GAN metric by
Karras et al. 2018). A cheap, weight-free quality signal: 1-D Wasserstein-1 distances of the two
sets projected on random unit directions, averaged; lower is better, 0 for identical sets."""
from __future__ import annotations

import torch


@torch.no_grad()
def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: int = 256, seed: int = 0) -> float:
    """SWD between ``a`` and ``b`` (``[N, ...]`` each, same N), flattened to vectors, in the inputs' units."""
    if a.shape != b.shape:
        raise ValueError(f"sliced_wasserstein needs two sets of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.flatten(1).float().cpu(), b.flatten(1).float().cpu()
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], directions, generator=gen)
    dirs /= dirs.norm(dim=0, keepdim=True)
    pa, _ = (a @ dirs).sort(dim=0)
    pb, _ = (b @ dirs).sort(dim=0)
    return (pa - pb).abs().mean().item()
