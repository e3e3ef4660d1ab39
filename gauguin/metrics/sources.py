"""Image sets to evaluate, named on the command line, each with a content fingerprint.

    fashion-mnist:test   fashion-mnist:train   (the real splits; "fashion-mnist" = test)
    coco-stuff:PATH  cityscapes:PATH  ade20k:PATH   the photos of a semantic dataset's held-out split
    folder:PATH          a folder of images (class sub-folders give labels)
    PATH                 a checkpoint or run folder (its generator draws the images), or an image folder

A checkpoint of a semantic family (SPADE) draws its images from the label maps of its dataset's
held-out split, and its image set keeps those label maps (for mIoU / pixel accuracy).

Fashion-MNIST can be read at another ``image_size`` than its native 28 px, resized as training
resizes it (``fashion-mnist:test@32``): a generator is compared with real images made the way its
training images were, not through a second resize of its own samples.
"""
from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import KINDS, FashionMNIST, ImageFolder, Preprocessing, build
from ..fileio import file_sha256
from ..models.inference import draw_inputs

FASHION_NAMES = ("fashion-mnist", "fashion_mnist", "fmnist")
FASHION_SIDE = 28  # Fashion-MNIST's native size
SEMANTIC_KINDS = set(KINDS["label_maps"]) - {"fashion-mnist", "folder"}  # "folder:" stays a plain image folder


@dataclass
class ImageSet:
    images: torch.Tensor  # [N, C, H, W] in [-1, 1]
    labels: torch.Tensor | None  # [N] class ids, or None
    name: str
    fingerprint: str  # changes whenever the content would
    label_maps: torch.Tensor | None = None  # [N, H, W]: the label maps the images were made from
    label_source: str = ""  # the dataset spec the label maps came from (picks the segmenter)


def fingerprint_files(paths: list[Path], extra: str = "") -> str:
    """SHA-256 over the files' names and contents (and ``extra``)."""
    digest = hashlib.sha256(extra.encode())
    for path in sorted(Path(p) for p in paths):
        digest.update(f"{path.name}:{file_sha256(path)}".encode())
    return digest.hexdigest()


def _subset(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """The first ``n`` of a seeded permutation: the same ``n`` images for the same protocol."""
    if n is None or n >= n_total:
        if n is not None and n > n_total:
            warnings.warn(f"asked for {n} images but the set holds {n_total}; using all of them", stacklevel=3)
        return torch.arange(n_total)
    return torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))[:n]


def load_image_set(spec: str, n: int | None = None, seed: int = 0, image_size: int | None = None) -> ImageSet:
    """The image set named by ``spec`` (see the module docstring), ``n`` images of it; Fashion-MNIST
    at ``image_size`` px when given (resized as training resizes it)."""
    kind, _, rest = spec.partition(":")
    if kind.lower() in FASHION_NAMES:
        split = rest or "test"
        if image_size in (None, FASHION_SIDE):
            return _from_dataset(FashionMNIST(split), f"fashion-mnist:{split}", n, seed)
        data = FashionMNIST(split, Preprocessing(crop_size=image_size))
        return _from_dataset(data, f"fashion-mnist:{split}@{image_size}", n, seed)
    if kind.lower().replace("_", "-") in SEMANTIC_KINDS:
        data = build(spec, "val", Preprocessing(augment=False), task="label_maps")
        return _from_dataset(data, f"{spec}:val", n, seed)
    path = Path(rest if kind == "folder" else spec)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: give fashion-mnist:test|train, folder:PATH or a checkpoint")
    if kind != "folder" and ((path / "meta.json").is_file() or (path / "checkpoints").is_dir()):
        return _from_checkpoint(path, n or 10_000, seed)
    size, channels = _native_format(path)
    return _from_dataset(ImageFolder(path, Preprocessing(crop_size=size, channels=channels)), f"folder:{path}", n, seed)


