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

import io
import math
from pathlib import Path

import numpy as np
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


def aligned_patches(images: list, patch: int, per_image: int, seed: int = 0) -> list:
    """Per image set (each a list of uint8 ``[h, w, 3]`` arrays of the same sizes across sets), the same
    ``per_image`` random ``patch``-pixel squares of every image: float [-1, 1] tensors ``[N, 3, patch, patch]``."""
    gen = torch.Generator().manual_seed(seed)
    corners = []
    for pixels in images[0]:
        h, w = pixels.shape[:2]
        if min(h, w) < patch:
            raise ValueError(f"a held-out photo of {w}x{h} is smaller than the {patch} px patches of the protocol")
        corners.append(list(zip(torch.randint(0, h - patch + 1, (per_image,), generator=gen).tolist(),
                                torch.randint(0, w - patch + 1, (per_image,), generator=gen).tolist())))
    out = []
    for group in images:
        crops = [torch.from_numpy(np.ascontiguousarray(x[top : top + patch, left : left + patch]))
                 for x, spots in zip(group, corners) for top, left in spots]
        out.append(torch.stack(crops).permute(0, 3, 1, 2).float().div(127.5).sub(1))
    return out


def patch_distances(outputs: dict, hr_images: list, patch: int = 64, per_image: int = 64, seed: int = 0,
                    extractor=None) -> dict:
    """Perceptual protocol ``sr_patches{patch}``: how far the distribution of an upscaler's local structures is from
    the real photos', on the same ``per_image`` random ``patch``-px squares of every output and its HR photo:

    - ``lswd``: PGGAN's sliced Wasserstein distance on 7×7 neighbourhoods of the squares' Laplacian pyramids
      (Karras et al. 2018; no learned weights; 16 neighbourhoods per square, 2 repeats of 512 directions):
      blur removes the fine levels' detail;
    - ``fd_fmnist``: the Fréchet distance (FID's formula, Heusel et al. 2017) of the ``extractor``'s features
      (gauguin's Fashion-MNIST CNN by default, a learned yardstick differently made than the SWD) of the
      squares' luma resized to its 28 px input.

    Lower is better for both; a distribution distance, so a sharp output whose details are wrong in place can
    beat a blurred one whose PSNR is higher (the perception-distortion trade-off, Blau & Michaeli 2018)."""
    from .extractors import create_extractor
    from .frechet import fid_from_features
    from .swd import laplacian_swd

    names = list(outputs)
    real, *fakes = aligned_patches([hr_images] + [outputs[name] for name in names], patch, per_image, seed)
    extractor = extractor if extractor is not None else create_extractor("fmnist")
    span = sum(Y_WEIGHTS)  # Y of [0, 1] RGB lies in [16, 16 + span]

    def features(squares: torch.Tensor) -> np.ndarray:
        luma = (rgb_to_y((squares + 1) / 2).float() - Y_OFFSET) * (2 / span) - 1  # in [-1, 1]
        luma = F.interpolate(luma, size=extractor.input_size, mode="bilinear", antialias=True, align_corners=False)
        with torch.inference_mode():
            return torch.cat([extractor.features(chunk) for chunk in luma.split(256)]).double().numpy()

    real_features = features(real)
    return {name: {"protocol": f"sr_patches{patch}",
                   "lswd": laplacian_swd(real, fake, patches_per_image=16, repeats=2, seed=seed)["lswd"],
                   "fd_fmnist": fid_from_features(real_features, features(fake))}
            for name, fake in zip(names, fakes)}


def detailed_corner(hr: np.ndarray, crop: int) -> tuple[int, int]:
    """The top-left corner of the ``crop``-px square of ``hr`` with the most fine detail (mean absolute
    Laplacian of the luma, on a grid of half-crop steps): where upscalers differ most to the eye."""
    luma = rgb_to_y(torch.from_numpy(np.ascontiguousarray(hr)).permute(2, 0, 1))[0, 0]
    laplacian = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3).double()
    detail = F.conv2d(luma[None, None], laplacian).abs()[0, 0]
    h, w = hr.shape[:2]
    corners = [(top, left) for top in range(0, max(h - crop, 0) + 1, crop // 2)
               for left in range(0, max(w - crop, 0) + 1, crop // 2)]
    return max(corners, key=lambda c: float(detail[c[0] : c[0] + crop - 2, c[1] : c[1] + crop - 2].mean()))


def comparison_sheet(outputs: dict, hr_images: list, crop: int = 96, zoom: int = 2, gap: int = 4) -> np.ndarray:
    """One row per photo of ``crop``-px squares at its most detailed place (:func:`detailed_corner`), one
    column per upscaler in ``outputs`` order and the real photo last, each enlarged ``zoom``× by nearest
    neighbour so that pixels stay visible; white gaps. A uint8 ``[H, W, 3]`` image."""
    rows = []
    for k, hr in enumerate(hr_images):
        top, left = detailed_corner(hr, crop)
        squares = [images[k][top : top + crop, left : left + crop] for images in outputs.values()] + [
            hr[top : top + crop, left : left + crop]]
        squares = [np.pad(x.repeat(zoom, 0).repeat(zoom, 1), ((0, gap), (0, gap), (0, 0)), constant_values=255)
                   for x in squares]
        rows.append(np.concatenate(squares, axis=1))
    width = max(row.shape[1] for row in rows)
    return np.concatenate([np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255)
                           for row in rows])


def evaluate_upscalers(models: dict, hr_files, scale: int, tile: int = 256, overlap: int = 16,
                       perceptual: bool = True, sheet=None) -> dict:
    """The protocol on held-out photos: each HR photo cropped to a multiple of ``scale`` (top-left,
    "modcrop"), its LR by bicubic downsampling (PIL, antialiased, MATLAB's kernel), then bicubic
    upsampling (the baseline) and each model in ``models`` (name -> (callable on [1, C, h, w] in
    [-1, 1], channels), tiled by :func:`gauguin.upscale.upscale_image`) scored by :func:`sr_scores` and,
    when ``perceptual``, by :func:`patch_distances`; ``sheet``: a PNG path for :func:`comparison_sheet` of every
    photo (columns: bicubic, the models, the real photo). Returns {name: scores} with "bicubic" first, and the
    files."""
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

    report = {"files": [str(p) for p in hr_files], "scale": scale,
              "scores": {name: scores(v) for name, v in outputs.items()}}
    if perceptual:
        for name, distances in patch_distances(outputs, hr_images).items():
            report["scores"][name]["patches"] = distances
    if sheet is not None:
        from ..fileio import write_bytes_atomic

        buffer = io.BytesIO()
        Image.fromarray(comparison_sheet(outputs, hr_images)).save(buffer, format="PNG")
        write_bytes_atomic(Path(sheet), buffer.getvalue())
        report["sheet"] = {"file": str(sheet), "columns": list(outputs) + ["real"]}
    return report
