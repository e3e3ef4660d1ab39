"""Datasets for training, all built by one grammar: :func:`build` ``(spec, split, prep, task=...)``.

``spec`` is ``KIND[:PATH]`` (``fashion-mnist``, ``folder:PATH``, ``coco-stuff:PATH``,
``cityscapes:PATH``, ``ade20k:PATH``), ``prep`` a :class:`Preprocessing` and ``task`` what the
family needs (``classes``, ``label_maps``, ``pairs``, ``domains``; see :mod:`gauguin.data.grammar`).
Every dataset follows :class:`Dataset`: ``len()``, ``get_batch(indices)`` and its description
(``num_classes``, ``num_labels``, ``image_size`` (H, W), ``channels``, ...). Images are float32 in
[-1, 1].
"""
from __future__ import annotations

from gauguin.data.errors import BadDataError, DatasetNotFoundError, LabelMapError
from gauguin.data.preprocessing import PREPROCESS_MODES, Preprocessing
from gauguin.data.protocol import Dataset, DatasetBase
from gauguin.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNIST, find_fashion_mnist, read_idx
from gauguin.data.folder import IMAGE_EXTENSIONS, ImageFolder
from gauguin.data.ade20k import ADE20K, ADE20K_CLASSES
from gauguin.data.cityscapes import CITYSCAPES_CLASSES, Cityscapes
from gauguin.data.coco_stuff import COCO_STUFF_CLASSES, CocoStuff
from gauguin.data.label_folder import LabelFolder
from gauguin.data.label_files import load_palette
from gauguin.data.semantic import SemanticDataset
from gauguin.data.silhouettes import FashionMNISTSilhouettes
from gauguin.data.paired import FashionMNISTEdges, PairedFolder, edge_drawing
from gauguin.data.unpaired import FashionMNISTDomains, UnpairedFolder
from gauguin.data.grammar import KINDS, TASKS, accepts, build

# compatibility: the kinds of each task, kind -> class
SEMANTIC_DATASETS = KINDS["label_maps"]
PAIRED_DATASETS = KINDS["pairs"]
UNPAIRED_DATASETS = KINDS["domains"]
DATASET_NAMES = tuple(KINDS["classes"])

__all__ = [
    "ADE20K",
    "ADE20K_CLASSES",
    "BadDataError",
    "CITYSCAPES_CLASSES",
    "COCO_STUFF_CLASSES",
    "Cityscapes",
    "CocoStuff",
    "DATASET_NAMES",
    "Dataset",
    "DatasetBase",
    "DatasetNotFoundError",
    "FASHION_MNIST_CLASSES",
    "FashionMNIST",
    "FashionMNISTDomains",
    "FashionMNISTEdges",
    "FashionMNISTSilhouettes",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "KINDS",
    "LabelFolder",
    "LabelMapError",
    "PAIRED_DATASETS",
    "PREPROCESS_MODES",
    "PairedFolder",
    "Preprocessing",
    "SEMANTIC_DATASETS",
    "SemanticDataset",
    "TASKS",
    "UNPAIRED_DATASETS",
    "UnpairedFolder",
    "accepts",
    "build",
    "edge_drawing",
    "find_fashion_mnist",
    "load_palette",
    "read_idx",
]
