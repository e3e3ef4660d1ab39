"""Unpaired image-to-image data (CycleGAN): images of two domains A and B, not aligned.

- :class:`FashionMNISTDomains`, the embedded default: the real Fashion-MNIST images of one class
  (A, e.g. "Sneaker") and of another (B, e.g. "Ankle boot");
- :class:`UnpairedFolder`, CycleGAN's layout ``root/trainA/``, ``root/trainB/`` (``testA/``,
  ``testB/``);
- specs like ``"folder:PATH"`` are read by :func:`gauguin.data.build` (``task="domains"``).

``get_batch(indices)`` gives ``{"a": [B, C, H, W], "b": [B, C, H, W], "image": "b" again}`` in
[-1, 1]. ``len()`` is ``max(len_a, len_b)``; index ``i`` is A's image ``i % len_a`` and the B
images are drawn at random (CycleGAN's non-serial batches). The B draws, then the crop and flip
numbers (A's samples, then B's), come from torch's global RNG in the calling thread before
anything is decoded, so a run restored with its RNG state sees exactly the same batches.
:meth:`UnpairedDataset.get_domain` serves one domain in order, without randomness (evaluation).
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gauguin.data.batching import as_indices, decode_in_threads, draw_preprocessing, to_tensor
from gauguin.data.errors import BadDataError
from gauguin.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNISTBased
from gauguin.data.folder import IMAGE_EXTENSIONS
from gauguin.data.label_files import read_rgb_image
from gauguin.data.pairing import list_files, require_folder
from gauguin.data.preprocessing import NO_PREPROCESSING, PHOTO_DEFAULTS, Preprocessing
from gauguin.data.protocol import DatasetBase
from gauguin.data.resizing import Resizer, apply_to_image

DOMAIN_KEYS = ("a", "b")


class UnpairedDataset(DatasetBase):
    """The unpaired contract; subclasses set ``len_a``, ``len_b``, ``domains``, ``image_size``,
    ``channels``, ``source_files`` and implement ``_draw`` and ``_load``."""

    len_a: int
    len_b: int
    domains: tuple[str, str]
    image_size: tuple[int, int]
    channels: int

    def __len__(self) -> int:
        return max(self.len_a, self.len_b)

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """``{"a": A[i % len_a] for each index, "b": random B images, "image": the "b" tensor}``.

        Drawn first, from torch's global RNG in this thread: ``torch.randint(len_b, (n,))`` (the B
        images), then the preprocessing numbers of the A samples and of the B samples.
        """
        indices = as_indices(indices, len(self))
        count = len(indices)
        positions_b = torch.randint(self.len_b, (count,)).tolist()
        draws_a, draws_b = self._draw(count), self._draw(count)
        a = self._load(0, [index % self.len_a for index in indices], draws_a)
        b = self._load(1, positions_b, draws_b)
        return {"a": a, "b": b, "image": b}

    def get_domain(self, domain: str | int, indices: Tensor | Sequence[int]) -> Tensor:
        """Images ``[B, C, H, W]`` of one domain ("a"/"b", 0/1, or its name) at ``indices`` of
        that domain, center-cropped and unflipped; the RNG is not touched."""
        which = self._domain_index(domain)
        length = (self.len_a, self.len_b)[which]
        positions = as_indices(indices, length)
        return self._load(which, positions, [None] * len(positions))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[0] for key, value in self.get_batch([index]).items()}

    def _domain_index(self, domain: str | int) -> int:
        if domain in (0, 1):
            return int(domain)
        for index, names in enumerate(zip(DOMAIN_KEYS, self.domains)):
            if str(domain).lower() in (name.lower() for name in names):
                return index
        raise ValueError(
            f"unknown domain {domain!r}; this dataset has 'a' ({self.domains[0]}) and 'b' ({self.domains[1]})"
        )

    def _draw(self, count: int) -> list[Any]:
        """Per-sample preprocessing numbers for ``count`` samples (from torch's global RNG)."""
        raise NotImplementedError

    def _load(self, domain: int, positions: list[int], draws: list[Any]) -> Tensor:
        """Images ``[n, C, H, W]`` in [-1, 1] of ``domain`` (0: A, 1: B) at ``positions``."""
        raise NotImplementedError


# --------------------------------------------------------------------------- Fashion-MNIST
class FashionMNISTDomains(UnpairedDataset, FashionMNISTBased):
    """Real Fashion-MNIST images of class ``domain_a`` (A) and class ``domain_b`` (B).

    Classes are given by name (as in ``FASHION_MNIST_CLASSES``, case-insensitive) or index.
    Images are resized to ``prep.crop_size`` (default 32; bilinear, antialiased) in
    ``prep.channels`` (default 1); random horizontal flips only when ``prep.flip``.
    ``indices_a`` / ``indices_b`` are the domains' positions in ``images``.
    """

    defaults = Preprocessing(crop_size=32, channels=1, flip=False, augment=True)

    def __init__(
        self,
        split: str = "train",
        prep: Preprocessing = NO_PREPROCESSING,
        *,
        domain_a: str | int = "Sneaker",
        domain_b: str | int = "Ankle boot",
        root: str | Path | None = None,
    ) -> None:
        class_a, class_b = fashion_class_index(domain_a), fashion_class_index(domain_b)
        if class_a == class_b:
            raise ValueError(
                f"domain_a and domain_b are both {FASHION_MNIST_CLASSES[class_a]!r}; CycleGAN "
                "translates between two different classes"
            )
        self._read(split, prep, root)
        self.indices_a = torch.nonzero(self.images.labels == class_a).flatten()
        self.indices_b = torch.nonzero(self.images.labels == class_b).flatten()
        self.class_indices = (class_a, class_b)
        self.domains = (FASHION_MNIST_CLASSES[class_a], FASHION_MNIST_CLASSES[class_b])
        self.len_a, self.len_b = len(self.indices_a), len(self.indices_b)
        self.channels = self.images.channels

    def _draw(self, count: int) -> list[Any]:
        if not self.flip:
            return [False] * count
        return (torch.rand(count) < 0.5).tolist()

    def _load(self, domain: int, positions: list[int], draws: list[Any]) -> Tensor:
        where = (self.indices_a, self.indices_b)[domain][torch.tensor(positions, dtype=torch.long)]
        images, _ = self.images.get_batch(where)
        flips = torch.tensor([bool(d) for d in draws], dtype=torch.bool)
        if flips.any():
            images[flips] = images[flips].flip(-1)
        return images

    def __repr__(self) -> str:
        return (
            f"FashionMNISTDomains(split={self.split!r}, a={self.domains[0]!r} ({self.len_a}), "
            f"b={self.domains[1]!r} ({self.len_b}), image_size={self.image_size[0]})"
        )


def fashion_class_index(name_or_index: str | int) -> int:
    """A Fashion-MNIST class by index or (case-insensitive) name; unknown -> ValueError."""
    count = len(FASHION_MNIST_CLASSES)
    if isinstance(name_or_index, int) or str(name_or_index).strip().lstrip("-").isdigit():
        index = int(name_or_index)
        if not 0 <= index < count:
            raise ValueError(f"Fashion-MNIST class {index} is out of range 0..{count - 1}")
        return index
    lowered = [name.lower() for name in FASHION_MNIST_CLASSES]
    key = str(name_or_index).strip().lower()
    if key in lowered:
        return lowered.index(key)
    close = difflib.get_close_matches(key, lowered, n=1, cutoff=0.5)
    hint = f"; did you mean {FASHION_MNIST_CLASSES[lowered.index(close[0])]!r}?" if close else ""
    raise ValueError(
        f"unknown Fashion-MNIST class {name_or_index!r}; the classes are "
        f"{', '.join(map(repr, FASHION_MNIST_CLASSES))} (or their indices 0..{count - 1}){hint}"
    )


# ------------------------------------------------------------------------------------ folders
class UnpairedFolder(UnpairedDataset):
    """CycleGAN's layout: ``root/<split>A/*`` and ``root/<split>B/*`` (``trainA``, ``testB``, ...).

    Each image is preprocessed on its own by ``prep`` (default CycleGAN's: resize to 286, random
    256 crop, random flip), so the files may have any sizes (all one size under ``mode='none'``).
    RGB: ``channels = 3``. The ``domains`` are named after a root like ``horse2zebra`` ("horse",
    "zebra"), else "A", "B".
    """

    channels = 3
    defaults = PHOTO_DEFAULTS
    ignores = {"channels": "its images are RGB, 3 channels"}

    def __init__(self, root: str | Path, split: str = "train", prep: Preprocessing = NO_PREPROCESSING) -> None:
        self.prep = prep.over(self.defaults)
        self.resizer = Resizer.of(self.prep)
        self.augment = bool(self.prep.augment)
        self.split = split
        self.root = require_folder(
            Path(root).expanduser(), "unpaired image folder",
            f"Pass a folder holding {split}A/ and {split}B/ (CycleGAN's layout).",
        )
        self.files = (self._domain_files("A"), self._domain_files("B"))
        self.len_a, self.len_b = len(self.files[0]), len(self.files[1])
        name_a, two, name_b = self.root.name.partition("2")
        self.domains = (name_a, name_b) if two and name_a and name_b else ("A", "B")
        self.image_size = self.resizer.output_size(self.files[0][0])

    def _domain_files(self, key: str) -> list[Path]:
        folder = self.root / f"{self.split}{key}"
        if not folder.is_dir():
            raise BadDataError(
                f"domain folder {folder} does not exist; CycleGAN's layout needs {self.split}A/ and "
                f"{self.split}B/ in {self.root}. Fix: create it and put the domain's images there."
            )
        files = list_files(folder, IMAGE_EXTENSIONS)
        if not files:
            raise BadDataError(
                f"no images in domain folder {folder}; it is empty. Fix: put the domain's images "
                f"there ({', '.join(IMAGE_EXTENSIONS)})."
            )
        return files

    @property
    def source_files(self) -> list[Path]:
        """Every file this dataset reads (A's, then B's)."""
        return [*self.files[0], *self.files[1]]

    def _draw(self, count: int) -> list[Any]:
        return draw_preprocessing(count, self.augment)

    def _load(self, domain: int, positions: list[int], draws: list[Any]) -> Tensor:
        files = self.files[domain]
        return to_tensor(decode_in_threads(self._decode, [(files[p], d) for p, d in zip(positions, draws)]))

    def _decode(self, path: Path, draw: tuple[float, float, float] | None) -> np.ndarray:
        image = read_rgb_image(path)
        self.resizer.check_size(self.image_size, image.size, f"image {path}")
        return apply_to_image(image, self.resizer.plan(image.width, image.height, draw))

    def __repr__(self) -> str:
        return (
            f"UnpairedFolder(root='{self.root}', split={self.split!r}, len_a={self.len_a}, "
            f"len_b={self.len_b}, image_size={self.image_size}, preprocess={self.resizer.mode!r}, "
            f"augment={self.augment})"
        )
