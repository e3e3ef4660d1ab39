"""Label-map, instance-map and photo files read as training reads them, and label palettes.

- label maps in 8-bit grey, bilevel, palette ('P': the index is the id), 16/32-bit, or RGB colour
  codes to be turned into ids with a palette (:func:`read_label_file`, :func:`load_palette`,
  :func:`colors_to_ids`); instance maps (:func:`read_instance_file`);
- photos as RGB with 16-bit grey scaled and alpha on white (:func:`read_rgb_image`), and the
  model's pixels of one (:func:`model_pixels`).

Every reader takes a path or an open binary file (a request's bytes), and raises
:class:`BadDataError` naming the file and the fix.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from gauguin.data.errors import BadDataError, DatasetNotFoundError

RGB = tuple[int, int, int]
_SHOWN_IN_MESSAGES = 5
_ID_MODES = ("L", "P", "1", "I", "I;16", "I;16B", "I;16L", "I;16N")
_COLOUR_MODES = ("RGB", "RGBA")


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
