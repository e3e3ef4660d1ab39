"""Real photos that ship inside a package from the registries, found without a download: the colour
photographs bundled in scikit-image's wheel (``skimage/data``; public domain or CC0 per its README).
They enlarge the held-out set of super-resolution evaluation beside the fixtures' COCO and Cityscapes
photos; `pip install scikit-image` (gauguin's dev extra) provides them."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from gauguin.data.errors import BadDataError

# the natural colour photographs (not the test charts, micrographs, sky survey or grey textures)
SCIKIT_IMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg")


def scikit_image_photos() -> list[Path]:
    """Paths of :data:`SCIKIT_IMAGE_PHOTOS` in the installed scikit-image (the package is not imported)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise BadDataError("the scikit-image photos need the package: pip install scikit-image "
                           "(in gauguin's dev extra), or name folders of photos instead")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    missing = [name for name in SCIKIT_IMAGE_PHOTOS if not (folder / name).is_file()]
    if missing:
        raise BadDataError(f"{folder} lacks {', '.join(missing)}: this scikit-image does not bundle them; "
                           "install scikit-image 0.19 or newer")
    return [folder / name for name in SCIKIT_IMAGE_PHOTOS]
