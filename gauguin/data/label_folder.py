"""A folder of your own pairs: ``root/images/*`` and ``root/labels/*.png`` (+ ``root/instances/*.png``).

Files are joined by stem. Label maps may be 8-bit grey ('L'), palette-indexed ('P': the index is
the id), 16-bit ('I;16') or RGB colour-coded; colour-coded ones need a palette, from a JSON/YAML
file mapping id -> [r, g, b] (or a list of [r, g, b] by id) or inferred from the files.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gauguin.data.errors import BadDataError
from gauguin.data.folder import IMAGE_EXTENSIONS
from gauguin.data.pairing import LABEL_EXTENSIONS, files_by_key, join_instances, join_pairs, list_files, require_folder
from gauguin.data.preprocessing import NO_PREPROCESSING, Preprocessing
from gauguin.data.semantic import DONT_CARE_NAME, SemanticDataset, SemanticSample
from gauguin.data.label_files import RGB, load_palette, lookup_codes
from gauguin.data.label_scan import LabelScan, scan_label_maps

logger = logging.getLogger(__name__)

_LAYOUT = "images/<name>.<jpg|png|...>, labels/<name>.png and optionally instances/<name>.png"


class LabelFolder(SemanticDataset):
    """Pairs under ``root`` (or ``root/<split>`` when that holds ``images/``).

    - ``num_labels``: one-hot channels (including the don't-care one when ``dont_care_id`` is
      set). When None it is inferred as the largest id + 1 over all label files (and palette),
      which reads every label file once and logs the result: pass it when you know it.
    - ``palette``: for RGB label maps; a JSON/YAML file, a mapping ``{id: (r, g, b)}``, a list of
      colours by id, or ``"infer"`` (the distinct colours of all RGB label files, sorted by
      (r, g, b), get ids 0..K-1; see ``dataset.palette``). A run config's ``label_palette``.
    - ``dont_care_id``: a raw value (e.g. 255) meaning "unlabeled"; it goes to the last channel.
    - ``label_names``: names of the ``num_labels`` channels (default ``class_<id>``).

    Every label map is read once when the dataset is built (cached, see
    :func:`~gauguin.data.label_scan.scan_label_maps`): an id that ``num_labels`` does not allow stops
    here, with one error naming every such file and the ``num_labels`` that would fit.

    Defaults: resize to 286×286, random 256×256 crop, random flip; instance maps when present.
    """

    kind = "folder"

    def __init__(
        self,
        root: str | Path,
        split: str | None = None,
        prep: Preprocessing = NO_PREPROCESSING,
        *,
        num_labels: int | None = None,
        palette: str | Path | Mapping[int, Sequence[int]] | Sequence[Sequence[int]] | None = None,
        label_names: Sequence[str] | None = None,
        dont_care_id: int | None = None,
        use_instances: bool | str = "auto",
    ) -> None:
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

        # every label file is scanned (once, cached) for the check; ids and colours are inferred from it
        scan = scan_label_maps(label_files, label_dir)
        largest_id = -1
        if num_labels is None or palette == "infer":
            used_ids, used_colours = _largest_id(scan, colours, palette == "infer", dont_care_id)
            if palette == "infer":
                colours = {i: c for i, c in enumerate(sorted(used_colours))} if used_colours else None
                if colours:
                    logger.info(
                        "inferred a palette of %d colours from the RGB label maps in %s (ids by sorted "
                        "colour): %s", len(colours), label_dir,
                        ", ".join(f"{i}: {list(c)}" for i, c in colours.items()),
                    )
                else:
                    logger.info("label_palette=infer: no RGB label maps in %s, no palette needed", label_dir)
                if colours and dont_care_id is not None and dont_care_id < len(colours):
                    raise ValueError(
                        f"the don't-care id {dont_care_id} collides with the inferred palette's ids "
                        f"0..{len(colours) - 1}"
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
                f"the don't-care id {dont_care_id} is also an ordinary class id (0..{ordinary - 1} with "
                f"num_labels={num_labels}, the last channel being don't-care); choose a value >= {ordinary}"
            )
        if colours:
            too_big = [i for i in colours if i >= ordinary and i != dont_care_id]
            if too_big:
                where = f"palette file {extra_files[0]}" if extra_files else "the palette"
                plus = " (plus the don't-care id)" if extra else ""
                raise BadDataError(
                    f"{where} gives id(s) {too_big[:5]} but num_labels={num_labels} allows 0..{ordinary - 1}"
                    f"{plus}. Fix: raise num_labels or renumber the palette."
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
            prep=prep,
            palette=colours,
            extra_source_files=extra_files,
            label_folder=label_dir,
            label_scan=scan,
        )

    def _no_palette_message(self, path: Path) -> str:
        return _no_palette(path)

    def _bad_ids_fix(self, bad: np.ndarray) -> str:
        dont_care, largest = self.dont_care_id, int(bad.max())
        if int(bad.min()) < 0:
            return "Fix: re-export these label maps with ids >= 0."
        if dont_care is not None and largest > dont_care:
            return f"Fix: re-export these label maps without ids above the don't-care id {dont_care}."
        return f"Fix: correct these files, or set num_labels={largest + 1 + (dont_care is not None)}."


def _no_palette(path: Path) -> str:
    return (
        f"label map {path} is an RGB colour image and no palette was given. Fix: set "
        "label_palette=infer (distinct colours sorted, ids 0..K-1) or label_palette=FILE (a JSON/YAML "
        "file mapping each label id to [r, g, b])."
    )


def _largest_id(
    scan: LabelScan, palette: Mapping[int, RGB] | None, collect_colours: bool, dont_care_id: int | None
) -> tuple[int, set[RGB]]:
    """The largest id (except ``dont_care_id``) in the id-valued label maps (and colour-coded ones,
    through ``palette``), and the set of colours of the colour-coded ones, from a scan of them.
    Files that cannot be used, negative ids and colours not in the palette are left out here: the
    dataset's check of every label map reports them."""
    largest, colours = -1, set()
    for stats in scan.stats.values():
        if "colours" in stats:
            codes = np.asarray(stats["colours"], dtype=np.uint32)
            if collect_colours:
                colours.update((int(c >> 16), int((c >> 8) & 255), int(c & 255)) for c in codes)
                continue
            if palette is None:
                continue
            ids, unknown = lookup_codes(codes, palette)
            values = ids[~unknown]
        else:
            values = np.asarray(stats["ids"], dtype=np.int64)
        if dont_care_id is not None:
            values = values[values != dont_care_id]
        if values.size:
            largest = max(largest, int(values.max()))
    return largest, colours
