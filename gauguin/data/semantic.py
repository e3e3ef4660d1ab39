"""Paired semantic-synthesis data: a photo, its label map and optionally an instance map.

The shared machinery of the SPADE / pix2pix / pix2pixHD datasets (COCO-Stuff, Cityscapes,
ADE20K and folders of your own pairs):

- label maps, instance maps and photos read by :mod:`gauguin.data.label_files`, label maps checked
  once when a dataset is built by :mod:`gauguin.data.label_scan`;
- SPADE's preprocessing modes, applied identically to the photo (bicubic, antialiased) and to the
  label and instance maps (nearest neighbour, so no id is ever invented): ``resize_and_crop``,
  ``scale_width_and_crop``, ``fixed`` and ``none``, plus a random horizontal flip;
- :class:`SemanticDataset`, whose ``get_batch(indices)`` gives ``{"image", "label_map"[,
  "instance"]}``; the random crop offsets and flips are drawn from torch's global RNG in the
  calling thread, in index order, before any file is decoded, so a run restored with its RNG
  state sees exactly the same batches;
- :func:`build_semantic_dataset` for specs like ``"coco-stuff:PATH"``.

One-hot encoding is not done here: the training step does it on the device
(:mod:`gauguin.nn.labels`).
"""
from __future__ import annotations

import difflib
import importlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from gauguin.data.errors import BadDataError, DatasetNotFoundError, LabelMapError
from gauguin.data.folder import DECODE_THREADS, IMAGE_EXTENSIONS
from gauguin.data.label_files import (_SHOWN_IN_MESSAGES, RGB, _undecodable, colors_to_ids, lookup_codes,
                                      read_instance_file, read_label_file, read_rgb_image)
from gauguin.data.label_scan import _SHOWN_BAD_FILES, LabelCheck, LabelScan, scan_label_maps

logger = logging.getLogger(__name__)

PREPROCESS_MODES = ("resize_and_crop", "scale_width_and_crop", "fixed", "none")
DONT_CARE_NAME = "dont_care"
LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless only: a JPEG label map has invented ids




# ----------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class _Plan:
    """How one sample is resized, cropped and flipped."""

    resize: tuple[int, int] | None  # (width, height) to resize to, or None to keep the size
    top: int
    left: int
    height: int  # of the crop
    width: int
    flip: bool


