"""Tests of gauguin.data: IDX reading, Fashion-MNIST (real files), image folders, build_dataset."""
from __future__ import annotations

import gzip
import os
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.data import (
    FASHION_MNIST_CLASSES,
    BadDataError,
    DatasetNotFoundError,
    FashionMNIST,
    ImageFolder,
    Preprocessing,
    build,
    find_fashion_mnist,
    read_idx,
)
from gauguin.data import fashion_mnist as fashion_mnist_module



def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


# ----------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("gzipped", [True, False])
def test_read_idx_round_trip(tmp_path, gzipped):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    data = idx_bytes(array)
    path = tmp_path / ("tiny-idx3-ubyte.gz" if gzipped else "tiny-idx3-ubyte")
    path.write_bytes(gzip.compress(data) if gzipped else data)
    out = read_idx(path)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_read_idx_truncated_gzip_names_file(tmp_path):
    path = tmp_path / "cut-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(1000) % 256))[:-40])
    with pytest.raises(BadDataError, match="cut-idx1-ubyte.gz") as info:
        read_idx(path)
    assert "download it again" in str(info.value)


def test_read_idx_wrong_payload_length(tmp_path):
    path = tmp_path / "short-idx1-ubyte"
    path.write_bytes(idx_bytes(np.zeros(10))[:-1])
    with pytest.raises(BadDataError, match="short-idx1-ubyte.*needs 18"):
        read_idx(path)


def test_read_idx_wrong_magic(tmp_path):
    path = tmp_path / "float-idx1"
    path.write_bytes(bytes([0, 0, 0x0D, 1]) + struct.pack(">I", 1) + b"\0\0\0\0")
    with pytest.raises(BadDataError, match="magic number 00000d01"):
        read_idx(path)


# -------------------------------------------------------------------------- find_fashion_mnist
def test_find_explicit_root_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        find_fashion_mnist(tmp_path / "nowhere")
    with pytest.raises(DatasetNotFoundError, match="lacks train-images-idx3-ubyte.gz"):
        find_fashion_mnist(tmp_path)


