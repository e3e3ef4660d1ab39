"""The SPADE family: training on every real layout, learning on Fashion-MNIST silhouettes,
multimodal / style-guided translation, exact resume, the translate CLI."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.data import FashionMNISTSilhouettes, Preprocessing
from gauguin.metrics import create_extractor
from gauguin.models.spade import SPADEConfig
from gauguin.nn.vgg import VGG19
from gauguin.sampling import load_generator
from gauguin.training import Trainer, load_checkpoint, train

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


def spade_config(out_dir, **overrides) -> SPADEConfig:
    """SPADE with tiny widths on Fashion-MNIST silhouettes at 32 px."""
    values = dict(dataset="fashion-mnist", image_size=32, channels=1, ngf=8, ndf=16, use_vae=True,
                  encoder_input_size=128, batch_size=16, steps=4, log_every=2, sample_every=2, checkpoint_every=2,
                  eval_every=2, eval_samples=64, progress=False, out_dir=str(out_dir))
    values.update(overrides)
    return SPADEConfig.from_dict(values)


def _fixtures(name):
    if not (FIXTURES / name).is_dir():
        pytest.skip("../shared/fixtures is not beside the repository")
    return FIXTURES / name


@pytest.mark.parametrize("dataset, overrides", [
    ("coco-stuff", dict(image_size=64, load_size=72, channels=3)),
    ("cityscapes", dict(image_size=128, aspect_ratio=2.0, load_size=128, channels=3, split="val")),
])
def test_one_iteration_on_real_layouts(tmp_path, dataset, overrides):
    """A full G + D iteration on the real fixtures: finite losses, a checkpoint, a grid of label maps,
    real and generated images; COCO-Stuff adds its don't-care and instance-edge channels."""
    cfg = spade_config(tmp_path / "run", dataset=f"{dataset}:{_fixtures(dataset.replace('-', '_'))}", steps=2,
                       batch_size=2, ngf=4, ndf=4, eval_samples=4, **overrides)
    trainer = Trainer("spade", cfg)
    expected = {"coco-stuff": 183 + 1, "cityscapes": 35}[dataset]  # + instance edge for COCO-Stuff
    assert trainer.family.generator.generator.label_nc == expected
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(v) for row in rows for v in row.values())
    grid = Image.open(tmp_path / "run" / "samples" / "latest.png")
    height, width = (64, 64) if dataset == "coco-stuff" else (64, 128)
    assert grid.size[1] > 3 * height  # three rows: label maps, real images, generated images
    _, meta = load_checkpoint(tmp_path / "run" / "checkpoints" / "step_0000002")
    assert meta["data"]["num_labels"] == (183 if dataset == "coco-stuff" else 35)


def test_vgg_loss_runs_with_given_weights(tmp_path):
    torch.save(VGG19().state_dict(), tmp_path / "vgg19.pth")
    cfg = spade_config(tmp_path / "run", vgg_weights=str(tmp_path / "vgg19.pth"), steps=1, eval_every=0)
    trainer = Trainer("spade", cfg)
    logs = trainer.train_step(0)
    assert logs["g_vgg"] > 0
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        Trainer("spade", spade_config(tmp_path / "run2", vgg_weights=str(tmp_path / "missing.pth")))


