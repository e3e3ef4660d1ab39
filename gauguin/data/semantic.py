"""Paired semantic-synthesis data: a photo, its label map and optionally an instance map.

The base of the SPADE / pix2pix / pix2pixHD datasets (COCO-Stuff, Cityscapes, ADE20K and folders
of your own pairs), :class:`SemanticDataset`, whose ``get_batch(indices)`` gives ``{"image",
"label_map"[, "instance"]}``. The machinery lives beside it: files are found and joined by
:mod:`~gauguin.data.pairing`, read by :mod:`~gauguin.data.label_files`, checked by
:mod:`~gauguin.data.label_checks` (once when built, :mod:`~gauguin.data.label_scan`) and resized by
:mod:`~gauguin.data.resizing` (the photo bicubic, the maps nearest neighbour, one plan per
sample). The random crops and flips are drawn from torch's global RNG in the calling thread, in
index order, before any file is decoded, so a run restored with its RNG state sees exactly the
same batches. Specs like ``"coco-stuff:PATH"`` are read by :func:`gauguin.data.build`.

One-hot encoding is not done here: the training step does it on the device
(:mod:`gauguin.nn.labels`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset as TorchDataset

from gauguin.data.batching import as_indices, decode_in_threads, draw_preprocessing, to_tensor
from gauguin.data.errors import BadDataError
from gauguin.data.label_checks import LabelChecks, unknown_raw_ids
from gauguin.data.label_files import RGB, read_instance_file, read_rgb_image
from gauguin.data.label_scan import LabelScan
from gauguin.data.pairing import LABEL_EXTENSIONS
from gauguin.data.preprocessing import PHOTO_DEFAULTS, PREPROCESS_MODES, Preprocessing
from gauguin.data.protocol import DatasetBase
from gauguin.data.resizing import Resizer, apply_to_ids, apply_to_image, nearest_indices

__all__ = ["DONT_CARE_NAME", "LABEL_EXTENSIONS", "PREPROCESS_MODES", "SemanticDataset", "SemanticSample",
           "nearest_indices", "unknown_raw_ids"]

DONT_CARE_NAME = "dont_care"
FIXED_IDS = "its label maps hold its own fixed ids"  # why the public datasets ignore the label options


@dataclass(frozen=True)
class SemanticSample:
    """One training example's files."""

    key: str  # what joins them (file stem or Cityscapes prefix)
    image: Path
    label: Path
    instance: Path | None = None


