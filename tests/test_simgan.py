"""SimGAN: history buffer, local adversarial loss, self-regularization, schedule, learning, CLI."""
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin import losses
from gauguin.config import ConfigError
from gauguin.data.simulated import FashionMNISTSimulated
from gauguin.experiments import simgan_tstr as tstr
from gauguin.experiments.simgan_tstr import annotation_preservation
from gauguin.models import DataInfo
from gauguin.models.simgan import LocalDiscriminator, Refiner, SimGAN, SimGANConfig, self_regularization_map
from gauguin.nn.image_pool import HistoryBuffer
from gauguin.sampling import load_generator
from gauguin.training import Trainer, train


def tiny(out_dir, **overrides) -> SimGANConfig:
    values = dict(refiner_width=16, refiner_blocks=2, batch_size=16, buffer_size=64, steps=6, pretrain_refiner_steps=2,
                  pretrain_discriminator_steps=2, log_every=1, sample_every=6, checkpoint_every=6, eval_every=0,
                  progress=False, out_dir=str(out_dir))
    values.update(overrides)
    return SimGANConfig.from_dict(values)


def test_history_buffer_fills_then_serves_half_of_each_batch():
    torch.manual_seed(0)
    buffer = HistoryBuffer(20)
    assert len(buffer) == 0
    batches = [torch.full((8, 1, 2, 2), float(k)) for k in range(8)]
    shown = buffer.mix(batches[0])
    assert buffer.last_from_buffer == 0 and torch.equal(shown, batches[0]) and len(buffer) == 4
    for k in range(1, 5):  # 4 images enter per batch: full after 5 batches
        before = buffer.state_dict()["images"].clone()
        shown = buffer.mix(batches[k])
        assert buffer.last_from_buffer == 4
        assert torch.equal(shown[:4], batches[k][:4])  # the current half
        assert all(any(torch.equal(img, old) for old in before) for img in shown[4:])  # the stored half
    assert len(buffer) == 20
    before = buffer.state_dict()["images"].clone()
    buffer.mix(batches[5])
    after = buffer.state_dict()["images"]
    assert len(buffer) == 20 and (after != before).flatten(1).any(1).sum() == 4  # 4 entries replaced
    assert (after == 5.0).flatten(1).all(1).sum() == 4


