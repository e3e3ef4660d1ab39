"""Resizing, cropping and flipping: SPADE's preprocessing modes as per-sample plans.

A :class:`Resizer` (made from a fully set :class:`~gauguin.data.preprocessing.Preprocessing`)
turns a sample's size and its random draw into a :class:`Plan`, applied identically to the photo
(bicubic, antialiased) and to label / instance maps (nearest neighbour, so no id is invented).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from gauguin.data.errors import BadDataError
from gauguin.data.label_files import _undecodable
from gauguin.data.preprocessing import Preprocessing


@dataclass(frozen=True)
class Plan:
    """How one sample is resized, cropped and flipped."""

    resize: tuple[int, int] | None  # (width, height) to resize to, or None to keep the size
    top: int
    left: int
    height: int  # of the crop
    width: int
    flip: bool


@dataclass(frozen=True)
class Resizer:
    """SPADE's preprocessing, shared by the photo, the label and the instance map.

    - ``resize_and_crop``: resize to ``load_size`` wide × ``load_size / aspect_ratio`` high, then
      crop ``crop_size`` wide × ``crop_size / aspect_ratio`` high (square at aspect 1, as SPADE);
    - ``scale_width_and_crop``: scale the width to ``load_size`` keeping the aspect (the height
      is at least the crop's), then crop as above;
    - ``fixed``: resize to ``crop_size`` wide × ``round(crop_size / aspect_ratio)`` high;
    - ``none``: keep the files' size (they must all have it).

    Crops are random and flips (when ``flip``) happen with probability 1/2 when augmenting;
    otherwise the crop is centered and nothing is flipped.
    """

    mode: str
    crop_size: int
    load_size: int
    aspect_ratio: float
    flip: bool

    def __post_init__(self) -> None:
        if self.mode in ("resize_and_crop", "scale_width_and_crop") and self.load_size < self.crop_size:
            raise ValueError(
                f"preprocess={self.mode!r} crops {self.crop_size} px (the crop size, image_size in a run "
                f"config) out of load_size={self.load_size}: load_size must be >= the crop size"
            )

    @classmethod
    def of(cls, prep: Preprocessing) -> Resizer:
        """The resizer of a ``prep`` whose mode, sizes, aspect and flip are all set."""
        return cls(prep.mode, prep.crop_size, prep.load_size, prep.aspect_ratio, prep.flip)

    @property
    def crop_hw(self) -> tuple[int, int]:
        """(height, width) of the crop, and of every output except in mode ``none``."""
        return max(1, round(self.crop_size / self.aspect_ratio)), self.crop_size

    def plan(self, width: int, height: int, draw: tuple[float, float, float] | None) -> Plan:
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
            return Plan(resize, range_y // 2, range_x // 2, crop_h, crop_w, False)
        u_y, u_x, u_flip = draw
        top = min(int(u_y * (range_y + 1)), range_y)
        left = min(int(u_x * (range_x + 1)), range_x)
        return Plan(resize, top, left, crop_h, crop_w, self.flip and u_flip < 0.5)

    def output_size(self, first_file: Path, halve_width: bool = False) -> tuple[int, int]:
        """(H, W) of every output: the crop's, or under ``none`` the size of ``first_file`` (its
        left half when ``halve_width``, for side-by-side pairs)."""
        if self.mode != "none":
            return self.crop_hw
        height, width = stored_size(first_file)
        return height, width // 2 if halve_width else width

    def check_size(self, image_size: tuple[int, int], size: tuple[int, int], where: str) -> None:
        """Under ``none`` every image must have ``image_size`` (H, W); ``size`` is (W, H)."""
        if self.mode == "none" and (size[1], size[0]) != tuple(image_size):
            raise BadDataError(
                f"{where} is {size[0]}x{size[1]} but preprocess='none' needs every image at "
                f"{image_size[1]}x{image_size[0]} (the first one's size). Fix: resize the files, or use "
                "preprocess='resize_and_crop' or 'fixed'."
            )


def stored_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image file at ``path``, read from its header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as err:  # PIL raises many types
        raise _undecodable(path, "image", err) from err
    return height, width


def nearest_indices(size_in: int, size_out: int, start: int = 0, length: int | None = None) -> np.ndarray:
    """Source indices of output pixels ``start .. start+length-1`` of a nearest resize (pixel centers)."""
    out = np.arange(start, start + (size_out if length is None else length), dtype=np.float64)
    return np.minimum(((out + 0.5) * size_in / size_out).astype(np.int64), size_in - 1)


def apply_to_ids(array: np.ndarray, plan: Plan) -> np.ndarray:
    """Resize (nearest neighbour), crop and flip an ``[H, W]`` id map by ``plan``; the output holds
    only ids of the input."""
    height, width = array.shape
    out_w, out_h = plan.resize or (width, height)
    rows = nearest_indices(height, out_h, plan.top, plan.height)
    cols = nearest_indices(width, out_w, plan.left, plan.width)
    if plan.flip:
        cols = cols[::-1]
    return array[np.ix_(rows, cols)]


def apply_to_image(image: Image.Image, plan: Plan) -> np.ndarray:
    """Resize (bicubic, antialiased), crop and flip a PIL RGB image by ``plan``: uint8 ``[h, w, 3]``."""
    if plan.resize is not None:
        image = image.resize(plan.resize, Image.Resampling.BICUBIC)
    pixels = np.asarray(image)[plan.top : plan.top + plan.height, plan.left : plan.left + plan.width]
    if plan.flip:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)
