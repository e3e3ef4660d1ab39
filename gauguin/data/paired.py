"""Paired image-to-image data (pix2pix): an input image and its pixel-aligned target.

- :class:`FashionMNISTEdges`, the embedded default ("edges → clothing", like edges2shoes): the
  input is an edge drawing of a real Fashion-MNIST image (:func:`edge_drawing`), the target the
  image itself;
- :class:`PairedFolder`, pix2pix's own layouts: side-by-side ``A|B`` files in ``root/<split>/``,
  or ``root/A/<split>/`` and ``root/B/<split>/`` joined by file stem;
- specs like ``"folder:PATH"`` are read by :func:`gauguin.data.build` (``task="pairs"``).

``get_batch(indices)`` gives ``{"input": float32 [B, C_in, H, W], "image": float32 [B, C, H, W]}``
in [-1, 1], "image" being the target. Random crops and flips are drawn from torch's global RNG in
the calling thread before anything is decoded (one draw per sample, shared by its two sides), so
a run restored with its RNG state sees exactly the same batches; ``augment=False`` gives center
crops without flips and leaves the RNG alone. Resizing, cropping and flipping are those of
:mod:`gauguin.data.resizing`.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path


import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gauguin.data.batching import as_indices, decode_in_threads, draw_preprocessing, to_tensor
from gauguin.data.errors import BadDataError
from gauguin.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNISTBased
from gauguin.data.folder import IMAGE_EXTENSIONS
from gauguin.data.label_files import read_rgb_image
from gauguin.data.pairing import files_by_key, join_by_name, list_files, require_folder
from gauguin.data.preprocessing import NO_PREPROCESSING, PHOTO_DEFAULTS, Preprocessing
from gauguin.data.protocol import DatasetBase
from gauguin.data.resizing import Resizer, apply_to_image

DIRECTIONS = ("AtoB", "BtoA")

# Sobel gradient magnitude (grey on the [0, 1] scale, kernels divided by 4 so a sharp step of
# height h scores h) above which a pixel, if it is the maximum across the edge, is drawn. 0.12 is
# a step of ~31 grey levels. Measured on 2,000 test images at 32 px: 98 % of the silhouette's
# outline is drawn (within 1 px), and >= 90 % of it for 95 % of garments, dark ones (~40 grey
# levels on black) included, plus seams, collars and prints; flat fabric stays white. At 0.2,
# 12 % of garments (the dark ones) lose more than a tenth of their outline; much lower values
# start drawing the fabric's texture.
EDGE_THRESHOLD = 0.12

_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4.0
_LAYOUT = (
    "<split>/<name>.jpg|png holding A|B side by side (pix2pix), or A/<split>/<name>.* and "
    "B/<split>/<name>.* joined by name"
)


# -------------------------------------------------------------------------------- edge drawing
def edge_strength(images: Tensor) -> tuple[Tensor, Tensor]:
    """Sobel gradient magnitude ``[N, 1, H, W]`` of images in [-1, 1] (channels averaged to grey,
    on the [0, 1] scale, borders replicated) and whether each pixel is the maximum across the
    edge (non-maximum suppression along the gradient direction, which thins edges to ~1 px)."""
    if images.dim() != 4:
        raise ValueError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    grey = images.float().mean(1, keepdim=True).add(1.0).mul(0.5)
    kernels = torch.stack([_SOBEL, _SOBEL.t()])[:, None].to(grey.device)
    gradient = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)  # [N, 2, H, W]: x, y
    magnitude = gradient.norm(dim=1, keepdim=True)
    # gradient direction in 4 bins (0°, 45°, 90°, 135°) -> the two neighbours across the edge
    angle = torch.atan2(gradient[:, 1:], gradient[:, :1]).remainder(torch.pi)
    bins = torch.round(angle / (torch.pi / 4)).long().remainder(4)
    padded = F.pad(magnitude, (1, 1, 1, 1))
    height, width = magnitude.shape[-2:]

    def shifted(dy: int, dx: int) -> Tensor:
        return padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]

    is_max = torch.zeros_like(magnitude, dtype=torch.bool)
    for index, (dy, dx) in enumerate(((0, 1), (1, 1), (1, 0), (1, -1))):
        peak = (magnitude >= shifted(dy, dx)) & (magnitude >= shifted(-dy, -dx))
        is_max |= (bins == index) & peak
    return magnitude, is_max


def edge_drawing(images: Tensor, threshold: float = EDGE_THRESHOLD) -> Tensor:
    """Edge drawings ``[N, 1, H, W]`` of images ``[N, C, H, W]`` in [-1, 1]: edges black (-1) on
    white (+1), like edges2shoes. An edge is a pixel whose Sobel magnitude (see
    :data:`EDGE_THRESHOLD`) exceeds ``threshold`` and is the largest across the edge; a uniform
    image gives a blank (all white) drawing."""
    magnitude, is_max = edge_strength(images)
    edges = (magnitude > threshold) & is_max
    return torch.where(edges, -1.0, 1.0).to(torch.float32)


# --------------------------------------------------------------------------- Fashion-MNIST
class FashionMNISTEdges(FashionMNISTBased):
    """Edge drawings of real Fashion-MNIST images paired with the images (edges → clothing).

    A is :func:`edge_drawing` of the image resized to ``prep.crop_size`` (default 32; bilinear,
    antialiased, as :class:`~gauguin.data.FashionMNIST` does); B is the image. ``direction="AtoB"``
    makes the drawing the input. Both sides have ``prep.channels`` channels (default 1; a grey
    image repeated for 3). Deterministic unless ``prep.flip`` (random horizontal flips, the same
    for both sides). Beyond the paired contract, batches carry the garment class ``label`` ``[B]``.
    """

    defaults = Preprocessing(crop_size=32, channels=1, flip=False, augment=True)

    def __init__(
        self,
        split: str = "train",
        prep: Preprocessing = NO_PREPROCESSING,
        *,
        direction: str = "AtoB",
        root: str | Path | None = None,
    ) -> None:
        self.direction = check_direction(direction)
        prep = self._read(split, prep, root, grey=True)
        self.channels = self.input_channels = prep.channels
        self.classes = list(FASHION_MNIST_CLASSES)
        self.num_classes = len(FASHION_MNIST_CLASSES)

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """``{"input", "image"}`` ``[B, channels, H, W]`` in [-1, 1] and the class ``label`` ``[B]``."""
        indices = as_indices(indices, len(self))
        flips = torch.rand(len(indices)) < 0.5 if self.flip else None  # drawn first: resumable
        real, labels = self.images.get_batch(torch.tensor(indices))
        edges = edge_drawing(real)
        if flips is not None and flips.any():
            real[flips] = real[flips].flip(-1)
            edges[flips] = edges[flips].flip(-1)
        if self.channels == 3:
            real, edges = (x.expand(-1, 3, -1, -1).contiguous() for x in (real, edges))
        source, target = (edges, real) if self.direction == "AtoB" else (real, edges)
        return {"input": source, "image": target, "label": labels}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[0] for key, value in self.get_batch([index]).items()}

    def __repr__(self) -> str:
        return (
            f"FashionMNISTEdges(split={self.split!r}, n={len(self)}, image_size={self.image_size[0]}, "
            f"direction={self.direction!r})"
        )


# ------------------------------------------------------------------------------------ folders
class PairedFolder(DatasetBase):
    """pix2pix pairs under ``root``, in either of pix2pix's layouts (found automatically):

    - side by side: ``root/<split>/*.jpg|png``, each file A|B concatenated horizontally (A the
      left half); an odd width cannot be split and is an error naming the file;
    - separate folders: ``root/A/<split>/*`` and ``root/B/<split>/*`` joined by file stem; the
      two images of a pair must have one size. Used when both layouts are present.

    ``prep`` (default pix2pix's: resize to 286, random 256 crop, random flip) is applied identically
    to A and B (:class:`~gauguin.data.resizing.Resizer`, bicubic). Images are RGB: ``channels =
    input_channels = 3``.
    """

    channels = 3
    input_channels = 3
    defaults = PHOTO_DEFAULTS
    ignores = {"channels": "its images are RGB, 3 channels"}

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        prep: Preprocessing = NO_PREPROCESSING,
        *,
        direction: str = "AtoB",
    ) -> None:
        self.prep = prep.over(self.defaults)
        self.resizer = Resizer.of(self.prep)
        self.direction = check_direction(direction)
        self.augment = bool(self.prep.augment)
        self.split = split
        self.root = require_folder(
            Path(root).expanduser(), "paired image folder", f"Pass a folder holding {_LAYOUT}."
        )
        a_dir, b_dir = self.root / "A" / split, self.root / "B" / split
        side_dir = self.root / split
        if a_dir.is_dir() or b_dir.is_dir():
            self.layout = "separate"
            for folder in (a_dir, b_dir):
                if not folder.is_dir():
                    raise BadDataError(
                        f"paired folder {self.root} has {a_dir if folder is b_dir else b_dir} but no "
                        f"{folder}; the A/B layout needs both. Fix: add {folder}, or use the "
                        "side-by-side layout (<split>/<name>.jpg holding A|B)."
                    )
            images_a = files_by_key(list_files(a_dir, IMAGE_EXTENSIONS), _stem, a_dir, "images")
            images_b = files_by_key(list_files(b_dir, IMAGE_EXTENSIONS), _stem, b_dir, "images")
            keys = join_by_name(images_a, images_b, a_dir, b_dir)
            self.pairs: list[tuple[Path, Path | None]] = [(images_a[k], images_b[k]) for k in keys]
        elif side_dir.is_dir():
            self.layout = "side_by_side"
            self.pairs = [(path, None) for path in list_files(side_dir, IMAGE_EXTENSIONS)]
            if not self.pairs:
                raise BadDataError(
                    f"no images in {side_dir}; the folder is empty. Fix: put the {split} pairs there "
                    f"as A|B side-by-side files ({', '.join(IMAGE_EXTENSIONS)})."
                )
        else:
            raise BadDataError(
                f"paired folder {self.root} has neither {side_dir} nor {a_dir} and {b_dir}"
                f"{_splits_found(self.root)}. Fix: lay the pairs out as {_LAYOUT}."
            )
        self.image_size = self.resizer.output_size(self.pairs[0][0], halve_width=self.layout == "side_by_side")

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def source_files(self) -> list[Path]:
        """Every file this dataset reads."""
        return [path for pair in self.pairs for path in pair if path is not None]

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """``{"input": [B, 3, H, W], "image": [B, 3, H, W]}`` in [-1, 1] ("image" is the target).

        When augmenting, one ``torch.rand(B, 3, dtype=float64)`` (crop y, crop x, flip per
        sample) is drawn first from torch's global RNG in this thread; decoding then runs in a
        thread pool. Without augmentation the RNG is not touched.
        """
        indices = as_indices(indices, len(self))
        draws = draw_preprocessing(len(indices), self.augment)
        decoded = decode_in_threads(self._decode, list(zip(indices, draws)))
        a = to_tensor([pair[0] for pair in decoded])
        b = to_tensor([pair[1] for pair in decoded])
        source, target = (a, b) if self.direction == "AtoB" else (b, a)
        return {"input": source, "image": target}

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[0] for key, value in self.get_batch([index]).items()}

    def __repr__(self) -> str:
        return (
            f"PairedFolder(root='{self.root}', split={self.split!r}, n={len(self)}, layout={self.layout!r}, "
            f"image_size={self.image_size}, direction={self.direction!r}, "
            f"preprocess={self.resizer.mode!r}, augment={self.augment})"
        )

    def _decode(self, index: int, draw: tuple[float, float, float] | None) -> tuple[np.ndarray, np.ndarray]:
        path_a, path_b = self.pairs[index]
        if path_b is None:
            whole = read_rgb_image(path_a)
            width, height = whole.size
            if width % 2:
                raise BadDataError(
                    f"side-by-side image {path_a} is {width}x{height}: an odd width cannot be split "
                    "into A (left half) and B (right half). Fix: re-export it with A and B of equal "
                    "width, or put the halves in A/<split>/ and B/<split>/."
                )
            half = width // 2
            image_a, image_b = whole.crop((0, 0, half, height)), whole.crop((half, 0, width, height))
            where = f"image {path_a} (each half)"
        else:
            image_a, image_b = read_rgb_image(path_a), read_rgb_image(path_b)
            if image_a.size != image_b.size:
                raise BadDataError(
                    f"image {path_a} is {image_a.width}x{image_a.height} but its pair {path_b} is "
                    f"{image_b.width}x{image_b.height}; A and B of a pair must be pixel-aligned. Fix: "
                    "re-export them at one size (or pair each with the right file)."
                )
            where = f"image {path_a}"
        self.resizer.check_size(self.image_size, image_a.size, where)
        plan = self.resizer.plan(image_a.width, image_a.height, draw)
        return apply_to_image(image_a, plan), apply_to_image(image_b, plan)


# ------------------------------------------------------------------------------------ helpers
def check_direction(direction: str) -> str:
    """``direction`` if it is 'AtoB' or 'BtoA', else ValueError with the closest one."""
    if direction not in DIRECTIONS:
        close = difflib.get_close_matches(str(direction), DIRECTIONS, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"direction must be 'AtoB' or 'BtoA' (which side is the input), got {direction!r}{hint}")
    return direction


def _stem(path: Path) -> str:
    return path.stem


def _splits_found(root: Path) -> str:
    """``" (it has train/, val/)"``: the sub-folders of ``root`` that hold images, for messages."""
    try:
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and list_files(p, IMAGE_EXTENSIONS))
    except OSError:
        return ""
    return f" (it has {', '.join(name + '/' for name in found)})" if found else ""
