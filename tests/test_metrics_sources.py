import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from gauguin.metrics.cache import cache_key, load_cached, save_cached
from gauguin.metrics.sources import load_image_set, match_images
from gauguin.training import train


def test_fashion_mnist_sets_are_reproducible_subsets():
    a = load_image_set("fashion-mnist:test", n=100, seed=0)
    b = load_image_set("fashion_mnist:test", n=100, seed=0)
    assert a.images.shape == (100, 1, 28, 28) and a.labels.shape == (100,)
    assert torch.equal(a.images, b.images) and a.fingerprint == b.fingerprint
    assert load_image_set("fashion-mnist:test", n=100, seed=1).fingerprint != a.fingerprint
    assert load_image_set("fashion-mnist:train", n=100, seed=0).fingerprint != a.fingerprint


def _write_folder(root, value=0):
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8) + value).save(root / cls / f"{i}.png")


def test_folder_fingerprint_follows_the_content(tmp_path):
    _write_folder(tmp_path)
    a = load_image_set(f"folder:{tmp_path}")
    assert a.images.shape == (6, 1, 16, 16) and a.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert load_image_set(str(tmp_path)).fingerprint == a.fingerprint
    Image.fromarray(np.zeros((16, 16), dtype=np.uint8)).save(tmp_path / "b" / "2.png")
    assert load_image_set(str(tmp_path)).fingerprint != a.fingerprint


def test_a_checkpoint_draws_balanced_classes(tmp_path):
    train("dcgan", tiny_config(tmp_path, steps=2, eval_every=0))
    fake = load_image_set(str(tmp_path), n=20, seed=0)
    assert fake.images.shape == (20, 1, 28, 28)
    assert torch.bincount(fake.labels).tolist() == [2] * 10
    assert load_image_set(str(tmp_path), n=20, seed=0).fingerprint == fake.fingerprint
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_set(str(tmp_path / "nope"))


def test_mismatched_images_are_resized_with_a_warning():
    real, fake = torch.zeros(2, 1, 28, 28), torch.zeros(2, 3, 32, 32)
    with pytest.warns(UserWarning, match="resizing"):
        assert match_images(fake, real).shape == (2, 1, 28, 28)


def test_cache_round_trip_and_corruption(tmp_path):
    key = cache_key(images="abc", extractor="fmnist", protocol="fid")
    assert key != cache_key(images="abd", extractor="fmnist", protocol="fid")
    assert load_cached(key, tmp_path) is None
    path = save_cached(key, {"mu": np.arange(3.0)}, {"images": "abc"}, tmp_path)
    assert np.array_equal(load_cached(key, tmp_path)["mu"], np.arange(3.0))
    path.write_bytes(b"garbage")
    assert load_cached(key, tmp_path) is None


def test_fashion_mnist_reference_is_read_at_the_generators_size(tmp_path):
    """A 32 px generator is compared with real images resized 28 -> 32 as training resizes them, not by
    resizing its own samples to 28 (a second resize that blurs the fakes only)."""
    import torch.nn.functional as F

    from gauguin.metrics.evaluate import evaluate

    native = load_image_set("fashion-mnist:test", n=50, seed=3)
    at_32 = load_image_set("fashion-mnist:test", n=50, seed=3, image_size=32)
    assert native.name == "fashion-mnist:test" and at_32.name == "fashion-mnist:test@32"
    assert at_32.images.shape[1:] == (1, 32, 32) and at_32.fingerprint != native.fingerprint
    expected = F.interpolate(native.images, size=32, mode="bilinear", antialias=True, align_corners=False).clamp(-1, 1)
    assert torch.allclose(at_32.images, expected, atol=1e-6)
    assert load_image_set("fashion-mnist:test", n=50, seed=3, image_size=28).name == "fashion-mnist:test"

    train("dcgan", tiny_config(tmp_path / "run", image_size=32, steps=2, eval_every=0))
    report = evaluate(["fid", "accuracy"], "fashion-mnist:test", str(tmp_path / "run"), n=100, progress=False)
    assert report["real"] == "fashion-mnist:test@32"
    assert set(report["results"]) == {"fid100-fmnist-fashion-mnist:test@32", "accuracy100-fmnist-fashion-mnist:test@32"}
