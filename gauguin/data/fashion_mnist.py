"""Fashion-MNIST (Xiao et al., 2017): find, read and serve its 70,000 grey 28x28 images.

The four IDX files are looked for in the Debian package ``dataset-fashion-mnist``, an
environment variable and a per-user cache, and are downloaded into the cache as a last resort.
"""
from __future__ import annotations

import gzip
import math
import os
import shutil
import tempfile
import urllib.request
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from gauguin.data.errors import BadDataError, DatasetNotFoundError
from gauguin.data.preprocessing import NO_PREPROCESSING, Preprocessing
from gauguin.data.protocol import FIXED_28_PX, DatasetBase
from gauguin.data.subsets import labelled_subset
from gauguin.fileio import user_cache_dir

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

ENV_VAR = "GAUGUIN_FASHION_MNIST"
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian package dataset-fashion-mnist
DOWNLOAD_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DOWNLOAD_TIMEOUT_S = 30

# split -> (images file, labels file, number of examples); names without ".gz"
_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
_FILE_STEMS = tuple(stem for images, labels, _ in _SPLITS.values() for stem in (images, labels))
_IMAGE_SIDE = 28
_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UNSIGNED_BYTE = 0x08


# ---------------------------------------------------------------------------------- IDX files
def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzipped or raw, into a uint8 array of its shape."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"IDX file {path} does not exist") from None
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise _corrupt(path, f"its gzip data is truncated or damaged ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UNSIGNED_BYTE or data[3] == 0:
        raise _corrupt(
            path, f"magic number {data[:4].hex()} is not that of an unsigned-byte IDX file (000008nn)"
        )
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise _corrupt(path, f"its header is cut short ({len(data)} of {header_len} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected_len = header_len + math.prod(shape)
    if len(data) != expected_len:
        raise _corrupt(
            path, f"it holds {len(data)} bytes but its header (shape {shape}) needs {expected_len}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(shape).copy()


def _corrupt(path: Path, reason: str) -> BadDataError:
    return BadDataError(
        f"{path} is not a valid IDX file: {reason}. "
        "Delete it and download it again (or reinstall the package that ships it)."
    )


# ------------------------------------------------------------------------------- finding files
def cache_dir() -> Path:
    """The per-user download cache: ``$XDG_CACHE_HOME/gauguin/fashion-mnist`` (default ``~/.cache``)."""
    return user_cache_dir("fashion-mnist")


def find_fashion_mnist(root: str | Path | None = None, download: bool = True) -> Path:
    """Return the folder holding the four Fashion-MNIST IDX files (``.gz`` or un-gzipped).

    With ``root``, only that folder is accepted. Otherwise the search order is ``$GAUGUIN_FASHION_MNIST``,
    ``/usr/share/datasets/fashion-mnist``, then the cache (see :func:`cache_dir`); if none holds
    the files and ``download`` is true, they are downloaded into the cache.
    """
    if root is not None:
        root = Path(root).expanduser()
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"Fashion-MNIST folder {root} does not exist. Pass data_root=PATH of the folder "
                "holding the four IDX files, or leave data_root empty to search the default places."
            )
        missing = _missing_files(root)
        if missing:
            raise DatasetNotFoundError(
                f"Fashion-MNIST folder {root} lacks {', '.join(missing)}. Put the four IDX files "
                "there, or leave data_root empty to search the default places."
            )
        return root

    searched = _search_dirs()
    for folder in searched:
        if not _missing_files(folder):
            return folder

    cache = cache_dir()
    if download:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            for name in _missing_files(cache):
                _download(DOWNLOAD_URL + name, cache / name)
            return cache
        except (OSError, BadDataError) as err:
            reason = f"Downloading from {DOWNLOAD_URL} failed: {err}"
    else:
        reason = "Downloading is off (the download argument is false)."
    places = "\n".join(f"  - {folder}" for folder in searched)
    if ENV_VAR not in os.environ:
        places += f"\n  (${ENV_VAR} is not set)"
    raise DatasetNotFoundError(
        f"Fashion-MNIST not found; looked for {', '.join(s + '.gz' for s in _FILE_STEMS)} in:\n"
        f"{places}\n{reason}\n"
        "Fix: `sudo apt-get install dataset-fashion-mnist`, or put the four IDX .gz files in "
        f"{cache}, or pass data_root=PATH of a folder holding them."
    )


def _search_dirs() -> list[Path]:
    dirs = [SYSTEM_DIR, cache_dir()]
    if os.environ.get(ENV_VAR):
        dirs.insert(0, Path(os.environ[ENV_VAR]).expanduser())
    return dirs


def _idx_path(folder: Path, stem: str) -> Path:
    """The gzipped file if present, else the raw one."""
    gzipped = folder / f"{stem}.gz"
    return gzipped if gzipped.is_file() else folder / stem


def _missing_files(folder: Path) -> list[str]:
    return [f"{stem}.gz" for stem in _FILE_STEMS if not _idx_path(folder, stem).is_file()]


def _download(url: str, dest: Path) -> None:
    """Fetch ``url`` into ``dest`` atomically, keeping it only if it parses as an IDX file."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            shutil.copyfileobj(response, out)
        try:
            read_idx(tmp)
        except BadDataError as err:
            raise BadDataError(f"{url} did not send a valid IDX file") from err
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------ dataset
class FashionMNIST(DatasetBase, Dataset):
    """Fashion-MNIST held in memory as uint8; batches come out as float32 in [-1, 1].

    ``split`` is "train" (60,000), "test" (10,000) or "all" (both, 70,000). Images are resized to
    ``prep.crop_size`` (default 28; bilinear, antialiased) and repeated to 3 channels if
    ``prep.channels=3`` (default 1). ``labels_per_class``: only that many images of each class of the
    train split, drawn by ``subset_seed`` (:func:`~gauguin.data.subsets.labelled_subset`; other splits whole).
    """

    classes = FASHION_MNIST_CLASSES
    num_classes = len(FASHION_MNIST_CLASSES)
    defaults = Preprocessing(crop_size=_IMAGE_SIDE, channels=1)
    ignores = FIXED_28_PX

    def __init__(
        self, split: str = "train", prep: Preprocessing = NO_PREPROCESSING, root: str | Path | None = None, *,
        labels_per_class: int = 0, subset_seed: int = 0,
    ) -> None:
        if split not in ("train", "test", "all"):
            raise ValueError(f"Fashion-MNIST split {split!r} is not one of 'train', 'test', 'all'")
        prep = prep.over(self.defaults)
        folder = find_fashion_mnist(root)
        parts = ("train", "test") if split == "all" else (split,)
        images, labels = zip(*(_load_split(folder, part) for part in parts))
        self.images = torch.cat(images).unsqueeze(1)  # uint8 [N, 1, 28, 28]
        self.labels = torch.cat(labels)  # int64 [N]
        self.labels_per_class = labels_per_class if split == "train" else 0  # held-out splits stay whole
        self.subset = labelled_subset(self.labels, self.labels_per_class, subset_seed if split == "train" else 0,
                                      self.classes, "the Fashion-MNIST train split")
        if self.subset is not None:  # the few-labels setting: N images of each class
            self.images, self.labels = self.images[self.subset], self.labels[self.subset]
        self.split = split
        self.root = folder
        self.image_size = (prep.crop_size, prep.crop_size)
        self.channels = prep.channels

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def source_files(self) -> list[Path]:
        """The IDX files this split was read from (for content fingerprints)."""
        parts = ("train", "test") if self.split == "all" else (self.split,)
        return [_idx_path(self.root, stem) for part in parts for stem in _SPLITS[part][:2]]

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        images, labels = self.get_batch(torch.tensor([index]))
        return images[0], int(labels[0])

    def get_batch(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        """Images ``[B, channels, image_size, image_size]`` in [-1, 1] and int64 labels ``[B]``."""
        indices = torch.as_tensor(indices, dtype=torch.long, device="cpu")
        images = self.images[indices].float().div_(127.5).sub_(1.0)
        if self.image_size != (_IMAGE_SIDE, _IMAGE_SIDE):
            images = F.interpolate(images, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
            images.clamp_(-1.0, 1.0)
        if self.channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        return images, self.labels[indices]

    def __repr__(self) -> str:
        return (
            f"FashionMNIST(split={self.split!r}, n={len(self)}, image_size={self.image_size[0]}, "
            f"channels={self.channels}, root='{self.root}')"
        )


class FashionMNISTBased(DatasetBase):
    """Base of the datasets made of Fashion-MNIST images (silhouettes, edges, two classes):
    :meth:`_read` sets ``images`` (a :class:`FashionMNIST`), ``split``, ``image_size`` and ``flip``."""

    ignores = FIXED_28_PX

    def _read(self, split: str, prep: Preprocessing, root: str | Path | None, grey: bool = False) -> Preprocessing:
        """Read ``split`` ("val" is "test") at ``prep``'s crop size (in grey when ``grey``, else in
        its channels); returns ``prep`` over the class's ``defaults``."""
        self.split = {"val": "test"}.get(split, split)  # the held-out split's other name
        prep = prep.over(self.defaults)
        self.images = FashionMNIST(self.split, Preprocessing(crop_size=prep.crop_size, channels=1 if grey else
                                                             prep.channels), root=root)
        self.image_size = self.images.image_size
        self.flip = bool(prep.flip and prep.augment)
        return prep

    def __len__(self) -> int:
        return len(self.images)

    @property
    def source_files(self) -> list[Path]:
        """The IDX files read."""
        return self.images.source_files


def _load_split(folder: Path, split: str) -> tuple[Tensor, Tensor]:
    images_stem, labels_stem, count = _SPLITS[split]
    images_path, labels_path = _idx_path(folder, images_stem), _idx_path(folder, labels_stem)
    images, labels = read_idx(images_path), read_idx(labels_path)
    fix = "Delete it and download it again (or reinstall dataset-fashion-mnist)."
    if images.shape != (count, _IMAGE_SIDE, _IMAGE_SIDE):
        raise BadDataError(
            f"{images_path} holds images of shape {images.shape}, "
            f"expected ({count}, {_IMAGE_SIDE}, {_IMAGE_SIDE}). {fix}"
        )
    if labels.shape != (count,) or labels.max() >= len(FASHION_MNIST_CLASSES):
        raise BadDataError(
            f"{labels_path} holds labels of shape {labels.shape} up to {labels.max()}, "
            f"expected ({count},) in 0..{len(FASHION_MNIST_CLASSES) - 1}. {fix}"
        )
    return torch.from_numpy(images), torch.from_numpy(labels).long()
