"""Paired semantic-synthesis data: a photo, its label map and optionally an instance map.

The shared machinery of the SPADE / pix2pix / pix2pixHD datasets (COCO-Stuff, Cityscapes,
ADE20K and folders of your own pairs):

- reading label maps in 8-bit grey, palette ('P': the index is the id), 16-bit, or RGB colour
  codes with a palette (:func:`read_label_file`, :func:`load_palette`), and instance maps
  (:func:`read_instance_file`);
- SPADE's preprocessing modes, applied identically to the photo (bicubic, antialiased) and to the
  label and instance maps (nearest neighbour, so no id is ever invented): ``resize_and_crop``,
  ``scale_width_and_crop``, ``fixed`` and ``none``, plus a random horizontal flip;
- :class:`SemanticDataset`, whose ``get_batch(indices)`` gives ``{"image", "label_map"[,
  "instance"]}``; the random crop offsets and flips are drawn from torch's global RNG in the
  calling thread, in index order, before any file is decoded, so a run restored with its RNG
  state sees exactly the same batches;
- every label map checked once when a dataset is built (:func:`scan_label_maps`: a thread pool,
  each file's distinct ids or colours cached by (path, size, mtime_ns) under
  ``user_cache_dir("label_maps")``), so a bad id stops the run before its first step, naming all
  the bad files at once;
- :func:`build_semantic_dataset` for specs like ``"coco-stuff:PATH"``.

One-hot encoding is not done here: the training step does it on the device
(:mod:`gauguin.nn.labels`).
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from gauguin.data.errors import BadDataError, DatasetNotFoundError, LabelMapError
from gauguin.data.folder import DECODE_THREADS, IMAGE_EXTENSIONS
from gauguin.fileio import user_cache_dir, write_bytes_atomic

logger = logging.getLogger(__name__)

PREPROCESS_MODES = ("resize_and_crop", "scale_width_and_crop", "fixed", "none")
DONT_CARE_NAME = "dont_care"
LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless only: a JPEG label map has invented ids
RGB = tuple[int, int, int]

_SHOWN_IN_MESSAGES = 5
_ID_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L", "I;16N")
_COLOUR_MODES = ("RGB", "RGBA")


# ----------------------------------------------------------------------------- reading files
def read_label_file(path: str | Path | BinaryIO, name: str = "") -> np.ndarray:
    """The raw content of a label map: ``[H, W]`` integer ids, or ``[H, W, 3]`` uint8 colours.

    8-bit grey ('L'), bilevel ('1') and palette images ('P', whose palette index is the id) give
    uint8 ids; 16-bit ('I;16') and 32-bit ('I') images give wider integers; RGB(A) images give
    their colours, to be turned into ids with a palette (:func:`colors_to_ids`). Anything else, or
    a file that cannot be decoded, raises :class:`BadDataError` naming the file (or ``name``, for an
    open binary file such as a request's bytes).
    """
    path, shown = _source(path, name)
    try:
        with Image.open(path) as image:
            mode = image.mode
            if mode in _ID_MODES:
                array = np.array(image)
            elif mode in ("LA", "PA"):  # grey or palette ids with an alpha channel: drop the alpha
                array = np.array(image.getchannel(0))
            elif mode in _COLOUR_MODES:
                array = np.array(image.convert("RGB"))
            else:
                raise BadDataError(
                    f"label map {shown} is a {mode!r} image; label maps must hold integer ids (8- or "
                    "16-bit grey, or palette) or RGB colour codes. Fix: re-export it as such a PNG."
                )
    except BadDataError:
        raise
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        raise _undecodable(shown, "label map", err) from err
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    return array


def read_instance_file(path: str | Path) -> np.ndarray:
    """An instance map as ``[H, W]`` integer ids (8-, 16- or 32-bit grey, or palette)."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            if image.mode not in _ID_MODES:
                raise BadDataError(
                    f"instance map {path} is a {image.mode!r} image; instance maps must hold integer "
                    "ids (8-bit, 16-bit or 32-bit grey). Fix: re-export it as a grey PNG of ids."
                )
            array = np.array(image)
    except BadDataError:
        raise
    except Exception as err:  # PIL raises many types
        raise _undecodable(path, "instance map", err) from err
    if array.dtype == np.bool_:
        array = array.astype(np.uint8)
    if array.size and int(array.min()) < 0:
        raise BadDataError(f"instance map {path} holds negative ids; fix: re-export it with ids >= 0")
    return array


def model_pixels(image: Image.Image, size: tuple[int, int], channels: int) -> np.ndarray:
    """A photo as a model input: ``[channels, H, W]`` float32 in [-1, 1] at ``size`` (H, W), bicubic."""
    image = image.convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image.resize(size[::-1], resample=Image.BICUBIC), dtype=np.float32)
    return pixels.reshape(*pixels.shape[:2], -1).transpose(2, 0, 1) / 127.5 - 1.0


