"""Super-resolution evaluation as the SR literature reports it: PSNR and SSIM on the luma (Y) channel.

The protocol (SRCNN, VDSR, SRResNet / SRGAN (Ledig et al. 2017), EDSR, ESRGAN ...), under which bicubic /
SRResNet / SRGAN score 28.43 / 32.05 / 29.40 dB on Set5 x4:
- Y of ITU-R BT.601 as MATLAB's ``rgb2ycbcr``: Y = 16 + 65.481 R + 128.553 G + 24.966 B, R, G, B in [0, 1],
  so Y lies in [16, 235]; computed in float64 and **not** rounded to integers (MATLAB rounds only when its input
  is uint8; most published evaluation code converts with ``im2double`` first, as here).
- ``border`` pixels (the scale factor, by convention) cropped from every side of both images.
- PSNR = 10 log10(255² / MSE) per image (inf when the images are equal).
- SSIM of Wang et al. 2004: 11×11 Gaussian window, σ = 1.5, K1 = 0.01, K2 = 0.03, L = 255, 'valid' filtering
  (no padding, as ``filter2(..., 'valid')`` in the authors' ``ssim_index.m``), mean of the SSIM map; no
  automatic downsampling.

Inputs are image batches [N, C, H, W] (a single [C, H, W] image is accepted) with C = 3 (RGB) or C = 1 (grey,
taken as already being luma: Y = 255·x, full range, no 16..235 offset). Float tensors must be in [0, 1];
uint8 tensors are read as x / 255.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

WINDOW, SIGMA = 11, 1.5
L = 255.0
C1, C2 = (0.01 * L) ** 2, (0.03 * L) ** 2
Y_WEIGHTS = (65.481, 128.553, 24.966)  # BT.601 for R, G, B in [0, 1]; Y in [16, 235]
Y_OFFSET = 16.0


def _as_unit_images(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach()
    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"{name} must be images [N, C, H, W] with C = 1 (grey) or 3 (RGB), got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        return x.to(torch.float64) / 255.0
    if not x.is_floating_point():
        raise ValueError(f"{name} must be float in [0, 1] or uint8, got {x.dtype}")
    x = x.to(torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(f"{name} must be in [0, 1], got values in [{x.min().item():.4g}, {x.max().item():.4g}]; "
                         f"map [-1, 1] images with (x + 1) / 2")
    return x


def rgb_to_y(images) -> torch.Tensor:
    """Luma Y in [0, 255] (float64, [N, 1, H, W]) of ITU-R BT.601 as MATLAB's ``rgb2ycbcr``:
    Y = 16 + 65.481 R + 128.553 G + 24.966 B for RGB in [0, 1]; a grey image (C = 1) is taken as luma: Y = 255·x."""
    x = _as_unit_images(images, "images")
    if x.shape[1] == 1:
        return x * 255.0
    w = torch.tensor(Y_WEIGHTS, dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True) + Y_OFFSET


def _y_pair(sr, hr, border: int, min_side: int) -> tuple[torch.Tensor, torch.Tensor]:
    ys, yh = rgb_to_y(sr), rgb_to_y(hr)
    if ys.shape != yh.shape:
        raise ValueError(f"sr and hr must have one shape, got {tuple(ys.shape)} and {tuple(yh.shape)}")
    border = int(border)
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    h, w = ys.shape[-2] - 2 * border, ys.shape[-1] - 2 * border
    if min(h, w) < min_side:
        raise ValueError(f"images of {ys.shape[-2]}x{ys.shape[-1]} px less a border of {border} px on each side "
                         f"leave {max(h, 0)}x{max(w, 0)} px; need at least {min_side}x{min_side}")
    if border:
        ys, yh = ys[..., border:-border, border:-border], yh[..., border:-border, border:-border]
    return ys, yh.to(ys.device)


def psnr_y(sr, hr, border: int) -> torch.Tensor:
    """Per-image PSNR [N] (float64, dB) on Y with ``border`` px cropped: 10 log10(255² / MSE); inf if equal."""
    ys, yh = _y_pair(sr, hr, border, 1)
    mse = (ys - yh).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(L**2 / mse)  # mse = 0 -> inf


def _gaussian_window(device) -> torch.Tensor:
    r = torch.arange(WINDOW, dtype=torch.float64, device=device) - (WINDOW - 1) / 2
    g = torch.exp(-r**2 / (2 * SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, WINDOW, WINDOW)


def ssim_y(sr, hr, border: int) -> torch.Tensor:
    """Per-image SSIM [N] (float64) on Y with ``border`` px cropped (Wang et al. 2004):
    SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)), local statistics under an 11×11
    Gaussian window (σ = 1.5, 'valid'), C1 = (0.01·255)², C2 = (0.03·255)², averaged over the map."""
    x, y = _y_pair(sr, hr, border, WINDOW)
    win = _gaussian_window(x.device)
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + C1) * (2 * sxy + C2)) / ((mu_x**2 + mu_y**2 + C1) * (sxx + syy + C2))
    return ssim_map.flatten(1).mean(dim=1)


def sr_scores(sr, hr, scale: int) -> dict:
    """PSNR-Y and SSIM-Y with the border of ``scale`` px cropped: means and per-image values.

    The mean PSNR is the mean of the per-image dB values (as the literature averages over a test set); it is inf
    when any image is reproduced exactly."""
    scale = int(scale)
    psnr, ssim_values = psnr_y(sr, hr, scale), ssim_y(sr, hr, scale)
    return {
        "protocol": f"psnr_y_ssim_y_border{scale}",
        "psnr": float(psnr.mean()) if psnr.numel() else math.nan,
        "ssim": float(ssim_values.mean()) if ssim_values.numel() else math.nan,
        "psnr_per_image": [float(v) for v in psnr],
        "ssim_per_image": [float(v) for v in ssim_values],
    }


def evaluate_upscalers(models: dict, hr_files, scale: int, tile: int = 256, overlap: int = 16) -> dict:
    """The protocol on held-out photos: each HR photo cropped to a multiple of ``scale`` (top-left,
    "modcrop"), its LR by bicubic downsampling (PIL, antialiased, MATLAB's kernel), then bicubic
    upsampling (the baseline) and each model in ``models`` (name -> (callable on [1, C, h, w] in
    [-1, 1], channels), tiled by :func:`gauguin.upscale.upscale_image`) scored by :func:`sr_scores`.
    Returns {name: scores} with "bicubic" first, and the files."""
    import numpy as np
    from PIL import Image

    from ..upscale import read_image, upscale_image

    hr_images, outputs = [], {"bicubic": [], **{name: [] for name in models}}
    for path in hr_files:
        pixels = read_image(path)
        pixels = pixels if pixels.ndim == 3 else np.repeat(pixels[..., None], 3, 2)
        pixels = (pixels[..., :3] if pixels.dtype == np.uint8 else (pixels[..., :3] / 257).round().astype(np.uint8))
        h, w = (s - s % scale for s in pixels.shape[:2])
        hr = pixels[:h, :w]
        lr = np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.Resampling.BICUBIC))
        outputs["bicubic"].append(np.asarray(Image.fromarray(lr).resize((w, h), Image.Resampling.BICUBIC)))
        for name, (model, channels) in models.items():
            outputs[name].append(upscale_image(model, lr, scale, tile, overlap, channels=channels))
        hr_images.append(hr)

    def scores(images: list) -> dict:
        per_image = [sr_scores(torch.from_numpy(np.array(x)).permute(2, 0, 1),
                               torch.from_numpy(np.array(y)).permute(2, 0, 1), scale) for x, y in zip(images, hr_images)]
        psnr = [s["psnr_per_image"][0] for s in per_image]
        ssim_values = [s["ssim_per_image"][0] for s in per_image]
        return {"protocol": per_image[0]["protocol"], "psnr": sum(psnr) / len(psnr), "ssim": sum(ssim_values) / len(ssim_values),
                "psnr_per_image": psnr, "ssim_per_image": ssim_values}

    return {"files": [str(p) for p in hr_files], "scale": scale, "scores": {name: scores(v) for name, v in outputs.items()}}
