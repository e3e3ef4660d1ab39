"""Tests of the paired semantic datasets (COCO-Stuff, Cityscapes, ADE20K, label folders) and of
gauguin.nn.labels, on the real fixtures in ../shared/fixtures and on small synthetic folders."""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from gauguin.data import (
    ADE20K,
    BadDataError,
    Cityscapes,
    CocoStuff,
    DatasetNotFoundError,
    LabelFolder,
    Preprocessing,
    build,
    load_palette,
)
from gauguin.data.errors import LabelMapError
from gauguin.data.label_files import read_instance_file, read_label_file
from gauguin.data.label_scan import label_cache_file
from gauguin.nn.labels import instance_edges, one_hot_labels, semantic_input

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.fixture(scope="module")
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"real data fixtures not found at {FIXTURES}")
    return FIXTURES


# ------------------------------------------------------------------------------------ helpers
def save(array: np.ndarray, path: Path, mode: str | None = None, palette: list[int] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array, mode=mode) if mode else Image.fromarray(array)
    if palette is not None:
        image.putpalette(palette)
    image.save(path)
    return path


def random_rgb(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_folder(root: Path, labels: dict[str, np.ndarray], mode: str | None = None, size=None) -> Path:
    """``root/images/<name>.png`` (random) + ``root/labels/<name>.png`` from ``labels``."""
    rng = np.random.default_rng(0)
    for name, label in labels.items():
        height, width = size or label.shape[:2]
        save(random_rgb(rng, height, width), root / "images" / f"{name}.png")
        save(label, root / "labels" / f"{name}.png", mode)
    return root


def check_batch(batch: dict, size: tuple[int, int], n: int, num_labels: int, instances: bool) -> None:
    assert set(batch) == ({"image", "label_map", "instance"} if instances else {"image", "label_map"})
    assert batch["image"].shape == (n, 3, *size) and batch["image"].dtype == torch.float32
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["label_map"].shape == (n, *size) and batch["label_map"].dtype == torch.int64
    assert 0 <= batch["label_map"].min() and batch["label_map"].max() < num_labels
    if instances:
        assert batch["instance"].shape == (n, *size) and batch["instance"].dtype == torch.int64


def neighbour_edges(instance: np.ndarray) -> np.ndarray:
    """1 where a pixel differs from any of its 4 neighbours (written independently of the library)."""
    height, width = instance.shape
    edges = np.zeros((height, width), dtype=np.float32)
    padded = np.pad(instance, 1, mode="edge")
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
        edges[neighbour != instance] = 1.0
    return edges


# -------------------------------------------------------------------------------- COCO-Stuff
@pytest.mark.parametrize("split, n", [("train", 13), ("val", 8)])
def test_coco_stuff_loads(fixtures, split, n):
    data = CocoStuff(fixtures / "coco_stuff", split)
    assert len(data) == n and data.num_labels == 183 and len(data.label_names) == 183
    assert data.dont_care_index == 182 and data.label_names[182] == "dont_care"
    assert data.label_names[0] == "person" and data.label_names[181] == "wood"
    assert data.has_instances and data.image_size == (256, 256) and data.channels == 3
    assert len(data.source_files) == 3 * n and all(path.is_file() for path in data.source_files)
    torch.manual_seed(0)
    check_batch(data.get_batch(torch.arange(n)), (256, 256), n, 183, instances=True)


def test_coco_stuff_unlabeled_is_dont_care_and_maps_are_exact(fixtures):
    """At the files' own size (no resize, no crop) the outputs are the stored pixels, 255 -> 182."""
    data = CocoStuff(fixtures / "coco_stuff", "train",
                     Preprocessing(mode="fixed", crop_size=640, aspect_ratio=640 / 480, augment=False))
    index = next(
        i for i, s in enumerate(data.samples)
        if Image.open(s.label).size == (640, 480) and (read_label_file(s.label) == 255).any()
    )
    sample = data.samples[index]
    item = data[index]
    raw = read_label_file(sample.label)
    np.testing.assert_array_equal(item["label_map"].numpy(), np.where(raw == 255, 182, raw))
    assert (item["label_map"] == 182).any()
    np.testing.assert_array_equal(item["instance"].numpy(), read_instance_file(sample.instance))
    photo = np.asarray(Image.open(sample.image).convert("RGB")).astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy(), photo, atol=1e-6)


def test_nearest_resizing_never_invents_label_ids(fixtures):
    data = CocoStuff(fixtures / "coco_stuff", "train", Preprocessing(load_size=300, crop_size=200))  # down, up
    torch.manual_seed(1)
    batch = data.get_batch(torch.arange(len(data)))
    for sample, labels, instances in zip(data.samples, batch["label_map"], batch["instance"]):
        raw = read_label_file(sample.label)
        source_ids = set(np.unique(np.where(raw == 255, 182, raw)).tolist())
        assert set(np.unique(labels.numpy()).tolist()) <= source_ids
        assert set(np.unique(instances.numpy()).tolist()) <= set(np.unique(read_instance_file(sample.instance)).tolist())


def test_coco_stuff_without_instance_folder(tmp_path):
    rng = np.random.default_rng(0)
    save(random_rgb(rng, 20, 30), tmp_path / "val_img" / "1.jpg")
    save(np.full((20, 30), 7, np.uint8), tmp_path / "val_label" / "1.png")
    with pytest.raises(BadDataError, match="use_instances=no"):
        CocoStuff(tmp_path, "val")
    data = CocoStuff(tmp_path, "val", prep=Preprocessing(crop_size=16, load_size=16), use_instances=False)
    assert not data.has_instances and "instance" not in data.get_batch([0])