class SemanticDataset(LabelChecks, DatasetBase, TorchDataset):
    """Pairs of photo and label map (and instance map) served as SPADE / pix2pixHD batches.

    Subclasses find the files and define the mapping of raw label values to channel indices
    (``raw_to_index``: a lookup table, -1 for invalid raw values). Attributes:

    - ``num_labels``: one-hot channels, including the don't-care channel when there is one;
    - ``label_names`` (length ``num_labels``), ``dont_care_index`` (or None);
    - ``has_instances``: batches carry ``"instance"``;
    - ``image_size``: (H, W) of every output; ``channels`` = 3;
    - ``prep``: the :class:`Preprocessing` used (the given fields over ``defaults``), ``resizer``
      its :class:`~gauguin.data.resizing.Resizer`;
    - ``source_files``: every file read; ``samples``: the :class:`SemanticSample` list;
    - ``label_check``: the :class:`~gauguin.data.label_scan.LabelCheck` of the check of every label
      map done when the dataset is built (each id must map to a channel, each colour be in the
      palette); what fails it raises one :class:`~gauguin.data.errors.LabelMapError` naming every
      bad file. ``label_folder`` (the folder of the label maps, for messages and the cache;
      default: their common folder) and ``label_scan`` (a scan of the label maps already made)
      are for subclasses.
    """

    channels = 3
    kind = "semantic"  # the name in messages and specs
    defaults = PHOTO_DEFAULTS
    ignores = {"channels": "its photos are RGB, 3 channels", "palette": "its label maps hold ids, not colours",
               "num_labels": FIXED_IDS, "label_names": FIXED_IDS, "dont_care_id": FIXED_IDS}

    def __init__(
        self,
        samples: Sequence[SemanticSample],
        *,
        root: Path,
        raw_to_index: np.ndarray,
        label_names: Sequence[str],
        dont_care_index: int | None,
        prep: Preprocessing,
        palette: Mapping[int, RGB] | None = None,
        extra_source_files: Sequence[Path] = (),
        label_folder: Path | None = None,
        label_scan: LabelScan | None = None,
    ) -> None:
        if not samples:
            raise BadDataError(f"no samples in {root}")
        self.root = Path(root)
        self.samples = list(samples)
        self.num_labels = len(label_names)
        self.label_names = list(label_names)
        self.dont_care_index = dont_care_index
        self.has_instances = all(sample.instance is not None for sample in self.samples)
        self.prep = prep.over(type(self).defaults)
        self.resizer = Resizer.of(self.prep)
        self.augment = bool(self.prep.augment)
        self.palette = dict(palette) if palette is not None else None
        self._lut = np.asarray(raw_to_index, dtype=np.int64)
        valid = self._lut[self._lut >= 0]
        if valid.size == 0 or int(valid.max()) >= self.num_labels:
            raise ValueError("raw_to_index must map some raw value and only to 0..num_labels-1")
        self._extra_source_files = list(extra_source_files)
        self.image_size = self.resizer.output_size(self.samples[0].image)
        self.label_check = self.check_label_files([sample.label for sample in self.samples], label_folder, label_scan)

    # -------------------------------------------------------------------- the public interface
    def __len__(self) -> int:
        return len(self.samples)

    @property
    def raw_to_index(self) -> list[int]:
        """Label channel of each raw value in the label files (-1: not allowed)."""
        return self._lut.tolist()

    @property
    def source_files(self) -> list[Path]:
        """Every file this dataset reads (photos, label maps, instance maps, palette)."""
        files = [path for sample in self.samples for path in (sample.image, sample.label, sample.instance) if path]
        return files + self._extra_source_files

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """``{"image": float32 [B, 3, H, W] in [-1, 1], "label_map": int64 [B, H, W],
        "instance": int64 [B, H, W] (when has_instances)}``.

        When augmenting, the random crops and flips are drawn first, from torch's global RNG in
        this thread (one ``torch.rand(B, 3, dtype=float64)``, in index order); decoding then runs
        in a thread pool. Without augmentation the RNG is not touched.
        """
        indices = as_indices(indices, len(self))
        decoded = decode_in_threads(self._decode, list(zip(indices, draw_preprocessing(len(indices), self.augment))))
        batch = {
            "image": to_tensor([d[0] for d in decoded]),
            "label_map": torch.from_numpy(np.stack([d[1] for d in decoded])),
        }
        if self.has_instances:
            batch["instance"] = torch.from_numpy(np.stack([d[2] for d in decoded]))
        return batch

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """One sample, as :meth:`get_batch` without the batch dimension."""
        return {key: value[0] for key, value in self.get_batch([index]).items()}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root='{self.root}', n={len(self)}, num_labels={self.num_labels}, "
            f"image_size={self.image_size}, preprocess={self.resizer.mode!r}, instances={self.has_instances}, "
            f"augment={self.augment})"
        )

    # ------------------------------------------------------------------------------ decoding
    def _decode(self, index: int, draw: tuple[float, float, float] | None) -> tuple[np.ndarray, ...]:
        sample = self.samples[index]
        image = read_rgb_image(sample.image)
        raw = self._raw_ids(sample.label)
        self._check_same_size(sample.image, image.size, sample.label, raw.shape)
        self._check_ids(raw, sample.label)
        plan = self.resizer.plan(image.width, image.height, draw)
        self.resizer.check_size(self.image_size, image.size, f"image {sample.image}")
        pixels = apply_to_image(image, plan)
        label = self._lut[apply_to_ids(raw, plan)]
        instance = None
        if self.has_instances:
            instance_raw = read_instance_file(sample.instance)
            self._check_same_size(sample.image, image.size, sample.instance, instance_raw.shape, "instance map")
            instance = apply_to_ids(instance_raw, plan).astype(np.int64)
        return pixels, label, instance