def test_history_buffer_state_round_trip_and_bad_sizes():
    torch.manual_seed(1)
    buffer = HistoryBuffer(10)
    for _ in range(4):
        buffer.mix(torch.randn(4, 1, 3, 3))
    copy = HistoryBuffer(10)
    copy.load_state_dict(buffer.state_dict())
    torch.manual_seed(2)
    a = buffer.mix(torch.ones(4, 1, 3, 3))
    torch.manual_seed(2)
    b = copy.mix(torch.ones(4, 1, 3, 3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="buffer_size"):
        HistoryBuffer(3).mix(torch.zeros(4, 1, 3, 3))
    with pytest.raises(ConfigError, match="buffer_size"):
        SimGANConfig.from_dict({"buffer_size": 32, "batch_size": 64})
    with pytest.raises(ConfigError, match="both"):
        SimGANConfig.from_dict({"synthetic": "/tmp/x"})


def test_local_discriminator_gives_a_patch_grid_and_the_loss_averages_it():
    D = LocalDiscriminator(1)
    assert D(torch.zeros(2, 1, 28, 28)).shape == (2, 2, 7, 7)
    assert D(torch.zeros(2, 1, 32, 48)).shape == (2, 2, 8, 12)
    logits = torch.zeros(3, 2, 4, 4)
    assert losses.local_adversarial_loss(logits, real=True).item() == pytest.approx(math.log(2))
    logits[:, 1] = 2.0  # every patch says "real" with logit margin 2
    assert losses.local_adversarial_loss(logits, real=True).item() == pytest.approx(math.log1p(math.exp(-2)))
    assert losses.local_adversarial_loss(logits, real=False).item() == pytest.approx(math.log1p(math.exp(2)))


def test_refiner_keeps_the_size_and_self_regularization_maps():
    assert Refiner(3, 8, 2)(torch.zeros(2, 3, 20, 36)).shape == (2, 3, 20, 36)
    a = torch.zeros(1, 2, 4, 4)
    b = a.clone()
    b[0, 0] = 1.0  # channel 0 brighter by 1, channel 1 unchanged
    assert (self_regularization_map("identity")(b) - self_regularization_map("identity")(a)).abs().mean() == 0.5
    assert (self_regularization_map("channel_mean")(b) - a.mean(1, keepdim=True)).abs().mean() == 0.5
    checker = (torch.arange(16).view(4, 4) + torch.arange(4).view(4, 1)) % 2 * 2.0 - 1.0  # ±1, mean 0
    texture = checker.expand(1, 1, 4, 4)
    flat = torch.zeros(1, 1, 4, 4)
    pool = self_regularization_map("avg_pool", 2)
    assert (texture - flat).abs().mean() == 1.0 and (pool(texture) - pool(flat)).abs().max() == 0.0
    family = SimGAN(SimGANConfig(), DataInfo(channels=1))
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    assert family.self_regularization(x, x).item() == 0.0  # R = identity


def test_schedule_pretrains_the_refiner_alone_then_the_discriminator():
    cfg = SimGANConfig(pretrain_refiner_steps=3, pretrain_discriminator_steps=2, d_steps_per_g_step=1,
                       g_steps_per_iteration=2)
    family = SimGAN(cfg, DataInfo(channels=1))
    assert [(p.d_updates, p.g_updates) for p in map(family.plan, range(7))] == [(0, 1)] * 3 + [(1, 0)] * 2 + [(1, 2)] * 2

    def no_discriminator(_):
        raise AssertionError("the adversarial term must be skipped while pretraining the refiner")

    batch = {"synthetic": torch.rand(2, 1, 8, 8) * 2 - 1}
    fakes = family.fakes(family.generator, batch, 2)
    loss, logs = family.g_loss(family.generator, no_discriminator, batch, fakes, step=2)
    assert "g_adv" not in logs and loss.item() == pytest.approx(logs["g_reg"])
    _, logs = family.g_loss(family.generator, family.discriminator, batch, fakes, step=3)
    assert "g_adv" in logs


def test_training_phases_update_only_their_network(tmp_path):
    trainer = Trainer("simgan", tiny(tmp_path / "run"))
    G0 = [p.clone() for p in trainer.G.parameters()]
    D0 = [p.clone() for p in trainer.D.parameters()]
    trainer.train_step(0)  # refiner pretraining: D untouched
    assert all(torch.equal(a, b) for a, b in zip(D0, trainer.D.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(G0, trainer.G.parameters()))
    G1 = [p.clone() for p in trainer.G.parameters()]
    trainer.train_step(2)  # discriminator pretraining: R untouched, the buffer starts filling
    assert all(torch.equal(a, b) for a, b in zip(G1, trainer.G.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(D0, trainer.D.parameters()))
    assert len(trainer.family.buffer) == 8
    logs = trainer.train_step(4)
    assert {"d_loss", "g_adv", "g_reg"} <= set(logs)


def test_resume_restores_the_buffer_exactly(tmp_path):
    straight = tiny(tmp_path / "a", steps=8, checkpoint_every=4)
    train("simgan", straight)
    first = tiny(tmp_path / "b", steps=4, checkpoint_every=4)
    train("simgan", first)
    train("simgan", tiny(tmp_path / "b", steps=8, checkpoint_every=4), resume=True)
    a, b = (load_generator(tmp_path / name) for name in "ab")
    for (name, p), q in zip(a.generator.state_dict().items(), b.generator.state_dict().values()):
        assert torch.equal(p, q), name


@pytest.mark.slow
def test_learning_refined_images_fool_the_discriminator_more_than_raw_ones(tmp_path):
    """After a short run, D's mean probability of "real" is higher for refined images than for the
    raw synthetic ones, while the refinement stays close to its input (self-regularization)."""
    cfg = tiny(tmp_path / "run", steps=400, pretrain_refiner_steps=60, pretrain_discriminator_steps=40,
               batch_size=32, buffer_size=512, refiner_width=32, refiner_blocks=3, log_every=20, sample_every=400,
               checkpoint_every=400)
    trainer = Trainer("simgan", cfg)
    trainer.train()
    data = FashionMNISTSimulated(image_size=28)
    synthetic, _ = data.synthetic_batch(torch.arange(512))
    G, D = trainer.G.eval(), trainer.D.eval()
    with torch.no_grad():
        refined = G(synthetic)
        p_raw = D(synthetic).softmax(1)[:, 1].mean().item()
        p_refined = D(refined).softmax(1)[:, 1].mean().item()
    distance = (refined - synthetic).abs().mean().item()
    kept = annotation_preservation(synthetic, refined)
    print(f"\nsimgan learning test: D(real) on raw {p_raw:.3f}, on refined {p_refined:.3f}; mean |R(x) - x| "
          f"{distance:.3f}; silhouette IoU {kept['silhouette_iou']:.3f}")
    assert p_refined > p_raw + 0.02  # seeds 0, 1: +0.069, +0.051
    assert distance < 0.35
    assert kept["silhouette_iou"] > 0.8


def test_annotation_preservation_by_hand():
    a = -torch.ones(1, 1, 6, 6)
    a[..., 1:3, 1:3] = 1.0  # a 2x2 square
    b = -torch.ones(1, 1, 6, 6)
    b[..., 1:3, 2:4] = 1.0  # moved right by one pixel
    kept = annotation_preservation(a, b)
    assert kept["silhouette_iou"] == pytest.approx(2 / 6) and kept["centroid_shift_px"] == pytest.approx(1.0)


def test_simgan_tstr_reuses_the_refiner_independent_rows(tmp_path, monkeypatch):
    """Two refiners scored alike: five classifiers for the first, two for the second (refined, and
    real told from refined), the raw / real rows taken from the cache and equal."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fits = []
    real_fit = tstr.fit_classifier
    monkeypatch.setattr(tstr, "fit_classifier", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    reports, classifiers = [], []
    for name, lambda_reg in (("a", 1.0), ("b", 0.1)):
        train("simgan", tiny(tmp_path / name, lambda_reg=lambda_reg))
        fits.clear()
        reports.append(tstr.simgan_tstr(tmp_path / name, tmp_path / f"tstr_{name}", classifier_epochs=1,
                                        turing_images=100, images=200, progress=False, oracles=True))
        classifiers.append(len(fits))
    first, second = reports
    assert classifiers == [5 + 3, 2]  # the three oracles' classifiers are cached too
    assert second["oracle_accuracy"] == first["oracle_accuracy"] and len(first["oracle_accuracy"]) == 3
    assert second["test_accuracy"]["synthetic"] == first["test_accuracy"]["synthetic"]
    assert second["test_accuracy"]["real"] == first["test_accuracy"]["real"]
    assert second["turing_test_accuracy"]["real_vs_synthetic"] == first["turing_test_accuracy"]["real_vs_synthetic"]
    for report in reports:
        acc = report["test_accuracy"]
        assert all(0.0 <= value <= 1.0 for value in acc.values())
        gap = acc["real"] - acc["synthetic"]
        if gap > 0:
            assert report["gap_closed"] == pytest.approx((acc["refined"] - acc["synthetic"]) / gap)
    assert "of the raw -> real gap" in tstr.format_report(first)


def test_oracle_refinements_by_hand():
    synthetic = -torch.ones(1, 1, 4, 4)
    synthetic[..., :2, :2] = 0.5  # the silhouette: the top-left 2x2 block
    own = -torch.ones(1, 1, 4, 4)
    own[..., :2, :2] = torch.tensor([[0.0, 0.2], [0.4, 0.6]])
    own[..., 3, 3] = 1.0  # outside the silhouette: no oracle but the image itself keeps it
    made = tstr.oracle_refinements(synthetic, own, window=3)
    tone = -torch.ones(1, 1, 4, 4)
    tone[..., :2, :2] = 0.3
    assert torch.allclose(made["own_tone"], tone)
    assert torch.equal(made["own_image"], own)
    shading = made["own_shading"]
    assert (shading[..., 2:, :] == -1).all() and (shading[..., :, 2:] == -1).all()
    assert torch.allclose(shading, tone)  # each 3x3 window holds the whole block and only it of the garment


def test_train_and_refine_cli_keep_class_folders(tmp_path):
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "gauguin.cli"]
    done = subprocess.run(cli + ["train", "simgan", f"out_dir={run}", "steps=3", "pretrain_refiner_steps=1",
                                 "pretrain_discriminator_steps=1", "refiner_width=8", "refiner_blocks=1",
                                 "batch_size=8", "buffer_size=8", "eval_every=0", "progress=false"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    for klass in ("sneaker", "boot"):
        (tmp_path / "synthetic" / klass).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(np.full((28, 28), 40 * i + 60, np.uint8)).save(tmp_path / "synthetic" / klass / f"{i}.png")
    done = subprocess.run(cli + ["refine", str(run), "--input", str(tmp_path / "synthetic"), "--out",
                                 str(tmp_path / "refined")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    written = sorted(str(p.relative_to(tmp_path / "refined")) for p in (tmp_path / "refined").rglob("*.png"))
    assert written == ["boot/0.png", "boot/1.png", "sneaker/0.png", "sneaker/1.png"]
    wrong = subprocess.run(cli + ["train", "dcgan", "--real", str(tmp_path)], capture_output=True, text=True,
                           timeout=120)
    assert wrong.returncode == 1 and "dcgan takes --data" in wrong.stderr