def read_rgb_image(path: str | Path | BinaryIO, name: str = "") -> Image.Image:
    """The photo at ``path`` (or an open binary file, called ``name`` in errors) as an RGB PIL image,
    pixels exactly as stored (no EXIF rotation: label maps are drawn on the stored pixels); 16-bit
    grey is scaled, alpha goes on white."""
    path, shown = _source(path, name)
    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
                grey = np.array(image).astype(np.float32)
                image = Image.fromarray(np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8), mode="L")
            if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                rgba = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
            return image.convert("RGB")
    except Exception as err:
        raise _undecodable(shown, "image", err) from err


def _source(path: str | Path | BinaryIO, name: str) -> tuple[Path | BinaryIO, str]:
    """What PIL opens (a path, or the open file itself) and how errors name it."""
    if hasattr(path, "read"):
        return path, name or "(an open file)"
    return Path(path), str(path)


def _undecodable(path: Path | str, what: str, err: Exception) -> BadDataError:
    return BadDataError(
        f"cannot decode {what} {path} ({type(err).__name__}: {err}); the file is unreadable or "
        "corrupt. Fix: re-export or re-download it, or delete it together with its pair."
    )


# ---------------------------------------------------------------------------------- palettes
def load_palette(source: str | Path | Mapping | Sequence) -> dict[int, RGB]:
    """A palette ``{label id: (r, g, b)}`` from a JSON or YAML file, a mapping or a list.

    The file (or object) holds either a mapping ``{id: [r, g, b]}`` (ids as ints or digit strings)
    or a list of ``[r, g, b]`` whose position is the id. Colours must be distinct.
    """
    where = "palette"
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        where = f"palette file {path}"
        if not path.is_file():
            raise DatasetNotFoundError(
                f"{where} does not exist; set label_palette=PATH of a JSON/YAML file mapping each "
                "label id to [r, g, b], or label_palette=infer"
            )
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml  # YAML is a superset of JSON: it reads both

                data = yaml.safe_load(text)
        except Exception as err:
            raise BadDataError(f"cannot parse {where} ({err}); fix its JSON/YAML syntax") from err
    else:
        data = source

    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        items = list(enumerate(data))
    else:
        raise BadDataError(
            f"{where} must be a mapping {{id: [r, g, b]}} or a list of [r, g, b], got {type(data).__name__}"
        )
    palette: dict[int, RGB] = {}
    for key, colour in items:
        try:
            label = int(key)
            rgb = tuple(int(c) for c in colour)
        except (TypeError, ValueError):
            raise BadDataError(
                f"{where}: entry {key!r}: {colour!r} is not 'id: [r, g, b]' with integer id and colour"
            ) from None
        if label < 0 or len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
            raise BadDataError(
                f"{where}: entry {key!r}: {colour!r} needs an id >= 0 and three colour values in 0..255"
            )
        palette[label] = rgb  # type: ignore[assignment]
    if not palette:
        raise BadDataError(f"{where} is empty; it must give a colour to every label id")
    seen: dict[RGB, int] = {}
    for label, rgb in palette.items():
        if rgb in seen:
            raise BadDataError(
                f"{where}: ids {seen[rgb]} and {label} share the colour {list(rgb)}; each id needs its own colour"
            )
        seen[rgb] = label
    return dict(sorted(palette.items()))


