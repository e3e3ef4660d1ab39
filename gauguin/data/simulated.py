"""Simulated + unlabelled real images for SimGAN (Shrivastava et al., CVPR 2017, "Learning from
Simulated and Unsupervised Images through Adversarial Training").

SimGAN's refiner learns to make labelled synthetic images look real while keeping their
annotations (Eq. 1-4), from a set of simulator outputs and a *separate*, unlabelled set of real
images. Two sources follow one contract, :class:`SimulatedPairs`:

- :class:`FashionMNISTSimulated`, the embedded default: a toy simulator, :func:`render_flat`,
  renders the first half of the Fashion-MNIST training split (silhouette filled with a flat tone
  and a linear light gradient, no texture); the second half is the unlabelled real set;
- :class:`FolderSimulated`: labelled synthetic images in one sub-folder per class, and a folder
  of real images;
- :func:`build_simulated_dataset` picks one from the ``--synthetic`` / ``--real`` options.

``get_batch(indices)`` gives ``{"synthetic": [B, C, H, W], "label": [B], "image": [B, C, H, W]}``
in [-1, 1]: synthetic image ``i`` (deterministic) with its class, and real images drawn at random
by ``torch.randint(len_real, (B,))`` from torch's global RNG before anything else, so a run
restored with its RNG state sees exactly the same batches.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gauguin.data.errors import BadDataError, DatasetNotFoundError
from gauguin.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNIST
from gauguin.data.folder import IMAGE_EXTENSIONS, ImageFolder
from gauguin.data.batching import as_indices
from gauguin.data.preprocessing import Preprocessing
from gauguin.data.protocol import DatasetBase
from gauguin.data.silhouettes import FOREGROUND_THRESHOLD

# ranges of the toy simulator's per-image parameters (see rendering_params)
TONE_RANGE = (0.35, 0.95)  # flat grey level of the garment, in [0, 1]
ANGLE_RANGE = (0.0, 2.0 * math.pi)  # direction of the light gradient, radians
STRENGTH_RANGE = (0.0, 0.3)  # slope of the light gradient, per unit of x / y in [-1, 1]
# The garment is never darker than the lowest intensity the silhouette threshold still calls
# garment, so the silhouette stays exactly ``synthetic > -1`` even where the gradient would
# clamp a corner to 0 (about one pixel in 30,000 images).
GARMENT_FLOOR = (FOREGROUND_THRESHOLD + 1) / 255.0
FASHION_MNIST_TRAIN_SIZE = 60_000
SYNTHETIC_HALF = FASHION_MNIST_TRAIN_SIZE // 2  # training images 0..29999 are rendered, the rest is "real"


# ------------------------------------------------------------------------------------ simulator
def rendering_params(n: int, seed: int) -> dict[str, Tensor]:
    """Per-image parameters of :func:`render_flat` for ``n`` images, float32 ``[n]`` each:
    ``tone`` ~ U[0.35, 0.95], ``angle`` ~ U[0, 2π), ``strength`` ~ U[0, 0.3].

    Drawn (in that order) from ``torch.Generator().manual_seed(seed)``, never from the global RNG,
    so a data set's synthetic images are a fixed set of simulator outputs.
    """
    if n < 0:
        raise ValueError(f"n must be a number of images >= 0, got {n}")
    generator = torch.Generator().manual_seed(int(seed))
    params = {}
    for name, (low, high) in (("tone", TONE_RANGE), ("angle", ANGLE_RANGE), ("strength", STRENGTH_RANGE)):
        params[name] = low + (high - low) * torch.rand(n, generator=generator)
    return params


def render_flat(images_u8: Tensor, params: dict[str, Tensor], size: int) -> Tensor:
    """The toy simulator: uint8 images ``[B, 1, h, w]`` -> float32 ``[B, 1, size, size]`` in [-1, 1].

    Keeps only each garment's silhouette (pixels > ``FOREGROUND_THRESHOLD``, resized with nearest
    neighbour so edges stay hard) and fills it with ``tone + strength * (x cos(angle) + y sin(angle))``,
    x and y in [-1, 1] over the image (y downwards), clamped to [``GARMENT_FLOOR``, 1]; the
    background is 0. No texture at all: it must look synthetic.
    """
    if images_u8.ndim != 4 or images_u8.shape[1] != 1:
        raise ValueError(f"render_flat needs grey images [B, 1, H, W], got shape {tuple(images_u8.shape)}")
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}")
    count, device = images_u8.shape[0], images_u8.device
    missing = {"tone", "angle", "strength"} - set(params)
    if missing:
        raise ValueError(f"render_flat params lack {', '.join(sorted(missing))}; see rendering_params")
    tone, angle, strength = (
        torch.as_tensor(params[name], dtype=torch.float32, device=device).reshape(-1, 1, 1)
        for name in ("tone", "angle", "strength")
    )
    if not len(tone) == len(angle) == len(strength) == count:
        raise ValueError(
            f"render_flat got {count} images but {len(tone)} tones, {len(angle)} angles and "
            f"{len(strength)} strengths; give one of each per image"
        )
    mask = (images_u8[:, 0] > FOREGROUND_THRESHOLD).float()
    if tuple(mask.shape[-2:]) != (size, size):
        mask = F.interpolate(mask[:, None], size=(size, size), mode="nearest-exact")[:, 0]
    coords = torch.linspace(-1.0, 1.0, size, device=device)
    y, x = coords.view(1, -1, 1), coords.view(1, 1, -1)
    value = (tone + strength * (x * torch.cos(angle) + y * torch.sin(angle))).clamp(GARMENT_FLOOR, 1.0)
    return (value * mask).mul_(2.0).sub_(1.0).unsqueeze(1)


# ------------------------------------------------------------------------------------- contract
class SimulatedPairs(DatasetBase):
    """The SimGAN data contract; subclasses set ``classes``, ``num_classes``, ``image_size``
    ``(H, W)``, ``channels``, ``len_synthetic``, ``len_real``, ``source_files`` and implement
    ``_synthetic(positions)`` and ``_real(positions)``. ``len()`` is the number of synthetic images."""

    num_classes: int
    classes: list[str]
    image_size: tuple[int, int]
    channels: int
    len_synthetic: int
    len_real: int

    def __len__(self) -> int:
        return self.len_synthetic

    @property
    def source_files(self) -> list[Path]:
        raise NotImplementedError

    def get_batch(self, indices: Tensor | Sequence[int]) -> dict[str, Tensor]:
        """``{"synthetic": synthetic images at indices, "label": their classes, "image": random real
        images}``; the real ones are ``torch.randint(len_real, (B,))``, drawn first from torch's
        global RNG (nothing else is drawn)."""
        positions = as_indices(indices, len(self))
        real_positions = torch.randint(self.len_real, (len(positions),)).tolist()
        synthetic, labels = self._synthetic(positions)
        return {"synthetic": synthetic, "label": labels, "image": self._real(real_positions)}

    def synthetic_batch(self, indices: Tensor | Sequence[int]) -> tuple[Tensor, Tensor]:
        """Synthetic images ``[B, C, H, W]`` in [-1, 1] and int64 labels ``[B]``; no RNG."""
        return self._synthetic(as_indices(indices, len(self)))

    def real_batch(self, indices: Tensor | Sequence[int]) -> Tensor:
        """Real images ``[B, C, H, W]`` in [-1, 1] at ``indices`` of the real set; no RNG."""
        return self._real(as_indices(indices, self.len_real))

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return {key: value[0] for key, value in self.get_batch([index]).items()}

    def _synthetic(self, positions: list[int]) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def _real(self, positions: list[int]) -> Tensor:
        raise NotImplementedError


# --------------------------------------------------------------------------------- Fashion-MNIST
class FashionMNISTSimulated(SimulatedPairs):
    """Training images 0..29999 rendered by :func:`render_flat` (with ``rendering_params(30000,
    seed)``) and their labels; training images 30000..59999 are the unlabelled real set.

    Real images are resized to ``image_size`` as :class:`FashionMNIST` does (bilinear,
    antialiased); synthetic ones are rendered at ``image_size`` from the nearest-resized
    silhouette. ``channels=3`` repeats the grey channel. The test split is left for evaluation.
    """

    def __init__(self, root: str | Path | None = None, image_size: int = 28, channels: int = 1,
                 seed: int = 0) -> None:
        # private: the real half's labels are not part of this data set
        self._train = FashionMNIST("train", Preprocessing(crop_size=image_size, channels=channels), root=root)
        if len(self._train) != FASHION_MNIST_TRAIN_SIZE:
            raise BadDataError(
                f"the Fashion-MNIST training split in {self._train.root} holds {len(self._train)} "
                f"images, expected {FASHION_MNIST_TRAIN_SIZE}. Reinstall dataset-fashion-mnist."
            )
        self.classes = list(FASHION_MNIST_CLASSES)
        self.num_classes = len(self.classes)
        self.image_size = (image_size, image_size)
        self.channels = channels
        self.seed = int(seed)
        self.len_synthetic = SYNTHETIC_HALF
        self.len_real = FASHION_MNIST_TRAIN_SIZE - SYNTHETIC_HALF
        self.params = rendering_params(self.len_synthetic, self.seed)

    @property
    def source_files(self) -> list[Path]:
        return self._train.source_files

    def _synthetic(self, positions: list[int]) -> tuple[Tensor, Tensor]:
        where = torch.tensor(positions, dtype=torch.long)
        params = {name: values[where] for name, values in self.params.items()}
        images = render_flat(self._train.images[where], params, self.image_size[0])
        if self.channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        return images, self._train.labels[where]

    def _real(self, positions: list[int]) -> Tensor:
        images, _ = self._train.get_batch(torch.tensor(positions, dtype=torch.long) + SYNTHETIC_HALF)
        return images

    def __repr__(self) -> str:
        return (
            f"FashionMNISTSimulated(synthetic={self.len_synthetic}, real={self.len_real}, "
            f"image_size={self.image_size[0]}, channels={self.channels}, seed={self.seed})"
        )


# ---------------------------------------------------------------------------------------- folders
class FolderSimulated(SimulatedPairs):
    """Labelled synthetic images ``synthetic_root/<class>/**/*.png`` and unlabelled real images
    ``real_root/*.png`` (or in sub-folders, whose names are ignored).

    Both sets are read by :class:`~gauguin.data.folder.ImageFolder`: resized so the short side is
    ``image_size`` (bicubic), center-cropped, converted to ``channels`` (1 grey, 3 RGB); this is
    the explicit conversion when the two sets differ in size or channels.
    """

    def __init__(self, synthetic_root: str | Path, real_root: str | Path, image_size: int = 64,
                 channels: int = 3) -> None:
        synthetic_root = _existing_folder(
            synthetic_root, "synthetic image folder", "--synthetic PATH of a folder with one sub-folder of images per class"
        )
        real_root = _existing_folder(real_root, "real image folder", "--real PATH of a folder of real images")
        fix = (
            f"SimGAN needs labelled synthetic images: put them in one sub-folder per class "
            f"({synthetic_root}/<class>/*.png)"
        )
        class_folders = [p for p in sorted(synthetic_root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        if not any(_has_image(folder, recursive=True) for folder in class_folders):
            found = "images but no class sub-folders" if _has_image(synthetic_root) else "no images"
            raise BadDataError(f"synthetic image folder {synthetic_root} holds {found}. {fix}.")
        if not _has_image(real_root, recursive=True):
            raise BadDataError(
                f"real image folder {real_root} holds no images (nor do its sub-folders). SimGAN needs "
                f"unlabelled real images: put them in {real_root}, flat or in sub-folders whose names "
                f"are ignored ({', '.join(IMAGE_EXTENSIONS)})."
            )
        prep = Preprocessing(crop_size=image_size, channels=channels)
        self.synthetic, self.real = ImageFolder(synthetic_root, prep), ImageFolder(real_root, prep)
        self.synthetic_root, self.real_root = synthetic_root, real_root
        self.classes = list(self.synthetic.classes)
        self.num_classes = len(self.classes)
        self.image_size = (image_size, image_size)
        self.channels = channels
        self.len_synthetic = len(self.synthetic)
        self.len_real = len(self.real)

    @property
    def source_files(self) -> list[Path]:
        """Every file this dataset reads (the synthetic ones, then the real ones)."""
        return [*self.synthetic.source_files, *self.real.source_files]

    def _synthetic(self, positions: list[int]) -> tuple[Tensor, Tensor]:
        return self.synthetic.get_batch(torch.tensor(positions, dtype=torch.long))

    def _real(self, positions: list[int]) -> Tensor:
        images, _ = self.real.get_batch(torch.tensor(positions, dtype=torch.long))
        return images

    def __repr__(self) -> str:
        return (
            f"FolderSimulated(synthetic='{self.synthetic_root}' ({self.len_synthetic}, "
            f"{self.num_classes} classes), real='{self.real_root}' ({self.len_real}), "
            f"image_size={self.image_size[0]}, channels={self.channels})"
        )


def _existing_folder(path: str | Path, what: str, fix: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"{what} {path} does not exist. Pass {fix}.")
    if not path.is_dir():
        raise BadDataError(f"{what} {path} is a file, not a folder. Pass {fix}.")
    return path


def _has_image(folder: Path, recursive: bool = False) -> bool:
    """Whether ``folder`` (and its sub-folders when ``recursive``) holds a visible image file;
    stops at the first one."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return any(
        path.suffix.lower() in IMAGE_EXTENSIONS
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
        and path.is_file()
        for path in found
    )


# ------------------------------------------------------------------------------------- by options
def build_simulated_dataset(synthetic: str = "", real: str = "", image_size: int = 28, channels: int = 1,
                            root: str | None = None, seed: int = 0) -> SimulatedPairs:
    """SimGAN's data from its options: neither ``synthetic`` nor ``real`` -> the embedded
    :class:`FashionMNISTSimulated` (``root``, ``seed``); both -> :class:`FolderSimulated`."""
    if not synthetic and not real:
        return FashionMNISTSimulated(root=root, image_size=image_size, channels=channels, seed=seed)
    if synthetic and real:
        return FolderSimulated(synthetic, real, image_size=image_size, channels=channels)
    given, other = ("--synthetic", "--real") if synthetic else ("--real", "--synthetic")
    raise ValueError(
        f"SimGAN got {given} but no {other}: both --synthetic and --real are needed (labelled "
        "synthetic images and unlabelled real ones), or neither for the embedded Fashion-MNIST default"
    )