@pytest.fixture
def empty_search_places(tmp_path, monkeypatch):
    """No Fashion-MNIST anywhere: empty system dir and cache, no environment variable."""
    monkeypatch.setattr(fashion_mnist_module, "SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(fashion_mnist_module.ENV_VAR, raising=False)
    return tmp_path / "cache" / "gauguin" / "fashion-mnist"


def test_find_offline_says_how_to_fix(empty_search_places, monkeypatch):
    def offline(url, dest):
        raise OSError("network is unreachable")

    monkeypatch.setattr(fashion_mnist_module, "_download", offline)
    with pytest.raises(DatasetNotFoundError) as info:
        find_fashion_mnist()
    message = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in message
    assert str(empty_search_places) in message
    assert "network is unreachable" in message
    assert "data_root=" in message


def test_find_without_download_does_not_fetch(empty_search_places, monkeypatch):
    def must_not_download(url, dest):
        pytest.fail(f"downloaded {url} although download=False")

    monkeypatch.setattr(fashion_mnist_module, "_download", must_not_download)
    with pytest.raises(DatasetNotFoundError, match="Downloading is off"):
        find_fashion_mnist(download=False)


def test_find_downloads_into_cache(empty_search_places, monkeypatch):
    fetched = []

    def fake_download(url, dest):
        fetched.append(url)
        dest.write_bytes(gzip.compress(idx_bytes(np.zeros(1))))

    monkeypatch.setattr(fashion_mnist_module, "_download", fake_download)
    assert find_fashion_mnist() == empty_search_places
    assert len(fetched) == 4
    assert all(url.startswith(fashion_mnist_module.DOWNLOAD_URL) for url in fetched)
    assert find_fashion_mnist() == empty_search_places  # found in the cache now
    assert len(fetched) == 4


def test_find_env_var_and_raw_files(empty_search_places, monkeypatch, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    for stem in fashion_mnist_module._FILE_STEMS:
        (folder / stem).write_bytes(idx_bytes(np.zeros(1)))
    monkeypatch.setenv(fashion_mnist_module.ENV_VAR, str(folder))
    assert find_fashion_mnist() == folder


# ------------------------------------------------------------------------ FashionMNIST (real)
@pytest.fixture(scope="module")
def fashion_train():
    return FashionMNIST("train")


@pytest.fixture(scope="module")
def fashion_test():
    return FashionMNIST("test")


def test_fashion_mnist_counts_and_labels(fashion_train, fashion_test):
    assert len(fashion_train) == 60_000 and len(fashion_test) == 10_000
    assert fashion_train.images.dtype == torch.uint8
    assert fashion_train.images.shape == (60_000, 1, 28, 28)
    assert fashion_train.labels.dtype == torch.int64
    assert fashion_train.labels.min() == 0 and fashion_train.labels.max() == 9
    assert torch.bincount(fashion_test.labels).tolist() == [1000] * 10
    assert torch.bincount(fashion_train.labels).tolist() == [6000] * 10
    assert fashion_train.classes == FASHION_MNIST_CLASSES and fashion_train.num_classes == 10
    assert fashion_train[0][1] == 9  # the first training image is an ankle boot


def test_fashion_mnist_all_split():
    assert len(FashionMNIST("all")) == 70_000


def test_fashion_mnist_batches(fashion_train):
    images, labels = fashion_train.get_batch(torch.arange(64))
    assert images.shape == (64, 1, 28, 28) and images.dtype == torch.float32
    assert images.min() == -1.0 and images.max() == 1.0
    assert torch.equal(labels, fashion_train.labels[:64])
    image, label = fashion_train[3]
    assert image.shape == (1, 28, 28) and isinstance(label, int)
    assert torch.equal(image, images[3])


@pytest.mark.parametrize("image_size, channels", [(32, 1), (32, 3), (16, 3)])
def test_fashion_mnist_resized(image_size, channels):
    data = FashionMNIST("test", Preprocessing(crop_size=image_size, channels=channels))
    images, _ = data.get_batch(torch.tensor([0, 5, 9999]))
    assert images.shape == (3, channels, image_size, image_size)
    assert images.min() >= -1.0 and images.max() <= 1.0
    if channels == 3:
        assert torch.equal(images[:, 0], images[:, 2])
    assert data[0][0].shape == (channels, image_size, image_size)


def test_fashion_mnist_bad_split():
    with pytest.raises(ValueError, match="'validation'"):
        FashionMNIST("validation")


# -------------------------------------------------------------------------------- ImageFolder
def save_image(path: Path, size: tuple[int, int], mode: str = "RGB", seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode=mode).save(path)


def test_folder_with_classes_mixed_sizes_and_modes(tmp_path):
    save_image(tmp_path / "cats" / "a.png", (20, 30), "L")
    save_image(tmp_path / "cats" / "b.JPG", (64, 64), "RGB")
    save_image(tmp_path / "dogs" / "c.png", (64, 48), "RGBA")
    save_image(tmp_path / "dogs" / "nested" / "d.bmp", (10, 10), "RGB")
    (tmp_path / "dogs" / "notes.txt").write_text("not an image")
    for channels in (1, 3):
        data = ImageFolder(tmp_path, Preprocessing(crop_size=16, channels=channels))
        assert data.classes == ("cats", "dogs") and data.num_classes == 2
        assert [p.name for p in data.files] == ["a.png", "b.JPG", "c.png", "d.bmp"]
        assert data.labels.tolist() == [0, 0, 1, 1]
        for index in range(len(data)):
            image, label = data[index]
            assert image.shape == (channels, 16, 16) and image.dtype == torch.float32
            assert image.min() >= -1.0 and image.max() <= 1.0
            assert label == data.labels[index]
        images, labels = data.get_batch(torch.tensor([3, 0]))
        assert images.shape == (2, channels, 16, 16) and labels.tolist() == [1, 0]


def test_folder_flat_and_grey_to_rgb(tmp_path):
    grey = np.full((30, 20), 255, dtype=np.uint8)
    Image.fromarray(grey, mode="L").save(tmp_path / "white.png")
    save_image(tmp_path / "noise.webp", (40, 40), "RGB")
    data = ImageFolder(tmp_path, Preprocessing(crop_size=8, channels=3))
    assert data.classes == ("all",) and data.num_classes == 1
    assert data.labels.tolist() == [0, 0]
    image, _ = data[1]  # sorted: noise.webp, white.png
    assert image.shape == (3, 8, 8) and torch.all(image == 1.0)


def test_folder_sixteen_bit_grey(tmp_path):
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    image, _ = ImageFolder(tmp_path, Preprocessing(crop_size=8, channels=1))[0]
    assert torch.all(image == 1.0)


def test_folder_subfolders_win_over_top_level(tmp_path):
    save_image(tmp_path / "loose.png", (8, 8))
    save_image(tmp_path / "class" / "kept.png", (8, 8))
    with pytest.warns(UserWarning, match="ignoring .*loose.png"):
        data = ImageFolder(tmp_path, Preprocessing(crop_size=8, channels=3))
    assert [p.name for p in data.files] == ["kept.png"]


def test_folder_skips_a_corrupt_file(tmp_path):
    for i in range(30):
        save_image(tmp_path / f"{i:02d}.png", (12, 12), seed=i)
    (tmp_path / "broken.png").write_bytes(os.urandom(200))
    with pytest.warns(UserWarning, match="skipping 1 unreadable image.*broken.png") as record:
        data = ImageFolder(tmp_path, Preprocessing(crop_size=8, channels=3))
    assert len(record) == 1
    assert len(data) == 30
    assert data.skipped == [tmp_path / "broken.png"]


def test_folder_too_many_corrupt_files(tmp_path):
    save_image(tmp_path / "good.png", (12, 12))
    for i in range(3):
        (tmp_path / f"broken{i}.png").write_bytes(os.urandom(200))
    with pytest.raises(BadDataError, match="(?s)3 of 4 images .*cannot be read.*broken0.png"):
        ImageFolder(tmp_path, Preprocessing(crop_size=8, channels=3))


def test_too_many_corrupt_images_stop_a_dcgan_run_with_a_fix_it_can_follow(tmp_path):
    """Issue 15's tiny DCGAN on an image folder that is mostly unreadable: the run stops before
    its first step, and the fix names no option the config lacks (it said "raise max_bad_fraction")."""
    from conftest import tiny_config
    from gauguin.training import train

    for i in range(8):
        save_image(tmp_path / "images" / f"{i}.png", (12, 12), seed=i)
    for i in range(2):
        (tmp_path / "images" / f"broken{i}.png").write_bytes(os.urandom(100))
    cfg = tiny_config(tmp_path / "run", dataset="folder", data_root=str(tmp_path / "images"), channels=3,
                      eval_every=0)
    with pytest.raises(BadDataError, match=r"(?s)2 of 10 images .* \(at most 5% of them are\):.*broken0\.png.*"
                                           r"Fix: delete or re-export these files\.$") as info:
        train("dcgan", cfg)
    assert "max_bad_fraction" not in str(info.value)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_folder_file_going_bad_after_scan(tmp_path):
    save_image(tmp_path / "a.png", (12, 12))
    data = ImageFolder(tmp_path, Preprocessing(crop_size=8, channels=3))
    (tmp_path / "a.png").write_bytes(b"garbage")
    with pytest.raises(BadDataError, match="a.png"):
        data[0]


def test_folder_empty_missing_and_not_a_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(BadDataError, match=r"no images found .*\.png"):
        ImageFolder(tmp_path, Preprocessing(crop_size=8, channels=3))
    with pytest.raises(DatasetNotFoundError, match="missing"):
        ImageFolder(tmp_path / "missing", Preprocessing(crop_size=8, channels=3))
    with pytest.raises(BadDataError, match="readme.txt is not a folder"):
        ImageFolder(tmp_path / "readme.txt", Preprocessing(crop_size=8, channels=3))


# ------------------------------------------------------------------------------ build (classes)
def classes(spec: str, root: str = "", size: int = 32, channels: int = 1, split: str = "train"):
    return build(spec, split, Preprocessing(crop_size=size, channels=channels), task="classes", root=root)


def test_build_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match="did you mean 'fashion-mnist'") as info:
        classes("fashion-mnst")
    assert "'folder'" in str(info.value)


def test_build_folder_needs_root():
    with pytest.raises(BadDataError, match="data_root=PATH"):
        classes("folder", channels=3)


def test_build_folder(tmp_path):
    save_image(tmp_path / "x.png", (10, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = classes("folder", str(tmp_path), 16, 3)
    assert isinstance(data, ImageFolder) and data[0][0].shape == (3, 16, 16)


def test_build_fashion_mnist_searches():
    data = classes("fashion_mnist", split="test")
    assert isinstance(data, FashionMNIST) and len(data) == 10_000
    assert data.get_batch(torch.arange(2))[0].shape == (2, 1, 32, 32)


def test_every_family_s_data_spec_names_the_same_datasets(tmp_path):
    """`--data fashion-mnist` and `--data folder:PATH` (the other families' grammar) work for DCGAN too."""
    a, b = classes("fashion-mnist", size=28, split="test"), classes("fashion_mnist", size=28, split="test")
    assert len(a) == len(b) == 10_000 and torch.equal(a.get_batch([0, 5])[0], b.get_batch([0, 5])[0])
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    folder = classes(f"folder:{tmp_path}", size=28)
    assert len(folder) == 3
    with pytest.raises(BadDataError, match="give the folder once"):
        classes(f"folder:{tmp_path}", "/elsewhere", 28)
