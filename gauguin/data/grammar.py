"""One data grammar for every family: :func:`build` reads ``KIND[:PATH]`` for a task.

A task is what a family needs of its data; each task has its kinds (:data:`KINDS`):

- ``classes``: images with class labels (DCGAN, PGGAN);
- ``label_maps``: photos with label maps (SPADE, pix2pixHD, pix2pix with labels);
- ``pairs``: aligned input / target images (pix2pix);
- ``domains``: images of two domains, not aligned (CycleGAN).

Every dataset class declares what it uses: its ``defaults`` name the
:class:`~gauguin.data.preprocessing.Preprocessing` fields it uses (``crop_size`` and ``augment``
are used by all), its constructor's keywords after ``prep`` its options. A set field or option the
chosen data does nothing with is a :class:`~gauguin.data.errors.BadDataError`, not ignored.
"""
from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any

from gauguin.data.ade20k import ADE20K
from gauguin.data.cityscapes import Cityscapes
from gauguin.data.coco_stuff import CocoStuff
from gauguin.data.errors import BadDataError
from gauguin.data.fashion_mnist import FashionMNIST
from gauguin.data.folder import ImageFolder
from gauguin.data.label_folder import LabelFolder
from gauguin.data.paired import FashionMNISTEdges, PairedFolder
from gauguin.data.preprocessing import Preprocessing, fields_used
from gauguin.data.protocol import Dataset
from gauguin.data.silhouettes import FashionMNISTSilhouettes
from gauguin.data.sr_pairs import FashionMNISTSR, SRFolder, SRPairFolder
from gauguin.data.unpaired import FashionMNISTDomains, UnpairedFolder

TASKS = {
    "classes": "images with class labels",
    "label_maps": "photos with label maps",
    "pairs": "aligned image pairs",
    "domains": "images of two domains",
    "sr": "photos to super-resolve (LR/HR pairs made from them)",
}
# task -> kind -> dataset class; add a kind by adding an entry
KINDS: dict[str, dict[str, type]] = {
    "classes": {"fashion-mnist": FashionMNIST, "folder": ImageFolder},
    "label_maps": {"coco-stuff": CocoStuff, "cityscapes": Cityscapes, "ade20k": ADE20K,
                   "fashion-mnist": FashionMNISTSilhouettes, "folder": LabelFolder},
    "pairs": {"fashion-mnist": FashionMNISTEdges, "folder": PairedFolder},
    "domains": {"fashion-mnist": FashionMNISTDomains, "folder": UnpairedFolder},
    "sr": {"fashion-mnist": FashionMNISTSR, "folder": SRFolder, "pairs": SRPairFolder},
}
ROOTLESS = {"fashion-mnist"}  # written without ":PATH" (a PATH or root is the folder of its files)
_NOT_OPTIONS = ("self", "root", "split", "prep")


def build(spec: str, split: str, prep: Preprocessing, *, task: str, root: str | Path = "", **options: Any) -> Dataset:
    """The dataset ``spec`` (``KIND[:PATH]``) names for ``task``, ``split`` of it, preprocessed by
    ``prep``; ``root`` is a run config's ``data_root`` (the folder, when the spec names none) and
    ``options`` the kind's own (``direction``, ``domain_a``, ``num_labels``, ...; None = not set)."""
    kind, path = parse(spec, task)
    cls = KINDS[task][kind]
    if path and root and Path(root) != Path(path):
        raise BadDataError(
            f"data_root={root} does nothing with dataset {spec!r}: the spec names its folder ({path}); give "
            f"the folder once ({kind}:PATH, or {kind} with data_root=PATH)"
        )
    folder = path or str(root or "")
    if kind not in ROOTLESS and not folder.strip():
        raise BadDataError(f"{spec!r} names no folder; write {kind}:PATH (or set data_root=PATH)")
    options = {key: value for key, value in options.items() if value is not None}
    check_used(kind, task, prep, options)
    keywords = dict(options, prep=prep)
    if "split" in _parameters(cls):
        keywords["split"] = split
    if folder:
        keywords["root"] = folder
    return cls(**keywords)


def parse(spec: str, task: str) -> tuple[str, str]:
    """``(kind, path)`` of ``spec`` for ``task``; an unknown kind, or one ``task`` does not have, is an
    error naming the kinds it has."""
    if task not in KINDS:
        raise ValueError(f"unknown data task {task!r}; the tasks are {', '.join(map(repr, TASKS))}")
    name, _, path = str(spec).partition(":")
    kind = name.strip().lower().replace("_", "-")
    kinds = KINDS[task]
    if kind in kinds:
        return kind, path
    valid = ", ".join(map(repr, kinds))
    other = [t for t in KINDS if kind in KINDS[t]]
    if other:
        raise BadDataError(
            f"dataset {spec!r} gives {TASKS[other[0]]}, but this family needs {TASKS[task]}: its kinds are "
            f"{valid} (folders written folder:PATH)"
        )
    close = difflib.get_close_matches(kind, list(kinds), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise BadDataError(f"unknown dataset {kind!r} in {spec!r}; the kinds of {TASKS[task]} are {valid} "
                       f"(folders written folder:PATH){hint}")


def accepts(spec: str, task: str) -> frozenset[str]:
    """The :class:`Preprocessing` fields and options the data ``spec`` names for ``task`` uses."""
    return _accepted(KINDS[task][parse(spec, task)[0]])


def check_used(kind: str, task: str, prep: Preprocessing, options: dict[str, Any]) -> None:
    """BadDataError, one line per key, for each set field of ``prep`` and each option that ``kind``
    does nothing with. A fixed ``channels`` equal to the data's own (3 for photos) is not one."""
    cls = KINDS[task][kind]
    accepted = _accepted(cls)
    fixed = getattr(cls, "channels", None)
    unused = [key for key, value in prep.given().items() if key not in accepted
              and not (key == "channels" and isinstance(fixed, int) and value == fixed)]
    unused += [key for key in options if key not in accepted]
    if unused:
        raise BadDataError("\n".join(_does_nothing(key, kind, task) for key in unused))


def _parameters(cls: type) -> list[str]:
    return list(inspect.signature(cls.__init__).parameters)


def _options(cls: type) -> list[str]:
    """A dataset class's own options: its constructor's keywords beside root, split and prep."""
    return [name for name in _parameters(cls) if name not in _NOT_OPTIONS]


def _accepted(cls: type) -> frozenset[str]:
    return fields_used(cls.defaults) | frozenset(_options(cls))


def _written(kind: str) -> str:
    return kind if kind in ROOTLESS else f"{kind}:PATH"


def _does_nothing(key: str, kind: str, task: str) -> str:
    """``"load_size does nothing for fashion-mnist (why): remove load_size or use folder:PATH"``."""
    cls = KINDS[task][kind]
    if key in Preprocessing.__dataclass_fields__:
        why = cls.ignores.get(key) or cls.ignores.get("*", "it does not use it")
    else:
        why = cls.ignores.get(key) or f"its options are {', '.join(_options(cls)) or 'none'}"
    others = [_written(k) for k, c in KINDS[task].items() if k != kind and key in _accepted(c)]
    use = f" or use {' or '.join(others)}" if others else ""
    return f"{key} does nothing for {_written(kind)} ({why}): remove {key}{use}"
