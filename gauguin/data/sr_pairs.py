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
from gauguin.data.decode_cache import DecodeCache
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


def _tensor(arrays: list[np.ndarray]) -> Tensor:
    stacked = torch.from_numpy(np.stack(arrays))
    stacked = stacked[:, None] if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
    return stacked.float().div_(127.5).sub_(1.0).contiguous()


def _as_batch(hr: list[np.ndarray], scale: int) -> dict[str, Tensor]:
    return {"input": _tensor([downsample(x, scale) for x in hr]), "image": _tensor(hr)}


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


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(_convert(image, "RGB"))
    except Exception as err:  # PIL raises several types for unreadable files
        raise BadDataError(f"{path} is not a readable image ({type(err).__name__}: {err}); remove it") from err


def _corner(fraction: float, room: int) -> int:
    """A crop offset in ``0..room`` (each equally likely) drawn by ``fraction`` in [0, 1)."""
    return min(int(fraction * (room + 1)), room)


class SRFolder(DatasetBase):
    """Photos under ``root`` (sub-folders too), RGB; each item a random ``crop_size`` HR crop of one
    photo (``crops_per_photo`` items per photo per epoch, each re-drawn at every visit; BasicSR's
    "dataset enlarge ratio"), with flips and quarter turns when augmenting, else the center crop. A
    photo smaller than the crop is an error naming it."""

    channels = input_channels = 3
    defaults = Preprocessing(crop_size=96, flip=True, augment=True)
    ignores = {"channels": "its photos are RGB, 3 channels"}

    def __init__(self, root: str | Path, split: str = "train", prep: Preprocessing = NO_PREPROCESSING, *,
                 scale: int = 4, crops_per_photo: int = 16) -> None:
        prep = prep.over(self.defaults)
        self.root, self.split = Path(root), split
        if not self.root.is_dir():
            raise BadDataError(f"SR folder {self.root} does not exist; pass a folder of photos (folder:PATH)")
        self.files = self._list(self.root)
        self.crop = prep.crop_size
        self.scale = check_scale(scale, self.crop)
        if crops_per_photo < 1:
            raise BadDataError(f"crops_per_photo={crops_per_photo} must be at least 1")
        self.crops_per_photo = crops_per_photo
        self.image_size = (self.crop, self.crop)
        self.augment, self.flip = bool(prep.augment), bool(prep.flip)
        self.photos = DecodeCache(_read_rgb)

    @staticmethod
    def _list(folder: Path) -> list[Path]:
        files = list_files(folder, IMAGE_EXTENSIONS, recursive=True)
        if not files:
            raise BadDataError(f"{folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return files

    def __len__(self) -> int:
        return len(self.files) * self.crops_per_photo

    @property
    def source_files(self) -> list[Path]:
        return list(self.files)

    @staticmethod
    def _too_small(path: Path, size: tuple[int, int], crop: str) -> BadDataError:
        return BadDataError(f"{path} is {size[1]}x{size[0]}, smaller than the {crop} crop; lower image_size "
                            "or remove the photo")

    def _item(self, index: int, corner: tuple[float, float] | None, view: tuple[bool, int]) -> np.ndarray:
        path = self.files[index % len(self.files)]
        pixels = self.photos(path)
        h, w = pixels.shape[:2]
        if min(h, w) < self.crop:
            raise self._too_small(path, (h, w), f"{self.crop} px HR")
        fy, fx = corner if corner is not None else (0.5, 0.5)
        top, left = _corner(fy, h - self.crop), _corner(fx, w - self.crop)
        return _view(pixels[top : top + self.crop, left : left + self.crop], *view)

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        indices = as_indices(indices, len(self))
        corners = torch.rand(len(indices), 2).tolist() if self.augment else [None] * len(indices)
        views = augment_views(len(indices), self.augment, self.flip)
        return self._batch(decode_in_threads(self._item, list(zip(indices, corners, views))))

    def _batch(self, crops: list[np.ndarray]) -> dict[str, Tensor]:
        return _as_batch(crops, self.scale)


class SRPairFolder(SRFolder):
    """Given LR/HR pairs (a camera's own low-resolution shots, another degradation than bicubic):
    ``root/hr/`` and ``root/lr/`` hold photos with the same stems, each HR photo ``scale`` times its
    LR one (a remainder below ``scale`` pixels is cropped off, as the SR benchmarks' "modcrop").
    Items are aligned crops: an LR crop of ``crop_size / scale`` and the HR crop over it."""

    def __init__(self, root: str | Path, split: str = "train", prep: Preprocessing = NO_PREPROCESSING, *,
                 scale: int = 4, crops_per_photo: int = 16) -> None:
        hr = Path(root) / "hr"
        if not hr.is_dir() or not (Path(root) / "lr").is_dir():
            raise BadDataError(f"{root} needs two sub-folders, hr/ and lr/, holding the pairs under the same "
                               "names; or use folder:PATH to make the LR images from HR photos by bicubic")
        super().__init__(hr, split, prep, scale=scale, crops_per_photo=crops_per_photo)
        self.root = Path(root)
        low = {path.stem: path for path in self._list(self.root / "lr")}
        missing = [path.name for path in self.files if path.stem not in low]
        if missing:
            raise BadDataError(f"{self.root / 'lr'} has no LR image for {', '.join(missing[:3])}"
                               f"{' ...' if len(missing) > 3 else ''}; give every HR photo its LR one (same name)")
        self.low = [low[path.stem] for path in self.files]

    def _item(self, index: int, corner: tuple[float, float] | None, view: tuple[bool, int]):
        index %= len(self.files)
        hr, lr = self.photos(self.files[index]), self.photos(self.low[index])
        (h, w), s = lr.shape[:2], self.scale
        if hr.shape[0] // s != h or hr.shape[1] // s != w:
            raise BadDataError(f"{self.files[index]} is {hr.shape[1]}x{hr.shape[0]}, not {s}x its LR image "
                               f"{self.low[index]} ({w}x{h}); give pairs at scale={s}")
        small = self.crop // s
        if min(h, w) < small:
            raise self._too_small(self.low[index], (h, w), f"{small} px LR")
        fy, fx = corner if corner is not None else (0.5, 0.5)
        top, left = _corner(fy, h - small), _corner(fx, w - small)
        lr = lr[top : top + small, left : left + small]
        hr = hr[top * s : (top + small) * s, left * s : (left + small) * s]
        return _view(lr, *view), _view(hr, *view)

    def _batch(self, crops: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Tensor]:
        return {"input": _tensor([lr for lr, _ in crops]), "image": _tensor([hr for _, hr in crops])}