def test_resume_is_exact(tmp_path):
    """Flips and crops are drawn from the restored RNG: 2 + 2 steps equal 4 straight steps."""
    train("spade", spade_config(tmp_path / "straight", flip=True, eval_every=0))
    train("spade", spade_config(tmp_path / "split", flip=True, eval_every=0, steps=2))
    train("spade", spade_config(tmp_path / "split", flip=True, eval_every=0, steps=4), resume=True)
    a, _ = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step_0000004")
    b, _ = load_checkpoint(tmp_path / "split" / "checkpoints" / "step_0000004")
    for name, tensor in a["weights.safetensors"].items():
        assert torch.equal(tensor, b["weights.safetensors"][name]), name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short real run on Fashion-MNIST silhouettes, in the default precision."""
    out = tmp_path_factory.mktemp("spade") / "run"
    train("spade", spade_config(out, steps=300, log_every=50, sample_every=300, checkpoint_every=300,
                                eval_every=300, eval_samples=256))
    return out


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """Four steps of the same model: what the CLI and API tests need (not learning)."""
    out = tmp_path_factory.mktemp("spade_quick") / "run"
    train("spade", spade_config(out, eval_every=0))
    return out


@pytest.mark.slow
def test_learns_fashion_silhouettes(trained):
    """After 300 steps: garments bright inside their silhouette and dark outside, recognisable as
    the labelled class, different when the same silhouette carries another class."""
    loaded = load_generator(trained)
    data = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32, augment=False)).get_batch(torch.arange(400))
    inputs = loaded.inputs_like(data, torch.Generator().manual_seed(0))
    with torch.no_grad():
        fake = loaded.generate(inputs)
        inside = data["label_map"] > 0
        brightness_in, brightness_out = fake[:, 0][inside].mean().item(), fake[:, 0][~inside].mean().item()
        assert brightness_in - brightness_out > 0.8, (brightness_in, brightness_out)
        judge = create_extractor("fmnist")
        accuracy = (judge.probabilities(fake).argmax(1) == data["label"]).float().mean().item()
        assert accuracy > 0.5, accuracy  # chance: 0.1
        other = torch.where(inside, ((data["label"] + 5) % 10 + 1)[:, None, None], 0)
        swapped = loaded.generate({**inputs, "label_map": other})
        class_change = (swapped - fake).abs()[:, 0][inside].mean().item()
        assert class_change > 0.03, class_change
        two = loaded.translate(data["label_map"][0], n=2, seed=0)
        assert (two[0] - two[1]).abs().mean() > 1e-3  # two styles of one label map
    print(f"\nspade learning test: brightness inside {brightness_in:.3f} / outside {brightness_out:.3f}, "
          f"class accuracy {accuracy:.3f}, mean change inside when relabelled {class_change:.3f}")


def test_multimodal_and_style_guided(quick, tmp_path):
    loaded = load_generator(quick)
    sil = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32, augment=False)).get_batch(torch.arange(1))
    label_map = sil["label_map"][0]
    two = loaded.translate(label_map, n=2, seed=0)
    assert two.shape == (2, 1, 32, 32)
    assert not torch.equal(two[0], two[1])  # z reaches the image (how far: test_learns_fashion_silhouettes)
    assert torch.equal(loaded.translate(label_map, n=2, seed=0), two)  # a seed gives the same images
    styled = loaded.translate(label_map, style=sil["image"])
    assert torch.equal(styled, loaded.translate(label_map, style=sil["image"]))  # the mean code: deterministic
    assert not torch.equal(styled[0], two[0])


def test_translate_cli(quick, tmp_path):
    sil = FashionMNISTSilhouettes("test", Preprocessing(crop_size=28, augment=False)).get_batch(torch.arange(1))
    Image.fromarray(sil["label_map"][0].numpy().astype(np.uint8)).save(tmp_path / "label.png")
    Image.fromarray(((sil["image"][0, 0].numpy() + 1) * 127.5).astype(np.uint8)).save(tmp_path / "style.png")
    cli = [sys.executable, "-m", "gauguin.cli", "translate", str(quick), "--labels", str(tmp_path / "label.png")]
    done = subprocess.run(cli + ["--n", "3", "--seed", "1", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names == ["label_grid.png", "label_labels.png", "label_seed1_00.png", "label_seed1_01.png",
                     "label_seed1_02.png"]
    assert Image.open(tmp_path / "out" / "label_seed1_00.png").size == (32, 32)  # resized to the model's size
    done = subprocess.run(cli + ["--style", str(tmp_path / "style.png"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and (tmp_path / "out" / "label_style.png").is_file(), done.stderr[-2000:]
    Image.fromarray(np.full((28, 28), 50, np.uint8)).save(tmp_path / "bad.png")
    bad = subprocess.run(cli[:-1] + [str(tmp_path / "bad.png")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "bad.png" in bad.stderr and "[50]" in bad.stderr
    sample = subprocess.run([sys.executable, "-m", "gauguin.cli", "sample", str(quick)],
                            capture_output=True, text=True, timeout=120)
    assert sample.returncode == 1 and "gauguin translate" in sample.stderr


@pytest.mark.slow
def test_eval_miou_of_generated_images(trained, tmp_path):
    """gauguin eval draws images from the held-out label maps and scores them with a segmenter trained
    on real pairs; images that follow their maps score far above the same images against shuffled maps."""
    from gauguin.metrics.segmenter import segmenter_scores, train_segmenter

    class FirstPairs:  # the first 3000 real pairs, to train the segmenter in seconds
        def __init__(self, split, n):
            self.data, self.n = FashionMNISTSilhouettes(split, Preprocessing(augment=False)), n
            self.num_labels, self.dont_care_index, self.label_names = 11, None, self.data.label_names

        def __len__(self):
            return self.n

        def get_batch(self, idx):
            return self.data.get_batch(idx)

    seg_path = tmp_path / "seg.safetensors"
    train_segmenter(FirstPairs("train", 3000), FirstPairs("test", 500), seg_path, "fashion-mnist", progress=False)
    out = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "gauguin.cli", "eval", "--metrics", "miou,fid", "--fake", str(trained),
                           "--n", "300", "--segmenter", str(seg_path), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    results = report["results"]
    miou = results["miou300-segmenter-fashion-mnist"]
    assert 0 < miou["miou"] <= 1 and miou["pixel_accuracy"] > 0.6
    from gauguin.metrics.segmenter import load_segmenter
    from gauguin.metrics.sources import load_image_set

    fake = load_image_set(str(trained), 300)
    shuffled = segmenter_scores(load_segmenter(seg_path), fake.images, fake.label_maps[torch.randperm(300)])
    assert shuffled["miou"] < miou["miou"] / 2, (shuffled, miou)
    assert results[f"fid300-fmnist-{report['real']}"] > 0 and report["real"].startswith("fashion-mnist:test")


def test_trains_on_a_folder_of_rgb_colour_labels_and_on_ade20k(tmp_path):
    """The commonest user data: photos + label PNGs saved as RGB colours, palette inferred; and the
    ADE20K layout (annotations 0 = other -> don't care), both from files written here."""
    rng = np.random.default_rng(0)
    colours = np.array([[0, 0, 0], [200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)
    for sub in ("mine/images", "mine/labels", "ade/images/training", "ade/annotations/training"):
        (tmp_path / sub).mkdir(parents=True)
    for i in range(4):
        photo = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        ids = rng.integers(0, 4, (5, 5)).repeat(8, 0).repeat(8, 1)
        Image.fromarray(photo).save(tmp_path / f"mine/images/{i}.jpg")
        Image.fromarray(colours[ids]).save(tmp_path / f"mine/labels/{i}.png")
        Image.fromarray(photo).save(tmp_path / f"ade/images/training/{i}.jpg")
        Image.fromarray((ids * 40).astype(np.uint8)).save(tmp_path / f"ade/annotations/training/{i}.png")
    common = dict(channels=3, image_size=32, load_size=40, steps=1, batch_size=2, ngf=4, ndf=4, eval_every=0)
    folder = Trainer("spade", spade_config(tmp_path / "run_folder", dataset=f"folder:{tmp_path / 'mine'}",
                                           label_palette="infer", **common))
    assert folder.data_info.num_labels == 4 and folder.data_info.palette is not None
    assert math.isfinite(folder.train_step(0)["g_loss"])
    ade = Trainer("spade", spade_config(tmp_path / "run_ade", dataset=f"ade20k:{tmp_path / 'ade'}", **common))
    assert ade.data_info.num_labels == 151 and ade.data_info.dont_care_index == 150
    assert math.isfinite(ade.train_step(0)["d_loss"])
