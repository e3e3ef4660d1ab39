"""Low-/high-resolution pairs for super-resolution, made on the fly (Ledig et al. 2017 §3.2; Wang
et al. 2018): a high-resolution (HR) crop of ``crop_size`` pixels, with random flips and 90°
rotations when augmenting (a center crop, untouched, when not), and its low-resolution (LR) input
by bicubic downsampling by ``scale`` with antialiasing (PIL's bicubic, a = -0.5, the kernel of
MATLAB's ``imresize`` that the SR literature's benchmarks use).

Batches: ``{"input": LR [B, C, crop/scale, crop/scale], "image": HR [B, C, crop, crop]}`` in [-1, 1].
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gauguin.data.batching import as_indices, decode_in_threads
from gauguin.data.errors import BadDataError
from gauguin.data.fashion_mnist import FashionMNISTBased
from gauguin.data.folder import IMAGE_EXTENSIONS, _convert
from gauguin.data.pairing import list_files
from gauguin.data.preprocessing import NO_PREPROCESSING, Preprocessing
from gauguin.data.protocol import DatasetBase

SCALES = (2, 4)


def check_scale(scale: int, crop: int) -> int:
    if scale not in SCALES:
        raise BadDataError(f"scale={scale}: gauguin's SR models upscale by {' or '.join(map(str, SCALES))}")
    if crop % scale:
        raise BadDataError(f"the HR crop of {crop} px does not divide by scale={scale}; set image_size to a multiple")
    return scale


def downsample(hr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic, antialiased downsampling of a uint8 ``[h, w]`` or ``[h, w, 3]`` array by ``scale``."""
    image = Image.fromarray(hr)
    return np.asarray(image.resize((image.width // scale, image.height // scale), Image.Resampling.BICUBIC))


def augment_views(n: int, augment: bool, flip: bool) -> list[tuple[bool, int]]:
    """Per sample (horizontal flip, quarter turns), drawn from the global RNG (resumable)."""
    if not augment:
        return [(False, 0)] * n
    flips = (torch.rand(n) < 0.5).tolist() if flip else [False] * n
    turns = torch.randint(0, 4, (n,)).tolist()
    return list(zip(flips, turns))


def _view(pixels: np.ndarray, flip: bool, turns: int) -> np.ndarray:
    pixels = pixels[:, ::-1] if flip else pixels
    return np.ascontiguousarray(np.rot90(pixels, turns))


def _as_batch(hr: list[np.ndarray], scale: int) -> dict[str, Tensor]:
    lr = [downsample(x, scale) for x in hr]

    def tensor(arrays: list[np.ndarray]) -> Tensor:
        stacked = torch.from_numpy(np.stack(arrays))
        stacked = stacked[:, None] if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
        return stacked.float().div_(127.5).sub_(1.0).contiguous()

    return {"input": tensor(lr), "image": tensor(hr)}


class FashionMNISTSR(FashionMNISTBased):
    """The embedded default: real Fashion-MNIST garments (grey, 28 px) as HR, their bicubic ×``scale``
    reductions (14 px at ×2) as LR; flips when augmenting (rotations would turn garments sideways)."""

    defaults = Preprocessing(crop_size=28, channels=1, flip=True, augment=True)

    def __init__(self, split: str = "train", prep: Preprocessing = NO_PREPROCESSING, *, scale: int = 2,
                 root: str | Path | None = None) -> None:
        prep = self._read(split, prep, root, grey=True)
        self.scale = check_scale(scale, self.image_size[0])
        self.channels = self.input_channels = 1

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        indices = as_indices(indices, len(self))
        flips = (torch.rand(len(indices)) < 0.5).tolist() if self.flip else [False] * len(indices)
        images, _ = self.images.get_batch(torch.tensor(indices))
        hr = ((images[:, 0].numpy() + 1) * 127.5 + 0.5).clip(0, 255).astype(np.uint8)
        return _as_batch([_view(x, f, 0) for x, f in zip(hr, flips)], self.scale)


class SRFolder(DatasetBase):
    """Photos under ``root`` (sub-folders too), RGB; each item a random ``crop_size`` HR crop of one
    photo (re-drawn at every visit), with flips and quarter turns when augmenting, else the center
    crop. A photo smaller than the crop is an error naming it."""

    channels = input_channels = 3
    defaults = Preprocessing(crop_size=96, flip=True, augment=True)
    ignores = {"channels": "its photos are RGB, 3 channels"}

    def __init__(self, root: str | Path, split: str = "train", prep: Preprocessing = NO_PREPROCESSING, *,
                 scale: int = 4) -> None:
        prep = prep.over(self.defaults)
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise BadDataError(f"SR folder {self.root} does not exist; pass a folder of photos (folder:PATH)")
        self.files = list_files(self.root, IMAGE_EXTENSIONS, recursive=True)
        if not self.files:
            raise BadDataError(f"{self.root} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.crop = prep.crop_size
        self.scale = check_scale(scale, self.crop)
        self.image_size = (self.crop, self.crop)
        self.augment, self.flip = bool(prep.augment), bool(prep.flip)

    def __len__(self) -> int:
        return len(self.files)

    @property
    def source_files(self) -> list[Path]:
        return list(self.files)

    def _crop(self, path: Path, corner: tuple[float, float] | None, view: tuple[bool, int]) -> np.ndarray:
        try:
            with Image.open(path) as image:
                pixels = np.asarray(_convert(image, "RGB"))
        except Exception as err:  # PIL raises several types for unreadable files
            raise BadDataError(f"{path} is not a readable image ({type(err).__name__}: {err}); remove it") from err
        h, w = pixels.shape[:2]
        if min(h, w) < self.crop:
            raise BadDataError(f"{path} is {w}x{h}, smaller than the {self.crop} px HR crop; lower image_size "
                               "or remove the photo")
        fy, fx = corner if corner is not None else (0.5, 0.5)
        top, left = int(fy * (h - self.crop)), int(fx * (w - self.crop))
        return _view(pixels[top : top + self.crop, left : left + self.crop], *view)

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        indices = as_indices(indices, len(self))
        corners = torch.rand(len(indices), 2).tolist() if self.augment else [None] * len(indices)
        views = augment_views(len(indices), self.augment, self.flip)
        jobs = [(self.files[i], c, v) for i, c, v in zip(indices, corners, views)]
        return _as_batch(decode_in_threads(self._crop, jobs), self.scale)
