"""One :class:`Preprocessing` value for every dataset: what a family or a user asks of the pixels.

Each field is None ("not set") unless given; a dataset fills the unset ones from its own
``defaults`` (:meth:`Preprocessing.over`). :func:`gauguin.data.build` refuses a set field that the
chosen data does nothing with.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Any

PREPROCESS_MODES = ("resize_and_crop", "scale_width_and_crop", "fixed", "none")
ALWAYS_USED = ("crop_size", "augment")  # every dataset uses these (a family always passes them)


@dataclass(frozen=True)
class Preprocessing:
    """How samples are sized, cropped, flipped and coloured; None = the dataset's own default.

    - ``crop_size``: output width (and height at aspect 1) in pixels, a run config's ``image_size``;
    - ``load_size``: width resized to before cropping (``resize_and_crop``, ``scale_width_and_crop``);
    - ``aspect_ratio``: width / height of the crop;
    - ``mode``: a run config's ``preprocess``: ``resize_and_crop``, ``scale_width_and_crop``,
      ``fixed`` or ``none`` (see :class:`~gauguin.data.resizing.Resizer`); ``"auto"`` is None;
    - ``flip``: random horizontal flips when augmenting;
    - ``augment``: random crops / flips (training) or center crops without flips (evaluation);
    - ``channels``: 1 (grey) or 3 (RGB), for the data that can give either.
    """

    crop_size: int | None = None
    load_size: int | None = None
    aspect_ratio: float | None = None
    mode: str | None = None
    flip: bool | None = None
    augment: bool | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.mode == "auto":
            object.__setattr__(self, "mode", None)
        if self.mode is not None and self.mode not in PREPROCESS_MODES:
            close = difflib.get_close_matches(str(self.mode), PREPROCESS_MODES, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"unknown preprocess {self.mode!r}; valid modes are {', '.join(map(repr, PREPROCESS_MODES))}{hint}"
            )
        for name in ("crop_size", "load_size"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive number of pixels, got {value!r}")
        if self.aspect_ratio is not None and not self.aspect_ratio > 0:
            raise ValueError(f"aspect_ratio (width / height) must be positive, got {self.aspect_ratio}")
        if self.channels is not None and self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {self.channels}")

    def given(self) -> dict[str, Any]:
        """The set (non-None) fields, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def over(self, defaults: Preprocessing) -> Preprocessing:
        """These fields where set, ``defaults``' elsewhere."""
        return dataclasses.replace(defaults, **self.given())

    def replace(self, **changes: Any) -> Preprocessing:
        """A copy with ``changes`` (None unsets a field)."""
        return dataclasses.replace(self, **changes)


NO_PREPROCESSING = Preprocessing()

# SPADE's / pix2pix's defaults for folders of photos: resize to 286, random 256 crop, random flip
PHOTO_DEFAULTS = Preprocessing(crop_size=256, load_size=286, aspect_ratio=1.0, mode="resize_and_crop",
                               flip=True, augment=True)


def fields_used(defaults: Preprocessing) -> frozenset[str]:
    """The fields a dataset with these ``defaults`` uses: those it has a default for, and
    :data:`ALWAYS_USED`."""
    return frozenset(defaults.given()) | frozenset(ALWAYS_USED)


def required(prep: Preprocessing, name: str, what: str) -> Any:
    """``prep``'s field ``name``; ValueError naming ``what`` needs it when it is not set."""
    value = getattr(prep, name)
    if value is None:
        raise ValueError(f"{what} needs Preprocessing({name}=...): it has no default {name}")
    return value
