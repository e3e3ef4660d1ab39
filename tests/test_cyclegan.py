"""CycleGAN on two real Fashion-MNIST classes: learning, losses, exact resume with the history pools."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gauguin.data.unpaired import FashionMNISTDomains
from gauguin.metrics import create_extractor
from gauguin.models import DataInfo
from gauguin.models.cyclegan import CycleGAN, CycleGANConfig, CycleGenerators
from gauguin.sampling import load_generator
from gauguin.training import load_checkpoint, train


def cyclegan_config(out_dir, **overrides) -> CycleGANConfig:
    values = dict(out_dir=str(out_dir), ngf=16, ndf=16, n_blocks=3, batch_size=4, steps=4, log_every=2,
                  sample_every=2, checkpoint_every=2, eval_every=2, eval_samples=64, pool_size=6, progress=False)
    values.update(overrides)
    return CycleGANConfig.from_dict(values)


def test_cycle_and_identity_losses_vanish_for_identity_generators():
    family = CycleGAN(CycleGANConfig(ngf=4, ndf=4, n_blocks=1), DataInfo(channels=1))
    G = CycleGenerators(nn.Identity(), nn.Identity())
    batch = {"a": torch.rand(2, 1, 32, 32) * 2 - 1, "b": torch.rand(2, 1, 32, 32) * 2 - 1}
    _, logs = family.g_loss(G, family.discriminator, batch, family.fakes(G, batch, 0), 0)
    assert logs["g_cycle"] == 0 and logs["g_identity"] == 0 and logs["g_adv"] > 0


def test_resume_is_exact_with_history_pools(tmp_path):
    """The pools hold old fakes: they are checkpointed, so 2 + 2 steps equal 4 straight steps."""
    train("cyclegan", cyclegan_config(tmp_path / "straight", eval_every=0))
    train("cyclegan", cyclegan_config(tmp_path / "split", eval_every=0, steps=2))
    train("cyclegan", cyclegan_config(tmp_path / "split", eval_every=0), resume=True)
    (a, meta), (b, _) = (load_checkpoint(tmp_path / run / "checkpoints" / "step_0000004")
                         for run in ("straight", "split"))
    assert a["train_state.safetensors"]["family.pool_a.count"].item() == 6  # full after 4 steps of batch 4
    for name, tensor in a["weights.safetensors"].items():
        assert torch.equal(tensor, b["weights.safetensors"][name]), name


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cyclegan") / "run"
    train("cyclegan", cyclegan_config(out, steps=300, log_every=25, sample_every=300, checkpoint_every=300,
                                      eval_every=300, pool_size=50))
    return out


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A few steps: what the CLI test needs (not learning)."""
    out = tmp_path_factory.mktemp("cyclegan_quick") / "run"
    train("cyclegan", cyclegan_config(out, eval_every=0))
    return out


@pytest.mark.slow
def test_learns_sneaker_to_ankle_boot(trained):
    """Cycle L1 falls clearly in 300 steps; translated held-out sneakers are classified as ankle boots
    (and boots as sneakers) by the fmnist classifier far above how the untranslated images are."""
    rows = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    cycle = [r["g_cycle"] for r in rows if "g_cycle" in r]
    assert np.mean(cycle[-3:]) < 0.7 * cycle[0], cycle
    loaded = load_generator(trained)
    test = FashionMNISTDomains("test")
    sneakers, boots = test.get_domain("a", torch.arange(500)), test.get_domain("b", torch.arange(500))
    judge = create_extractor("fmnist")
    to_boot = (judge.probabilities(loaded.translate_images(sneakers, "AtoB")).argmax(1) == 9).float().mean().item()
    to_sneaker = (judge.probabilities(loaded.translate_images(boots, "BtoA")).argmax(1) == 7).float().mean().item()
    untranslated = (judge.probabilities(sneakers).argmax(1) == 9).float().mean().item()
    print(f"\ncyclegan learning test: cycle loss {cycle[0]:.2f} -> {np.mean(cycle[-3:]):.2f}; sneaker->boot "
          f"{to_boot:.3f} (untranslated {untranslated:.3f}), boot->sneaker {to_sneaker:.3f}")
    assert to_boot > 0.6 and to_sneaker > 0.4 and untranslated < 0.2


def test_translate_cli_both_directions(quick, tmp_path):
    boot = FashionMNISTDomains("test").get_domain("b", torch.arange(1))
    Image.fromarray(((boot[0, 0].numpy() + 1) * 127.5).astype(np.uint8)).save(tmp_path / "boot.png")
    for direction in ("AtoB", "BtoA"):
        done = subprocess.run([sys.executable, "-m", "gauguin.cli", "translate", str(quick), "--input",
                               str(tmp_path / "boot.png"), "--direction", direction, "--out", str(tmp_path / direction)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    assert not np.array_equal(np.array(Image.open(tmp_path / "AtoB" / "boot.png")),
                              np.array(Image.open(tmp_path / "BtoA" / "boot.png")))
