"""pix2pix: learning on real Fashion-MNIST edges -> clothing, the translate CLI, bad input."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.data.paired import FashionMNISTEdges
from gauguin.models.pix2pix import Pix2PixConfig
from gauguin.sampling import load_generator
from gauguin.training import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("pix2pix") / "run"
    cfg = Pix2PixConfig.from_dict(dict(out_dir=str(out), steps=300, ngf=16, ndf=16, batch_size=8, log_every=100,
                                       sample_every=300, checkpoint_every=300, eval_every=300, eval_samples=128,
                                       progress=False))
    train("pix2pix", cfg)
    return out


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


def test_translate_cli(trained, tmp_path):
    test = FashionMNISTEdges("test").get_batch(torch.arange(3))
    (tmp_path / "edges").mkdir()
    for i in range(3):
        pixels = ((test["input"][i, 0].numpy() + 1) * 127.5).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "edges" / f"e{i}.png")
    cli = [sys.executable, "-m", "gauguin.cli", "translate", str(trained)]
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
