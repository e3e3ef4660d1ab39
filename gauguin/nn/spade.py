"""Spatially-adaptive normalization: Park et al. 2019, "Semantic Image Synthesis with
Spatially-Adaptive Normalization" (SPADE / GauGAN), §3 and Fig. 2, 4.

SPADE normalises activations without learned affine parameters, then modulates them with a
scale γ and a shift β computed per pixel from the segmentation map (Eq. 1):

    out = (1 + γ(m)) · (h - μ) / σ + β(m)

Segmentation maps are resized with nearest-neighbour interpolation, so a one-hot map stays
one-hot (no label mixing). :class:`SegmapPyramid` caches one resize per spatial size, shared by
every SPADE layer of a forward pass.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .spectral import spectral_conv

ParamFreeNorm = Literal["batch", "instance", "syncbatch"]

__all__ = ["ParamFreeNorm", "SPADE", "SPADEResBlock", "SegmapPyramid", "make_param_free_norm", "resize_segmap"]


def resize_segmap(segmap: Tensor, size: tuple[int, int]) -> Tensor:
    """``segmap`` [B, C, H, W] at spatial ``size`` by nearest-neighbour interpolation (as SPADE §3).

    Nearest neighbour only picks input pixels, so a one-hot map stays one-hot. Returns the input
    itself when it is already at ``size``.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(segmap.shape[-2:]) == size:
        return segmap
    return F.interpolate(segmap, size=size, mode="nearest")


class SegmapPyramid:
    """A segmentation map with its nearest-neighbour resizes, each size computed once.

    The official code resizes the map inside every SPADE layer (18 resizes per generator
    forward at 256²); passing one pyramid to all layers resizes it once per resolution. Each
    size is resized from the full map (never from another resize), so results equal a direct
    ``resize_segmap(segmap, size)``. Make a new pyramid per forward pass: it holds the tensors.
    """

    def __init__(self, segmap: Tensor):
        if segmap.dim() != 4:
            raise ValueError(f"segmap must be [B, C, H, W], got shape {tuple(segmap.shape)}")
        self.segmap = segmap
        self._cache: dict[tuple[int, int], Tensor] = {(segmap.shape[-2], segmap.shape[-1]): segmap}

    def at(self, size: tuple[int, int]) -> Tensor:
        """The map at spatial ``size`` (H, W)."""
        key = (int(size[0]), int(size[1]))
        if key not in self._cache:
            self._cache[key] = resize_segmap(self.segmap, key)
        return self._cache[key]

    def __len__(self) -> int:
        return len(self._cache)


def make_param_free_norm(kind: ParamFreeNorm, channels: int) -> nn.Module:
    """Normalisation without learned affine parameters (SPADE §3; BatchNorm keeps running stats).

    ``syncbatch`` is :class:`torch.nn.SyncBatchNorm`, which behaves as plain BatchNorm when no
    process group is initialised (and in eval mode). Note that PyTorch synchronises only CUDA /
    XPU / HPU tensors: under CPU (gloo) DDP it raises, so use ``batch`` there.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "syncbatch":
        return nn.SyncBatchNorm(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"param_free_norm must be 'batch', 'instance' or 'syncbatch', got {kind!r}")


class _Modulate(torch.autograd.Function):
    """out = n·(1 + γ) + β with γ, β the two halves of one tensor ``gb`` = [γ; β] along channels.

    Written as one autograd node so that the backward pass writes ∂L/∂γ and ∂L/∂β straight into
    one buffer shaped like ``gb`` (autograd's ``chunk`` would concatenate them: a full extra copy
    of the largest activations in the network) and no (1 + γ) temporary is kept.
    """

    @staticmethod
    def forward(ctx, normalized: Tensor, gb: Tensor) -> Tensor:
        gamma, beta = gb.chunk(2, dim=1)
        ctx.save_for_backward(normalized, gb)
        return torch.addcmul(beta, normalized, gamma).add_(normalized)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        normalized, gb = ctx.saved_tensors
        gamma = gb.chunk(2, dim=1)[0]
        grad_normalized = torch.addcmul(grad, grad, gamma) if ctx.needs_input_grad[0] else None
        grad_gb = None
        if ctx.needs_input_grad[1]:
            grad_gb = torch.empty_like(gb)
            grad_gamma, grad_beta = grad_gb.chunk(2, dim=1)
            torch.mul(grad, normalized, out=grad_gamma)
            grad_beta.copy_(grad)
        return grad_normalized, grad_gb


def spade_modulate(normalized: Tensor, gamma_beta: Tensor) -> Tensor:
    """SPADE's Eq. 1, out = normalized·(1 + γ) + β, for ``gamma_beta`` = [γ; β] (channels)."""
    return _Modulate.apply(normalized, gamma_beta)