def test_coco_stuff_bad_id_names_file(tmp_path):
    rng = np.random.default_rng(0)
    label = np.zeros((20, 30), np.uint8)
    label[3, 4] = 200  # neither 0..181 nor 255
    save(random_rgb(rng, 20, 30), tmp_path / "val_img" / "42.jpg")
    save(label, tmp_path / "val_label" / "42.png")
    expected = r"val_label holds ids that coco-stuff does not accept .*: 42\.png \(id 200\)"
    with pytest.raises(BadDataError, match=expected):
        CocoStuff(tmp_path, "val", use_instances=False)  # checked when built, not when sampled


# -------------------------------------------------------------------------------- Cityscapes
def test_cityscapes_pairs_and_fixed_mode(fixtures):
    data = Cityscapes(fixtures / "cityscapes", "val")
    assert len(data) == 4 and data.num_labels == 35 and len(data.label_names) == 35
    assert data.dont_care_index is None and not data.has_instances
    assert data.label_names[7] == "road" and data.label_names[26] == "car"
    assert data.image_size == (256, 512)
    for sample in data.samples:
        assert sample.image.name == f"{sample.key}_leftImg8bit.png"
        assert sample.label.name == f"{sample.key}_gtFine_labelIds.png"
    torch.manual_seed(0)
    batch = data.get_batch(torch.arange(4))
    check_batch(batch, (256, 512), 4, 35, instances=False)
    for sample, labels in zip(data.samples, batch["label_map"]):
        assert set(np.unique(labels.numpy()).tolist()) <= set(np.unique(read_label_file(sample.label)).tolist())


def test_cityscapes_errors(fixtures):
    with pytest.raises(BadDataError, match="instanceIds.*use_instances=no"):
        Cityscapes(fixtures / "cityscapes", "val", use_instances=True)
    with pytest.raises(DatasetNotFoundError, match="leftImg8bit/train"):
        Cityscapes(fixtures / "cityscapes", "train")
    with pytest.raises(ValueError, match="splits"):
        Cityscapes(fixtures / "cityscapes", "training")


