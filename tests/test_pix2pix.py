"""pix2pix: learning on real Fashion-MNIST edges -> clothing, the translate CLI, bad input."""
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.config import ConfigError
from gauguin.data import FashionMNISTSilhouettes, Preprocessing
from gauguin.data.paired import FashionMNISTEdges
from gauguin.models import DataInfo
from gauguin.models.pix2pix import Pix2Pix, Pix2PixConfig
from gauguin.sampling import load_generator
from gauguin.training import Trainer, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pix2pix") / "run"
    cfg = Pix2PixConfig.from_dict(dict(out_dir=str(out), steps=300, ngf=16, ndf=16, batch_size=8, log_every=100,
                                       sample_every=300, checkpoint_every=300, eval_every=300, eval_samples=128,
                                       progress=False))
    train("pix2pix", cfg)
    return out


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A few steps: what the CLI test needs (not learning)."""
    out = tmp_path_factory.mktemp("pix2pix_quick") / "run"
    train("pix2pix", Pix2PixConfig.from_dict(dict(out_dir=str(out), steps=3, ngf=8, ndf=8, batch_size=2,
                                                  eval_every=0, progress=False)))
    return out


@pytest.mark.slow
def test_learns_edges_to_clothing(trained):
    """After 300 steps the translations of held-out edge drawings are closer (L1) to the real garments
    than the mean training image is: the baseline the issue names."""
    loaded = load_generator(trained)
    test = FashionMNISTEdges("test").get_batch(torch.arange(1000))
    mean_image = FashionMNISTEdges("train").get_batch(torch.arange(5000))["image"].mean(0, keepdim=True)
    l1_gan = (loaded.translate_images(test["input"]) - test["image"]).abs().mean().item()
    l1_mean = (mean_image - test["image"]).abs().mean().item()
    print(f"\npix2pix learning test: L1 {l1_gan:.3f} vs mean-image baseline {l1_mean:.3f}")
    assert l1_gan < 0.95 * l1_mean, (l1_gan, l1_mean)


def test_translate_cli(quick, tmp_path):
    test = FashionMNISTEdges("test").get_batch(torch.arange(3))
    (tmp_path / "edges").mkdir()
    for i in range(3):
        pixels = ((test["input"][i, 0].numpy() + 1) * 127.5).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "edges" / f"e{i}.png")
    cli = [sys.executable, "-m", "gauguin.cli", "translate", str(quick)]
    done = subprocess.run(cli + ["--input", str(tmp_path / "edges"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["e0.png", "e1.png", "e2.png"]
    assert Image.open(tmp_path / "out" / "e0.png").size == (32, 32)
    wrong = subprocess.run(cli + ["--input", str(tmp_path / "edges" / "e0.png"), "--direction", "BtoA"],
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "AtoB only" in wrong.stderr
    neither = subprocess.run(cli, capture_output=True, text=True, timeout=120)
    assert neither.returncode == 1 and "--input" in neither.stderr


FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"


@pytest.mark.slow
def test_learns_label_maps_to_clothing(tmp_path):
    """input=labels: pix2pix on the one-hot silhouette label maps (the paper's labels -> photo setting);
    after 150 steps garments are bright inside their held-out silhouettes and dark outside, and the
    translate CLI takes a label PNG."""
    cfg = Pix2PixConfig.from_dict(dict(input="labels", out_dir=str(tmp_path / "run"), steps=150, ngf=16, ndf=16,
                                       batch_size=8, log_every=50, sample_every=150, checkpoint_every=150,
                                       eval_every=0, progress=False))
    train("pix2pix", cfg)
    loaded = load_generator(tmp_path / "run")
    assert loaded.generator.down[0][0].in_channels == 11  # background + 10 garment labels, one-hot
    data = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32, augment=False)).get_batch(torch.arange(200))
    with torch.no_grad():
        fake = loaded.generate(loaded.inputs_like(data))
    inside = data["label_map"] > 0
    gap = fake[:, 0][inside].mean().item() - fake[:, 0][~inside].mean().item()
    print(f"\npix2pix on label maps: brightness gap inside - outside {gap:.3f}")
    assert gap > 0.5  # an untrained U-Net: ~0

    Image.fromarray(data["label_map"][0].numpy().astype(np.uint8)).save(tmp_path / "labels.png")
    cli = [sys.executable, "-m", "gauguin.cli", "translate", str(tmp_path / "run")]
    done = subprocess.run(cli + ["--labels", str(tmp_path / "labels.png"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Image.open(tmp_path / "out" / "labels_seed0_00.png").size == (32, 32)
    wrong = subprocess.run(cli + ["--input", str(tmp_path / "labels.png")], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1 and "--labels" in wrong.stderr


def test_label_maps_of_coco_stuff_with_instance_edges(tmp_path):
    if not (FIXTURES / "coco_stuff").is_dir():
        pytest.skip("../shared/fixtures is not beside the repository")
    cfg = Pix2PixConfig.from_dict(dict(input="labels", dataset=f"coco-stuff:{FIXTURES / 'coco_stuff'}", channels=3,
                                       image_size=64, load_size=72, ngf=8, ndf=8, batch_size=2, steps=1,
                                       out_dir=str(tmp_path / "run"), eval_every=0, progress=False))
    trainer = Trainer("pix2pix", cfg)
    assert trainer.family.generator.down[0][0].in_channels == 183 + 1  # labels + don't-care, instance edges
    logs = trainer.train_step(0)
    assert all(math.isfinite(v) for v in logs.values())
    with pytest.raises(ConfigError, match="label maps"):
        Pix2Pix(cfg, DataInfo(channels=3))  # input=labels on a dataset without label maps