@dataclass(frozen=True)
class Preprocessing:
    """SPADE's preprocessing options, shared by the photo, the label and the instance map.

    - ``resize_and_crop``: resize to ``load_size`` wide × ``load_size / aspect_ratio`` high, then
      crop ``crop_size`` wide × ``crop_size / aspect_ratio`` high (square at aspect 1, as SPADE);
    - ``scale_width_and_crop``: scale the width to ``load_size`` keeping the aspect (the height
      is at least the crop's), then crop as above;
    - ``fixed``: resize to ``crop_size`` wide × ``round(crop_size / aspect_ratio)`` high;
    - ``none``: keep the files' size (they must all have it).

    Crops are random and flips (when ``flip``) happen with probability 1/2 when augmenting;
    otherwise the crop is centered and nothing is flipped.
    """

    mode: str = "resize_and_crop"
    crop_size: int = 256
    load_size: int = 286
    aspect_ratio: float = 1.0
    flip: bool = True

    def __post_init__(self) -> None:
        if self.mode not in PREPROCESS_MODES:
            close = difflib.get_close_matches(str(self.mode), PREPROCESS_MODES, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown preprocess {self.mode!r}; valid modes are {', '.join(map(repr, PREPROCESS_MODES))}{hint}"
            )
        if self.crop_size < 1 or self.load_size < 1:
            raise ValueError(f"crop_size and load_size must be positive, got {self.crop_size}, {self.load_size}")
        if not self.aspect_ratio > 0:
            raise ValueError(f"aspect_ratio (width / height) must be positive, got {self.aspect_ratio}")
        if self.mode in ("resize_and_crop", "scale_width_and_crop") and self.load_size < self.crop_size:
            raise ValueError(
                f"preprocess={self.mode!r} crops {self.crop_size} px (the crop size, image_size in a run "
                f"config) out of load_size={self.load_size}: load_size must be >= the crop size"
            )

    @property
    def crop_hw(self) -> tuple[int, int]:
        """(height, width) of the crop, and of every output except in mode ``none``."""
        return max(1, round(self.crop_size / self.aspect_ratio)), self.crop_size

    def plan(self, width: int, height: int, draw: tuple[float, float, float] | None) -> _Plan:
        """The plan for a ``width`` × ``height`` sample; ``draw`` = uniform (y, x, flip) numbers, or
        None for the deterministic center crop without flip."""
        crop_h, crop_w = self.crop_hw
        if self.mode == "none":
            resize, full = None, (width, height)
        elif self.mode == "fixed":
            resize = full = (crop_w, crop_h)
        elif self.mode == "resize_and_crop":
            resize = full = (self.load_size, max(crop_h, round(self.load_size / self.aspect_ratio)))
        else:  # scale_width_and_crop
            resize = full = (self.load_size, max(crop_h, round(self.load_size * height / width)))
        if self.mode in ("none", "fixed"):
            crop_w, crop_h = full
        if resize == (width, height):
            resize = None
        range_y, range_x = full[1] - crop_h, full[0] - crop_w
        if draw is None:
            return _Plan(resize, range_y // 2, range_x // 2, crop_h, crop_w, False)
        u_y, u_x, u_flip = draw
        top = min(int(u_y * (range_y + 1)), range_y)
        left = min(int(u_x * (range_x + 1)), range_x)
        return _Plan(resize, top, left, crop_h, crop_w, self.flip and u_flip < 0.5)


def nearest_indices(size_in: int, size_out: int, start: int = 0, length: int | None = None) -> np.ndarray:
    """Source indices of output pixels ``start .. start+length-1`` of a nearest resize (pixel centers)."""
    out = np.arange(start, start + (size_out if length is None else length), dtype=np.float64)
    return np.minimum(((out + 0.5) * size_in / size_out).astype(np.int64), size_in - 1)


def apply_to_ids(array: np.ndarray, plan: _Plan) -> np.ndarray:
    """Resize (nearest neighbour), crop and flip an ``[H, W]`` id map by ``plan``; the output holds
    only ids of the input."""
    height, width = array.shape
    out_w, out_h = plan.resize or (width, height)
    rows = nearest_indices(height, out_h, plan.top, plan.height)
    cols = nearest_indices(width, out_w, plan.left, plan.width)
    if plan.flip:
        cols = cols[::-1]
    return array[np.ix_(rows, cols)]


def apply_to_image(image: Image.Image, plan: _Plan) -> np.ndarray:
    """Resize (bicubic, antialiased), crop and flip a PIL RGB image by ``plan``: uint8 ``[h, w, 3]``."""
    if plan.resize is not None:
        image = image.resize(plan.resize, Image.Resampling.BICUBIC)
    pixels = np.asarray(image)[plan.top : plan.top + plan.height, plan.left : plan.left + plan.width]
    if plan.flip:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)




# ---------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class SemanticSample:
    """One training example's files."""

    key: str  # what joins them (file stem or Cityscapes prefix)
    image: Path
    label: Path
    instance: Path | None = None


