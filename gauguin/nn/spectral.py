"""Spectral normalization (Miyato et al. 2018) for convolutions, computed where it is cheapest.

W_SN = W / σ(W), with σ(W) = uᵀ W v estimated by one power iteration per training forward
(u, v persist across steps; Miyato et al. Alg. 1), W reshaped to [out, in·k·k]; gradients flow
through σ as in ``torch.nn.utils.spectral_norm`` (the one SPADE's code uses).

A convolution is linear in its weight, so conv(x, W/σ) = conv(x, W)/σ. The layer divides
whichever is smaller: the weight (high-resolution layers with few channels) or the output
(SPADE's 1024-channel blocks at 8x8 or 16x16, whose 9.4 M-element weights would otherwise be
divided, cast and back-propagated through elementwise every step). Same numbers, same
parameters; a state dict holds ``weight``, ``bias`` and the ``weight_u`` / ``weight_v`` vectors.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import autocast_dtype


SMALL_MAP_ROWS = 1024  # batch x output pixels at or below which the weight gradient is one GEMM


class _SmallMapConv(torch.autograd.Function):
    """conv2d (stride 1, no bias) whose backward computes the weight gradient as one GEMM over the
    unfolded input: ∂L/∂W = G·colsᵀ with G [out, B·H·W] and cols [B·H·W, in·k·k]. For maps of a few
    hundred pixels and 1024 channels (SPADE's first blocks) oneDNN's bf16 weight-gradient kernel
    is ~5x slower than this; the numbers are the same sums."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, padding: tuple[int, int]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, None, 1, padding)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight = ctx.saved_tensors
        grad_x = F.conv_transpose2d(grad, weight, None, 1, ctx.padding) if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            cols = F.unfold(x, weight.shape[-2:], padding=ctx.padding)  # [B, in·k·k, H·W]
            rows = grad.transpose(0, 1).reshape(grad.shape[1], -1)  # [out, B·H·W]
            grad_w = (rows @ cols.transpose(1, 2).reshape(-1, cols.shape[1])).view_as(weight)
        return grad_x, grad_w, None


class SpectralNormConv2d(nn.Conv2d):
    """``nn.Conv2d`` with spectral normalization of its weight (see the module docstring)."""

    def __init__(self, *args, n_power_iterations: int = 1, eps: float = 1e-12, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_power_iterations = n_power_iterations
        self.eps = eps
        rows, cols = self.weight.shape[0], self.weight[0].numel()
        self.register_buffer("weight_u", self.weight.new_empty(rows))
        self.register_buffer("weight_v", self.weight.new_empty(cols))
        self.reset_power_iteration()

    @torch.no_grad()
    def reset_power_iteration(self, iterations: int = 15) -> None:
        """Fresh u, v from a random start and ``iterations`` power steps on the current weight (as
        torch's ``spectral_norm`` does when it is registered); call after re-initialising the weight."""
        if self.weight.is_meta:
            return
        matrix = self.weight.float().flatten(1)
        u = F.normalize(torch.randn(matrix.shape[0], device=matrix.device), dim=0, eps=self.eps)
        v = F.normalize(torch.randn(matrix.shape[1], device=matrix.device), dim=0, eps=self.eps)
        for _ in range(iterations):
            v = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=self.eps)
            u = F.normalize(torch.mv(matrix, v), dim=0, eps=self.eps)
        self.weight_u.copy_(u)
        self.weight_v.copy_(v)

    def _matrix(self, weight: Tensor) -> tuple[Tensor, bool]:
        """W as [out, in·k·k] without copying: in (kh, kw, in) column order for a channels-last weight
        (the order of its memory; singular values do not depend on the column order)."""
        if weight.dim() == 4 and not weight.is_contiguous() and weight.is_contiguous(memory_format=torch.channels_last):
            return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1), True
        return weight.reshape(weight.shape[0], -1), False

    def _v_as(self, channels_last: bool) -> Tensor:
        """v (kept in the canonical (in, kh, kw) order) in the matrix's column order."""
        if not channels_last:
            return self.weight_v
        i, kh, kw = self.weight.shape[1:]
        return self.weight_v.view(i, kh, kw).permute(1, 2, 0).reshape(-1)

    def sigma(self) -> Tensor:
        """σ(W) = uᵀ W v in float32, after ``n_power_iterations`` updates of u and v in training mode."""
        with torch.autocast(self.weight.device.type, enabled=False):
            matrix, channels_last = self._matrix(self.weight.float())
            if self.training:
                with torch.no_grad():
                    u, v = self.weight_u, self._v_as(channels_last)
                    for _ in range(self.n_power_iterations):
                        v = F.normalize(torch.mv(matrix.t(), u), dim=0, eps=self.eps)
                        u = F.normalize(torch.mv(matrix, v), dim=0, eps=self.eps)
                    self.weight_u.copy_(u)
                    if channels_last:
                        i, kh, kw = self.weight.shape[1:]
                        v = v.view(kh, kw, i).permute(2, 0, 1).reshape(-1)
                    self.weight_v.copy_(v)
            return torch.dot(self.weight_u.clone(), torch.mv(matrix, self._v_as(channels_last).clone()))

    def forward(self, x: Tensor) -> Tensor:
        sigma = self.sigma()
        if self._output_numel(x) < self.weight.numel():
            out = self._conv_unscaled(x) / sigma  # a 0-dim σ keeps the output's dtype
            return out if self.bias is None else out + self.bias.view(1, -1, 1, 1).to(out.dtype)
        return self._conv_forward(x, self.weight / sigma, self.bias)

    def _conv_unscaled(self, x: Tensor) -> Tensor:
        """conv(x, W) without bias; small maps take :class:`_SmallMapConv` (same values, faster backward)."""
        simple = self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1 and self.padding_mode == "zeros"
        if not (simple and torch.is_grad_enabled() and self._output_numel(x) // self.out_channels <= SMALL_MAP_ROWS):
            return self._conv_forward(x, self.weight, None)
        device = x.device.type
        dtype = autocast_dtype(device, x.dtype)
        with torch.autocast(device, enabled=False):
            return _SmallMapConv.apply(x.to(dtype), self.weight.to(dtype), self.padding)

    def _output_numel(self, x: Tensor) -> int:
        size = []
        for n, k, s, p, d in zip(x.shape[-2:], self.kernel_size, self.stride, self.padding, self.dilation):
            size.append((n + 2 * p - d * (k - 1) - 1) // s + 1)
        return x.shape[0] * self.out_channels * size[0] * size[1]

    def extra_repr(self) -> str:
        return super().extra_repr() + ", spectral_norm=True"


def spectral_conv(spectral: bool, *args, **kwargs) -> nn.Conv2d:
    """A spectral-normed conv when ``spectral``, else a plain ``nn.Conv2d`` (same arguments)."""
    return SpectralNormConv2d(*args, **kwargs) if spectral else nn.Conv2d(*args, **kwargs)


@torch.no_grad()
def fold_spectral_norm(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` with every :class:`SpectralNormConv2d` replaced by a plain ``nn.Conv2d``
    whose weight is W / σ(W) with the stored u, v: what the eval-mode forward computes, as fixed
    weights (no power iteration, no ``weight_u`` / ``weight_v`` buffers), for export and inference.
    ``module`` itself is left unchanged; a module without spectral norm comes back as a plain copy."""
    folded = copy.deepcopy(module)
    if isinstance(folded, SpectralNormConv2d):
        return _plain_conv(folded)
    for child in list(folded.modules()):
        for attr, sub in list(child.named_children()):
            if isinstance(sub, SpectralNormConv2d):
                setattr(child, attr, _plain_conv(sub))
    return folded


def _plain_conv(layer: SpectralNormConv2d) -> nn.Conv2d:
    """The ``nn.Conv2d`` equal to ``layer``'s eval forward (σ from the stored u, v, in float32)."""
    was_training = layer.training
    layer.eval()  # σ without a power-iteration step, as at inference
    sigma = layer.sigma()
    layer.train(was_training)
    conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                     layer.dilation, layer.groups, layer.bias is not None, layer.padding_mode,
                     device=layer.weight.device, dtype=layer.weight.dtype)
    conv.weight.copy_((layer.weight.float() / sigma).to(layer.weight.dtype))
    if layer.bias is not None:
        conv.bias.copy_(layer.bias)
    conv.train(was_training)
    return conv
