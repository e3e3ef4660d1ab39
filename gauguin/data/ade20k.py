"""ADE20K scene parsing (Zhou et al. 2017), the ADEChallengeData2016 release used by SPADE.

``root/images/{training,validation}/*.jpg`` and ``root/annotations/{training,validation}/*.png``
(8-bit: 0 = "other", 1..150 = the 150 classes), joined by file stem; ``root`` may also be the
folder holding ``ADEChallengeData2016/``, or a flat ``images/*.jpg`` + ``annotations/*.png``
folder (then every split is the whole folder). As in SPADE, ids are shifted down by one (raw
1..150 -> 0..149) and raw 0 goes to the don't-care channel 150: ``num_labels`` = 151.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gauguin.data.errors import BadDataError
from gauguin.data.folder import IMAGE_EXTENSIONS
from gauguin.data.pairing import LABEL_EXTENSIONS, check_split, files_by_key, join_pairs, list_files, require_folder
from gauguin.data.preprocessing import NO_PREPROCESSING, Preprocessing
from gauguin.data.semantic import DONT_CARE_NAME, SemanticDataset, SemanticSample

logger = logging.getLogger(__name__)

# objectInfo150 of ADEChallengeData2016, in id order (raw id 1 = "wall")
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
assert len(ADE20K_CLASSES) == 150

_SPLIT_FOLDERS = {"train": "training", "val": "validation"}


class ADE20K(SemanticDataset):
    """ADE20K pairs of ``split`` ("train" or "val"); 151 channels, the last one don't-care.

    Defaults are SPADE's: resize to 286×286, random 256×256 crop, random flip. ADE20K has no
    instance maps, so ``use_instances=True`` is an error.
    """

    kind = "ade20k"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        prep: Preprocessing = NO_PREPROCESSING,
        *,
        use_instances: bool | str = False,
    ) -> None:
        check_split(split, tuple(_SPLIT_FOLDERS), "ADE20K")
        if use_instances not in (False, "auto"):
            raise BadDataError(
                "ADE20K (ADEChallengeData2016) has no instance maps; set use_instances=no (False from Python)"
            )
        root = require_folder(
            Path(root).expanduser(), "ADE20K folder",
            "Pass the ADEChallengeData2016 folder (holding images/ and annotations/).",
        )
        if not (root / "images").is_dir() and (root / "ADEChallengeData2016" / "images").is_dir():
            root = root / "ADEChallengeData2016"
        layout = (
            f"{root} must hold images/{_SPLIT_FOLDERS[split]}/*.jpg and "
            f"annotations/{_SPLIT_FOLDERS[split]}/*.png (or flat images/ and annotations/)"
        )
        image_dir = require_folder(root / "images", "ADE20K image folder", layout)
        label_dir = require_folder(root / "annotations", "ADE20K annotation folder", layout)
        if (image_dir / _SPLIT_FOLDERS[split]).is_dir() or (label_dir / _SPLIT_FOLDERS[split]).is_dir():
            image_dir = require_folder(image_dir / _SPLIT_FOLDERS[split], "ADE20K image folder", layout)
            label_dir = require_folder(label_dir / _SPLIT_FOLDERS[split], "ADE20K annotation folder", layout)
        else:
            logger.info("%s has no %s/ sub-folders: serving the whole flat folder as split %r",
                        root, _SPLIT_FOLDERS[split], split)
        images = files_by_key(list_files(image_dir, IMAGE_EXTENSIONS), lambda p: p.stem, image_dir, "images")
        labels = files_by_key(list_files(label_dir, LABEL_EXTENSIONS), lambda p: p.stem, label_dir, "annotations")
        keys = join_pairs(images, labels, image_dir, label_dir)
        samples = [SemanticSample(key, images[key], labels[key]) for key in keys]

        lut = np.empty(len(ADE20K_CLASSES) + 1, dtype=np.int64)
        lut[0] = len(ADE20K_CLASSES)  # "other" -> don't care
        lut[1:] = np.arange(len(ADE20K_CLASSES))
        self.split = split
        super().__init__(
            samples,
            root=root,
            raw_to_index=lut,
            label_names=[*ADE20K_CLASSES, DONT_CARE_NAME],
            dont_care_index=len(ADE20K_CLASSES),
            prep=prep,
            label_folder=label_dir,
        )

    def _label_fix(self) -> str:
        return "ADE20K annotations hold 0 (other) and 1..150; fix: re-export this annotation."