class SemanticDataset(Dataset):
    """Pairs of photo and label map (and instance map) served as SPADE / pix2pixHD batches.

    Subclasses find the files and define the mapping of raw label values to channel indices
    (``raw_to_index``: a lookup table, -1 for invalid raw values). Attributes:

    - ``num_labels``: one-hot channels, including the don't-care channel when there is one;
    - ``label_names`` (length ``num_labels``), ``dont_care_index`` (or None);
    - ``has_instances``: batches carry ``"instance"``;
    - ``image_size``: (H, W) of every output; ``channels`` = 3;
    - ``source_files``: every file read; ``samples``: the :class:`SemanticSample` list;
    - ``label_check``: the :class:`LabelCheck` of the check of every label map done when the
      dataset is built (each id must map to a channel, each colour be in the palette); what fails
      it raises one :class:`LabelMapError` naming every bad file. ``label_folder`` (the folder
      of the label maps, for messages and the cache; default: their common folder) and
      ``label_scan`` (a :func:`scan_label_maps` of the label maps already made) are for subclasses.
    """

    channels = 3
    kind = "semantic"  # the name in messages and build_semantic_dataset

    def __init__(
        self,
        samples: Sequence[SemanticSample],
        *,
        root: Path,
        raw_to_index: np.ndarray,
        label_names: Sequence[str],
        dont_care_index: int | None,
        preprocessing: Preprocessing,
        augment: bool,
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
        self.preprocessing = preprocessing
        self.augment = bool(augment)
        self.palette = dict(palette) if palette is not None else None
        self._lut = np.asarray(raw_to_index, dtype=np.int64)
        valid = self._lut[self._lut >= 0]
        if valid.size == 0 or int(valid.max()) >= self.num_labels:
            raise ValueError("raw_to_index must map some raw value and only to 0..num_labels-1")
        self._extra_source_files = list(extra_source_files)
        if preprocessing.mode == "none":
            first = self.samples[0].image
            try:
                with Image.open(first) as image:
                    width, height = image.size
            except Exception as err:
                raise _undecodable(first, "image", err) from err
            self.image_size = (height, width)
        else:
            self.image_size = preprocessing.crop_hw
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
        indices = torch.as_tensor(indices, dtype=torch.long, device="cpu").reshape(-1).tolist()
        if not indices:
            raise ValueError("get_batch needs at least one index")
        for index in indices:
            if not -len(self) <= index < len(self):
                raise IndexError(f"index {index} out of range for {len(self)} samples")
        if self.augment:
            draws = [tuple(row) for row in torch.rand(len(indices), 3, dtype=torch.float64).tolist()]
        else:
            draws = [None] * len(indices)
        jobs = list(zip(indices, draws))
        if len(jobs) == 1:
            decoded = [self._decode(*jobs[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, len(jobs))) as pool:  # PIL frees the GIL
                decoded = list(pool.map(lambda job: self._decode(*job), jobs))
        images = torch.from_numpy(np.stack([d[0] for d in decoded])).permute(0, 3, 1, 2)
        batch = {
            "image": images.float().div_(127.5).sub_(1.0).contiguous(),
            "label_map": torch.from_numpy(np.stack([d[1] for d in decoded])),
        }
        if self.has_instances:
            batch["instance"] = torch.from_numpy(np.stack([d[2] for d in decoded]))
        return batch

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """One sample, as :meth:`get_batch` without the batch dimension."""
        return {key: value[0] for key, value in self.get_batch([index]).items()}

    def __repr__(self) -> str:
        pre = self.preprocessing
        return (
            f"{type(self).__name__}(root='{self.root}', n={len(self)}, num_labels={self.num_labels}, "
            f"image_size={self.image_size}, preprocess={pre.mode!r}, instances={self.has_instances}, "
            f"augment={self.augment})"
        )

    # ------------------------------------------------------------------------------ decoding
    def _decode(self, index: int, draw: tuple[float, float, float] | None) -> tuple[np.ndarray, ...]:
        sample = self.samples[index]
        image = read_rgb_image(sample.image)
        raw = self._raw_ids(sample.label)
        self._check_same_size(sample.image, image.size, sample.label, raw.shape)
        self._check_ids(raw, sample.label)
        plan = self.preprocessing.plan(image.width, image.height, draw)
        if self.preprocessing.mode == "none" and (image.height, image.width) != self.image_size:
            raise BadDataError(
                f"image {sample.image} is {image.width}x{image.height} but preprocess='none' needs every "
                f"image at {self.image_size[1]}x{self.image_size[0]} (the first one's size). Fix: resize "
                "the files, or use preprocess='resize_and_crop' or 'fixed'."
            )
        pixels = apply_to_image(image, plan)
        label = self._lut[apply_to_ids(raw, plan)]
        instance = None
        if self.has_instances:
            instance_raw = read_instance_file(sample.instance)
            self._check_same_size(sample.image, image.size, sample.instance, instance_raw.shape, "instance map")
            instance = apply_to_ids(instance_raw, plan).astype(np.int64)
        return pixels, label, instance

    def decode_label_map(self, path: str | Path) -> np.ndarray:
        """The label map at ``path`` as channel indices: int64 ``[H, W]`` in 0..num_labels-1, read and
        checked as training reads its label maps; :class:`BadDataError` naming the file otherwise."""
        path = Path(path)
        raw = self._raw_ids(path)
        self._check_ids(raw, path)
        return self._lut[raw]

    def _raw_ids(self, path: Path) -> np.ndarray:
        """Raw label values ``[H, W]`` of a label map (colour maps go through the palette)."""
        array = read_label_file(path)
        if array.ndim == 3:
            if self.palette is None:
                raise BadDataError(self._no_palette_message(path))
            return colors_to_ids(array, self.palette, path)
        return array

    def _no_palette_message(self, path: Path) -> str:
        return (
            f"label map {path} is an RGB colour image, but {self.kind} label maps hold one integer "
            "id per pixel (8-bit grey). Fix: use the dataset's id-valued label maps, not the "
            "colour visualisations."
        )

    def _label_fix(self) -> str:
        """How to fix an out-of-range id, for messages."""
        return "Fix: re-export the label map with valid ids."

    def _bad_ids_fix(self, bad: np.ndarray) -> str:
        """How to fix label maps holding the invalid raw ids ``bad``, for messages."""
        return self._label_fix()

    def _valid_ids_text(self) -> str:
        valid = np.flatnonzero(self._lut >= 0)
        return _ranges_text(valid)

    def _check_ids(self, raw: np.ndarray, path: Path) -> None:
        """Every raw value of ``raw`` must map to a channel; else BadDataError naming ``path``."""
        if raw.size == 0:
            raise BadDataError(f"label map {path} is empty (0 pixels); fix: re-export it")
        bad = unknown_raw_ids(raw, self._lut)
        if bad.size == 0:
            return
        shown = ", ".join(str(int(v)) for v in bad[:_SHOWN_IN_MESSAGES])
        more = f" and {len(bad) - _SHOWN_IN_MESSAGES} more" if len(bad) > _SHOWN_IN_MESSAGES else ""
        raise BadDataError(
            f"label map {path} holds id(s) {shown}{more}, outside the ids {self.kind} accepts "
            f"({self._valid_ids_text()}; num_labels={self.num_labels}). {self._bad_ids_fix(bad)}"
        )

    # ------------------------------------------------------------- checking every label map
    def check_label_files(
        self, files: Sequence[str | Path], folder: str | Path | None = None, scan: LabelScan | None = None,
        *, cache: bool = True,
    ) -> LabelCheck:
        """Check label maps as this dataset checks its own when built: every raw id must map to a
        channel and every colour be in the palette; one :class:`LabelMapError` lists every bad file
        (names relative to ``folder``, by default the files' common folder). The files are read by
        :func:`scan_label_maps` (cached under ``folder`` when ``cache``) unless ``scan`` has them."""
        files = [Path(path) for path in files]
        if not files:
            return LabelCheck(0, 0, 0, None)
        folder = Path(folder) if folder is not None else Path(os.path.commonpath([str(p.parent) for p in files]))
        if scan is None or any(path not in scan.stats and path not in scan.errors for path in files):
            scan = scan_label_maps(files, folder, cache=cache)
        bad_ids: dict[Path, np.ndarray] = {}
        problems: dict[Path, str] = {}
        for path in files:
            if path in scan.errors:
                problems[path] = str(scan.errors[path])
                continue
            stats = scan.stats[path]
            if "colours" in stats:
                if self.palette is None:
                    problems[path] = self._no_palette_message(path)
                    continue
                codes = np.asarray(stats["colours"], dtype=np.uint32)
                ids, unknown = lookup_codes(codes, self.palette)
                if unknown.any():
                    problems[path] = _unlisted_colours_message(path, codes[unknown])
                    continue
                raw = ids.astype(np.int64)
            else:
                raw = np.asarray(stats["ids"], dtype=np.int64)
            bad = unknown_raw_ids(raw, self._lut)
            if bad.size:
                bad_ids[path] = bad
        if not bad_ids and not problems:
            return scan.check
        parts = []
        if bad_ids:
            parts.append(self._bad_ids_message(folder, bad_ids))
        if problems:
            if not bad_ids and len(problems) == 1:
                parts.append(next(iter(problems.values())))
            else:
                messages = list(problems.values())
                listing = "\n  ".join(messages[:_SHOWN_BAD_FILES])
                hidden = len(messages) - _SHOWN_BAD_FILES
                more = f"\n  ... and {hidden} more" if hidden > 0 else ""
                parts.append(f"{len(problems)} label map(s) in {folder} cannot be used:\n  {listing}{more}")
        raise LabelMapError("\n".join(parts), files=sorted({*bad_ids, *problems}), check=scan.check)

    def _bad_ids_message(self, folder: Path, bad_ids: Mapping[Path, np.ndarray]) -> str:
        """``"3 label maps in FOLDER hold ids >= num_labels=11: a.png (max id 14), .... Fix: ..."``"""
        valid = np.flatnonzero(self._lut >= 0)
        top = int(valid.max())
        contiguous = int(valid.min()) == 0 and valid.size == top + 1
        above = all(int(bad.min()) > top for bad in bad_ids.values())
        if contiguous and above:
            what = f"ids >= num_labels={self.num_labels}" if top + 1 == self.num_labels else f"ids > {top}"
        else:
            what = (f"ids that {self.kind} does not accept (it accepts {_ranges_text(valid)}; "
                    f"num_labels={self.num_labels})")
        items = []
        for path, bad in list(bad_ids.items())[:_SHOWN_BAD_FILES]:
            if int(bad.min()) > top:
                detail = f"max id {int(bad.max())}"
            else:
                detail = ("id " if bad.size == 1 else "ids ") + ", ".join(str(int(v)) for v in bad[:_SHOWN_IN_MESSAGES])
                detail += f" and {bad.size - _SHOWN_IN_MESSAGES} more" if bad.size > _SHOWN_IN_MESSAGES else ""
            items.append(f"{_relative_name(path, folder)} ({detail})")
        if len(bad_ids) > _SHOWN_BAD_FILES:
            items.append(f"... and {len(bad_ids) - _SHOWN_BAD_FILES} more")
        n = len(bad_ids)
        every_bad = np.unique(np.concatenate(list(bad_ids.values())))
        return (
            f"{n} label map{'s' if n > 1 else ''} in {folder} hold{'' if n > 1 else 's'} {what}: "
            f"{', '.join(items)}. {self._bad_ids_fix(every_bad)}"
        )

    @staticmethod
    def _check_same_size(image_path: Path, image_size: tuple[int, int], other: Path,
                         shape: tuple[int, ...], what: str = "label map") -> None:
        if tuple(shape[:2]) != (image_size[1], image_size[0]):
            raise BadDataError(
                f"{what} {other} is {shape[1]}x{shape[0]} but its image {image_path} is "
                f"{image_size[0]}x{image_size[1]}; a {what} must have its image's size. Fix: "
                f"re-export the {what} at the image's size (or pair it with the right image)."
            )


def _unlisted_colours_message(path: Path, codes: np.ndarray) -> str:
    shown = ", ".join(str([int(c >> 16), int((c >> 8) & 255), int(c & 255)]) for c in codes[:_SHOWN_IN_MESSAGES])
    more = f" and {len(codes) - _SHOWN_IN_MESSAGES} more" if len(codes) > _SHOWN_IN_MESSAGES else ""
    return (
        f"label map {path} has pixels of colour(s) {shown}{more} that the palette does not list. Fix: add "
        "these colours to the palette file, or set label_palette=infer."
    )


def _relative_name(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return str(path)


def unknown_raw_ids(raw: np.ndarray, raw_to_index: np.ndarray) -> np.ndarray:
    """The distinct values of a label map ``raw`` that ``raw_to_index`` maps to no channel (outside
    the table, or -1 in it); empty when every pixel is valid. Sorted."""
    lut = np.asarray(raw_to_index)
    size = len(lut)
    if raw.size and int(raw.min()) >= 0 and int(raw.max()) < size:
        counts = np.bincount(raw.ravel(), minlength=size)[:size]
        return np.flatnonzero((counts > 0) & (lut < 0))
    return np.unique(raw[(raw < 0) | (raw >= size)])


def _ranges_text(values: np.ndarray) -> str:
    """``[0, 1, 2, 5, 255]`` -> ``"0..2, 5, 255"``."""
    parts, values = [], [int(v) for v in values]
    start = prev = values[0]
    for value in values[1:] + [None]:
        if value is not None and value == prev + 1:
            prev = value
            continue
        parts.append(str(start) if start == prev else f"{start}..{prev}")
        if value is not None:
            start = prev = value
    return ", ".join(parts)


# --------------------------------------------------------------------- helpers for subclasses
def require_folder(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is a folder, else DatasetNotFoundError saying what was expected there."""
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} {path} does not exist. {fix}")
    return path


def files_by_key(
    files: Sequence[Path], key: Callable[[Path], str | None], folder: Path, what: str
) -> dict[str, Path]:
    """``{key(file): file}``; files whose key is None are skipped; a key twice is BadDataError."""
    found: dict[str, Path] = {}
    for path in sorted(files):
        name = key(path)
        if name is None:
            continue
        if name in found:
            raise BadDataError(
                f"two {what} in {folder} share the name {name!r}: {found[name]} and {path}; "
                "fix: keep one of them (files are joined by name)"
            )
        found[name] = path
    return found


def list_files(folder: Path, extensions: Sequence[str], recursive: bool = False) -> list[Path]:
    """Visible files of ``folder`` (and its sub-folders when ``recursive``) with these extensions."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in found
        if path.suffix.lower() in extensions
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def join_pairs(
    images: Mapping[str, Path], labels: Mapping[str, Path], image_folder: Path, label_folder: Path
) -> list[str]:
    """The keys with both an image and a label, sorted; an unpaired file is BadDataError."""
    if not images and not labels:
        raise BadDataError(
            f"no images in {image_folder} and no label maps in {label_folder}; the folders are "
            f"empty. Fix: point the dataset at a folder holding the pairs (images: "
            f"{', '.join(IMAGE_EXTENSIONS)}; labels: {', '.join(LABEL_EXTENSIONS)})."
        )
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if no_label or no_image:
        lines = []
        if no_label:
            lines.append(
                f"{len(no_label)} image(s) in {image_folder} have no label map in {label_folder}: "
                + _short([images[k].name for k in no_label])
            )
        if no_image:
            lines.append(
                f"{len(no_image)} label map(s) in {label_folder} have no image in {image_folder}: "
                + _short([labels[k].name for k in no_image])
            )
        raise BadDataError(
            "missing pair: " + "; ".join(lines) + ". Fix: add the missing files or delete the "
            "unpaired ones (an image and its label map are joined by name)."
        )
    return sorted(images)


def join_instances(
    keys: Sequence[str], instances: Mapping[str, Path], use_instances: bool | str, folder: Path,
    pattern: str,
) -> dict[str, Path] | None:
    """The instance map of every key, or None when not used; ``use_instances`` True, False or
    "auto" (use them when there are any)."""
    if use_instances not in (True, False, "auto"):
        raise ValueError(f"use_instances must be True, False or 'auto', got {use_instances!r}")
    if use_instances is False:
        return None
    if not instances:
        if use_instances == "auto":
            return None
        raise BadDataError(
            f"use_instances is on but there are no instance maps ({pattern}) in {folder}. Fix: add "
            "them, or set use_instances=no (False from Python) to train without instance boundaries."
        )
    missing = [key for key in keys if key not in instances]
    if missing:
        raise BadDataError(
            f"missing pair: {len(missing)} of {len(keys)} samples have no instance map ({pattern}) "
            f"in {folder}: {_short(missing)}. Fix: add them, or set use_instances=no (False from Python)."
        )
    return {key: instances[key] for key in keys}


def _short(names: Sequence[str]) -> str:
    shown = ", ".join(str(name) for name in names[:_SHOWN_IN_MESSAGES])
    return shown + (f" and {len(names) - _SHOWN_IN_MESSAGES} more" if len(names) > _SHOWN_IN_MESSAGES else "")


def check_split(split: str, valid: Sequence[str], dataset: str) -> str:
    if split not in valid:
        raise ValueError(f"{dataset} has splits {', '.join(map(repr, valid))}, not {split!r}")
    return split


# ---------------------------------------------------------------------------- by name (spec)
# kind -> "module:Class" (imported when used) or a callable(root, split=..., **kwargs).
# Add a kind by adding an entry; a kind in ROOTLESS_KINDS is written without ":PATH" and its
# factory is called as factory(split=..., **kwargs) (root=PATH when one is given).
SEMANTIC_DATASETS: dict[str, str] = {  # kind -> "module:Class"
    "coco-stuff": "gauguin.data.coco_stuff:CocoStuff",
    "cityscapes": "gauguin.data.cityscapes:Cityscapes",
    "ade20k": "gauguin.data.ade20k:ADE20K",
    "fashion-mnist": "gauguin.data.silhouettes:FashionMNISTSilhouettes",
    "folder": "gauguin.data.label_folder:LabelFolder",
}
ROOTLESS_KINDS: set[str] = {"fashion-mnist"}


def build_semantic_dataset(spec: str, split: str = "train", **kwargs: Any) -> Any:
    """The dataset named by ``spec``: ``"coco-stuff:PATH"``, ``"cityscapes:PATH"``, ``"ade20k:PATH"``,
    ``"folder:PATH"`` or ``"fashion-mnist"`` (silhouettes); ``kwargs`` go to its constructor
    (``crop_size``, ``preprocess``, ``augment``, ...)."""
    return build_from_spec(spec, split, kwargs, SEMANTIC_DATASETS, ROOTLESS_KINDS, "semantic")


def build_from_spec(
    spec: str, split: str, kwargs: dict[str, Any], registry: Mapping[str, str], rootless: set[str], what: str
) -> Any:
    """The dataset of ``registry`` named by ``spec`` (``KIND`` or ``KIND:PATH``)."""
    kind, sep, root = str(spec).partition(":")
    kind = kind.strip().lower().replace("_", "-")
    if kind not in registry:
        valid = tuple(registry)
        close = difflib.get_close_matches(kind, valid, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"unknown {what} dataset {kind!r} in {spec!r}; valid kinds are "
            f"{', '.join(repr(k) for k in valid)} (folders written folder:PATH){hint}"
        )
    module, _, name = registry[kind].partition(":")
    factory = getattr(importlib.import_module(module), name)
    given = kwargs.pop("root", None)  # data_root of a run config
    if given and kind not in rootless:
        raise ValueError(f"data_root={given} does nothing with dataset {spec!r}: its folder is part of the spec "
                         f"({kind}:PATH); drop data_root")
    if given and root and Path(given) != Path(root):
        raise ValueError(f"dataset {spec!r} names a folder and data_root={given} another; give the folder once")
    root = root or given or ""
    if kind in rootless:
        return factory(split=split, **kwargs) if not root else factory(root=root, split=split, **kwargs)
    if not sep or not root.strip():
        raise ValueError(f"{spec!r} names no folder; write {kind}:PATH")
    return factory(root, split=split, **kwargs)
