"""Learning test on real data: a short class-conditional DCGAN run on Fashion-MNIST must draw
images that an independent classifier recognises as their conditioning class.

The run goes through the public API only: ``gauguin.training.train`` into a temporary folder,
then ``gauguin.sampling.load_generator`` on the checkpoint it wrote. The judge is a small CNN
trained on the real train split (``gauguin.metrics.classifier``, the ``fmnist`` extractor), cached as safetensors under
``$XDG_CACHE_HOME/gauguin/classifiers/`` so only a cold cache pays for its training.
Run ``pytest -s tests/test_learning.py`` to see the accuracies reached.
"""
from __future__ import annotations

import json
import math
import time

import pytest
import torch

from gauguin.data import FashionMNIST, Preprocessing
from gauguin.metrics.classifier import classifier_accuracy, default_classifier_path, load_fmnist_classifier
from gauguin.models.dcgan import DCGANConfig
from gauguin.sampling import load_generator
from gauguin.training import train


pytestmark = pytest.mark.slow

CLASSIFIER_MIN_ACCURACY = 0.85
SAMPLES_PER_CLASS = 50
# Conditional accuracy of the generated samples (chance: 10%). With the run below it was
# 65-71% over training seeds 0-3 (69.2% for seed 0, used here) as judged by the fmnist
# extractor (92.1% on real test images); 45% leaves a wide margin.
GENERATED_MIN_ACCURACY = 0.45


@pytest.fixture(scope="module")
def classifier():
    """The judge, in eval mode, and its accuracy on the real Fashion-MNIST test split."""
    start = time.perf_counter()
    model = load_fmnist_classifier(progress=False)
    seconds = time.perf_counter() - start
    test = FashionMNIST("test", Preprocessing(crop_size=28, channels=1))
    images, labels = test.get_batch(torch.arange(len(test)))
    accuracy = classifier_accuracy(model, images, labels)
    print(f"\nFashion-MNIST classifier (loaded or trained in {seconds:.0f} s, {default_classifier_path()}): "
          f"{accuracy:.1%} on the real test split")
    return model, accuracy


def test_classifier_is_accurate_on_real_test_split(classifier, record_property):
    """The judge itself: a small CNN must reach > 85% on the 10,000 real test images
    (reached 92.1% when written)."""
    _, accuracy = classifier
    record_property("classifier_test_accuracy", round(accuracy, 4))
    assert accuracy > CLASSIFIER_MIN_ACCURACY


def test_conditional_dcgan_learns_on_fashion_mnist(classifier, tmp_path, record_property):
    """500 steps of class-conditional DCGAN on real Fashion-MNIST; 50 samples per class are
    classified as their conditioning class well above chance (reached 69.2% when written,
    65-71% over seeds 0-3; ~22 s of training on 2 CPU cores), and the run's own sliced
    Wasserstein distance falls (0.369 -> 0.060 when written)."""
    model, judge_accuracy = classifier
    assert judge_accuracy > CLASSIFIER_MIN_ACCURACY, "the judge is broken: see the classifier test"

    # Paper defaults (Radford et al. 2016) except where a CPU test budget forces a change:
    # - image_size=28: Fashion-MNIST's native size (7x7 -> 14 -> 28), no resizing, and the
    #   classifier's input size;
    # - g_width=d_width=32 instead of 64 and batch_size=64 instead of 128: ~4x less compute;
    # - steps=500 (about half an epoch), the knee of the curve: mean accuracy over seeds was
    #   ~25% at 200 steps, ~56% at 300, ~75% at 400, ~81% at 500, ~83% at 600;
    # - eval_every=100 so metrics.jsonl holds a few swd values to compare.
    # Learning rates, betas, z_dim, loss, EMA (0.999, warmed up) and precision="auto" (fp32
    # on a CPU without native bf16) are the defaults.
    cfg = DCGANConfig(
        out_dir=str(tmp_path / "run"),
        image_size=28,
        g_width=32,
        d_width=32,
        batch_size=64,
        steps=500,
        eval_every=100,
        seed=0,
        progress=False,
    )
    start = time.perf_counter()
    checkpoint = train("dcgan", cfg)
    train_seconds = time.perf_counter() - start
    assert checkpoint is not None and checkpoint.name == "step_0000500"

    # the run's own logs: losses finite, swd (lower is better) well down from the first eval
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    swd = [r["swd"] for r in records if "swd" in r]
    assert len(swd) >= 2, f"expected an swd value every 100 steps in metrics.jsonl, got {swd}"
    losses = [r[k] for r in records for k in ("d_loss", "g_loss") if k in r]
    assert losses and all(math.isfinite(v) for v in losses)
    assert swd[-1] < 0.5 * swd[0], f"sliced Wasserstein distance did not fall enough: {swd}"

    generator = load_generator(checkpoint)
    assert generator.meta["step"] == 500
    per_class = []
    for label in range(10):
        images = generator.sample(SAMPLES_PER_CLASS, seed=label, label=label)
        assert images.shape == (SAMPLES_PER_CLASS, 1, 28, 28)
        assert images.min() >= -1.0 and images.max() <= 1.0
        per_class.append(classifier_accuracy(model, images, torch.full((len(images),), label)))
    accuracy = sum(per_class) / len(per_class)

    print(f"\nconditional DCGAN, {cfg.steps} steps in {train_seconds:.0f} s: generated samples classified as "
          f"their class {accuracy:.1%} of the time (chance 10%, threshold {GENERATED_MIN_ACCURACY:.0%}); "
          f"per class {[round(p, 2) for p in per_class]}; swd {swd}")
    record_property("generated_class_accuracy", round(accuracy, 4))
    record_property("generated_class_accuracy_per_class", [round(p, 3) for p in per_class])
    record_property("swd", swd)
    record_property("train_seconds", round(train_seconds, 1))
    assert accuracy > GENERATED_MIN_ACCURACY
