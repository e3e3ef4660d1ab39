"""SSIM (Wang et al. 2004) and multi-scale SSIM (Wang, Simoncelli & Bovik 2003) of image pairs in [-1, 1], and the
MS-SSIM diversity score of a sample set (Odena et al. 2017).

Conventions (float64 throughout):
- 11×11 Gaussian window, σ = 1.5, applied without padding ("valid", as in Wang et al.'s reference code); the SSIM
  and cs maps are averaged over positions and channels. L = 2 (the [-1, 1] range), C1 = (0.01 L)², C2 = (0.03 L)².
- Between scales the images are 2×2 average-pooled (odd sides are floored).
- Small images: MS-SSIM uses the largest number of scales M <= 5 whose coarsest image side, min(H, W) // 2^(M-1),
  is still >= 11 (the window size): 28 or 32 px → 2 scales, 64 px → 3, 176 px and up → 5. The weights of the
  scales used, the first M of (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), are renormalised to sum to 1. Images
  smaller than 11 px are rejected.
- MS-SSIM = Π_{j<M} cs_j^{w_j} · ssim_M^{w_M}; negative cs_j / ssim_M (anti-correlated structure) are clamped to 0
  before the fractional powers, which would otherwise give NaN, so MS-SSIM lies in [0, 1].
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW, SIGMA = 11, 1.5
DATA_RANGE = 2.0
C1, C2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2


def _as_images(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().to(torch.float64)
    if x.dim() != 4:
        raise ValueError(f"{name} must be an image batch [N, C, H, W], got shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains {int(x.isnan().sum())} NaN and {int(x.isinf().sum())} Inf values")
    if x.numel() and (x.min() < -1 - 1e-3 or x.max() > 1 + 1e-3):
        raise ValueError(f"{name} must be in [-1, 1], got values in [{x.min().item():.4g}, {x.max().item():.4g}]; "
                         f"map [0, 1] images with 2x-1 and [0, 255] images with x/127.5-1")
    if min(x.shape[-2:]) < WINDOW:
        raise ValueError(f"{name}: images of {x.shape[-2]}x{x.shape[-1]} px are smaller than the {WINDOW} px window")
    return x


def _as_pair(a, b) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = _as_images(a, "a"), _as_images(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    return a, b.to(a.device)


def _band(size: int, like: torch.Tensor) -> torch.Tensor:
    """[size, size - 10] matrix whose column i holds the normalised 1-D Gaussian at rows i..i+10."""
    r = torch.arange(WINDOW, dtype=like.dtype, device=like.device) - (WINDOW - 1) / 2
    g = torch.exp(-r**2 / (2 * SIGMA**2))
    g = g / g.sum()
    band = torch.zeros(size, size - WINDOW + 1, dtype=like.dtype, device=like.device)
    cols = torch.arange(size - WINDOW + 1, device=like.device)
    for k in range(WINDOW):
        band[cols + k, cols] = g[k]
    return band


def _blur(x: torch.Tensor) -> torch.Tensor:
    """Valid (unpadded) separable Gaussian filtering of each channel, as two band-matrix products (much faster
    than a grouped float64 conv2d on CPU)."""
    return _band(x.shape[-2], x).T @ x @ _band(x.shape[-1], x)


def _ssim_and_cs(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM map and mean contrast-structure (cs) map per pair, both [N]."""
    mu_a, mu_b = _blur(a), _blur(b)
    var_a = _blur(a * a) - mu_a**2
    var_b = _blur(b * b) - mu_b**2
    cov = _blur(a * b) - mu_a * mu_b
    cs = (2 * cov + C2) / (var_a + var_b + C2)
    luminance = (2 * mu_a * mu_b + C1) / (mu_a**2 + mu_b**2 + C1)
    return (luminance * cs).mean(dim=(1, 2, 3)), cs.mean(dim=(1, 2, 3))