def test_cityscapes_16bit_instances_and_edges(fixtures, tmp_path):
    source = fixtures / "cityscapes_instance"
    instance_raw = read_instance_file(source / "instanceIds.png")
    label_raw = read_label_file(source / "labelIds.png")
    assert instance_raw.dtype == np.uint16 and instance_raw.max() > 255
    objects = instance_raw >= 1000
    assert objects.any()
    np.testing.assert_array_equal(instance_raw[objects] // 1000, label_raw[objects])
    np.testing.assert_array_equal(instance_raw[~objects], label_raw[~objects])  # stuff: the class id

    # the frame in the official layout (links, not copies), instance maps found automatically
    city = tmp_path / "gtFine" / "val" / "aachen"
    city.mkdir(parents=True)
    (tmp_path / "leftImg8bit" / "val" / "aachen").mkdir(parents=True)
    prefix = "aachen_000000_000019"
    (tmp_path / "leftImg8bit" / "val" / "aachen" / f"{prefix}_leftImg8bit.png").symlink_to(source / "image.jpg")
    (city / f"{prefix}_gtFine_labelIds.png").symlink_to(source / "labelIds.png")
    (city / f"{prefix}_gtFine_instanceIds.png").symlink_to(source / "instanceIds.png")
    data = Cityscapes(tmp_path, "val", prep=Preprocessing(augment=False))
    assert data.has_instances and len(data.source_files) == 3
    batch = data.get_batch([0])
    check_batch(batch, (256, 512), 1, 35, instances=True)
    instance, label = batch["instance"][0], batch["label_map"][0]
    assert instance.max() > 255
    objects = instance >= 1000
    assert torch.equal(instance[objects] // 1000, label[objects])

    edges = instance_edges(batch["instance"])
    assert edges.shape == (1, 1, 256, 512) and edges.dtype == torch.float32
    np.testing.assert_array_equal(edges[0, 0].numpy(), neighbour_edges(instance.numpy()))
    assert 0 < edges.sum() < edges.numel() / 4
    # inside a uniform region (3x3 neighbourhood of one id) there is no edge
    inst = instance.numpy()
    uniform = np.ones_like(inst, dtype=bool)[1:-1, 1:-1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            uniform &= inst[1 + dy : inst.shape[0] - 1 + dy, 1 + dx : inst.shape[1] - 1 + dx] == inst[1:-1, 1:-1]
    assert uniform.any() and (edges[0, 0, 1:-1, 1:-1].numpy()[uniform] == 0).all()


def test_instance_edges_by_hand():
    instance = torch.tensor([[[1, 1, 1, 1],
                              [1, 1, 2, 2],
                              [1, 1, 2, 2],
                              [3, 3, 3, 3]]])  # fmt: skip
    expected = torch.tensor([[[0, 0, 1, 1],
                              [0, 1, 1, 1],
                              [1, 1, 1, 1],
                              [1, 1, 1, 1]]], dtype=torch.float32)  # fmt: skip
    assert torch.equal(instance_edges(instance), expected.unsqueeze(1))
    assert instance_edges(torch.full((2, 5, 6), 9)).sum() == 0


# ------------------------------------------------------------------------------------ ADE20K
def make_ade(root: Path, split_folder: str | None, names=("ADE_train_1", "ADE_train_2")) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    labels = []
    for name in names:
        label = rng.integers(0, 151, (24, 32)).astype(np.uint8)
        label[0, 0], label[0, 1] = 0, 5
        sub = (split_folder,) if split_folder else ()
        save(random_rgb(rng, 24, 32), root.joinpath("images", *sub, f"{name}.jpg"))
        save(label, root.joinpath("annotations", *sub, f"{name}.png"))
        labels.append(label)
    return labels


def test_ade20k_shift_and_dont_care(tmp_path):
    labels = make_ade(tmp_path / "ADEChallengeData2016", "training")
    make_ade(tmp_path / "ADEChallengeData2016", "validation", names=("ADE_val_1",))
    data = ADE20K(tmp_path, "train", Preprocessing(mode="none", augment=False))  # root above ADEChallengeData2016
    assert len(data) == 2 and data.num_labels == 151 and data.dont_care_index == 150
    assert data.label_names[0] == "wall" and data.label_names[149] == "flag" and data.label_names[150] == "dont_care"
    assert not data.has_instances and data.image_size == (24, 32)
    batch = data.get_batch([0, 1])
    check_batch(batch, (24, 32), 2, 151, instances=False)
    for raw, out in zip(labels, batch["label_map"].numpy()):
        np.testing.assert_array_equal(out, np.where(raw == 0, 150, raw.astype(np.int64) - 1))
    assert batch["label_map"][0, 0, 0] == 150 and batch["label_map"][0, 0, 1] == 4
    assert len(ADE20K(tmp_path, "val")) == 1
    with pytest.raises(BadDataError, match="no instance maps"):
        ADE20K(tmp_path, "train", use_instances=True)


def test_ade20k_flat_layout_and_bad_id(tmp_path):
    make_ade(tmp_path, None)
    data = ADE20K(tmp_path, "val", prep=Preprocessing(crop_size=16, load_size=20))
    assert len(data) == 2
    torch.manual_seed(0)
    check_batch(data.get_batch([0, 1]), (16, 16), 2, 151, instances=False)
    save(np.full((24, 32), 151, np.uint8), tmp_path / "annotations" / "ADE_train_2.png")
    with pytest.raises(BadDataError, match=r"ADE_train_2\.png.*151"):
        data.get_batch([1])


# ------------------------------------------------------------------------------ label folder
ID_MAP = np.array([[0, 0, 1, 1, 2],
                   [0, 3, 3, 1, 2],
                   [4, 4, 3, 2, 2],
                   [4, 4, 0, 0, 2]], dtype=np.uint8)  # fmt: skip
COLOURS = {0: (0, 0, 0), 1: (128, 64, 0), 2: (0, 255, 0), 3: (255, 0, 0), 4: (0, 0, 255)}


def colour_map(ids: np.ndarray) -> np.ndarray:
    return np.array([COLOURS[int(i)] for i in ids.ravel()], dtype=np.uint8).reshape(*ids.shape, 3)


@pytest.mark.parametrize("fmt", ["L", "P", "I;16"])
def test_label_folder_id_formats(tmp_path, fmt):
    if fmt == "P":
        ids, palette = ID_MAP, [v for i in range(256) for v in (255 - i, i, 7)]
        save(ID_MAP, tmp_path / "labels" / "a.png", "P", palette)
    elif fmt == "I;16":
        ids = ID_MAP.astype(np.uint16) * 100  # ids up to 400: 16-bit
        Image.fromarray(ids).save((tmp_path / "labels").mkdir(parents=True) or tmp_path / "labels" / "a.png")
    else:
        ids = ID_MAP
        save(ID_MAP, tmp_path / "labels" / "a.png")
    assert Image.open(tmp_path / "labels" / "a.png").mode == fmt
    save(random_rgb(np.random.default_rng(0), 4, 5), tmp_path / "images" / "a.jpg")
    data = LabelFolder(tmp_path, prep=Preprocessing(mode="none", augment=False), num_labels=int(ids.max()) + 1)
    assert data.image_size == (4, 5) and data.dont_care_index is None and data.palette is None
    np.testing.assert_array_equal(data[0]["label_map"].numpy(), ids)


def test_label_folder_rgb_with_palette_file(tmp_path):
    make_folder(tmp_path / "data", {"a": colour_map(ID_MAP), "b": colour_map(ID_MAP[::-1].copy())})
    as_json = tmp_path / "palette.json"
    as_json.write_text(json.dumps({str(i): list(c) for i, c in COLOURS.items()}))
    as_yaml = tmp_path / "palette.yaml"
    as_yaml.write_text("".join(f"- [{r}, {g}, {b}]\n" for r, g, b in COLOURS.values()))  # a list by id
    assert load_palette(as_json) == load_palette(as_yaml) == COLOURS
    for palette in (as_json, str(as_yaml), COLOURS):
        data = LabelFolder(tmp_path / "data", prep=Preprocessing(mode="none", augment=False), num_labels=5,
                           palette=palette)
        batch = data.get_batch([0, 1])
        np.testing.assert_array_equal(batch["label_map"].numpy(), np.stack([ID_MAP, ID_MAP[::-1]]))
        assert data.palette == COLOURS
    assert Path(as_json) in LabelFolder(tmp_path / "data", num_labels=5, palette=as_json).source_files


def test_label_folder_palette_inference(tmp_path, caplog):
    make_folder(tmp_path, {"a": colour_map(ID_MAP), "b": colour_map(np.full((4, 5), 2, np.uint8))})
    with caplog.at_level(logging.INFO, logger="gauguin.data"):
        data = LabelFolder(tmp_path, prep=Preprocessing(mode="none", augment=False), palette="infer")
    sorted_colours = sorted(COLOURS.values())
    assert data.palette == dict(enumerate(sorted_colours))
    assert data.num_labels == 5 and data.label_names == [f"class_{i}" for i in range(5)]
    assert "inferred a palette of 5 colours" in caplog.text and "num_labels not given: inferred 5" in caplog.text
    new_id = {old: sorted_colours.index(c) for old, c in COLOURS.items()}
    expected = np.vectorize(new_id.get)(ID_MAP)
    np.testing.assert_array_equal(data[0]["label_map"].numpy(), expected)


def test_label_folder_infers_num_labels_and_dont_care(tmp_path, caplog):
    label = ID_MAP.copy()
    label[0, 0] = 255
    make_folder(tmp_path, {"a": label, "b": np.full((4, 5), 6, np.uint8)})
    with caplog.at_level(logging.WARNING, logger="gauguin.data"):
        assert LabelFolder(tmp_path, dont_care_id=255).num_labels == 8  # ids 0..6 + don't care
    assert "num_labels not given: inferred 8" in caplog.text
    data = LabelFolder(tmp_path, prep=Preprocessing(mode="none", augment=False), dont_care_id=255, num_labels=8)
    assert data.dont_care_index == 7 and data.label_names[7] == "dont_care"
    out = data[0]["label_map"].numpy()
    assert out[0, 0] == 7 and (out.ravel()[1:] == label.ravel()[1:]).all()
    with pytest.raises(BadDataError, match=r"labels holds ids >= num_labels=8: a\.png \(max id 255\)"):
        LabelFolder(tmp_path, num_labels=8)  # 255 without dont_care_id


def test_label_folder_instances_and_split(tmp_path):
    root = make_folder(tmp_path / "train", {"a": ID_MAP, "b": ID_MAP})
    save(ID_MAP.astype(np.uint16) * 1000 + 1, root / "instances" / "a.png")
    save(ID_MAP.astype(np.uint16) * 1000 + 2, root / "instances" / "b.png")
    data = build(f"folder:{tmp_path}", "train", Preprocessing(mode="none", augment=False), task="label_maps",
                 num_labels=5)
    assert isinstance(data, LabelFolder) and data.has_instances
    np.testing.assert_array_equal(data[1]["instance"].numpy(), ID_MAP.astype(np.int64) * 1000 + 2)
    assert semantic_input(data.get_batch([0, 1]), 5, use_instances=True).shape == (2, 6, 4, 5)
    assert not LabelFolder(root, num_labels=5, use_instances=False).has_instances
    (root / "instances" / "b.png").unlink()
    with pytest.raises(BadDataError, match="missing pair.*instance"):
        LabelFolder(root, num_labels=5)


# --------------------------------------------------------------------- flips, crops, the RNG
def coded_pair(root: Path, height: int = 32, width: int = 32) -> Path:
    """Red encodes x, green encodes y; the label id is (x // 4) + 8 * (y // 16): asymmetric."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 8, y * 8, np.zeros_like(x)], axis=-1).astype(np.uint8)
    save(image, root / "images" / "coded.png")
    save(((x // 4) + 8 * (y // 16)).astype(np.uint8), root / "labels" / "coded.png")
    return root


@pytest.mark.parametrize("preprocess, aspect", [("resize_and_crop", 1.0), ("scale_width_and_crop", 1.0),
                                                 ("resize_and_crop", 2.0)])
def test_flip_and_crop_applied_identically(tmp_path, preprocess, aspect):
    data = LabelFolder(coded_pair(tmp_path), num_labels=16,
                       prep=Preprocessing(mode=preprocess, load_size=32, crop_size=24, aspect_ratio=aspect))
    torch.manual_seed(0)
    batch = data.get_batch(torch.zeros(24, dtype=torch.long))
    assert batch["image"].shape[-2:] == (round(24 / aspect), 24)
    pixels = torch.round((batch["image"] + 1) * 127.5).long()
    x, y = pixels[:, 0] // 8, pixels[:, 1] // 8
    assert torch.equal(batch["label_map"], x // 4 + 8 * (y // 16))
    flipped = (x[:, 0, 0] > x[:, 0, -1]).tolist()
    assert any(flipped) and not all(flipped)
    assert len(set(x[:, 0, 0].tolist())) > 2 and (aspect == 1.0) <= (len(set(y[:, 0, 0].tolist())) > 2)


def test_no_flip_option(tmp_path):
    data = LabelFolder(coded_pair(tmp_path), prep=Preprocessing(load_size=32, crop_size=24, flip=False),
                       num_labels=16)
    torch.manual_seed(0)
    x = torch.round((data.get_batch(torch.zeros(16, dtype=torch.long))["image"][:, 0] + 1) * 127.5) // 8
    assert (x[:, 0, 0] < x[:, 0, -1]).all()


def test_augment_false_is_deterministic_and_leaves_rng(fixtures):
    data = CocoStuff(fixtures / "coco_stuff", "val", prep=Preprocessing(augment=False))
    state = torch.get_rng_state()
    first, second = data.get_batch([0, 3, 5]), data.get_batch([0, 3, 5])
    assert torch.equal(torch.get_rng_state(), state)
    for key in first:
        assert torch.equal(first[key], second[key])
    # center crop: the 286x286 resize cropped in its middle
    sample = data.samples[0]
    photo = np.asarray(Image.open(sample.image).convert("RGB").resize((286, 286), Image.Resampling.BICUBIC))
    expected = photo[15:271, 15:271].astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(first["image"][0].permute(1, 2, 0).numpy(), expected, atol=1e-6)


def test_resume_exactness(fixtures):
    data = CocoStuff(fixtures / "coco_stuff", "train")
    torch.manual_seed(7)
    run = [data.get_batch(torch.tensor([4, 0, 9])), data.get_batch(torch.tensor([1, 2]))]
    after = torch.rand(3)
    torch.manual_seed(7)
    data.get_batch(torch.tensor([4, 0, 9]))
    resumed_state = torch.get_rng_state()  # as restored from a checkpoint after one batch
    torch.manual_seed(123)
    torch.set_rng_state(resumed_state)
    resumed = data.get_batch(torch.tensor([1, 2]))
    for key in resumed:
        assert torch.equal(run[1][key], resumed[key])
    assert torch.equal(torch.rand(3), after)
    # the draws are exactly one torch.rand(B, 3, float64) per batch, whatever the files
    torch.manual_seed(7)
    torch.rand(3, 3, dtype=torch.float64)
    torch.rand(2, 3, dtype=torch.float64)
    assert torch.equal(torch.rand(3), after)
    torch.manual_seed(8)
    other = data.get_batch(torch.tensor([4, 0, 9]))
    assert not torch.equal(other["image"], run[0]["image"])


# ------------------------------------------------------------------------------- bad inputs
def test_label_id_out_of_range_names_file(tmp_path):
    label = ID_MAP.copy()
    label[2, 2] = 7
    make_folder(tmp_path, {"a": ID_MAP, "bad_one": label})
    with pytest.raises(BadDataError, match=r"labels holds ids >= num_labels=5: bad_one\.png \(max id 7\)"):
        LabelFolder(tmp_path, num_labels=5)
    save(ID_MAP, tmp_path / "labels" / "bad_one.png")
    data = LabelFolder(tmp_path, num_labels=5)
    data.get_batch([0])
    save(label, tmp_path / "labels" / "bad_one.png")  # a file going bad after the check: caught when sampled
    with pytest.raises(BadDataError, match=r"labels/bad_one\.png holds id\(s\) 7.*set num_labels=8"):
        data.get_batch([0, 1])


def test_label_size_mismatch_names_file(tmp_path):
    make_folder(tmp_path, {"small": ID_MAP}, size=(6, 5))
    with pytest.raises(BadDataError, match=r"labels/small\.png is 5x4 but its image .*small\.png is 5x6"):
        LabelFolder(tmp_path, num_labels=5).get_batch([0])


def test_missing_pairs_are_listed(tmp_path):
    make_folder(tmp_path, {"a": ID_MAP, "b": ID_MAP})
    (tmp_path / "labels" / "b.png").unlink()
    with pytest.raises(BadDataError, match=r"missing pair: 1 image\(s\) .* no label map .*: b\.png"):
        LabelFolder(tmp_path, num_labels=5)
    save(ID_MAP, tmp_path / "labels" / "b.png")
    save(ID_MAP, tmp_path / "labels" / "orphan.png")
    with pytest.raises(BadDataError, match=r"missing pair: 1 label map\(s\) .* no image .*: orphan\.png"):
        LabelFolder(tmp_path, num_labels=5)


def test_rgb_label_without_palette_names_file(tmp_path):
    make_folder(tmp_path, {"coloured": colour_map(ID_MAP)})
    with pytest.raises(BadDataError, match=r"labels/coloured\.png is an RGB .*label_palette=infer.*label_palette=FILE"):
        LabelFolder(tmp_path)  # inferring num_labels reads the file
    with pytest.raises(BadDataError, match=r"labels/coloured\.png is an RGB .*label_palette=infer"):
        LabelFolder(tmp_path, num_labels=5)


def test_colour_missing_from_palette_names_file_and_colour(tmp_path):
    colours = colour_map(ID_MAP)
    colours[1, 1] = (1, 2, 3)
    make_folder(tmp_path, {"odd": colours})
    with pytest.raises(BadDataError, match=r"labels/odd\.png has pixels of colour\(s\) \[1, 2, 3\] .*label_palette"):
        LabelFolder(tmp_path, num_labels=5, palette=COLOURS)
    make_folder(tmp_path, {"odd": colour_map(ID_MAP)})
    data = LabelFolder(tmp_path, num_labels=5, palette=COLOURS)
    make_folder(tmp_path, {"odd": colours})  # going bad after the check: caught when sampled
    with pytest.raises(BadDataError, match=r"labels/odd\.png has 1 pixel\(s\) of colour\(s\) \[1, 2, 3\]"):
        data.get_batch([0])
    bad_palette = tmp_path / "palette.json"
    bad_palette.write_text('{"0": [1, 2, 3], "1": [1, 2, 3]}')
    with pytest.raises(BadDataError, match="palette.json.*share the colour"):
        LabelFolder(tmp_path, num_labels=5, palette=bad_palette)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    with pytest.raises(BadDataError, match=f"no images in {tmp_path / 'images'}.*empty"):
        LabelFolder(tmp_path, num_labels=3)
    with pytest.raises(DatasetNotFoundError, match="nowhere"):
        LabelFolder(tmp_path / "nowhere", num_labels=3)
    with pytest.raises(DatasetNotFoundError, match="val_img"):
        CocoStuff(tmp_path, "val")


@pytest.mark.parametrize("broken", ["image", "label"])
def test_corrupt_file_names_file(tmp_path, broken):
    make_folder(tmp_path, {"a": ID_MAP, "b": ID_MAP})
    path = tmp_path / ("images" if broken == "image" else "labels") / "b.png"
    path.write_bytes(path.read_bytes()[:30])  # truncated
    if broken == "label":  # label maps are all read when the dataset is built
        with pytest.raises(BadDataError, match=r"cannot decode label map .*labels/b\.png"):
            LabelFolder(tmp_path, num_labels=5)
        return
    data = LabelFolder(tmp_path, num_labels=5)
    with pytest.raises(BadDataError, match=rf"cannot decode {broken}.*{broken}s/b\.png"):
        data.get_batch([0, 1])


def test_preprocess_none_needs_equal_sizes(tmp_path):
    make_folder(tmp_path, {"a": ID_MAP, "b": np.zeros((6, 5), np.uint8)})
    data = LabelFolder(tmp_path, prep=Preprocessing(mode="none"), num_labels=5)
    assert data.image_size == (4, 5)
    with pytest.raises(BadDataError, match=r"images/b\.png is 5x6 but preprocess='none'"):
        data.get_batch([1])


def test_preprocess_options_checked(tmp_path):
    make_folder(tmp_path, {"a": ID_MAP})
    with pytest.raises(ValueError, match="did you mean 'resize_and_crop'"):
        LabelFolder(tmp_path, prep=Preprocessing(mode="resize_crop"), num_labels=5)
    with pytest.raises(ValueError, match="load_size must be >= the crop size"):
        LabelFolder(tmp_path, prep=Preprocessing(load_size=100, crop_size=128), num_labels=5)
    data = LabelFolder(tmp_path, prep=Preprocessing(mode="fixed", crop_size=64, aspect_ratio=2.0), num_labels=5)
    assert data.image_size == (32, 64)
    assert data.get_batch([0])["image"].shape == (1, 3, 32, 64)


# ------------------------------------------------------------------------------ by name (spec)
def label_maps(spec: str, split: str = "train", prep: Preprocessing = Preprocessing(), **options):
    return build(spec, split, prep, task="label_maps", **options)


def test_build_label_maps(fixtures, tmp_path):
    assert isinstance(label_maps(f"coco-stuff:{fixtures / 'coco_stuff'}", "val"), CocoStuff)
    assert isinstance(label_maps(f"coco_stuff:{fixtures / 'coco_stuff'}", "val"), CocoStuff)
    data = label_maps(f"cityscapes:{fixtures / 'cityscapes'}", "val", Preprocessing(augment=False))
    assert isinstance(data, Cityscapes) and not data.augment
    make_ade(tmp_path / "ade", "validation")
    assert isinstance(label_maps(f"ade20k:{tmp_path / 'ade'}", "val"), ADE20K)
    with pytest.raises(ValueError, match="did you mean 'coco-stuff'"):
        label_maps("coco-stuf:/data")
    with pytest.raises(ValueError, match="are 'coco-stuff', 'cityscapes', 'ade20k', 'fashion-mnist', 'folder'"):
        label_maps("imagenet:/data")
    with pytest.raises(ValueError, match="names no folder"):
        label_maps("folder")


# ------------------------------------------------------------------------------ nn.labels
def test_one_hot_labels():
    label_map = torch.randint(0, 7, (2, 5, 6))
    one_hot = one_hot_labels(label_map, 7)
    assert one_hot.shape == (2, 7, 5, 6) and one_hot.dtype == torch.float32
    assert torch.equal(one_hot, F.one_hot(label_map, 7).permute(0, 3, 1, 2).float())
    assert one_hot_labels(label_map, 9, dtype=torch.bfloat16).dtype == torch.bfloat16
    with pytest.raises(ValueError, match=r"ids 0\.\.6 but num_labels=6"):
        one_hot_labels(label_map.clamp(max=6).index_fill(2, torch.tensor([0]), 6), 6)
    with pytest.raises(ValueError, match="-1"):
        one_hot_labels(torch.full((1, 2, 2), -1), 3)


def test_semantic_input():
    batch = {"label_map": torch.tensor([[[0, 1], [1, 2]]]), "instance": torch.tensor([[[5, 5], [5, 6]]])}
    out = semantic_input(batch, 3, use_instances=True)
    assert out.shape == (1, 4, 2, 2)
    assert torch.equal(out[:, :3], one_hot_labels(batch["label_map"], 3))
    assert torch.equal(out[0, 3], torch.tensor([[0.0, 1.0], [1.0, 1.0]]))
    assert semantic_input(batch, 3, use_instances=False).shape == (1, 3, 2, 2)
    with pytest.raises(ValueError, match="no 'instance' map"):
        semantic_input({"label_map": batch["label_map"]}, 3, use_instances=True)


# ------------------------------------------------------- every label map checked when built
@pytest.fixture
def label_cache(tmp_path, monkeypatch) -> Path:
    """An empty user cache dir for this test; returns where the label-map caches go."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "gauguin" / "label_maps"


def many_pairs(root: Path, n: int, bad: dict[int, int], num_labels: int = 11, size: int = 32) -> Path:
    """``n`` pairs ``0000.png``..; label map ``i`` in ``bad`` holds the id ``bad[i]`` at one pixel."""
    rng = np.random.default_rng(1)
    photo = random_rgb(rng, size, size)
    for i in range(n):
        label = rng.integers(0, num_labels, (size, size), dtype=np.uint8)
        if i in bad:
            label[size // 2, size // 3] = bad[i]
        save(photo, root / "images" / f"{i:04d}.png")
        save(label, root / "labels" / f"{i:04d}.png")
    return root


def test_a_bad_id_in_label_map_150_of_200_stops_training_before_step_1(tmp_path, label_cache):
    """The issue's run died at step ~49 after 9 checkpoints, when sample 150 was first drawn: now
    building the dataset reads every label map and the run stops before its first step, naming the
    file and the num_labels that fits; the second build takes every label map from the cache."""
    from gauguin.models.spade import SPADE, SPADEConfig
    from gauguin.training import train

    root = many_pairs(tmp_path / "pairs", 200, {149: 14})
    cfg = SPADEConfig.from_dict(dict(
        dataset=f"folder:{root}", num_labels=11, image_size=32, load_size=32, channels=3, ngf=4, ndf=4,
        batch_size=16, steps=60, log_every=5, sample_every=5, checkpoint_every=5, eval_every=0, progress=False,
        out_dir=str(tmp_path / "run")))
    expected = (r"^1 label map in .*pairs/labels holds ids >= num_labels=11: 0149\.png \(max id 14\)\. "
                r"Fix: correct these files, or set num_labels=15\.$")
    with pytest.raises(LabelMapError, match=expected) as first:
        train("spade", cfg)
    assert first.value.files == [root / "labels" / "0149.png"]
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # not one step
    assert not list((tmp_path / "run").glob("checkpoints/step_*"))
    assert first.value.check.decoded == 200 and first.value.check.cached == 0

    cache_file = first.value.check.cache_file
    assert cache_file == label_cache_file(root / "labels") and cache_file.parent == label_cache
    cached = json.loads(cache_file.read_text())
    assert cached["folder"] == str((root / "labels").resolve()) and len(cached["files"]) == 200
    entry = cached["files"]["0149.png"]
    stat = (root / "labels" / "0149.png").stat()
    assert (entry["size"], entry["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns) and max(entry["ids"]) == 14

    with pytest.raises(LabelMapError, match=expected) as second:
        train("spade", cfg)
    assert (second.value.check.decoded, second.value.check.cached) == (0, 200)  # nothing read again

    fixed = root / "labels" / "0149.png"
    save(np.zeros((32, 32), np.uint8), fixed)
    os.utime(fixed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new mtime even on coarse clocks
    data = SPADE.build_dataset(cfg)
    assert data.num_labels == 11 and len(data) == 200
    assert (data.label_check.decoded, data.label_check.cached) == (1, 199)  # only the changed file
    assert json.loads(cache_file.read_text())["files"]["0149.png"]["ids"] == [0]


def test_all_bad_label_maps_in_one_error(tmp_path, label_cache):
    root = many_pairs(tmp_path, 40, {3: 14, 17: 12, 30: 11})
    with pytest.raises(LabelMapError) as info:
        LabelFolder(root, num_labels=11)
    message = str(info.value)
    assert message.startswith(f"3 label maps in {root / 'labels'} hold ids >= num_labels=11: "
                              "0003.png (max id 14), 0017.png (max id 12), 0030.png (max id 11). ")
    assert message.endswith("Fix: correct these files, or set num_labels=15.")
    assert LabelFolder(root, num_labels=15).num_labels == 15  # the suggested value fits

    # many bad files: the first ones named, all of them counted and in .files
    root = many_pairs(tmp_path / "many", 30, {i: 11 + i % 3 for i in range(25)})
    with pytest.raises(LabelMapError, match=r"^25 label maps .* 0019\.png \(max id 12\), \.\.\. and 5 more\. "
                                            r"Fix: correct these files, or set num_labels=14\.$") as info:
        LabelFolder(root, num_labels=11)
    assert len(info.value.files) == 25


def test_bad_ids_and_unusable_files_reported_together(tmp_path, label_cache):
    root = many_pairs(tmp_path, 6, {1: 20})
    (root / "labels" / "0002.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))  # truncated
    save(colour_map(ID_MAP), root / "labels" / "0004.png")  # colours, no palette
    with pytest.raises(LabelMapError) as info:
        LabelFolder(root, num_labels=11)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("1 label map in ") and "0001.png (max id 20)" in lines[0]
    assert lines[1] == f"2 label map(s) in {root / 'labels'} cannot be used:"
    assert "cannot decode label map" in lines[2] and str(root / "labels" / "0002.png") in lines[2]
    assert "is an RGB colour image" in lines[3] and "label_palette=infer" in lines[3]
    assert info.value.files == [root / "labels" / f"000{i}.png" for i in (1, 2, 4)]


def test_negative_and_dont_care_ids_in_the_up_front_check(tmp_path, label_cache):
    label = ID_MAP.astype(np.int32)
    label[0, 0] = -3
    make_folder(tmp_path / "neg", {"a": ID_MAP})
    (tmp_path / "neg" / "labels" / "a.png").unlink()
    Image.fromarray(label).save(tmp_path / "neg" / "labels" / "a.tif")  # 32-bit signed 'I'
    with pytest.raises(LabelMapError, match=r"ids that folder does not accept .*a\.tif \(id -3\)\. "
                                            r"Fix: re-export these label maps with ids >= 0\."):
        LabelFolder(tmp_path / "neg", num_labels=5)
    label = ID_MAP.copy()
    label[0, 0], label[0, 1] = 255, 9
    make_folder(tmp_path / "dc", {"a": label})
    with pytest.raises(LabelMapError, match=r"accepts 0\.\.5, 255; num_labels=7\): a\.png \(id 9\)\. "
                                            r"Fix: correct these files, or set num_labels=11\."):
        LabelFolder(tmp_path / "dc", num_labels=7, dont_care_id=255)
    assert LabelFolder(tmp_path / "dc", num_labels=11, dont_care_id=255).num_labels == 11


def test_every_format_checks_its_label_maps_when_built(tmp_path, label_cache):
    """COCO-Stuff, Cityscapes and ADE20K share the label folder's up-front check."""
    rng = np.random.default_rng(2)
    photo = random_rgb(rng, 16, 24)
    for i, raw in enumerate([7, 200, 3]):
        save(photo, tmp_path / "coco" / "val_img" / f"{i}.jpg")
        save(np.full((16, 24), raw, np.uint8), tmp_path / "coco" / "val_label" / f"{i}.png")
    with pytest.raises(LabelMapError, match=r"val_label holds ids that coco-stuff does not accept "
                                            r"\(it accepts 0\.\.181, 255; num_labels=183\): 1\.png \(id 200\)\. "
                                            r"COCO-Stuff label maps hold"):
        CocoStuff(tmp_path / "coco", "val", use_instances=False)

    city = tmp_path / "cityscapes"
    for i, raw in enumerate([7, 40]):
        prefix = f"aachen_{i:06d}_000019"
        save(photo, city / "leftImg8bit" / "val" / "aachen" / f"{prefix}_leftImg8bit.png")
        save(np.full((16, 24), raw, np.uint8), city / "gtFine" / "val" / "aachen" / f"{prefix}_gtFine_labelIds.png")
    with pytest.raises(LabelMapError, match=r"gtFine/val holds ids >= num_labels=35: "
                                            r"aachen/aachen_000001_000019_gtFine_labelIds\.png \(max id 40\)\. "
                                            r"Cityscapes label maps"):
        Cityscapes(city, "val")

    make_ade(tmp_path / "ade", None)
    save(np.full((24, 32), 151, np.uint8), tmp_path / "ade" / "annotations" / "ADE_train_2.png")
    with pytest.raises(LabelMapError, match=r"annotations holds ids >= num_labels=151: ADE_train_2\.png"):
        ADE20K(tmp_path / "ade", "val")


def test_real_fixtures_pass_the_check_and_are_cached(fixtures, label_cache):
    first = CocoStuff(fixtures / "coco_stuff", "val").label_check
    assert (first.files, first.decoded, first.cached) == (8, 8, 0)
    again = CocoStuff(fixtures / "coco_stuff", "val").label_check
    assert (again.decoded, again.cached) == (0, 8)
    city = Cityscapes(fixtures / "cityscapes", "val").label_check
    assert (city.files, city.decoded) == (4, 4) and city.cache_file.is_file()


def test_label_cache_is_rebuilt_when_unreadable_or_stale(tmp_path, label_cache):
    root = many_pairs(tmp_path, 5, {})
    cache_file = LabelFolder(root, num_labels=11).label_check.cache_file
    cache_file.write_text("{ not json")
    check = LabelFolder(root, num_labels=11).label_check
    assert (check.decoded, check.cached) == (5, 0)
    assert len(json.loads(cache_file.read_text())["files"]) == 5
    # an entry whose size or mtime differs is read again, even when its cached ids look fine
    data = json.loads(cache_file.read_text())
    data["files"]["0003.png"]["size"] += 1
    data["files"]["0004.png"]["ids"] = "garbage"
    cache_file.write_text(json.dumps(data))
    check = LabelFolder(root, num_labels=11).label_check
    assert (check.decoded, check.cached) == (2, 3)
    # inferring num_labels reads each file once, and the check reuses that scan
    check = LabelFolder(many_pairs(tmp_path / "other", 4, {2: 12})).label_check
    assert (check.decoded, check.cached) == (4, 0)
    assert LabelFolder(tmp_path / "other").num_labels == 13


def test_data_root_that_does_nothing_is_an_error_not_ignored():
    """A KIND:PATH spec names its own folder: data_root beside it used to be dropped silently."""
    from gauguin.models.base import build_data
    from gauguin.models.spade import SPADEConfig

    spec = f"coco-stuff:{FIXTURES / 'coco_stuff'}"
    with pytest.raises(ValueError, match="data_root=/elsewhere does nothing with dataset"):
        build_data(SPADEConfig(dataset=spec, data_root="/elsewhere"), "label_maps", "train")
    with pytest.raises(ValueError, match="give the folder once"):
        build_data(SPADEConfig(dataset="fashion-mnist:/one", data_root="/two"), "label_maps", "train")
    assert len(build_data(SPADEConfig(dataset=spec), "label_maps", "train")) > 0
