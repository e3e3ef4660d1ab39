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

from .labels import is_exporting
from .layers import autocast_dtype
from .spectral import spectral_conv

ParamFreeNorm = Literal["batch", "instance", "syncbatch"]

__all__ = ["ParamFreeNorm", "SPADE", "SPADEResBlock", "SegmapPyramid", "make_param_free_norm", "one_hot_conv", "resize_segmap"]


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

    :meth:`from_ids` (inference): the pyramid of the one-hot of label ids (+ extra channels, e.g.
    instance edges) that never builds the full one-hot map: SPADE layers compute their first conv as
    a table lookup (:func:`one_hot_conv`) from the resized ids, and :meth:`at` one-hots a resized map
    only where a layer asks for it.
    """

    def __init__(self, segmap: Tensor):
        if segmap.dim() != 4:
            raise ValueError(f"segmap must be [B, C, H, W], got shape {tuple(segmap.shape)}")
        self.shape, self.device, self.dtype = tuple(segmap.shape), segmap.device, segmap.dtype
        self.label_ids, self.num_labels = None, 0
        self._cache: dict[tuple, Tensor] = {("map", *self.shape[-2:]): segmap}

    @classmethod
    def from_ids(cls, label_ids: Tensor, num_labels: int, extra: Tensor | None = None,
                 dtype: torch.dtype = torch.float32) -> "SegmapPyramid":
        """The pyramid of ``cat(one_hot(label_ids [B, H, W], num_labels), extra [B, E, H, W])``."""
        if label_ids.dim() != 3 or num_labels < 1 or (extra is not None and (
                extra.dim() != 4 or extra.shape[0] != label_ids.shape[0] or extra.shape[-2:] != label_ids.shape[-2:])):
            raise ValueError(f"label_ids {tuple(label_ids.shape)} (num_labels={num_labels}) and extra "
                             f"{None if extra is None else tuple(extra.shape)} do not describe a segmentation map")
        pyramid = cls.__new__(cls)
        b, h, w = label_ids.shape
        pyramid.shape = (b, num_labels + (0 if extra is None else extra.shape[1]), h, w)
        pyramid.device, pyramid.dtype = label_ids.device, dtype
        pyramid.label_ids, pyramid.num_labels = label_ids.long(), num_labels
        pyramid._cache = {("ids", h, w): pyramid.label_ids}
        if extra is not None:
            pyramid._cache[("extra", h, w)] = extra.to(dtype)
        return pyramid

    def _resized(self, kind: str, size: tuple[int, int]) -> Tensor:
        key = (kind, int(size[0]), int(size[1]))
        if key not in self._cache:
            if kind == "map" and self.label_ids is not None:  # one-hot of the resized ids (+ extra)
                one_hot = torch.zeros(self.shape[0], self.num_labels, *key[1:], dtype=self.dtype, device=self.device)
                one_hot.scatter_(1, self.ids_at(key[1:])[:, None], 1)
                extra = self.extra_at(key[1:])
                resized = one_hot if extra is None else torch.cat([one_hot, extra], 1)
            else:
                full = self._cache[(kind, *self.shape[-2:])]
                if kind == "ids":  # the indices nearest picks for the map (exact: ids < 2^24)
                    resized = resize_segmap(full[:, None].float(), key[1:])[:, 0].long()
                else:
                    resized = resize_segmap(full, key[1:])
            self._cache[key] = resized
        return self._cache[key]

    @property
    def segmap(self) -> Tensor:
        """The full-size map (built on first use by a :meth:`from_ids` pyramid)."""
        return self.at(self.shape[-2:])

    def at(self, size: tuple[int, int]) -> Tensor:
        """The map at spatial ``size`` (H, W)."""
        return self._resized("map", size)

    def ids_at(self, size: tuple[int, int]) -> Tensor:
        """The label ids [B, h, w] at ``size`` (a :meth:`from_ids` pyramid)."""
        return self._resized("ids", size)

    def tap_index_at(self, size: tuple[int, int], kernel: int) -> Tensor:
        """:func:`tap_index` of the ids at ``size``, shared by the layers of that size."""
        key = ("taps", int(size[0]), int(size[1]), kernel)
        if key not in self._cache:
            self._cache[key] = tap_index(self.ids_at(size), self.num_labels, kernel)
        return self._cache[key]

    def extra_at(self, size: tuple[int, int]) -> Tensor | None:
        """The channels after the one-hot ones [B, E, h, w] at ``size`` (a :meth:`from_ids` pyramid); None if none."""
        return self._resized("extra", size) if self.shape[1] > self.num_labels else None

    def __len__(self) -> int:
        return len(self._cache)


def tap_index(ids: Tensor, num_labels: int, kernel: int) -> Tensor:
    """``[B·H·W, k²]`` rows of a :func:`one_hot_table` that a k×k 'same' conv of the one-hot of ``ids``
    [B, H, W] sums at each pixel: tap t of pixel p reads row t·(K+1) + ids(p + δ_t), and row
    t·(K+1) + K (zeros) outside the map."""
    b, h, w = ids.shape
    pad = kernel // 2
    padded = F.pad(ids, (pad, pad, pad, pad), value=num_labels)
    offsets = torch.arange(kernel * kernel, device=ids.device) * (num_labels + 1)
    taps = torch.stack([padded[:, dy:dy + h, dx:dx + w] for dy in range(kernel) for dx in range(kernel)], dim=-1)
    return (taps + offsets).reshape(-1, kernel * kernel)


def one_hot_table(conv: nn.Conv2d, num_labels: int, dtype: torch.dtype | None = None) -> Tensor:
    """``[k²·(K+1), out]``: for each tap t the columns W[:, label, t] of ``conv``'s first ``num_labels`` input
    channels, then a zero row (outside the map); the bias is added to the centre tap's rows (every pixel
    reads exactly one of them)."""
    k = conv.kernel_size[0]
    taps = conv.weight[:, :num_labels].permute(2, 3, 1, 0).reshape(k * k, num_labels, -1)  # [tap, label, out]
    table = F.pad(taps, (0, 0, 0, 1))
    if conv.bias is not None:
        centre = (k * k) // 2
        table = torch.cat([table[:centre], table[centre:centre + 1] + conv.bias, table[centre + 1:]])
    return table.reshape(-1, table.shape[-1]).to(dtype or conv.weight.dtype)


def one_hot_conv(conv: nn.Conv2d, ids: Tensor, extra: Tensor | None = None, table: Tensor | None = None,
                 index: Tensor | None = None) -> Tensor:
    """``conv`` (stride 1, 'same' zero padding) of the one-hot of ``ids`` [B, H, W] (+ ``extra`` channels
    after the one-hot ones), without the one-hot: a one-hot pixel picks one column of each kernel tap,
    so the conv is a sum of k² looked-up rows (Σ_t W[:, ids(p + δ_t), t] + b), K_in× fewer
    multiply-adds than the dense conv (151× for ADE20K). ``table`` / ``index``: :func:`one_hot_table` /
    :func:`tap_index`, when the caller keeps them. Output in channels-last memory, in the autocast dtype."""
    k, b, (h, w) = conv.kernel_size[0], ids.shape[0], ids.shape[-2:]
    labels = conv.in_channels - (extra.shape[1] if extra is not None else 0)
    dtype = autocast_dtype(ids.device.type, conv.weight.dtype)
    table = one_hot_table(conv, labels, dtype) if table is None else table
    index = tap_index(ids, labels, k) if index is None else index
    if is_exporting():  # k² Gathers summed: every ONNX runtime has them
        out = sum(F.embedding(index[:, t], table) for t in range(k * k))
    else:  # one fused kernel
        out = F.embedding_bag(index, table, mode="sum")
    out = out.reshape(b, h, w, -1).permute(0, 3, 1, 2)
    if extra is not None:
        out = out + F.conv2d(extra.to(dtype), conv.weight[:, labels:].to(dtype), padding=k // 2)
    return out


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

    def _lookup_table(self, num_labels: int, x: Tensor) -> Tensor:
        """``mlp_shared`` as a :func:`one_hot_table`; kept while its weights are unchanged (and no
        gradient or trace needs it rebuilt), so that a served model builds it once."""
        conv = self.mlp_shared
        dtype = autocast_dtype(x.device.type, conv.weight.dtype)
        if torch.is_grad_enabled() or is_exporting():
            return one_hot_table(conv, num_labels, dtype)
        key = (num_labels, dtype, conv.weight.device, conv.weight._version, conv.weight.data_ptr(),
               None if conv.bias is None else (conv.bias._version, conv.bias.data_ptr()))
        cached = getattr(self, "_table", None)
        if cached is None or cached[0] != key:
            cached = self._table = (key, one_hot_table(conv, num_labels, dtype))
        return cached[1]

    def modulation(self, segmap: Tensor) -> tuple[Tensor, Tensor]:
        """γ and β [B, norm_nc, H, W] for a map already at the activations' size."""
        actv = F.relu(self.mlp_shared(segmap))
        gamma, beta = self.mlp_gamma_beta(actv).chunk(2, dim=1)
        return gamma, beta

    def forward(self, x: Tensor, segmap: Tensor | SegmapPyramid) -> Tensor:
        normalized = self.param_free_norm(x)
        size = (x.shape[-2], x.shape[-1])
        if isinstance(segmap, SegmapPyramid) and segmap.label_ids is not None:
            shared = one_hot_conv(self.mlp_shared, segmap.ids_at(size), segmap.extra_at(size),
                                  self._lookup_table(segmap.num_labels, x),
                                  segmap.tap_index_at(size, self.mlp_shared.kernel_size[0]))
        else:
            shared = self.mlp_shared(segmap.at(size) if isinstance(segmap, SegmapPyramid)
                                     else resize_segmap(segmap, size))
        return spade_modulate(normalized, self.mlp_gamma_beta(F.relu(shared)))


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
