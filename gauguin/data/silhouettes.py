"""Fashion-MNIST silhouettes: the embedded default for semantic image synthesis (SPADE, pix2pix).

Each real Fashion-MNIST image becomes an (image, label map) pair: pixels brighter than a small
threshold are the garment, labelled with its class id + 1; the rest is background, label 0.
So the label map has 11 labels, and two garments of one silhouette differ only in their label.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gauguin.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNISTBased
from gauguin.data.preprocessing import NO_PREPROCESSING, Preprocessing

FOREGROUND_THRESHOLD = 8  # uint8 intensity above which a pixel belongs to the garment (~3 % of white)


class FashionMNISTSilhouettes(FashionMNISTBased):
    """Real Fashion-MNIST images with their thresholded silhouettes as label maps.

    Follows the paired semantic dataset contract (see ``gauguin.data.semantic``): ``get_batch``
    gives ``image`` ``[B, channels, H, W]`` in [-1, 1], ``label_map`` int64 ``[B, H, W]`` in 0..10,
    and, beyond the contract, the garment class ``label`` ``[B]``. ``prep``: ``crop_size``
    (default 28), ``channels`` (1), ``flip`` (False; only when augmenting).
    """

    defaults = Preprocessing(crop_size=28, channels=1, flip=False, augment=True)

    label_names = ["background", *FASHION_MNIST_CLASSES]
    num_labels = len(label_names)
    dont_care_index = None
    has_instances = False
    raw_to_index = list(range(num_labels))  # label PNGs of silhouettes hold the ids themselves
    palette = None

    def __init__(self, split: str = "train", prep: Preprocessing = NO_PREPROCESSING,
                 root: str | Path | None = None) -> None:
        self._read(split, prep, root)
        self.channels = self.images.channels
        self.classes = FASHION_MNIST_CLASSES
        self.num_classes = len(FASHION_MNIST_CLASSES)

    def get_batch(self, indices: Tensor) -> dict[str, Tensor]:
        indices = torch.as_tensor(indices, dtype=torch.long, device="cpu")
        flips = torch.rand(len(indices)) < 0.5 if self.flip else None  # drawn first: resumable
        images, labels = self.images.get_batch(indices)
        label_maps = silhouette_label_maps(self.images.images[indices], labels, self.image_size)
        if flips is not None and flips.any():
            images[flips] = images[flips].flip(-1)
            label_maps[flips] = label_maps[flips].flip(-1)
        return {"image": images, "label_map": label_maps, "label": labels}

    def __repr__(self) -> str:
        return f"FashionMNISTSilhouettes(split={self.split!r}, n={len(self)}, image_size={self.image_size[0]})"


def silhouette_label_maps(images_u8: Tensor, labels: Tensor, size: tuple[int, int]) -> Tensor:
    """uint8 images ``[B, 1, 28, 28]`` and classes ``[B]`` -> label maps ``[B, H, W]``: class + 1 on
    the garment, 0 elsewhere; resized with nearest neighbour so no label is ever mixed."""
    foreground = images_u8[:, 0] > FOREGROUND_THRESHOLD
    maps = foreground.long() * (labels.view(-1, 1, 1) + 1)
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()
    return maps
