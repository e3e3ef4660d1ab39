"""COCO-Stuff (Caesar et al. 2018) in the layout of the SPADE paper's experiments.

``root/{split}_img/*.jpg``, ``root/{split}_label/*.png`` (8-bit ids 0..181; 255 = unlabeled) and
``root/{split}_inst/*.png`` (8-bit instance ids), joined by file stem. Ids 0..181 are the
182 COCO-Stuff classes (91 thing ids, 11 of them unused by COCO's annotations, then 91 stuff
classes); 255 goes to the don't-care channel 182, so ``num_labels`` is 183 as in SPADE.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from gauguin.data.folder import IMAGE_EXTENSIONS
from gauguin.data.pairing import (
    LABEL_EXTENSIONS,
    check_split,
    files_by_key,
    join_instances,
    join_pairs,
    list_files,
    require_folder,
)
from gauguin.data.preprocessing import NO_PREPROCESSING, Preprocessing
from gauguin.data.semantic import DONT_CARE_NAME, SemanticDataset, SemanticSample

COCO_STUFF_CLASSES = (
    # things, ids 0..90 (COCO category id - 1; "street sign", "hat", "shoe", "eye glasses",
    # "plate", "mirror", "window", "desk", "door", "blender" and "hair brush" are never annotated)
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack",
    "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush", "hair brush",
    # stuff, ids 91..181
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter",
    "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other", "fruit",
    "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves", "light", "mat",
    "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper", "pavement",
    "pillow", "plant-other", "plastic", "platform", "playingfield", "railing", "railroad", "river",
    "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf", "sky-other", "skyscraper", "snow",
    "solid-other", "stairs", "stone", "straw", "structural-other", "table", "tent", "textile-other",
    "towel", "tree", "vegetable", "wall-brick", "wall-concrete", "wall-other", "wall-panel",
    "wall-stone", "wall-tile", "wall-wood", "water-other", "waterdrops", "window-blind",
    "window-other", "wood",
)  # fmt: skip
assert len(COCO_STUFF_CLASSES) == 182
COCO_STUFF_UNLABELED = 255  # raw value of unlabeled pixels


class CocoStuff(SemanticDataset):
    """COCO-Stuff pairs of ``split`` ("train" or "val"); 183 channels, the last one don't-care.

    Defaults are SPADE's: resize to 286×286, random 256×256 crop, random flip, instance maps used
    (``use_instances=False`` when the ``{split}_inst`` folder is absent or not wanted).
    """

    kind = "coco-stuff"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        prep: Preprocessing = NO_PREPROCESSING,
        *,
        use_instances: bool | str = True,
    ) -> None:
        check_split(split, ("train", "val"), "COCO-Stuff")
        root = require_folder(
            Path(root).expanduser(), "COCO-Stuff folder",
            "Pass the folder holding {train,val}_img/, {train,val}_label/ and {train,val}_inst/.",
        )
        layout = f"{root} must hold {split}_img/*.jpg, {split}_label/*.png and {split}_inst/*.png"
        image_dir = require_folder(root / f"{split}_img", "COCO-Stuff image folder", layout)
        label_dir = require_folder(root / f"{split}_label", "COCO-Stuff label folder", layout)
        images = files_by_key(list_files(image_dir, IMAGE_EXTENSIONS), lambda p: p.stem, image_dir, "images")
        labels = files_by_key(list_files(label_dir, LABEL_EXTENSIONS), lambda p: p.stem, label_dir, "label maps")
        keys = join_pairs(images, labels, image_dir, label_dir)
        inst_dir = root / f"{split}_inst"
        found = (
            files_by_key(list_files(inst_dir, LABEL_EXTENSIONS), lambda p: p.stem, inst_dir, "instance maps")
            if inst_dir.is_dir() and use_instances is not False
            else {}
        )
        instances = join_instances(keys, found, use_instances, inst_dir, f"{split}_inst/<stem>.png")
        samples = [
            SemanticSample(key, images[key], labels[key], instances[key] if instances else None) for key in keys
        ]

        lut = np.full(256, -1, dtype=np.int64)
        lut[: len(COCO_STUFF_CLASSES)] = np.arange(len(COCO_STUFF_CLASSES))
        lut[COCO_STUFF_UNLABELED] = len(COCO_STUFF_CLASSES)
        self.split = split
        super().__init__(
            samples,
            root=root,
            raw_to_index=lut,
            label_names=[*COCO_STUFF_CLASSES, DONT_CARE_NAME],
            dont_care_index=len(COCO_STUFF_CLASSES),
            prep=prep,
            label_folder=label_dir,
        )

    def _label_fix(self) -> str:
        return (
            "COCO-Stuff label maps hold 0..181 and 255 (unlabeled); fix: use the stuffthingmaps "
            "label PNGs (not the colour visualisations) or re-export this one."
        )
