"""Cityscapes (Cordts et al. 2016) in its official layout.

``root/leftImg8bit/{split}/{city}/{prefix}_leftImg8bit.png`` and
``root/gtFine/{split}/{city}/{prefix}_gtFine_labelIds.png`` (8-bit ids 0..33), with optional
``{prefix}_gtFine_instanceIds.png`` (16-bit: ``class_id * 1000 + k`` on object instances, the
plain class id on stuff). Pairs are joined by ``prefix``. As in SPADE and pix2pixHD the label
ids are used as they are, 35 channels (0..34) and no don't-care channel.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gauguin.data.pairing import check_split, files_by_key, join_instances, join_pairs, list_files, require_folder
from gauguin.data.preprocessing import PHOTO_DEFAULTS, NO_PREPROCESSING, Preprocessing
from gauguin.data.semantic import SemanticDataset, SemanticSample

# labelIds 0..33 of cityscapesScripts' labels.py. Index 34 exists only because SPADE and
# pix2pixHD use 35 channels ("license plate" has id -1 there and never appears in labelIds.png).
CITYSCAPES_CLASSES = (
    "unlabeled", "ego vehicle", "rectification border", "out of roi", "static", "dynamic", "ground",
    "road", "sidewalk", "parking", "rail track", "building", "wall", "fence", "guard rail", "bridge",
    "tunnel", "pole", "polegroup", "traffic light", "traffic sign", "vegetation", "terrain", "sky",
    "person", "rider", "car", "truck", "bus", "caravan", "trailer", "train", "motorcycle", "bicycle",
    "class_34",
)  # fmt: skip
assert len(CITYSCAPES_CLASSES) == 35
CITYSCAPES_INSTANCE_DIVISOR = 1000  # instanceIds = class id * 1000 + instance number

_IMAGE_SUFFIX = "_leftImg8bit.png"
_LABEL_SUFFIX = "_gtFine_labelIds.png"
_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"


def _prefix(suffix: str):
    return lambda path: path.name[: -len(suffix)] if path.name.endswith(suffix) else None


class Cityscapes(SemanticDataset):
    """Cityscapes pairs of ``split`` ("train", "val" or "test"), every city.

    Defaults are SPADE's: ``preprocess="fixed"`` to 512 wide at aspect 2 (256×512), random flip.
    ``use_instances="auto"`` uses the instance maps when gtFine holds them (``True`` requires them).
    """

    kind = "cityscapes"
    defaults = PHOTO_DEFAULTS.replace(crop_size=512, load_size=512, aspect_ratio=2.0, mode="fixed")

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        prep: Preprocessing = NO_PREPROCESSING,
        *,
        use_instances: bool | str = "auto",
    ) -> None:
        check_split(split, ("train", "val", "test"), "Cityscapes")
        root = require_folder(
            Path(root).expanduser(), "Cityscapes folder",
            "Pass the folder holding leftImg8bit/ and gtFine/ (from leftImg8bit_trainvaltest.zip "
            "and gtFine_trainvaltest.zip).",
        )
        layout = (
            f"{root} must hold leftImg8bit/{split}/<city>/*{_IMAGE_SUFFIX} and "
            f"gtFine/{split}/<city>/*{_LABEL_SUFFIX}"
        )
        image_dir = require_folder(root / "leftImg8bit" / split, "Cityscapes image folder", layout)
        label_dir = require_folder(root / "gtFine" / split, "Cityscapes label folder", layout)
        images = files_by_key(list_files(image_dir, (".png",), recursive=True), _prefix(_IMAGE_SUFFIX),
                              image_dir, "images")
        gt_files = list_files(label_dir, (".png",), recursive=True)
        labels = files_by_key(gt_files, _prefix(_LABEL_SUFFIX), label_dir, "label maps")
        keys = join_pairs(images, labels, image_dir, label_dir)
        found = files_by_key(gt_files, _prefix(_INSTANCE_SUFFIX), label_dir, "instance maps")
        instances = join_instances(keys, found, use_instances, label_dir, f"<city>/*{_INSTANCE_SUFFIX}")
        samples = [
            SemanticSample(key, images[key], labels[key], instances[key] if instances else None) for key in keys
        ]
        self.split = split
        super().__init__(
            samples,
            root=root,
            raw_to_index=np.arange(len(CITYSCAPES_CLASSES)),
            label_names=list(CITYSCAPES_CLASSES),
            dont_care_index=None,
            prep=prep,
            label_folder=label_dir,
        )

    def _label_fix(self) -> str:
        return (
            f"Cityscapes label maps are the *{_LABEL_SUFFIX} files with ids 0..33; fix: do not use "
            "the *_gtFine_color.png or trainIds files."
        )
