"""Checking label maps against a dataset's ids and palette: :class:`LabelChecks`, the label side of
:class:`~gauguin.data.semantic.SemanticDataset`, and the messages naming every bad file."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gauguin.data.errors import BadDataError, LabelMapError
from gauguin.data.label_files import _SHOWN_IN_MESSAGES, RGB, colors_to_ids, lookup_codes, read_label_file
from gauguin.data.label_scan import _SHOWN_BAD_FILES, LabelCheck, LabelScan, scan_label_maps


class LabelChecks:
    """Reading raw label ids and checking them; the class sets ``kind`` (its name in messages),
    ``num_labels``, ``palette`` and ``_lut`` (raw value -> channel, -1 invalid)."""

    kind = "semantic"
    num_labels: int
    palette: Mapping[int, RGB] | None
    _lut: np.ndarray

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
