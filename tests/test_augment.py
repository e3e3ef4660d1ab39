"""The GAN data-augmentation experiment: its pieces against hand-made inputs, one tiny grid end to end,
and the CLI's bad-input errors."""
import json
import math
import time

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.data.errors import BadDataError
from gauguin.experiments import augment
from gauguin.experiments.augment import Budget, classic_augment, pseudo_labels, ratio_name, row_names
from test_cli import gauguin


def test_classic_augmentation_is_the_identity_at_zero_strength_and_flips_when_asked():
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    same = classic_augment(x, gen, flip=False, degrees=0, scale=0, shift=0)
    assert torch.allclose(same, x, atol=1e-5)
    flipped = classic_augment(x, torch.Generator().manual_seed(0), degrees=0, scale=0, shift=0)
    for image, out in zip(x, flipped):
        assert torch.allclose(out, image, atol=1e-5) or torch.allclose(out, image.flip(-1), atol=1e-5)
    moved = classic_augment(x, torch.Generator().manual_seed(1))
    assert moved.shape == x.shape and not torch.allclose(moved, x, atol=1e-3)
    assert moved.min() >= -1 - 1e-5 and moved.max() <= 1 + 1e-5  # bilinear: stays in range


def test_ratios_and_rows_are_named():
    assert [ratio_name(r) for r in (0.25, 1.0, 4.0)] == ["1:4", "1:1", "4:1"]
    rows = row_names((0.25, 1.0))
    assert rows == ["real", "real + classic aug", "real + GAN 1:4", "real + GAN 1:1", "GAN only",
                    "real + pseudo-labels", "real + semi-GAN 1:4", "real + semi-GAN 1:1", "semi-GAN only"]


def test_pseudo_labels_keep_the_most_confident_fraction_of_each_predicted_class():
    logits = torch.tensor([[5.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 4.0], [0.0, 0.5], [2.0, 0.0]])
    model = lambda images: images  # noqa: E731  (the "images" are the logits)
    picked, labels = pseudo_labels(model, logits, 0.5, 2)
    assert picked.tolist() == [0, 2, 3] and labels.tolist() == [0, 0, 1]  # 2 of 4 class-0, 1 of 2 class-1


