"""A folder of your own pairs: ``root/images/*`` and ``root/labels/*.png`` (+ ``root/instances/*.png``).

Files are joined by stem. Label maps may be 8-bit grey ('L'), palette-indexed ('P': the index is
the id), 16-bit ('I;16') or RGB colour-coded; colour-coded ones need a palette, from a JSON/YAML
file mapping id -> [r, g, b] (or a list of [r, g, b] by id) or inferred from the files.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gauguin.data.errors import BadDataError
from gauguin.data.folder import IMAGE_EXTENSIONS
from gauguin.data.semantic import (
    DONT_CARE_NAME,
    LABEL_EXTENSIONS,
    RGB,
    Preprocessing,
    SemanticDataset,
    SemanticSample,
    colors_to_ids,
    files_by_key,
    join_instances,
    join_pairs,
    list_files,
    load_palette,
    read_label_file,
    require_folder,
    unique_colors,
)

logger = logging.getLogger(__name__)

_LAYOUT = "images/<name>.<jpg|png|...>, labels/<name>.png and optionally instances/<name>.png"


class LabelFolder(SemanticDataset):
    """Pairs under ``root`` (or ``root/<split>`` when that holds ``images/``).

    - ``num_labels``: one-hot channels (including the don't-care one when ``dont_care_id`` is
      set). When None it is inferred as the largest id + 1 over all label files (and palette),
      which reads every label file once and logs the result: pass it when you know it.
    - ``palette``: for RGB label maps; a JSON/YAML file, a mapping ``{id: (r, g, b)}``, a list of
      colours by id, or ``"infer"`` (the distinct colours of all RGB label files, sorted by
      (r, g, b), get ids 0..K-1; see ``dataset.palette``).
    - ``dont_care_id``: a raw value (e.g. 255) meaning "unlabeled"; it goes to the last channel.
    - ``label_names``: names of the ``num_labels`` channels (default ``class_<id>``).

    Defaults: resize to 286×286, random 256×256 crop, random flip; instance maps when present.
    """

    kind = "folder"

    def __init__(
        self,
        root: str | Path,
        num_labels: int | None = None,
        palette: str | Path | Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | None = None,
        *,
        split: str | None = None,
        label_names: Sequence[str] | None = None,
        dont_care_id: int | None = None,
        crop_size: int = 256,
        load_size: int = 286,
        aspect_ratio: float = 1.0,
        preprocess: str = "resize_and_crop",
        flip: bool = True,
        augment: bool = True,
        use_instances: bool | str = "auto",
    ) -> None:
        preprocessing = Preprocessing(preprocess, crop_size, load_size, aspect_ratio, flip)
        if num_labels is not None and (not isinstance(num_labels, int) or num_labels < 1):
            raise ValueError(f"num_labels must be a positive int or None (infer), got {num_labels!r}")
        if dont_care_id is not None and (not isinstance(dont_care_id, int) or dont_care_id < 0):
            raise ValueError(f"dont_care_id must be a raw label value >= 0 or None, got {dont_care_id!r}")
        root = require_folder(
            Path(root).expanduser(), "label folder", f"Pass a folder holding {_LAYOUT}."
        )
        if split and (root / split / "images").is_dir():
            root = root / split
        layout = f"{root} must hold {_LAYOUT}"
        image_dir = require_folder(root / "images", "image folder", layout)
        label_dir = require_folder(root / "labels", "label folder", layout)
        images = files_by_key(list_files(image_dir, IMAGE_EXTENSIONS), lambda p: p.stem, image_dir, "images")
        labels = files_by_key(list_files(label_dir, LABEL_EXTENSIONS), lambda p: p.stem, label_dir, "label maps")
        keys = join_pairs(images, labels, image_dir, label_dir)
        inst_dir = root / "instances"
        found = (
            files_by_key(list_files(inst_dir, LABEL_EXTENSIONS), lambda p: p.stem, inst_dir, "instance maps")
            if inst_dir.is_dir() and use_instances is not False
            else {}
        )
        instances = join_instances(keys, found, use_instances, inst_dir, "instances/<name>.png")
        samples = [
            SemanticSample(key, images[key], labels[key], instances[key] if instances else None) for key in keys
        ]
        label_files = [labels[key] for key in keys]

        # palette
        extra_files: list[Path] = []
        self.palette_source = palette
        colours: dict[int, RGB] | None = None
        if isinstance(palette, str) and palette.lower() == "infer":
            palette = "infer"
        elif palette is not None:
            colours = load_palette(palette)
            if isinstance(palette, (str, Path)):
                extra_files.append(Path(palette).expanduser())

        # scan the label files when something has to be inferred from them
        largest_id = -1
        if num_labels is None or palette == "infer":
            used_ids, used_colours = _scan(label_files, colours, palette == "infer", dont_care_id)
            if palette == "infer":
                colours = {i: c for i, c in enumerate(sorted(used_colours))} if used_colours else None
                if colours:
                    logger.info(
                        "inferred a palette of %d colours from the RGB label maps in %s (ids by sorted "
                        "colour): %s", len(colours), label_dir,
                        ", ".join(f"{i}: {list(c)}" for i, c in colours.items()),
                    )
                else:
                    logger.info("palette='infer': no RGB label maps in %s, no palette needed", label_dir)
                if colours and dont_care_id is not None and dont_care_id < len(colours):
                    raise ValueError(
                        f"dont_care_id={dont_care_id} collides with the inferred palette's ids 0..{len(colours) - 1}"
                    )
            largest_id = used_ids
        if colours:
            largest_id = max([largest_id, *(i for i in colours if i != dont_care_id)])

        extra = 1 if dont_care_id is not None else 0
        if num_labels is None:
            num_labels = max(largest_id + 1, 1) + extra
            logger.warning(
                "num_labels not given: inferred %d (largest label id %d + 1%s) over %d label maps in %s; "
                "pass num_labels=N if some class is absent from these files",
                num_labels, largest_id, " + don't-care" if extra else "", len(label_files), label_dir,
            )
        ordinary = num_labels - extra  # ids 0..ordinary-1 are used as they are
        if extra and ordinary < 1:
            raise ValueError(f"num_labels={num_labels} leaves no class beside the don't-care channel")
        if dont_care_id is not None and dont_care_id < ordinary:
            raise ValueError(
                f"dont_care_id={dont_care_id} is also an ordinary class id (0..{ordinary - 1} with "
                f"num_labels={num_labels}, the last channel being don't-care); choose a value >= {ordinary}"
            )
        if colours:
            too_big = [i for i in colours if i >= ordinary and i != dont_care_id]
            if too_big:
                where = f"palette file {extra_files[0]}" if extra_files else "the palette"
                raise BadDataError(
                    f"{where} gives id(s) {too_big[:5]} but num_labels={num_labels} allows 0..{ordinary - 1}"
                    f"{' (plus dont_care_id)' if extra else ''}. Fix: raise num_labels or renumber the palette."
                )

        if label_names is None:
            label_names = [f"class_{i}" for i in range(ordinary)] + ([DONT_CARE_NAME] if extra else [])
        elif len(label_names) != num_labels:
            raise ValueError(f"label_names has {len(label_names)} names but num_labels is {num_labels}")

        lut = np.full(max(ordinary, (dont_care_id or 0) + 1), -1, dtype=np.int64)
        lut[:ordinary] = np.arange(ordinary)
        if dont_care_id is not None:
            lut[dont_care_id] = num_labels - 1
        self.dont_care_id = dont_care_id
        super().__init__(
            samples,
            root=root,
            raw_to_index=lut,
            label_names=label_names,
            dont_care_index=num_labels - 1 if extra else None,
            preprocessing=preprocessing,
            augment=augment,
            palette=colours,
            extra_source_files=extra_files,
        )

    def _no_palette_message(self, path: Path) -> str:
        return _no_palette(path)

    def _label_fix(self) -> str:
        return "Fix: pass a larger num_labels (or dont_care_id for an 'unlabeled' value), or re-export the label map."


def _no_palette(path: Path) -> str:
    return (
        f"label map {path} is an RGB colour image and no palette was given. Fix: pass "
        "palette='infer' (distinct colours sorted, ids 0..K-1) or palette=FILE (a JSON/YAML file "
        "mapping each label id to [r, g, b])."
    )


def _scan(
    files: Sequence[Path], palette: Mapping[int, RGB] | None, collect_colours: bool, dont_care_id: int | None
) -> tuple[int, set[RGB]]:
    """The largest id (except ``dont_care_id``) in the id-valued label maps (and colour-coded
    ones, through ``palette``), and the set of colours of the colour-coded ones."""

    def one(path: Path) -> tuple[int, list[RGB]]:
        array = read_label_file(path)
        if array.ndim == 3:
            if collect_colours:
                return -1, unique_colors(array)
            if palette is None:
                raise BadDataError(_no_palette(path))
            array = colors_to_ids(array, palette, path)
        if dont_care_id is not None:
            array = array[array != dont_care_id]
        if array.size and int(array.min()) < 0:
            raise BadDataError(f"label map {path} holds negative ids; fix: re-export it with ids >= 0")
        return (int(array.max()) if array.size else -1), []

    with ThreadPoolExecutor() as pool:
        results = list(pool.map(one, files))
    colours: set[RGB] = set()
    for _, found in results:
        colours.update(found)
    return max(largest for largest, _ in results), colours
