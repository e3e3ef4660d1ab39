"""Finding a dataset's files and joining them by name: image <-> label map (<-> instance map),
A <-> B. Every message names the folder, the unpaired files and the fix."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from gauguin.data.errors import BadDataError, DatasetNotFoundError
from gauguin.data.folder import IMAGE_EXTENSIONS
from gauguin.data.label_files import _SHOWN_IN_MESSAGES

LABEL_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")  # lossless only: a JPEG label map has invented ids


def require_folder(path: Path, what: str, fix: str) -> Path:
    """``path`` if it is a folder, else DatasetNotFoundError saying what was expected there."""
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what} {path} does not exist. {fix}")
    return path


def files_by_key(
    files: Sequence[Path], key: Callable[[Path], str | None], folder: Path, what: str
) -> dict[str, Path]:
    """``{key(file): file}``; files whose key is None are skipped; a key twice is BadDataError."""
    found: dict[str, Path] = {}
    for path in sorted(files):
        name = key(path)
        if name is None:
            continue
        if name in found:
            raise BadDataError(
                f"two {what} in {folder} share the name {name!r}: {found[name]} and {path}; "
                "fix: keep one of them (files are joined by name)"
            )
        found[name] = path
    return found


def list_files(folder: Path, extensions: Sequence[str], recursive: bool = False) -> list[Path]:
    """Visible files of ``folder`` (and its sub-folders when ``recursive``) with these extensions."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in found
        if path.suffix.lower() in extensions
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
    )


def join_pairs(
    images: Mapping[str, Path], labels: Mapping[str, Path], image_folder: Path, label_folder: Path
) -> list[str]:
    """The keys with both an image and a label, sorted; an unpaired file is BadDataError."""
    if not images and not labels:
        raise BadDataError(
            f"no images in {image_folder} and no label maps in {label_folder}; the folders are "
            f"empty. Fix: point the dataset at a folder holding the pairs (images: "
            f"{', '.join(IMAGE_EXTENSIONS)}; labels: {', '.join(LABEL_EXTENSIONS)})."
        )
    no_label = sorted(set(images) - set(labels))
    no_image = sorted(set(labels) - set(images))
    if no_label or no_image:
        lines = []
        if no_label:
            lines.append(
                f"{len(no_label)} image(s) in {image_folder} have no label map in {label_folder}: "
                + short_list([images[k].name for k in no_label])
            )
        if no_image:
            lines.append(
                f"{len(no_image)} label map(s) in {label_folder} have no image in {image_folder}: "
                + short_list([labels[k].name for k in no_image])
            )
        raise BadDataError(
            "missing pair: " + "; ".join(lines) + ". Fix: add the missing files or delete the "
            "unpaired ones (an image and its label map are joined by name)."
        )
    return sorted(images)


def join_instances(
    keys: Sequence[str], instances: Mapping[str, Path], use_instances: bool | str, folder: Path,
    pattern: str,
) -> dict[str, Path] | None:
    """The instance map of every key, or None when not used; ``use_instances`` True, False or
    "auto" (use them when there are any)."""
    if use_instances not in (True, False, "auto"):
        raise ValueError(f"use_instances must be True, False or 'auto', got {use_instances!r}")
    if use_instances is False:
        return None
    if not instances:
        if use_instances == "auto":
            return None
        raise BadDataError(
            f"use_instances is on but there are no instance maps ({pattern}) in {folder}. Fix: add "
            "them, or set use_instances=no (False from Python) to train without instance boundaries."
        )
    missing = [key for key in keys if key not in instances]
    if missing:
        raise BadDataError(
            f"missing pair: {len(missing)} of {len(keys)} samples have no instance map ({pattern}) "
            f"in {folder}: {short_list(missing)}. Fix: add them, or set use_instances=no (False from Python)."
        )
    return {key: instances[key] for key in keys}


def check_split(split: str, valid: Sequence[str], dataset: str) -> str:
    """``split`` if ``dataset`` has it, else ValueError listing its splits."""
    if split not in valid:
        raise ValueError(f"{dataset} has splits {', '.join(map(repr, valid))}, not {split!r}")
    return split


def join_by_name(a: Mapping[str, Path], b: Mapping[str, Path], a_dir: Path, b_dir: Path) -> list[str]:
    """The names with an image in both folders, sorted; none at all, or an image without its
    partner, is BadDataError listing a few of them."""
    if not a and not b:
        raise BadDataError(
            f"no images in {a_dir} and {b_dir}; the folders are empty. Fix: put the pairs there "
            f"({', '.join(IMAGE_EXTENSIONS)}), A and B of a pair under one name."
        )
    lines = []
    for have, lack, have_dir, lack_dir in ((a, b, a_dir, b_dir), (b, a, b_dir, a_dir)):
        alone = sorted(set(have) - set(lack))
        if alone:
            lines.append(
                f"{len(alone)} image(s) in {have_dir} have no partner in {lack_dir}: "
                + short_list([have[k].name for k in alone])
            )
    if lines:
        raise BadDataError(
            "missing pair: " + "; ".join(lines) + ". Fix: add the missing files or delete the "
            "unpaired ones (A and B of a pair are joined by file name without extension)."
        )
    return sorted(a)


def short_list(names: Sequence[str]) -> str:
    """The first names, comma-separated, and how many more there are."""
    shown = ", ".join(str(name) for name in names[:_SHOWN_IN_MESSAGES])
    return shown + (f" and {len(names) - _SHOWN_IN_MESSAGES} more" if len(names) > _SHOWN_IN_MESSAGES else "")
