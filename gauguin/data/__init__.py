"""Datasets for training: Fashion-MNIST and folders of images.

Both datasets give float32 images in [-1, 1] shaped ``[channels, image_size, image_size]``, int
labels, ``classes``/``num_classes``, and a batched ``get_batch(indices)`` for the training loop.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from gauguin.data.errors import BadDataError, DatasetNotFoundError, LabelMapError
from gauguin.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNIST, find_fashion_mnist, read_idx
from gauguin.data.folder import IMAGE_EXTENSIONS, ImageFolder
from gauguin.data.ade20k import ADE20K, ADE20K_CLASSES
from gauguin.data.cityscapes import CITYSCAPES_CLASSES, Cityscapes
from gauguin.data.coco_stuff import COCO_STUFF_CLASSES, CocoStuff
from gauguin.data.label_folder import LabelFolder
from gauguin.data.label_files import load_palette
from gauguin.data.semantic import PREPROCESS_MODES, SEMANTIC_DATASETS, SemanticDataset, build_semantic_dataset
from gauguin.data.silhouettes import FashionMNISTSilhouettes
from gauguin.data.paired import PAIRED_DATASETS, FashionMNISTEdges, PairedFolder, build_paired_dataset, edge_drawing
from gauguin.data.unpaired import UNPAIRED_DATASETS, FashionMNISTDomains, UnpairedFolder, build_unpaired_dataset

DATASET_NAMES = ("fashion_mnist", "folder")

__all__ = [
    "ADE20K",
    "ADE20K_CLASSES",
    "CITYSCAPES_CLASSES",
    "COCO_STUFF_CLASSES",
    "Cityscapes",
    "CocoStuff",
    "LabelFolder",
    "PREPROCESS_MODES",
    "SEMANTIC_DATASETS",
    "SemanticDataset",
    "build_semantic_dataset",
    "load_palette",
    "BadDataError",
    "LabelMapError",
    "DATASET_NAMES",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "FashionMNIST",
    "FashionMNISTSilhouettes",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "build_dataset",
    "find_fashion_mnist",
    "read_idx",
    "PAIRED_DATASETS",
    "FashionMNISTEdges",
    "PairedFolder",
    "build_paired_dataset",
    "edge_drawing",
    "UNPAIRED_DATASETS",
    "FashionMNISTDomains",
    "UnpairedFolder",
    "build_unpaired_dataset",
]


def build_dataset(
    name: str, root: str | Path, image_size: int, channels: int, split: str = "train"
) -> FashionMNIST | ImageFolder:
    """The dataset ``name`` names, as set by a run config: ``fashion_mnist`` or ``folder``, also written
    as the other families' specs ``fashion-mnist[:ROOT]`` and ``folder:PATH`` (the folder, in place of
    ``root``).

    For "fashion_mnist" an empty ``root`` means search the usual places. A folder has no
    splits, so "folder" serves the whole folder whatever ``split`` is.
    """
    kind, has_path, path = str(name).partition(":")
    name = kind.strip().lower().replace("-", "_")
    if has_path:
        if root and Path(root) != Path(path):
            raise BadDataError(f"dataset={kind}:{path} names a folder and data_root={root} another; give the "
                               "folder once (dataset=folder:PATH, or dataset=folder data_root=PATH)")
        root = path
    if name == "fashion_mnist":
        return FashionMNIST(split=split, root=root or None, image_size=image_size, channels=channels)
    if name == "folder":
        if not root:
            raise BadDataError("dataset 'folder' needs a folder of images: set data_root=PATH")
        return ImageFolder(root, image_size=image_size, channels=channels)
    close = difflib.get_close_matches(str(name).lower(), DATASET_NAMES, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown dataset {name!r}; valid names are {', '.join(map(repr, DATASET_NAMES))}{hint}"
    )