def _colour_codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32, copy=False)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unique_colors(rgb: np.ndarray) -> list[RGB]:
    """The distinct colours of an ``[H, W, 3]`` uint8 array, sorted by (r, g, b)."""
    codes = np.unique(_colour_codes(rgb))
    return [(int(c >> 16), int((c >> 8) & 255), int(c & 255)) for c in codes]


def lookup_colors(rgb: np.ndarray, palette: Mapping[int, RGB]) -> tuple[np.ndarray, np.ndarray]:
    """Ids ``[H, W]`` (int32) of the pixels of an RGB array by ``palette`` (id -> colour), and the mask
    of pixels whose colour the palette does not list (their id is arbitrary)."""
    return lookup_codes(_colour_codes(rgb), palette)


def lookup_codes(pixels: np.ndarray, palette: Mapping[int, RGB]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lookup_colors` of 24-bit colour codes ``(r << 16) | (g << 8) | b``."""
    codes = np.array([(r << 16) | (g << 8) | b for r, g, b in palette.values()], dtype=np.uint32)
    ids = np.array(list(palette.keys()), dtype=np.int32)
    order = np.argsort(codes)
    codes, ids = codes[order], ids[order]
    pos = np.minimum(np.searchsorted(codes, pixels), len(codes) - 1)
    return ids[pos], codes[pos] != pixels


def colors_to_ids(rgb: np.ndarray, palette: Mapping[int, RGB], path: str | Path = "label map") -> np.ndarray:
    """Label ids ``[H, W]`` (int32) of an RGB label map; a colour absent from ``palette`` is a
    :class:`BadDataError` naming the file and the colour."""
    ids, unknown = lookup_colors(rgb, palette)
    if unknown.any():
        bad = unique_colors(rgb[unknown][:, None, :])
        shown = ", ".join(str(list(c)) for c in bad[:_SHOWN_IN_MESSAGES])
        more = f" and {len(bad) - _SHOWN_IN_MESSAGES} more" if len(bad) > _SHOWN_IN_MESSAGES else ""
        raise BadDataError(
            f"label map {path} has {int(unknown.sum())} pixel(s) of colour(s) {shown}{more} that the "
            "palette does not list. Fix: add these colours to the palette file, or set label_palette=infer."
        )
    return ids


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


# ------------------------------------------------------------------- checking every label map once
LABEL_CACHE_VERSION = 1  # bump when what is cached changes
_CACHE_FILES_KEPT = 64  # cache files of other folders beyond this many are deleted, oldest first
_SHOWN_BAD_FILES = 20  # bad label maps named in a message (``LabelMapError.files`` has all)


@dataclass
class LabelCheck:
    """What checking a dataset's label maps did: ``files`` checked, ``decoded`` (read from disk) and
    ``cached`` (taken from the cache file ``cache_file``, None when not cached)."""

    files: int
    decoded: int
    cached: int
    cache_file: Path | None


@dataclass
class LabelScan:
    """The distinct raw values of label maps: ``stats[path]`` is ``{"ids": [...]}`` (id-valued maps)
    or ``{"colours": [...]}`` (RGB maps, as ``(r << 16) | (g << 8) | b``); ``errors[path]`` the
    :class:`BadDataError` of a file that cannot be used at all (unreadable, wrong mode, empty)."""

    stats: dict[Path, dict[str, list[int]]]
    errors: dict[Path, BadDataError]
    check: LabelCheck


def label_cache_file(folder: str | Path) -> Path:
    """The cache file of the label maps under ``folder``: ``user_cache_dir("label_maps")/<hash>.json``,
    one per folder (by its absolute path)."""
    key = hashlib.sha256(str(Path(folder).expanduser().resolve()).encode()).hexdigest()[:24]
    return user_cache_dir("label_maps") / f"{key}.json"


def distinct_ids(array: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer id map (bincount for small non-negative ids)."""
    flat = array.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = int(flat.min()), int(flat.max())
    if low >= 0 and high < 1 << 20:
        return np.flatnonzero(np.bincount(flat, minlength=high + 1))
    return np.unique(flat).astype(np.int64)


def label_map_stats(path: str | Path) -> dict[str, list[int]]:
    """What checking needs of one label map: ``{"ids": distinct ids}`` or ``{"colours": distinct colour
    codes}``; :class:`BadDataError` naming the file when it cannot be used (see :func:`read_label_file`)."""
    array = read_label_file(path)
    if array.size == 0:
        raise BadDataError(f"label map {path} is empty (0 pixels); fix: re-export it")
    if array.ndim == 3:
        return {"colours": np.unique(_colour_codes(array)).tolist()}
    return {"ids": distinct_ids(array).tolist()}


def scan_label_maps(files: Sequence[Path], folder: str | Path | None = None, *, cache: bool = True) -> LabelScan:
    """:func:`label_map_stats` of every file, decoded in a thread pool; with ``cache`` (and a ``folder``),
    the results are kept in :func:`label_cache_file` of ``folder``, keyed by each file's path, size
    and ``mtime_ns``, so a second scan of unchanged files decodes none. The cache file is written
    atomically and only when something changed; a cache that cannot be read or written is ignored.
    A file's errors are never cached."""
    files = [Path(path) for path in files]
    cache_file = label_cache_file(folder) if cache and folder is not None else None
    base = Path(folder).expanduser().resolve() if folder is not None else None
    old = _read_label_cache(cache_file, base) if cache_file else {}
    stats: dict[Path, dict[str, list[int]]] = {}
    errors: dict[Path, BadDataError] = {}
    entries: dict[str, dict[str, Any]] = {}
    todo: list[tuple[Path, str, tuple[int, int] | None]] = []
    for path in files:
        key = _cache_key(path, base)
        try:
            st = path.stat()
            stamp: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None  # read_label_file says what is wrong
        entry = old.get(key)
        if stamp is not None and entry is not None and (entry.get("size"), entry.get("mtime_ns")) == stamp:
            found = {k: entry[k] for k in ("ids", "colours") if k in entry}
            if len(found) == 1 and all(isinstance(v, list) for v in found.values()):
                stats[path] = found
                entries[key] = entry
                continue
        todo.append((path, key, stamp))

    def one(path: Path) -> dict[str, list[int]] | BadDataError:
        try:
            return label_map_stats(path)
        except BadDataError as err:
            return err

    if len(todo) > 1:
        with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, len(todo))) as pool:  # PIL frees the GIL
            results = list(pool.map(one, [path for path, _, _ in todo]))
    else:
        results = [one(path) for path, _, _ in todo]
    for (path, key, stamp), result in zip(todo, results):
        if isinstance(result, BadDataError):
            errors[path] = result
            continue
        stats[path] = result
        if stamp is not None:
            entries[key] = {"size": stamp[0], "mtime_ns": stamp[1], **result}
    if cache_file is not None and (todo or set(old) != set(entries)):
        _write_label_cache(cache_file, base, entries)
    return LabelScan(stats, errors, LabelCheck(len(files), len(todo), len(files) - len(todo), cache_file))


def _cache_key(path: Path, base: Path | None) -> str:
    absolute = path.expanduser().resolve()
    if base is not None:
        try:
            return absolute.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(absolute)


def _read_label_cache(cache_file: Path, base: Path | None) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(cache_file.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != LABEL_CACHE_VERSION or data.get("folder") != str(base):
        return {}
    files = data.get("files")
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def _write_label_cache(cache_file: Path, base: Path | None, entries: dict[str, dict[str, Any]]) -> None:
    data = {"version": LABEL_CACHE_VERSION, "folder": str(base), "files": entries}
    try:
        write_bytes_atomic(cache_file, json.dumps(data, separators=(",", ":")).encode())
        others = sorted((p for p in cache_file.parent.glob("*.json") if p != cache_file),
                        key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for stale in others[_CACHE_FILES_KEPT - 1:]:
            stale.unlink(missing_ok=True)
    except OSError as err:  # a read-only or full cache dir costs only speed
        logger.debug("cannot write the label-map cache %s: %s", cache_file, err)


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
    if kind in rootless:
        return factory(split=split, **kwargs) if not root else factory(root=root, split=split, **kwargs)
    if not sep or not root.strip():
        raise ValueError(f"{spec!r} names no folder; write {kind}:PATH")
    return factory(root, split=split, **kwargs)
