"""Differentiable augmentation of everything D sees (DiffAugment, Zhao et al. 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

The same random family of transforms T is applied to real and to generated images, in D's and in
G's step, so D never sees an un-augmented image and G's gradient flows through T (§3, Eq. 3-4):
L_D = f(D(T(x))) + h(D(T(G(z)))), L_G = g(D(T(G(z)))). With little data this keeps D from
memorising the training set. Policies (the paper's §3 and Appendix): ``color`` (brightness ±0.5,
contrast ×[0.5, 1.5], saturation ×[0, 2] for RGB), ``translation`` (integer shifts up to 1/8 of the
side, zero padded), ``cutout`` (one square of half the side set to 0, mid-grey in gauguin's [-1, 1] range, as the paper's
masks zero its normalised images).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

POLICIES = ("color", "translation", "cutout")


def parse_policy(text: str) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ``("translation", "cutout")``; an unknown name raises ValueError."""
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown[0]!r}: use a comma-separated subset of {', '.join(POLICIES)}")
    return names


def _uniform(x: Tensor, low: float, high: float) -> Tensor:
    return torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).uniform_(low, high)


def color(x: Tensor) -> Tensor:
    """Random brightness, (RGB) saturation and contrast, one draw per image."""
    x = x + _uniform(x, -0.5, 0.5)
    if x.shape[1] == 3:
        mean = x.mean(1, keepdim=True)
        x = (x - mean) * _uniform(x, 0.0, 2.0) + mean
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean


def translation(x: Tensor, ratio: float = 0.125) -> Tensor:
    """Shift each image by whole pixels, up to ``ratio`` of its side each way, filling with zeros."""
    n, _, h, w = x.shape
    max_dy, max_dx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-max_dy, max_dy + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-max_dx, max_dx + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + dy + max_dy  # index into the padded image
    cols = torch.arange(w, device=x.device).view(1, 1, w) + dx + max_dx
    padded = F.pad(x, (max_dx, max_dx, max_dy, max_dy))
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: Tensor, ratio: float = 0.5) -> Tensor:
    """Zero one square of ``ratio`` of the side per image, centred anywhere (it may leave the image)."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = rows - (cy - ch // 2), cols - (cx - cw // 2)  # position inside the square
    inside = (top >= 0) & (top < ch) & (left >= 0) & (left < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: Tensor, policy: tuple[str, ...]) -> Tensor:
    """``x`` under each transform of ``policy`` in turn (the empty policy returns ``x``)."""
    for name in policy:
        x = _TRANSFORMS[name](x)
    return x
