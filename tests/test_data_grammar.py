"""Tests of the one data grammar (gauguin.data.build): every kind of every task, the errors for an
unknown kind, a kind the task lacks, a folder given twice and a key that does nothing, and the
Dataset protocol every dataset follows."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.data import (
    ADE20K,
    KINDS,
    BadDataError,
    Cityscapes,
    CocoStuff,
    Dataset,
    FashionMNIST,
    FashionMNISTDomains,
    FashionMNISTEdges,
    FashionMNISTSilhouettes,
    ImageFolder,
    LabelFolder,
    PairedFolder,
    Preprocessing,
    UnpairedFolder,
    accepts,
    build,
)
from gauguin.data.sr_pairs import FashionMNISTSR, SRFolder, SRPairFolder

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
SMALL = Preprocessing(crop_size=8, load_size=8)
CROP = Preprocessing(crop_size=8)


def save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """One small folder per folder kind: class images, ADE20K, label pairs, A|B pairs, two domains, LR/HR pairs."""
    root = tmp_path_factory.mktemp("grammar")
    rng = np.random.default_rng(0)
    photo = lambda: rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)  # noqa: E731
    ids = lambda high: rng.integers(0, high, (10, 12), dtype=np.uint8)  # noqa: E731
    for name in ("a", "b"):
        save(photo(), root / "classes" / "cat" / f"{name}.png")
        save(photo(), root / "ade" / "images" / "validation" / f"{name}.jpg")
        save(ids(151), root / "ade" / "annotations" / "validation" / f"{name}.png")
        save(photo(), root / "labels" / "images" / f"{name}.png")
        save(ids(4), root / "labels" / "labels" / f"{name}.png")
        save(np.concatenate([photo(), photo()], 1), root / "pairs" / "val" / f"{name}.png")
        save(photo(), root / "domains" / "valA" / f"{name}.png")
        save(photo(), root / "domains" / "valB" / f"{name}.png")
        save(photo(), root / "sr_pairs" / "hr" / f"{name}.png")
        save(photo()[:2, :3], root / "sr_pairs" / "lr" / f"{name}.png")  # the HR photos' size / 4
    return {"classes": root / "classes", "ade20k": root / "ade", "label_maps": root / "labels",
            "pairs": root / "pairs", "domains": root / "domains", "sr_pairs": root / "sr_pairs"}


def every_kind(folders: dict[str, Path]) -> list[tuple[str, str, type]]:
    """(spec, task, expected class) for every kind of every task."""
    return [
        ("fashion-mnist", "classes", FashionMNIST),
        (f"folder:{folders['classes']}", "classes", ImageFolder),
        ("fashion-mnist", "label_maps", FashionMNISTSilhouettes),
        (f"coco-stuff:{FIXTURES / 'coco_stuff'}", "label_maps", CocoStuff),
        (f"cityscapes:{FIXTURES / 'cityscapes'}", "label_maps", Cityscapes),
        (f"ade20k:{folders['ade20k']}", "label_maps", ADE20K),
        (f"folder:{folders['label_maps']}", "label_maps", LabelFolder),
        ("fashion-mnist", "pairs", FashionMNISTEdges),
        (f"folder:{folders['pairs']}", "pairs", PairedFolder),
        ("fashion-mnist", "domains", FashionMNISTDomains),
        (f"folder:{folders['domains']}", "domains", UnpairedFolder),
        ("fashion-mnist", "sr", FashionMNISTSR),
        (f"folder:{folders['classes']}", "sr", SRFolder),
        (f"pairs:{folders['sr_pairs']}", "sr", SRPairFolder),
    ]


# ------------------------------------------------------------------------------------ grammar
def test_every_kind_of_every_task_builds_and_follows_the_protocol(folders):
    built = every_kind(folders)
    assert {(task, cls) for _, task, cls in built} == {(t, c) for t, kinds in KINDS.items() for c in kinds.values()}
    for spec, task, cls in built:
        data = build(spec, "val" if task != "classes" else "test", SMALL.replace(load_size=None), task=task)
        assert type(data) is cls, spec
        assert isinstance(data, Dataset), spec
        assert isinstance(data.num_classes, int) and data.num_classes >= 1
        assert isinstance(data.num_labels, int) and len(data.label_names) == data.num_labels
        assert data.num_labels == 0 or len(data.raw_to_index) > 0
        assert data.dont_care_index is None or 0 <= data.dont_care_index < data.num_labels
        assert isinstance(data.has_instances, bool) and data.channels in (1, 3) and data.input_channels in (0, 1, 3)
        assert data.palette is None or isinstance(data.palette, dict)
        assert len(data.classes) in (0, data.num_classes) and data.source_files
        height, width = data.image_size
        batch = data.get_batch(torch.tensor([0, 1]))
        images = batch["image"] if isinstance(batch, dict) else batch[0]
        assert images.shape == (2, data.channels, height, width), spec


def test_fashion_mnist_is_spelled_either_way():
    for task in KINDS:
        a = build("fashion-mnist", "test", Preprocessing(crop_size=28), task=task)
        b = build("Fashion_MNIST", "test", Preprocessing(crop_size=28), task=task)
        assert type(a) is type(b) and len(a) == len(b)


def test_unknown_kind_suggests_the_closest():
    with pytest.raises(BadDataError, match=r"unknown dataset 'fashion-mnst'.*did you mean 'fashion-mnist'\?"):
        build("fashion-mnst", "train", CROP, task="classes")
    with pytest.raises(BadDataError, match=r"did you mean 'cityscapes'\?"):
        build("citiscapes:/data", "train", SMALL, task="label_maps")
    with pytest.raises(ValueError, match="unknown data task 'images'"):
        build("fashion-mnist", "train", SMALL, task="images")


def test_a_kind_the_task_lacks_names_the_kinds_it_has():
    with pytest.raises(BadDataError, match=r"gives photos with label maps, but .* images with class labels: "
                                           r"its kinds are 'fashion-mnist', 'folder'"):
        build(f"coco-stuff:{FIXTURES / 'coco_stuff'}", "val", CROP, task="classes")


def test_a_folder_given_twice_is_an_error(folders):
    spec = f"folder:{folders['classes']}"
    with pytest.raises(BadDataError, match="data_root=/elsewhere does nothing .*give the folder once"):
        build(spec, "train", CROP, task="classes", root="/elsewhere")
    assert len(build(spec, "train", CROP, task="classes", root=str(folders["classes"]))) == 2  # the same one
    assert len(build("folder", "train", CROP, task="classes", root=str(folders["classes"]))) == 2
    with pytest.raises(BadDataError, match="names no folder; write folder:PATH"):
        build("folder", "train", CROP, task="pairs")


# ------------------------------------------------------------------------- keys that do nothing
@pytest.mark.parametrize("spec, task, prep, options, message", [
    ("fashion-mnist", "classes", Preprocessing(load_size=40), {},
     r"^load_size does nothing for fashion-mnist \(it has a fixed 28 px square source\): remove load_size$"),
    ("fashion-mnist", "label_maps", Preprocessing(load_size=40), {},
     r"^load_size does nothing for fashion-mnist \(.*\): remove load_size or use coco-stuff:PATH or .*folder:PATH$"),
    ("folder:{classes}", "classes", Preprocessing(crop_size=8, aspect_ratio=2.0), {},
     r"^aspect_ratio does nothing for folder:PATH \(it resizes and center-crops .*\): remove aspect_ratio$"),
    ("coco-stuff:{coco}", "label_maps", Preprocessing(), {"palette": "infer"},
     r"^palette does nothing for coco-stuff:PATH \(its label maps hold ids, not colours\): remove palette "
     r"or use folder:PATH$"),
    ("folder:{pairs}", "pairs", Preprocessing(channels=1), {},
     r"^channels does nothing for folder:PATH \(its images are RGB, 3 channels\): remove channels or use "
     r"fashion-mnist$"),
    ("fashion-mnist", "pairs", Preprocessing(mode="fixed", flip=True), {"domain_a": "Coat"},  # one line each
     r"^mode does nothing for fashion-mnist .* or use folder:PATH\ndomain_a does nothing for fashion-mnist "
     r"\(its options are direction\): remove domain_a$"),
])
def test_a_key_that_does_nothing_is_an_error(folders, spec, task, prep, options, message):
    spec = spec.format(classes=folders["classes"], pairs=folders["pairs"], coco=FIXTURES / "coco_stuff")
    with pytest.raises(BadDataError, match=message):
        build(spec, "val", prep, task=task, **options)


def test_keys_the_family_always_gives_are_used_by_every_kind(folders):
    for spec, task, _ in every_kind(folders):
        assert {"crop_size", "augment"} <= accepts(spec, task)
    pairs = build(f"folder:{folders['pairs']}", "val", SMALL.replace(channels=3, augment=False), task="pairs")
    assert pairs.channels == 3  # the channels photos have anyway is no error
    assert build("fashion-mnist", "test", Preprocessing(crop_size=28, flip=None), task="classes",
                 direction=None).channels == 1  # None is "not set"
    assert accepts("fashion-mnist", "pairs") == {"crop_size", "augment", "channels", "flip", "direction"}


# --------------------------------------------------------------------------------- Preprocessing
def test_preprocessing_value():
    assert Preprocessing(mode="auto").mode is None and Preprocessing().given() == {}
    merged = Preprocessing(crop_size=8).over(Preprocessing(crop_size=4, flip=True))
    assert merged == Preprocessing(crop_size=8, flip=True)
    with pytest.raises(ValueError, match="did you mean 'resize_and_crop'"):
        Preprocessing(mode="resize_crop")
    with pytest.raises(ValueError, match="channels must be 1 .* or 3"):
        Preprocessing(channels=2)
    with pytest.raises(ValueError, match="crop_size must be a positive number of pixels"):
        Preprocessing(crop_size=0)
    with pytest.raises(ValueError, match="ImageFolder needs Preprocessing\\(crop_size=...\\)"):
        ImageFolder(FIXTURES / "coco_stuff" / "val_img", Preprocessing())




def test_a_class_balanced_labelled_subset_is_drawn_by_its_seed():
    """The few-labels setting: N training images of each class, the same N for the same seed, others for
    another; held-out splits stay whole; impossible N and a seed without N are named."""
    from gauguin.data.subsets import balanced_subset

    few = build("fashion-mnist", "train", Preprocessing(), task="classes", labels_per_class=7, subset_seed=3)
    assert len(few) == 70 and torch.equal(torch.bincount(few.labels), torch.full((10,), 7))
    again = build("fashion-mnist", "train", Preprocessing(), task="classes", labels_per_class=7, subset_seed=3)
    other = build("fashion-mnist", "train", Preprocessing(), task="classes", labels_per_class=7, subset_seed=4)
    assert torch.equal(few.subset, again.subset) and not torch.equal(few.subset, other.subset)
    full = build("fashion-mnist", "train", Preprocessing(), task="classes")
    assert torch.equal(full.images[few.subset], few.images) and torch.equal(full.labels[few.subset], few.labels)
    assert len(build("fashion-mnist", "test", Preprocessing(), task="classes", labels_per_class=7)) == 10_000
    with pytest.raises(BadDataError, match="exceeds the smallest class of the Fashion-MNIST train split"):
        build("fashion-mnist", "train", Preprocessing(), task="classes", labels_per_class=6001)
    with pytest.raises(BadDataError, match="subset_seed=2 does nothing without labels_per_class"):
        build("fashion-mnist", "train", Preprocessing(), task="classes", subset_seed=2)
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    with pytest.raises(BadDataError, match=r"smallest class of the data \('c'.*labels_per_class <= 1"):
        balanced_subset(labels, 2, classes=("a", "b", "c"))
    assert balanced_subset(labels, 1).tolist() in ([a, b, 5] for a in range(3) for b in (3, 4))
    with pytest.raises(BadDataError, match="1 class"):
        balanced_subset(torch.zeros(5, dtype=torch.long), 2)
    with pytest.raises(BadDataError, match="labels_per_class does nothing"):
        build("fashion-mnist", "train", Preprocessing(), task="label_maps", labels_per_class=7)


def test_a_run_config_asks_for_few_labels():
    from gauguin.models import get_family

    dcgan = get_family("dcgan")
    cfg = dcgan.config_class.from_dict({"labels_per_class": 5, "subset_seed": 1})
    assert len(dcgan.build_dataset(cfg, "train")) == 50 and len(dcgan.build_dataset(cfg, "test")) == 10_000
    pix2pix = get_family("pix2pix")
    with pytest.raises(BadDataError, match="labels_per_class does nothing"):
        pix2pix.build_dataset(pix2pix.config_class.from_dict({"labels_per_class": 5}), "train")


def test_a_class_folder_gives_a_labelled_subset(tmp_path):
    """ImageFolder's labels_per_class: N files of each class sub-folder, the same for the same seed; an N
    above the smallest class and a one-class folder are named."""
    rng = np.random.default_rng(0)
    for name, count in (("boots", 5), ("coats", 3), ("hats", 4)):
        for i in range(count):
            save(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), tmp_path / "data" / name / f"{i}.png")
    spec = f"folder:{tmp_path / 'data'}"
    few = build(spec, "train", CROP, task="classes", labels_per_class=2, subset_seed=1)
    assert len(few) == 6 and few.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert [p.parent.name for p in few.files] == ["boots"] * 2 + ["coats"] * 2 + ["hats"] * 2
    again = build(spec, "train", CROP, task="classes", labels_per_class=2, subset_seed=1)
    assert few.files == again.files and len(set(few.files)) == 6
    with pytest.raises(BadDataError, match=r"smallest class of image folder .*\('coats', 3 images\)"):
        build(spec, "train", CROP, task="classes", labels_per_class=4)
    save(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), tmp_path / "one" / "only" / "0.png")
    with pytest.raises(BadDataError, match="1 class"):
        build(f"folder:{tmp_path / 'one'}", "train", CROP, task="classes", labels_per_class=1)
