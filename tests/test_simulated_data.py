"""Tests of SimGAN's data (gauguin.data.simulated): the toy simulator on the real Fashion-MNIST
training split, its synthetic/real halves, and folders of small images written by the tests."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gauguin.data.errors import BadDataError, DatasetNotFoundError
from gauguin.data.fashion_mnist import FASHION_MNIST_CLASSES, FashionMNIST
from gauguin.data.silhouettes import FOREGROUND_THRESHOLD
from gauguin.data.simulated import (
    GARMENT_FLOOR,
    FashionMNISTSimulated,
    FolderSimulated,
    SimulatedPairs,
    build_simulated_dataset,
    render_flat,
    rendering_params,
)

HALF = 30_000


# ------------------------------------------------------------------------------------ helpers
def save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_folders(tmp_path: Path) -> tuple[Path, Path]:
    """Synthetic: 2 classes ("circle" 3 RGB 32x32 images, "square" 2), real: 5 grey 40x40 PNGs."""
    rng = np.random.default_rng(0)
    synthetic, real = tmp_path / "synthetic", tmp_path / "real"
    for name, count in (("circle", 3), ("square", 2)):
        for i in range(count):
            save(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), synthetic / name / f"{i}.png")
    for i in range(5):
        save(rng.integers(0, 256, (40, 40), dtype=np.uint8), real / f"r{i}.png")
    return synthetic, real


@pytest.fixture(scope="module")
def train() -> FashionMNIST:
    return FashionMNIST("train")


@pytest.fixture(scope="module")
def simulated() -> FashionMNISTSimulated:
    return FashionMNISTSimulated()


# --------------------------------------------------------------------------------- simulator
def test_rendering_params_ranges_seeds_and_global_rng() -> None:
    state = torch.get_rng_state()
    params = rendering_params(1000, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never touched
    assert set(params) == {"tone", "angle", "strength"}
    assert all(value.shape == (1000,) and value.dtype == torch.float32 for value in params.values())
    assert 0.35 <= params["tone"].min() and params["tone"].max() <= 0.95
    assert 0.0 <= params["angle"].min() and params["angle"].max() < 2 * math.pi
    assert 0.0 <= params["strength"].min() and params["strength"].max() <= 0.3
    again, other = rendering_params(1000, seed=3), rendering_params(1000, seed=4)
    assert all(torch.equal(params[key], again[key]) for key in params)
    assert not torch.allclose(params["tone"], other["tone"])


def test_render_flat_is_a_flat_tone_plus_a_linear_gradient() -> None:
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    images[:, 0, 4:24, 6:20] = 200
    images[1, 0, 10, 10] = FOREGROUND_THRESHOLD  # at the threshold: background
    params = {"tone": torch.tensor([0.5, 0.6]), "angle": torch.tensor([0.0, math.pi / 2]),
              "strength": torch.tensor([0.0, 0.2])}
    out = render_flat(images, params, 28)
    assert out.shape == (2, 1, 28, 28) and out.dtype == torch.float32
    inside = images[:, 0] > FOREGROUND_THRESHOLD
    assert torch.all(out[:, 0][~inside] == -1.0)
    assert torch.allclose(out[0, 0][inside[0]], torch.tensor(0.0))  # tone 0.5, no gradient
    y = torch.linspace(-1, 1, 28).view(28, 1).expand(28, 28)
    expected = 2 * (0.6 + 0.2 * y) - 1  # angle pi/2: light changes along y only
    assert torch.allclose(out[1, 0][inside[1]], expected[inside[1]], atol=1e-6)
    big = render_flat(images, params, 56)  # rendered at 56 px from the nearest-resized silhouette
    assert big.shape == (2, 1, 56, 56)
    assert torch.equal(big[0, 0] > -1, inside[0].repeat_interleave(2, 0).repeat_interleave(2, 1))
    with pytest.raises(ValueError, match="one of each per image"):
        render_flat(images, {k: v[:1] for k, v in params.items()}, 28)


def test_render_flat_keeps_the_garment_visible_where_the_gradient_clamps() -> None:
    images = torch.full((1, 1, 28, 28), 255, dtype=torch.uint8)
    params = {"tone": torch.tensor([0.35]), "angle": torch.tensor([math.pi / 4]), "strength": torch.tensor([0.3])}
    out = render_flat(images, params, 28)
    assert torch.all(out > -1.0) and -1.0 + 2 * GARMENT_FLOOR - 1e-6 <= out.min() < -0.9  # top-left corner
    assert out.max() <= 1.0


# ---------------------------------------------------------------------- Fashion-MNIST simulated
def test_batch_shapes_ranges_and_attributes(simulated: FashionMNISTSimulated) -> None:
    assert isinstance(simulated, SimulatedPairs)
    batch = simulated.get_batch(torch.arange(16))
    assert set(batch) == {"synthetic", "label", "image"}
    assert batch["synthetic"].shape == batch["image"].shape == (16, 1, 28, 28)
    assert batch["synthetic"].dtype == batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (16,)
    for key in ("synthetic", "image"):
        assert -1.0 <= batch[key].min() and batch[key].max() <= 1.0
    assert len(simulated) == simulated.len_real == HALF
    assert simulated.num_classes == 10 and simulated.classes == list(FASHION_MNIST_CLASSES)
    assert simulated.image_size == (28, 28) and simulated.channels == 1
    assert simulated.source_files and all(path.is_file() for path in simulated.source_files)
    single = simulated[5]
    assert single["synthetic"].shape == (1, 28, 28) and single["label"].ndim == 0


def test_synthetic_images_are_flat_silhouettes_of_the_first_half(
    simulated: FashionMNISTSimulated, train: FashionMNIST
) -> None:
    indices = torch.arange(0, HALF, 59)  # 509 images across the whole first half
    synthetic, labels = simulated.synthetic_batch(indices)
    assert torch.equal(labels, train.labels[indices])
    silhouette = train.images[indices, 0] > FOREGROUND_THRESHOLD
    drawn = synthetic[:, 0] > -1.0
    assert torch.equal(drawn, silhouette)  # IoU 1 at 28 px
    everything, _ = simulated.synthetic_batch(torch.arange(HALF))  # the whole half, clamped corners included
    assert torch.equal(everything[:, 0] > -1.0, train.images[:HALF, 0] > FOREGROUND_THRESHOLD)
    del everything
    assert torch.all(synthetic[:, 0][~silhouette] == -1.0)
    # flat up to the gradient: the spread inside the garment is far below the real images'
    real, _ = train.get_batch(indices)
    synthetic_std = torch.stack([s[m].std() for s, m in zip(synthetic[:, 0], silhouette)])
    real_std = torch.stack([r[m].std() for r, m in zip(real[:, 0], silhouette)])
    assert synthetic_std.mean() < 0.5 * real_std.mean()
    # and exactly the simulator's formula: tone + strength * (x cos + y sin), clamped
    params = rendering_params(HALF, 0)
    tone, angle, strength = (params[k][indices].view(-1, 1, 1) for k in ("tone", "angle", "strength"))
    y, x = torch.meshgrid(torch.linspace(-1, 1, 28), torch.linspace(-1, 1, 28), indexing="ij")
    value = (tone + strength * (x * torch.cos(angle) + y * torch.sin(angle))).clamp(GARMENT_FLOOR, 1)
    assert torch.allclose(synthetic[:, 0][silhouette], (2 * value - 1)[silhouette], atol=1e-5)


def test_synthetic_images_are_fixed_and_the_seed_changes_them(simulated: FashionMNISTSimulated) -> None:
    torch.manual_seed(1)
    first = simulated.get_batch([7, 3, 7])["synthetic"]
    torch.manual_seed(2)
    second = simulated.get_batch([3, 7])["synthetic"]
    assert torch.equal(first[0], first[2]) and torch.equal(first[0], second[1]) and torch.equal(first[1], second[0])
    assert torch.equal(simulated.synthetic_batch([7])[0][0], first[0])
    other = FashionMNISTSimulated(seed=1)
    images, _ = other.synthetic_batch(torch.arange(8))
    ours, _ = simulated.synthetic_batch(torch.arange(8))
    assert torch.equal(images > -1, ours > -1) and not torch.allclose(images, ours)


def test_real_images_come_from_the_second_half_without_labels(
    simulated: FashionMNISTSimulated, train: FashionMNIST
) -> None:
    torch.manual_seed(123)
    drawn = torch.randint(HALF, (64,))
    after_draw = torch.get_rng_state()
    torch.manual_seed(123)
    batch = simulated.get_batch(torch.arange(64))
    assert torch.equal(torch.get_rng_state(), after_draw)  # the draw is the only use of the RNG
    expected, _ = train.get_batch(HALF + drawn)
    assert torch.equal(batch["image"], expected)
    assert torch.equal(batch["label"], train.labels[:64])  # the synthetic images' labels, not the real ones'
    assert torch.equal(simulated.real_batch([0, 29_999]), train.get_batch(torch.tensor([HALF, 59_999]))[0])
    with pytest.raises(IndexError):
        simulated.real_batch([HALF])


def test_get_batch_is_resumable(simulated: FashionMNISTSimulated) -> None:
    indices = torch.tensor([4, 8, 15, 16, 23, 42])
    torch.manual_seed(9)
    first = simulated.get_batch(indices)
    torch.manual_seed(9)
    second = simulated.get_batch(indices)
    assert all(torch.equal(first[key], second[key]) for key in first)
    state = torch.get_rng_state()
    a = simulated.get_batch(indices)
    torch.set_rng_state(state)
    b = simulated.get_batch(indices)
    assert torch.equal(a["image"], b["image"])


def test_fashion_mnist_simulated_resizes_and_repeats_channels(train: FashionMNIST) -> None:
    dataset = FashionMNISTSimulated(image_size=32, channels=3)
    batch = dataset.get_batch(torch.arange(4))
    assert batch["synthetic"].shape == batch["image"].shape == (4, 3, 32, 32)
    assert torch.equal(batch["synthetic"][:, 0], batch["synthetic"][:, 2])
    assert torch.equal(batch["image"][:, 0], batch["image"][:, 1])
    assert dataset.image_size == (32, 32) and dataset.channels == 3
    # hard edges: the silhouette is the 28 px one resized with nearest neighbour, the rest exactly -1
    silhouette = (train.images[:4] > FOREGROUND_THRESHOLD).float()
    expected = F.interpolate(silhouette, size=(32, 32), mode="nearest-exact")[:, 0] > 0
    assert torch.equal(batch["synthetic"][:, 0] > -1, expected)
    assert torch.all(batch["synthetic"][:, 0][~expected] == -1.0)


# ------------------------------------------------------------------------------------- folders
def test_folder_simulated_converts_sizes_and_channels(tmp_path: Path) -> None:
    synthetic, real = write_folders(tmp_path)
    dataset = FolderSimulated(synthetic, real, image_size=24, channels=3)
    assert dataset.classes == ["circle", "square"] and dataset.num_classes == 2
    assert len(dataset) == 5 and dataset.len_real == 5
    assert dataset.image_size == (24, 24) and dataset.channels == 3
    assert len(dataset.source_files) == 10
    torch.manual_seed(0)
    batch = dataset.get_batch(torch.arange(5))
    assert batch["synthetic"].shape == batch["image"].shape == (5, 3, 24, 24)
    assert batch["label"].tolist() == [0, 0, 0, 1, 1]
    assert torch.equal(batch["image"][:, 0], batch["image"][:, 1])  # grey real images, as RGB
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    torch.manual_seed(0)
    assert torch.equal(dataset.get_batch(torch.arange(5))["image"], batch["image"])
    assert dataset.real_batch([0, 4]).shape == (2, 3, 24, 24)
    grey = build_simulated_dataset(str(synthetic), str(real), image_size=40, channels=1)
    assert isinstance(grey, FolderSimulated)
    images, labels = grey.synthetic_batch([4])
    assert images.shape == (1, 1, 40, 40) and labels.tolist() == [1]
    # real images in sub-folders: the sub-folders' names are ignored
    nested = tmp_path / "nested"
    for i, name in enumerate(("day", "night")):
        save(np.full((40, 40), 60 * i, dtype=np.uint8), nested / name / f"{i}.png")
    assert FolderSimulated(synthetic, nested, image_size=8).len_real == 2


def test_folder_simulated_errors(tmp_path: Path) -> None:
    synthetic, real = write_folders(tmp_path)
    flat = tmp_path / "flat"
    save(np.zeros((8, 8, 3), dtype=np.uint8), flat / "a.png")
    with pytest.raises(BadDataError, match="SimGAN needs labelled synthetic images: put them in one sub-folder per class"):
        FolderSimulated(flat, real)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadDataError, match="no images"):
        FolderSimulated(tmp_path / "empty", real)
    with pytest.raises(BadDataError, match=r"real image folder .*empty.* holds no images"):
        FolderSimulated(synthetic, tmp_path / "empty")
    with pytest.raises(DatasetNotFoundError, match=r"synthetic image folder .*missing.* does not exist"):
        FolderSimulated(tmp_path / "missing", real)
    with pytest.raises(DatasetNotFoundError, match=r"real image folder .*missing.* does not exist.*--real"):
        FolderSimulated(synthetic, tmp_path / "missing")


def test_build_simulated_dataset(tmp_path: Path, simulated: FashionMNISTSimulated) -> None:
    default = build_simulated_dataset(image_size=28, seed=0)
    assert isinstance(default, FashionMNISTSimulated)
    assert torch.equal(default.synthetic_batch([1])[0], simulated.synthetic_batch([1])[0])
    synthetic, real = write_folders(tmp_path)
    with pytest.raises(ValueError, match="both --synthetic and --real are needed"):
        build_simulated_dataset(synthetic=str(synthetic))
    with pytest.raises(ValueError, match="both --synthetic and --real are needed"):
        build_simulated_dataset(real=str(real))
