"""Image grids and PNG files from batches in [-1, 1]."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .fileio import named_os_error


def make_grid(images: torch.Tensor, columns: int, padding: int = 2) -> torch.Tensor:
    """Tile ``[N, C, H, W]`` images into one ``[C, rows*(H+p)+p, columns*(W+p)+p]`` image."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    grid = images.new_full((c, rows * (h + padding) + padding, columns * (w + padding) + padding), -1.0)
    for i in range(n):
        top, left = padding + (i // columns) * (h + padding), padding + (i % columns) * (w + padding)
        grid[:, top : top + h, left : left + w] = images[i]
    return grid


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[C, H, W]`` in [-1, 1] → ``[H, W]`` or ``[H, W, 3]`` uint8."""
    array = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    array = array.permute(1, 2, 0).numpy()
    return array[:, :, 0] if array.shape[2] == 1 else array


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write a ``[C, H, W]`` image in [-1, 1] as PNG, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with named_os_error(path):
            Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