def test_the_budget_gives_each_gan_what_the_classifiers_leave(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    budget = Budget(seconds=1000, gans_left=4, classifiers_left=20, started=100.0)
    now[0] += 20  # two classifiers of 10 s
    budget.classifier_done()
    budget.classifier_done()
    # 980 s left, 18 classifiers of 10 s: 800 s for 4 GANs, less 5 s of assumed set-up each
    assert budget.next_gan_seconds() == pytest.approx(195)
    now[0] += 206  # the GAN: 195 s of training, 11 s of set-up
    budget.gan_done(206, 195)
    assert budget.next_gan_seconds() == pytest.approx((1000 - 226 - 18 * 10) / 3 - 11)
    now[0] = 100 + 2000  # over budget: still the minimum, never negative
    assert budget.next_gan_seconds() == augment.MIN_GAN_SECONDS


def _class_folders(root, classes=("boot", "coat", "hat"), train=8, test=4):
    """Each class a distinct brightness pattern, so a classifier can learn it from few images."""
    rng = np.random.default_rng(0)
    for split, count in (("train", train), ("test", test)):
        for c, name in enumerate(classes):
            for i in range(count):
                pixels = np.zeros((12, 12), np.uint8)
                pixels[:, 4 * c : 4 * c + 4] = 255
                noisy = np.clip(pixels + rng.integers(0, 40, (12, 12)), 0, 255).astype(np.uint8)
                path = root / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(noisy).save(path)
    return root


def test_a_tiny_grid_runs_end_to_end_and_writes_its_table(tmp_path, monkeypatch):
    monkeypatch.setattr(augment, "MIN_GAN_SECONDS", 0.5)
    monkeypatch.setattr(augment, "GAN_SETUP_SECONDS", 1.0)
    data = _class_folders(tmp_path / "data")
    settings = dict(data=f"folder:{data}", budget_minutes=0.2, out_dir=tmp_path / "out", ratios=(1.0, 2.0),
                    classifier_steps=5, progress=False, gan_overrides=dict(g_width=8, d_width=8, z_dim=8, batch_size=8))
    report = augment.run((3,), (0, 1), **settings)
    again = augment.run((3,), (0, 1), **settings)  # every cell finished: read back, nothing trains again
    assert again["accuracy"] == report["accuracy"] and again["seconds"] < 10
    with pytest.raises(ValueError, match="n3_seed0/cell.json is a cell of another experiment setting"):
        augment.run((3,), (0, 1), **{**settings, "classifier_steps": 6})
    rows = row_names((1.0, 2.0))
    assert report["rows"] == rows and report["classes"] == ["boot", "coat", "hat"] and report["test_images"] == 12
    for row in rows:
        cell = report["accuracy"][row]["3"]
        assert len(cell["seeds"]) == 2 and all(0 <= a <= 1 for a in cell["seeds"])
        assert cell["mean"] == pytest.approx(sum(cell["seeds"]) / 2)
        assert cell["std"] == pytest.approx(abs(cell["seeds"][0] - cell["seeds"][1]) / math.sqrt(2))
    for cell in report["cells"]:
        assert cell["gan"]["steps"] >= 1 and cell["semi_gan"]["steps"] >= 1
        pseudo = cell["pseudo_labels"]
        assert pseudo["of_unlabelled"] == 3 * (8 - 3) and 0 <= pseudo["precision"] <= 1 and pseudo["images"] >= 3
    semi = tmp_path / "out" / "n3_seed0" / "semi_data"
    assert sorted(p.name for p in semi.iterdir()) == ["0_boot", "1_coat", "2_hat"]  # ImageFolder layout
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert written["accuracy"] == report["accuracy"]
    table = (tmp_path / "out" / "table.md").read_text()
    assert all(f"| {row} |" in table for row in rows) and "N = 3" in table
    assert Image.open(tmp_path / "out" / "accuracy.png").size == (900, 560)


def test_bad_input_is_named_before_anything_trains(tmp_path):
    data = _class_folders(tmp_path / "data", train=4)
    with pytest.raises(BadDataError, match=r"labels_per_class=5 exceeds the smallest class .*labels_per_class <= 4"):
        augment.run((5,), (0,), data=f"folder:{data}", out_dir=tmp_path / "out")
    one = _class_folders(tmp_path / "one", classes=("boot",))
    with pytest.raises(BadDataError, match="1 class; a classifier needs at least 2 class folders"):
        augment.run((2,), (0,), data=f"folder:{one}", out_dir=tmp_path / "out")
    (tmp_path / "flat").mkdir()
    with pytest.raises(BadDataError, match="has no train/ folder"):
        augment.run((2,), (0,), data=f"folder:{tmp_path / 'flat'}", out_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="too short to train anything .* give --budget 1 or more"):
        augment.run((2,), (0,), data=f"folder:{data}", budget_minutes=0.01, classifier_steps=5,
                    out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_cli_names_bad_input_in_one_line(tmp_path):
    for args, message in ((["--labels-per-class", "7000"], "exceeds the smallest class of the training split"),
                          (["conditional=false"], "must be class-conditional; remove conditional=false"),
                          (["--labels-per-class", "ten"], "--labels-per-class 'ten' must be comma-separated"),
                          (["--budget", "0.05"], "too short to train anything")):
        done = gauguin("experiment", "augment", "--out", tmp_path / "out", *args, check=False)
        assert done.returncode != 0 and message in done.stderr, done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_quick_experiment_learns(tmp_path):
    """`gauguin experiment augment --quick` (CI's): 10 labels per class, one seed, 2.5 minutes; the
    classifiers learn from 100 images and the conditional GAN's samples alone carry the classes (twice chance: the
    GANs get ~1 minute each, a few hundred steps, and CAS that early varies by seed and CPU speed: 0.2-0.45)."""
    done = gauguin("experiment", "augment", "--quick", "--out", tmp_path / "quick")
    report = json.loads((tmp_path / "quick" / "report.json").read_text())
    accuracy = {row: report["accuracy"][row]["10"]["mean"] for row in report["rows"]}
    assert accuracy["real"] > 0.6 and accuracy["real + classic aug"] > 0.6  # chance: 0.1
    assert accuracy["GAN only"] > 0.2 and accuracy["semi-GAN only"] > 0.2  # chance: 0.1
    assert report["seconds"] < 2.5 * 60 * 1.3
    assert "| real + GAN 1:1 |" in done.stdout
