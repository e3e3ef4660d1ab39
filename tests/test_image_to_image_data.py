"""Tests of the pix2pix (paired) and CycleGAN (unpaired) datasets: Fashion-MNIST edges and
domains on the real Fashion-MNIST test split, folders on small synthetic files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gauguin.data import (
    FASHION_MNIST_CLASSES,
    BadDataError,
    DatasetNotFoundError,
    FashionMNISTDomains,
    FashionMNISTEdges,
    PairedFolder,
    UnpairedFolder,
    Preprocessing,
    build,
    edge_drawing,
)


# ------------------------------------------------------------------------------------ helpers
def save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def as_unit(array: np.ndarray) -> torch.Tensor:
    """uint8 ``[H, W, 3]`` -> float ``[3, H, W]`` in [-1, 1], as the datasets scale pixels."""
    return torch.from_numpy(array).permute(2, 0, 1).float() / 127.5 - 1.0


def asymmetric(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random RGB image whose left and right differ a lot (a ramp plus noise)."""
    ramp = np.linspace(0, 200, width)[None, :, None]
    return np.clip(ramp + rng.integers(0, 56, (height, width, 3)), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def edges() -> FashionMNISTEdges:
    return FashionMNISTEdges("test")


@pytest.fixture(scope="module")
def domains() -> FashionMNISTDomains:
    return FashionMNISTDomains("test")


# ----------------------------------------------------------------------- Fashion-MNIST edges
def test_edges_batch_shapes_range_and_labels(edges: FashionMNISTEdges) -> None:
    batch = edges.get_batch(torch.arange(16))
    assert set(batch) == {"input", "image", "label"}
    assert batch["input"].shape == batch["image"].shape == (16, 1, 32, 32)
    assert batch["input"].dtype == batch["image"].dtype == torch.float32
    assert set(batch["input"].unique().tolist()) <= {-1.0, 1.0}
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert torch.equal(batch["label"], edges.images.labels[:16])
    real, _ = edges.images.get_batch(torch.arange(16))
    assert torch.equal(batch["image"], real) and torch.equal(batch["input"], edge_drawing(real))
    assert edges.image_size == (32, 32) and edges.channels == edges.input_channels == 1
    assert len(edges) == 10_000 and edges.num_classes == 10 and edges.classes == list(FASHION_MNIST_CLASSES)
    assert edges.source_files and all(path.is_file() for path in edges.source_files)


def test_edges_are_on_the_garment_and_the_background_is_white(edges: FashionMNISTEdges) -> None:
    batch = edges.get_batch(torch.arange(500))
    drawn = batch["input"][:, 0] < 0
    garment = batch["image"][:, 0] > -1 + 2 * 8 / 255  # the silhouette (threshold of silhouettes.py)
    near = F.max_pool2d(garment[:, None].float(), 3, 1, 1)[:, 0] > 0
    assert (drawn & near).sum() >= 0.99 * drawn.sum()  # edges lie on the garment or next to it
    far = F.max_pool2d(near[:, None].float(), 5, 1, 2)[:, 0] == 0
    assert far.any() and not drawn[far].any()  # the background is white
    # the garment's outline (silhouette pixels with a background neighbour) is drawn, within 1 px
    outline = garment & (F.max_pool2d((~garment)[:, None].float(), 3, 1, 1)[:, 0] > 0)
    drawn_near = F.max_pool2d(drawn[:, None].float(), 3, 1, 1)[:, 0] > 0
    assert (drawn_near & outline).sum() >= 0.9 * outline.sum()
    assert 0.02 < drawn.float().mean() < 0.3  # a line drawing, neither blank nor filled


def test_edge_drawing_of_uniform_images_is_white_and_a_step_is_drawn() -> None:
    flat = torch.linspace(-1, 1, 5).view(5, 1, 1, 1).expand(5, 1, 24, 24)
    assert torch.equal(edge_drawing(flat), torch.ones(5, 1, 24, 24))
    step = torch.full((1, 1, 16, 16), -1.0)
    step[..., 8:] = 1.0
    drawing = edge_drawing(step)[0, 0]
    assert (drawing[:, 7:9] == -1).any(dim=1).all()  # a line along the step on every row
    assert (drawing[:, :6] == 1).all() and (drawing[:, 10:] == 1).all()


def test_edges_btoa_rgb_and_flip() -> None:
    forward = FashionMNISTEdges("test", prep=Preprocessing(crop_size=28, channels=3))
    backward = FashionMNISTEdges("test", prep=Preprocessing(crop_size=28, channels=3), direction="BtoA")
    a, b = forward.get_batch([0, 1]), backward.get_batch([0, 1])
    assert a["input"].shape == (2, 3, 28, 28)
    assert torch.equal(a["input"], b["image"]) and torch.equal(a["image"], b["input"])
    flipping = FashionMNISTEdges("test", prep=Preprocessing(crop_size=28, flip=True))
    torch.manual_seed(0)
    out = flipping.get_batch(torch.zeros(16, dtype=torch.long))
    plain = FashionMNISTEdges("test", prep=Preprocessing(crop_size=28)).get_batch([0])
    seen = set()
    for edge, image in zip(out["input"], out["image"]):  # both sides flipped together, or neither
        flipped = not torch.equal(image, plain["image"][0])
        expected_edge, expected_image = plain["input"][0], plain["image"][0]
        if flipped:
            expected_edge, expected_image = expected_edge.flip(-1), expected_image.flip(-1)
        assert torch.equal(image, expected_image) and torch.equal(edge, expected_edge)
        seen.add(flipped)
    assert seen == {False, True}
    with pytest.raises(ValueError, match="AtoB"):
        FashionMNISTEdges("test", direction="AtB")


# --------------------------------------------------------------------- Fashion-MNIST domains
def test_domains_hold_their_classes(domains: FashionMNISTDomains) -> None:
    labels = domains.images.labels
    assert domains.domains == ("Sneaker", "Ankle boot")
    assert (labels[domains.indices_a] == 7).all() and (labels[domains.indices_b] == 9).all()
    assert domains.len_a == (labels == 7).sum() and domains.len_b == (labels == 9).sum()
    assert len(domains) == max(domains.len_a, domains.len_b)
    assert domains.num_classes == 1 and list(domains.classes) == []
    torch.manual_seed(0)
    batch = domains.get_batch(torch.arange(32))
    assert set(batch) == {"a", "b", "image"} and batch["image"] is batch["b"]
    assert batch["a"].shape == batch["b"].shape == (32, 1, 32, 32)
    real, real_labels = domains.images.get_batch(domains.indices_a[:32])
    assert torch.equal(batch["a"], real) and (real_labels == 7).all()
    # every B image is one of the class-b images, none is a class-a image
    all_b = domains.get_domain("b", torch.arange(domains.len_b)).flatten(1)
    all_a = domains.get_domain("Sneaker", torch.arange(domains.len_a)).flatten(1)
    for image in batch["b"].flatten(1):
        assert (all_b == image).all(dim=1).any() and not (all_a == image).all(dim=1).any()


def test_domains_b_draws_follow_the_seed(domains: FashionMNISTDomains) -> None:
    indices = torch.arange(8)
    torch.manual_seed(3)
    first = domains.get_batch(indices)
    torch.manual_seed(3)
    again = domains.get_batch(indices)
    torch.manual_seed(4)
    other = domains.get_batch(indices)
    assert torch.equal(first["b"], again["b"]) and torch.equal(first["a"], other["a"])
    assert not torch.equal(first["b"], other["b"])


def test_domains_classes_by_name_or_index() -> None:
    data = FashionMNISTDomains("test", prep=Preprocessing(crop_size=28), domain_a="t-shirt/TOP", domain_b=1)
    assert data.domains == ("T-shirt/top", "Trouser") and data.image_size == (28, 28)
    with pytest.raises(ValueError, match="did you mean 'Sneaker'") as err:
        FashionMNISTDomains("test", domain_a="Sneakers")
    assert "'Ankle boot'" in str(err.value)  # the classes are listed
    with pytest.raises(ValueError, match="out of range"):
        FashionMNISTDomains("test", domain_b=10)
    with pytest.raises(ValueError, match="different"):
        FashionMNISTDomains("test", domain_a="Bag", domain_b=8)


# ------------------------------------------------------------------------------ paired folders
def test_side_by_side_files_split_into_a_and_b(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a, b = asymmetric(rng, 12, 16), rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    save(np.concatenate([a, b], axis=1), tmp_path / "train" / "x.png")
    data = PairedFolder(tmp_path, prep=Preprocessing(mode="none", augment=False))
    assert data.layout == "side_by_side" and data.image_size == (12, 16) and len(data) == 1
    assert data.channels == data.input_channels == 3 and data.num_classes == 1 and list(data.classes) == []
    batch = data.get_batch([0])
    assert set(batch) == {"input", "image"}
    assert torch.equal(batch["input"][0], as_unit(a)) and torch.equal(batch["image"][0], as_unit(b))
    swapped = PairedFolder(tmp_path, prep=Preprocessing(mode="none", augment=False), direction="BtoA").get_batch([0])
    assert torch.equal(swapped["input"], batch["image"]) and torch.equal(swapped["image"], batch["input"])
    assert data.source_files == [tmp_path / "train" / "x.png"]


def test_side_by_side_odd_width_and_empty_folder(tmp_path: Path) -> None:
    save(np.zeros((8, 17, 3), np.uint8), tmp_path / "train" / "odd.png")
    data = PairedFolder(tmp_path, prep=Preprocessing(crop_size=8, load_size=8))
    with pytest.raises(BadDataError, match=r"odd\.png.*odd width"):
        data.get_batch([0])
    (tmp_path / "test").mkdir()
    with pytest.raises(BadDataError, match="no images in .*test"):
        PairedFolder(tmp_path, split="test")
    with pytest.raises(BadDataError, match=r"neither .*val.*\(it has train/\)"):
        PairedFolder(tmp_path, split="val")
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        PairedFolder(tmp_path / "nowhere")


def test_separate_folders_join_by_stem(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pairs = {name: (asymmetric(rng, 10, 14), asymmetric(rng, 10, 14)) for name in ("p", "q", "r")}
    for name, (a, b) in pairs.items():
        save(a, tmp_path / "A" / "train" / f"{name}.png")
        save(b, tmp_path / "B" / "train" / f"{name}.bmp")  # another extension: joined by stem
    data = PairedFolder(tmp_path, prep=Preprocessing(mode="none", augment=False))
    assert data.layout == "separate" and len(data) == 3 and len(data.source_files) == 6
    batch = data.get_batch([2, 0])
    for row, name in enumerate(("r", "p")):
        assert torch.equal(batch["input"][row], as_unit(pairs[name][0]))
        assert torch.equal(batch["image"][row], as_unit(pairs[name][1]))
    save(pairs["p"][0], tmp_path / "A" / "train" / "lonely.png")
    with pytest.raises(BadDataError, match=r"missing pair: 1 image\(s\) in .*A.train have no partner.*lonely\.png"):
        PairedFolder(tmp_path)
    (tmp_path / "A" / "train" / "lonely.png").unlink()
    save(np.zeros((10, 12, 3), np.uint8), tmp_path / "B" / "train" / "q.bmp")
    with pytest.raises(BadDataError, match=r"q\.png is 14x10 but its pair .*q\.bmp is 12x10"):
        PairedFolder(tmp_path, prep=Preprocessing(augment=False, crop_size=8, load_size=8)).get_batch([1])


def test_paired_crop_and_flip_are_shared(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    a = asymmetric(rng, 20, 24)
    save(a, tmp_path / "A" / "train" / "s.png")
    save(255 - a, tmp_path / "B" / "train" / "s.png")  # B = negative of A: crops must match
    flips = PairedFolder(tmp_path, prep=Preprocessing(mode="none"))
    torch.manual_seed(0)
    batch = flips.get_batch(torch.zeros(16, dtype=torch.long))
    seen = set()
    for source, target in zip(batch["input"], batch["image"]):
        flipped = not torch.equal(source, as_unit(a))
        if flipped:
            assert torch.equal(source, as_unit(a).flip(-1))
        assert torch.allclose(target, -source, atol=1e-6)  # the same flip on both sides
        seen.add(flipped)
    assert seen == {False, True}
    crops = PairedFolder(tmp_path, prep=Preprocessing(crop_size=16, load_size=22))
    torch.manual_seed(1)
    batch = crops.get_batch(torch.zeros(8, dtype=torch.long))
    assert batch["input"].shape == (8, 3, 16, 16) and crops.image_size == (16, 16)
    assert (batch["input"] + batch["image"]).abs().max() <= 1.01 / 127.5  # same crop, up to rounding
    assert len({tuple(x.flatten()[:8].tolist()) for x in batch["input"]}) > 1  # crops vary


def test_paired_without_augmentation_is_deterministic_and_leaves_the_rng(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for name in ("u", "v"):
        save(np.concatenate([asymmetric(rng, 18, 18), asymmetric(rng, 18, 18)], 1), tmp_path / "train" / f"{name}.png")
    data = PairedFolder(tmp_path, prep=Preprocessing(crop_size=12, load_size=15, augment=False))
    state = torch.get_rng_state()
    first, second = data.get_batch([0, 1]), data.get_batch([0, 1])
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first["input"], second["input"]) and torch.equal(first["image"], second["image"])


# ---------------------------------------------------------------------------- unpaired folders
def make_unpaired(root: Path, count_a: int, count_b: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(4)
    images = [], []
    for key, count, folder in ((0, count_a, "trainA"), (1, count_b, "trainB")):
        for i in range(count):
            image = asymmetric(rng, 12 + i, 16 + 2 * i)  # sizes differ across files
            images[key].append(image)
            save(image, root / folder / f"{i}.png")
    return images


def test_unpaired_folder_batches(tmp_path: Path) -> None:
    root = tmp_path / "horse2zebra"
    make_unpaired(root, 3, 5)
    data = UnpairedFolder(root, prep=Preprocessing(crop_size=8, load_size=10, augment=False))
    assert (data.len_a, data.len_b, len(data)) == (3, 5, 5)
    assert data.domains == ("horse", "zebra") and data.channels == 3 and data.image_size == (8, 8)
    assert len(data.source_files) == 8 and data.num_classes == 1 and list(data.classes) == []
    torch.manual_seed(0)
    batch = data.get_batch(torch.arange(5))
    assert set(batch) == {"a", "b", "image"} and batch["image"] is batch["b"]
    assert batch["a"].shape == batch["b"].shape == (5, 3, 8, 8)
    assert torch.equal(batch["a"][3:], batch["a"][:2])  # index i is A[i % len_a]
    all_a, all_b = data.get_domain("a", range(3)), data.get_domain("zebra", range(5))
    assert torch.equal(batch["a"][:3], all_a)
    for image in batch["b"]:
        assert any(torch.equal(image, other) for other in all_b)
    torch.manual_seed(0)
    again = data.get_batch(torch.arange(5))
    assert torch.equal(again["a"], batch["a"]) and torch.equal(again["b"], batch["b"])
    state = torch.get_rng_state()
    data.get_domain("b", [4, 0])
    assert torch.equal(torch.get_rng_state(), state)  # evaluation order draws nothing


def test_unpaired_folder_b_draws_and_augmentation_follow_the_seed(tmp_path: Path) -> None:
    make_unpaired(tmp_path, 2, 6)
    data = UnpairedFolder(tmp_path, prep=Preprocessing(crop_size=8, load_size=12))
    results = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        results.append(data.get_batch(torch.arange(6)))
    assert all(torch.equal(results[0][k], results[1][k]) for k in ("a", "b"))
    assert not torch.equal(results[0]["b"], results[2]["b"])


def test_unpaired_folder_missing_or_empty_domain(tmp_path: Path) -> None:
    make_unpaired(tmp_path, 2, 0)
    with pytest.raises(BadDataError, match=f"domain folder {tmp_path / 'trainB'} does not exist"):
        UnpairedFolder(tmp_path)
    (tmp_path / "trainB").mkdir()
    with pytest.raises(BadDataError, match=f"no images in domain folder {tmp_path / 'trainB'}"):
        UnpairedFolder(tmp_path)
    with pytest.raises(BadDataError, match="testA"):
        UnpairedFolder(tmp_path, split="test")
    save(np.zeros((4, 4, 3), np.uint8), tmp_path / "trainB" / "0.png")
    fixed = UnpairedFolder(tmp_path, prep=Preprocessing(mode="none", augment=False))  # trainA/ has two sizes
    assert fixed.image_size == (12, 16)
    with pytest.raises(BadDataError, match=r"1\.png is 18x13 but preprocess='none' needs every image at 16x12"):
        fixed.get_domain("a", [1])


# ------------------------------------------------------------------------------------- specs
def test_build_specs(tmp_path: Path) -> None:
    small = Preprocessing(crop_size=8, load_size=8)
    paired = build("fashion-mnist", "val", Preprocessing(crop_size=28), task="pairs")
    assert isinstance(paired, FashionMNISTEdges) and paired.split == "test" and paired.image_size == (28, 28)
    save(np.zeros((8, 16, 3), np.uint8), tmp_path / "pairs" / "train" / "z.png")
    folder = build(f"folder:{tmp_path / 'pairs'}", "train", small, task="pairs")
    assert isinstance(folder, PairedFolder) and len(folder) == 1
    unpaired = build("fashion_mnist", "val", Preprocessing(), task="domains", domain_a="Coat", domain_b="Shirt")
    assert isinstance(unpaired, FashionMNISTDomains) and unpaired.domains == ("Coat", "Shirt")
    make_unpaired(tmp_path / "cyc", 1, 1)
    assert isinstance(build(f"folder:{tmp_path / 'cyc'}", "train", small, task="domains"), UnpairedFolder)
    with pytest.raises(ValueError, match="did you mean 'folder'"):
        build("foldr:/x", "train", small, task="pairs")
    with pytest.raises(ValueError, match="did you mean 'fashion-mnist'"):
        build("fashion-mnst", "train", small, task="domains")
    with pytest.raises(ValueError, match="names no folder"):
        build("folder", "train", small, task="domains")
