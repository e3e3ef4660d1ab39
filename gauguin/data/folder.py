"""A folder of images, flat or with one sub-folder per class, served as square tensors in [-1, 1]."""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor
from torch.utils.data import Dataset

from gauguin.data.batching import decode_in_threads
from gauguin.data.decode_cache import DecodeCache
from gauguin.data.errors import BadDataError, DatasetNotFoundError
from gauguin.data.preprocessing import Preprocessing, required
from gauguin.data.protocol import DatasetBase
from gauguin.data.subsets import labelled_subset

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
_HIGH_BIT_DEPTH_GREY = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grey, e.g. from PNG
_SHOWN_IN_MESSAGES = 5  # how many file names an error or warning lists


class ImageFolder(DatasetBase, Dataset):
    """Images under ``root``: ``root/<class>/**/*.png`` (label = sorted class index) or flat ``root/*.png``.

    Every file is checked with PIL when the dataset is built; unreadable ones are skipped with a
    warning (listed in ``skipped``), and more than ``max_bad_fraction`` of them is an error.
    Items are resized so the short side is ``prep.crop_size`` (which must be set; bicubic) and
    center-cropped to a square, in ``prep.channels`` (default 3), and kept in memory once decoded (up to
    512 MB of pixels). ``labels_per_class``: only that many
    images of each class sub-folder, drawn by ``subset_seed`` (:func:`~gauguin.data.subsets.balanced_subset`).
    """

    defaults = Preprocessing(channels=3)
    ignores = {"*": "it resizes and center-crops every image to a crop_size square"}

    def __init__(self, root: str | Path, prep: Preprocessing, max_bad_fraction: float = 0.05, *,
                 labels_per_class: int = 0, subset_seed: int = 0) -> None:
        prep = prep.over(self.defaults)
        image_size, channels = required(prep, "crop_size", "ImageFolder"), prep.channels
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be in [0, 1], got {max_bad_fraction}")
        root = Path(root).expanduser()
        if not root.exists():
            raise DatasetNotFoundError(
                f"image folder {root} does not exist; set data_root=PATH to a folder of images"
            )
        if not root.is_dir():
            raise BadDataError(
                f"{root} is not a folder; data_root must be a folder of images or of class sub-folders"
            )

        classes, files, labels = _scan(root)
        bad = _unreadable(files)
        if bad:
            bad_paths = [path for path, _ in bad]
            if len(bad) > max_bad_fraction * len(files) or len(bad) == len(files):
                listing = "\n".join(f"  {path}: {reason}" for path, reason in bad[:_SHOWN_IN_MESSAGES])
                if len(bad) > _SHOWN_IN_MESSAGES:
                    listing += f"\n  ... and {len(bad) - _SHOWN_IN_MESSAGES} more"
                raise BadDataError(
                    f"{len(bad)} of {len(files)} images in {root} cannot be read, too many to skip "
                    f"(at most {max_bad_fraction * 100:g}% of them are):\n{listing}\n"
                    "Fix: delete or re-export these files."
                )
            warnings.warn(
                f"skipping {len(bad)} unreadable image(s) of {len(files)} in {root}: "
                f"{_short_list(bad_paths)}",
                stacklevel=2,
            )
            bad_set = set(bad_paths)
            kept = [(path, label) for path, label in zip(files, labels) if path not in bad_set]
            files, labels = [path for path, _ in kept], [label for _, label in kept]

        self.labels = torch.tensor(labels, dtype=torch.long)
        self.subset = labelled_subset(self.labels, labels_per_class, subset_seed, classes, f"image folder {root}")
        if self.subset is not None:
            files, self.labels = [files[i] for i in self.subset.tolist()], self.labels[self.subset]
        self.root = root
        self.image_size = (image_size, image_size)
        self.channels = channels
        self.classes = classes
        self.num_classes = len(classes)
        self.files = files
        self.skipped = [path for path, _ in bad]
        self.decoded = DecodeCache(self._decode)  # a small folder is decoded once, not every epoch

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        """Image ``[channels, image_size, image_size]`` as float32 in [-1, 1], and its label."""
        images, labels = self.get_batch(torch.tensor([index]))
        return images[0], int(labels[0])

    def _decode(self, index: int) -> np.ndarray:
        """The file's pixels, resized and cropped, uint8 ``[H, W]`` or ``[H, W, 3]``."""
        path = self.files[index]
        try:
            with Image.open(path) as image:
                image = _square(_convert(image, "L" if self.channels == 1 else "RGB"), self.image_size[0])
        except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
            raise BadDataError(
                f"cannot decode {path} ({err}); it was readable when the dataset was built. "
                "Fix or delete the file and restart."
            ) from err
        return np.array(image, dtype=np.uint8)

    @property
    def source_files(self) -> list[Path]:
        """The image files this dataset reads (for content fingerprints)."""
        return list(self.files)

    def get_batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Images ``[B, channels, image_size, image_size]`` in [-1, 1] and int64 labels ``[B]``."""
        indices = torch.as_tensor(indices, dtype=torch.long, device="cpu")
        missing = [(i,) for i in dict.fromkeys(indices.tolist()) if i not in self.decoded.items]
        if missing:
            decode_in_threads(self.decoded, missing)  # PIL frees the GIL; the cache keeps them
        pixels = torch.from_numpy(np.stack([self.decoded(i) for i in indices.tolist()]))
        pixels = pixels.unsqueeze(1) if pixels.ndim == 3 else pixels.permute(0, 3, 1, 2)
        return pixels.float().div_(127.5).sub_(1.0).contiguous(), self.labels[indices]

    def __repr__(self) -> str:
        return (
            f"ImageFolder(root='{self.root}', n={len(self)}, classes={len(self.classes)}, "
            f"image_size={self.image_size[0]}, channels={self.channels})"
        )


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")


def _scan(root: Path) -> tuple[tuple[str, ...], list[Path], list[int]]:
    """Classes, files and labels in sorted order; class sub-folders win over top-level images."""
    top_level = sorted(path for path in root.iterdir() if _is_image(path))
    class_files = {}
    for folder in sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")):
        images = sorted(
            path
            for path in folder.rglob("*")
            if _is_image(path) and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        )
        if images:
            class_files[folder.name] = images

    if class_files:
        if top_level:
            warnings.warn(
                f"{root} has both class sub-folders and {len(top_level)} top-level image(s); "
                f"using the sub-folders and ignoring {_short_list(top_level)}",
                stacklevel=3,
            )
        classes = tuple(class_files)
        files = [path for images in class_files.values() for path in images]
        labels = [label for label, images in enumerate(class_files.values()) for _ in images]
        return classes, files, labels
    if top_level:
        return ("all",), top_level, [0] * len(top_level)
    raise BadDataError(
        f"no images found in {root} or its sub-folders; accepted extensions are "
        f"{', '.join(IMAGE_EXTENSIONS)} (any case). Set data_root=PATH to a folder of images."
    )


def _unreadable(files: list[Path]) -> list[tuple[Path, str]]:
    """The files PIL cannot open or verify, with the reason, in the order of ``files``."""
    with ThreadPoolExecutor() as pool:
        reasons = list(pool.map(_check_image, files))
    return [(path, reason) for path, reason in zip(files, reasons) if reason is not None]


def _check_image(path: Path) -> str | None:
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        return f"{type(err).__name__}: {err}"
    return None


def _convert(image: Image.Image, mode: str) -> Image.Image:
    """``image`` upright in ``mode`` ("L" or "RGB"); 16-bit grey is scaled, transparency goes on white."""
    image = ImageOps.exif_transpose(image)
    if image.mode in _HIGH_BIT_DEPTH_GREY:
        grey16 = np.asarray(image).astype(np.float32)
        image = Image.fromarray(np.clip(np.rint(grey16 / 257.0), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return image.convert(mode)


def _square(image: Image.Image, size: int) -> Image.Image:
    """Resize so the short side is ``size`` (bicubic), cropping the long side to the center."""
    width, height = image.size
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return image.resize((size, size), Image.Resampling.BICUBIC, box=(left, top, left + side, top + side))


def _short_list(paths: list[Path]) -> str:
    names = ", ".join(str(path) for path in paths[:_SHOWN_IN_MESSAGES])
    return names + (f" and {len(paths) - _SHOWN_IN_MESSAGES} more" if len(paths) > _SHOWN_IN_MESSAGES else "")