def max_scales(side: int) -> int:
    """Number of MS-SSIM scales used for images whose shorter side is ``side`` px (coarsest side >= 11, at most 5)."""
    return max(m for m in range(1, len(MS_SSIM_WEIGHTS) + 1) if side // 2 ** (m - 1) >= WINDOW) if side >= WINDOW else 0


@torch.no_grad()
def ssim(a, b) -> torch.Tensor:
    """Single-scale SSIM per pair, [N] float64 in [-1, 1] (Wang et al. 2004, eq. (13)): the mean over positions
    and channels of (2μaμb + C1)(2σab + C2) / ((μa² + μb² + C1)(σa² + σb² + C2))."""
    return _ssim_and_cs(*_as_pair(a, b))[0]


@torch.no_grad()
def ms_ssim(a, b, scales: int | None = None) -> torch.Tensor:
    """Multi-scale SSIM per pair, [N] float64 in [0, 1] (Wang, Simoncelli & Bovik 2003):
    Π_{j=1}^{M-1} cs_j^{w_j} · ssim_M^{w_M}, with the standard 5-scale weights. ``scales`` (default: as many as
    fit, see the module docstring) may be lowered explicitly; the weights used are renormalised to sum to 1."""
    a, b = _as_pair(a, b)
    available = max_scales(min(a.shape[-2:]))
    scales = available if scales is None else scales
    if not 1 <= scales <= available:
        raise ValueError(f"scales must be in [1, {available}] for {a.shape[-2]}x{a.shape[-1]} px images, got {scales}")
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64, device=a.device)
    weights = weights / weights.sum()
    values = []
    for j in range(scales):
        s, cs = _ssim_and_cs(a, b)
        values.append(cs if j < scales - 1 else s)
        if j < scales - 1:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return (torch.stack(values, dim=1).clamp(min=0) ** weights).prod(dim=1)


def _draw_pairs(rng: np.random.Generator, idx: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` random ordered pairs of distinct positions of ``idx`` (uniform over pairs)."""
    i = rng.integers(len(idx), size=count)
    j = rng.integers(len(idx) - 1, size=count)
    return idx[i], idx[j + (j >= i)]


def ms_ssim_diversity(images, pairs: int = 1000, seed: int = 0, labels=None, batch_size: int = 256) -> float:
    """Mean MS-SSIM over ``pairs`` random pairs of distinct samples of ``images`` [N, C, H, W] in [-1, 1]; lower
    means more diverse (Odena et al. 2017). With ``labels`` [N], pairs are drawn within each class with
    at least 2 samples, ceil(pairs / classes) per class, so every class weighs the same (the conditional protocol of
    Odena et al.); classes with a single sample are skipped with a warning. Deterministic in ``seed``."""
    images = _as_images(images, "images")
    n = images.shape[0]
    if n < 2:
        raise ValueError(f"ms_ssim_diversity needs at least 2 images, got {n}")
    if pairs < 1:
        raise ValueError(f"pairs must be >= 1, got {pairs}")
    rng = np.random.default_rng(seed)
    if labels is None:
        i, j = _draw_pairs(rng, np.arange(n), pairs)
    else:
        labels = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape [{n}], got {labels.shape}")
        classes, counts = np.unique(labels, return_counts=True)
        if (counts < 2).all():
            raise ValueError("ms_ssim_diversity: no class has at least 2 samples")
        if (counts < 2).any():
            warnings.warn(f"ms_ssim_diversity: skipping classes with a single sample: {classes[counts < 2].tolist()}",
                          stacklevel=2)
        classes = classes[counts >= 2]
        per_class = math.ceil(pairs / len(classes))
        drawn = [_draw_pairs(rng, np.flatnonzero(labels == c), per_class) for c in classes]
        i, j = np.concatenate([d[0] for d in drawn]), np.concatenate([d[1] for d in drawn])
    i, j = torch.from_numpy(i).to(images.device), torch.from_numpy(j).to(images.device)
    scores = torch.cat([ms_ssim(images[bi], images[bj]) for bi, bj in zip(i.split(batch_size), j.split(batch_size))])
    return float(scores.mean())