class SPADE(nn.Module):
    """SPADE normalisation (Park et al. 2019, Eq. 1 and Fig. 2).

    γ and β come from a shared conv(label_nc→hidden, k×k)+ReLU on the resized map, then a conv
    to norm_nc channels each. Both are computed here by ONE conv ``mlp_gamma_beta`` with
    2·norm_nc outputs: output channels [0, norm_nc) are γ, [norm_nc, 2·norm_nc) are β. It holds
    exactly the weights of the two separate convs of the paper (same count, same fan-in, hence
    the same default initialisation), in one kernel launch. To convert the official
    ``mlp_gamma``/``mlp_beta`` weights, concatenate them (γ first) along dim 0.
    No spectral norm on these convs (as in the official code).
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden: int = 128, kernel: int = 3,
                 param_free_norm: ParamFreeNorm = "batch"):
        super().__init__()
        self.norm_nc = norm_nc
        self.param_free_norm = make_param_free_norm(param_free_norm, norm_nc)
        pad = kernel // 2
        self.mlp_shared = nn.Conv2d(label_nc, hidden, kernel, padding=pad)
        self.mlp_gamma_beta = nn.Conv2d(hidden, 2 * norm_nc, kernel, padding=pad)

    def modulation(self, segmap: Tensor) -> tuple[Tensor, Tensor]:
        """γ and β [B, norm_nc, H, W] for a map already at the activations' size."""
        actv = F.relu(self.mlp_shared(segmap))
        gamma, beta = self.mlp_gamma_beta(actv).chunk(2, dim=1)
        return gamma, beta

    def forward(self, x: Tensor, segmap: Tensor | SegmapPyramid) -> Tensor:
        normalized = self.param_free_norm(x)
        size = (x.shape[-2], x.shape[-1])
        seg = segmap.at(size) if isinstance(segmap, SegmapPyramid) else resize_segmap(segmap, size)
        return spade_modulate(normalized, self.mlp_gamma_beta(F.relu(self.mlp_shared(seg))))


class SPADEResBlock(nn.Module):
    """SPADE residual block (Park et al. 2019, Fig. 4 and appendix A).

    Main path: SPADE → LeakyReLU(0.2) → conv3×3(fin→fmiddle) → SPADE → LeakyReLU(0.2) →
    conv3×3(fmiddle→fout), fmiddle = min(fin, fout). Shortcut: identity when fin = fout, else
    the learned SPADE → conv1×1 (no bias). Spectral norm on the three convs when ``spectral``.
    """

    def __init__(self, fin: int, fout: int, label_nc: int, spectral: bool = True,
                 param_free_norm: ParamFreeNorm = "batch", hidden: int = 128):
        super().__init__()
        fmiddle = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = spectral_conv(spectral, fin, fmiddle, 3, padding=1)
        self.conv_1 = spectral_conv(spectral, fmiddle, fout, 3, padding=1)
        self.norm_0 = SPADE(fin, label_nc, hidden, param_free_norm=param_free_norm)
        self.norm_1 = SPADE(fmiddle, label_nc, hidden, param_free_norm=param_free_norm)
        if self.learned_shortcut:
            self.conv_s = spectral_conv(spectral, fin, fout, 1, bias=False)
            self.norm_s = SPADE(fin, label_nc, hidden, param_free_norm=param_free_norm)

    def shortcut(self, x: Tensor, segmap: Tensor | SegmapPyramid) -> Tensor:
        return self.conv_s(self.norm_s(x, segmap)) if self.learned_shortcut else x

    def forward(self, x: Tensor, segmap: Tensor | SegmapPyramid) -> Tensor:
        if not isinstance(segmap, SegmapPyramid):
            segmap = SegmapPyramid(segmap)  # norm_0 and norm_s share the resize
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, segmap), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, segmap), 0.2))
        return self.shortcut(x, segmap) + dx