def _from_dataset(data, name: str, n: int | None, seed: int) -> ImageSet:
    idx = _subset(len(data), n, seed)
    batch = data.get_batch(idx)
    images, labels = (batch["image"], batch.get("label")) if isinstance(batch, dict) else batch
    extra = f"{name}|{len(idx)}|{seed}|{tuple(images.shape[1:])}"
    has_labels = data.num_classes > 1
    return ImageSet(images, labels if has_labels else None, name, fingerprint_files(data.source_files, extra))


def _from_checkpoint(path: Path, n: int, seed: int) -> ImageSet:
    from ..sampling import load_generator  # metrics -> models, only when a checkpoint is evaluated

    return generated_image_set(load_generator(path), n, seed)


def generated_image_set(loaded, n: int, seed: int) -> ImageSet:
    """``n`` images of a loaded generator (class-balanced where it takes a class; made from the held-out
    label maps where it takes those)."""
    path = loaded.folder
    if loaded.data.num_labels:
        return _from_semantic_checkpoint(loaded, path, n, seed)
    if loaded.spec.main.input("class") is not None:  # balanced classes: n/K of each
        labels = torch.arange(n) % loaded.meta["num_classes"]
        images = torch.cat([loaded.sample(int((labels == k).sum()), seed=seed + k, label=k)
                            for k in range(loaded.meta["num_classes"])])
        labels = labels.sort().values
    else:
        images, labels = loaded.sample(n, seed=seed), None
    if not torch.isfinite(images).all():
        raise ValueError(f"the generator of {path} produced NaN/Inf images; the checkpoint is broken")
    extra = f"{loaded.meta['step']}|{n}|{seed}"
    fingerprint = fingerprint_files([loaded.folder / "weights.safetensors"], extra)
    return ImageSet(images, labels, f"{loaded.meta['family']}@{loaded.meta['step']}", fingerprint)


def _from_semantic_checkpoint(loaded, path: Path, n: int, seed: int) -> ImageSet:
    """Images generated from the label maps of the checkpoint's dataset, held-out split (random styles)."""
    cfg = loaded.family.cfg
    data = type(loaded.family).build_dataset(cfg, split="val")
    idx = _subset(len(data), n, seed)
    images, label_maps = [], []
    for first in range(0, len(idx), 64):
        batch = data.get_batch(idx[first : first + 64])
        inputs = draw_inputs(loaded.spec.main, len(batch["label_map"]), torch.Generator().manual_seed(seed + first),
                             batch)
        with torch.no_grad():
            images.append(loaded.run(loaded.spec.main, inputs))
        label_maps.append(batch["label_map"])
    images = torch.cat(images)
    if not torch.isfinite(images).all():
        raise ValueError(f"the generator of {path} produced NaN/Inf images; the checkpoint is broken")
    fingerprint = fingerprint_files([loaded.folder / "weights.safetensors"], f"{loaded.meta['step']}|{len(idx)}|{seed}")
    return ImageSet(images, None, f"{loaded.meta['family']}@{loaded.meta['step']}", fingerprint,
                    torch.cat(label_maps), cfg.dataset)


def _native_format(path: Path) -> tuple[int, int]:
    """Side (the short one) and channel count of the folder's first image: the set's own format."""
    from PIL import Image

    from ..data.folder import IMAGE_EXTENSIONS

    first = next((p for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS), None)
    if first is None:
        raise FileNotFoundError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    with Image.open(first) as im:
        return min(im.size), 1 if im.mode in ("L", "I;16", "I", "1") else 3


def match_images(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """``fake`` resized / channel-converted to ``real``'s shape, with a warning when it had to be."""
    if fake.shape[1:] == real.shape[1:]:
        return fake
    warnings.warn(f"generated images are {tuple(fake.shape[1:])}, real ones {tuple(real.shape[1:])}: "
                  "resizing the generated ones to match", stacklevel=2)
    if fake.shape[1] != real.shape[1]:
        fake = fake.mean(1, keepdim=True) if real.shape[1] == 1 else fake.expand(-1, 3, -1, -1)
    if fake.shape[2:] != real.shape[2:]:
        fake = F.interpolate(fake, size=real.shape[2:], mode="bilinear", antialias=True, align_corners=False)
    return fake.clamp(-1, 1)
