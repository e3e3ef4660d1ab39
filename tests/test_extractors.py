"""Feature extractors: the FID Inception-v3 layout and loading, the registry, and gauguin's
Fashion-MNIST classifier (trained once into the default cache, then reused)."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from gauguin.data import FashionMNIST, Preprocessing
from gauguin.metrics.classifier import (
    ClassifierWeightsError,
    ClassifierWeightsNotFoundError,
    default_classifier_path,
    load_fmnist_classifier,
)
from gauguin.metrics.extractors import create_extractor, extract, wrap_module
from gauguin.metrics.inception import (
    InceptionFID,
    InceptionWeightsError,
    InceptionWeightsNotFoundError,
    load_inception,
)

# Parameters of the FID Inception-v3 (pytorch-fid layout: no AuxLogits, 1008-way fc), counted
# from this build. It agrees with torchvision's published size of Inception-v3, 27,161,264
# (with AuxLogits, 1000 classes): minus the AuxLogits head (98,304 + 256 + 2,457,600 + 1,536 +
# 769,000 = 3,326,696) plus the 8 extra classes (8 * 2048 + 8 = 16,392) gives 23,850,960.
INCEPTION_FID_PARAMS = 23_850_960


def _save_pth(state: dict, path) -> None:
    torch.save(state, path)  # the user's format: a plain state dict


# ------------------------------------------------------------------------------------ Inception
@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    """A randomly initialised FID Inception (with non-trivial BN statistics) saved both ways."""
    torch.manual_seed(0)
    net = InceptionFID().eval()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    folder = tmp_path_factory.mktemp("inception")
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "fid.safetensors"))
    _save_pth(state, folder / "fid.pth")
    return net, folder


def test_inception_layout_and_size():
    net = InceptionFID()
    assert sum(p.numel() for p in net.parameters()) == INCEPTION_FID_PARAMS
    keys = set(net.state_dict())
    for key in ("Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.running_var", "Mixed_5b.branch5x5_2.conv.weight",
                "Mixed_6a.branch3x3.conv.weight", "Mixed_6e.branch7x7dbl_5.bn.weight",
                "Mixed_7a.branch7x7x3_4.conv.weight", "Mixed_7c.branch3x3dbl_3b.conv.weight",
                "fc.weight", "fc.bias"):
        assert key in keys, key
    assert not any(k.startswith("AuxLogits") or k.endswith("conv.bias") for k in keys)
    assert net.fc.weight.shape == (1008, 2048)
    assert net.Mixed_5b.branch1x1.bn.eps == 0.001
    assert net.Mixed_7c.max_pool and not net.Mixed_7b.max_pool


def test_inception_loads_safetensors_and_pth(inception):
    net, folder = inception
    grey = torch.rand(2, 1, 28, 28) * 2 - 1
    rgb = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        want_feats, want_logits = net(grey), net.logits(rgb)
        assert want_feats.shape == (2, 2048) and want_logits.shape == (2, 1008)
        assert torch.isfinite(want_feats).all() and want_feats.std() > 0
        for name in ("fid.safetensors", "fid.pth"):
            loaded = load_inception(folder / name)
            assert not loaded.training
            torch.testing.assert_close(loaded(grey), want_feats, rtol=0, atol=0)
            torch.testing.assert_close(loaded.logits(rgb), want_logits, rtol=0, atol=0)


def test_inception_file_errors(inception, tmp_path):
    net, folder = inception
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(InceptionWeightsNotFoundError, match="--weights PATH") as err:
        load_inception(missing)
    assert str(missing) in str(err.value) and "downloaded" in str(err.value)

    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    dropped = dict(state)
    del dropped["Mixed_6b.branch7x7_2.conv.weight"]
    save_file(dropped, str(tmp_path / "dropped.safetensors"))
    with pytest.raises(InceptionWeightsError, match="missing: Mixed_6b.branch7x7_2.conv.weight") as err:
        load_inception(tmp_path / "dropped.safetensors")
    assert str(tmp_path / "dropped.safetensors") in str(err.value)

    wrong = dict(state, **{"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000),
                           "AuxLogits.fc.weight": torch.zeros(1000, 768)})
    _save_pth(wrong, tmp_path / "torchvision.pth")
    with pytest.raises(InceptionWeightsError, match=r"fc\.weight \(1000, 2048\) \(expected \(1008, 2048\)\)") as err:
        load_inception(tmp_path / "torchvision.pth")
    assert "AuxLogits.fc.weight" in str(err.value) and str(tmp_path / "torchvision.pth") in str(err.value)

    for name in ("corrupt.safetensors", "corrupt.pth"):
        (tmp_path / name).write_bytes(b"\x00not a weights file" * 10)
        with pytest.raises(InceptionWeightsError, match="corrupt") as err:
            load_inception(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)


def test_inception_without_bn_counters_loads(inception, tmp_path):
    """Files written before BatchNorm had ``num_batches_tracked`` load too."""
    net, _ = inception
    state = {k: v.contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_file(state, str(tmp_path / "old.safetensors"))
    load_inception(tmp_path / "old.safetensors")


# ------------------------------------------------------------------------------------- registry
def test_registry_names_and_inception_extractor(inception):
    _, folder = inception
    with pytest.raises(ValueError, match="did you mean 'inception'"):
        create_extractor("incepton")
    with pytest.raises(ValueError, match="did you mean 'fmnist'"):
        create_extractor("fmnst")
    with pytest.raises(InceptionWeightsNotFoundError, match="--weights PATH"):
        create_extractor("inception")
    a = create_extractor("inception", weights=folder / "fid.safetensors")
    b = create_extractor("Inception", weights=folder / "fid.pth")
    assert a.weights_hash == b.weights_hash and len(a.weights_hash) == 64
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    feats, probs = extract(a, images, batch_size=2, kind="both", progress=False)
    assert feats.shape == (2, 2048) and probs.shape == (2, 1008)
    torch.testing.assert_close(probs.sum(1), torch.ones(2))


def test_wrap_module_and_weights_hash():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(2))
    ext = wrap_module(module, "tiny")
    images = torch.rand(7, 1, 16, 16) * 2 - 1
    feats = extract(ext, images, batch_size=3, progress=False)
    assert feats.shape == (7, 16)
    torch.testing.assert_close(feats, module(images).flatten(1).detach())
    assert not ext.has_probabilities
    with pytest.raises(NotImplementedError, match="not a classifier"):
        extract(ext, images, kind="probabilities", progress=False)

    before = ext.weights_hash
    assert before == wrap_module(module, "same").weights_hash
    with torch.no_grad():
        module[0].weight[0, 0, 0, 0] += 1e-3
    assert ext.weights_hash != before
    assert wrap_module(module, "pinned", weights_hash="abc").weights_hash == "abc"

    resized = wrap_module(nn.Flatten(), "resize", input_size=8)
    assert extract(resized, images, progress=False).shape == (7, 64)


# -------------------------------------------------------------------------- fmnist classifier
@pytest.fixture(scope="module")
def fmnist():
    """The default classifier: trained with the real default settings into the default cache
    path once (~40 s on 2 CPU cores), reused on later runs."""
    return create_extractor("fmnist")


def test_fmnist_classifier_accuracy(fmnist):
    assert default_classifier_path().is_file()
    test = FashionMNIST("test")
    probs = extract(fmnist, test, batch_size=1000, kind="probabilities", progress=False)
    accuracy = (probs.argmax(1) == test.labels).float().mean().item()
    assert accuracy >= 0.90, f"fmnist classifier test accuracy {accuracy:.4f} < 0.90"
    assert float(fmnist.net.metadata["test_accuracy"]) == pytest.approx(accuracy, abs=1e-3)
    assert fmnist.net.metadata["architecture_version"] == "1"


def test_fmnist_features_and_probabilities(fmnist):
    grey = FashionMNIST("test").get_batch(torch.arange(6))[0]
    rgb64 = FashionMNIST("test", Preprocessing(crop_size=64, channels=3)).get_batch(torch.arange(6))[0]
    feats, probs = extract(fmnist, grey, batch_size=4, kind="both", progress=False)
    assert feats.shape == (6, 128) and probs.shape == (6, 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(6))
    # RGB 64x64 versions of the same images give (nearly) the same predictions
    probs_rgb = extract(fmnist, rgb64, kind="probabilities", progress=False)
    assert (probs_rgb.argmax(1) == probs.argmax(1)).float().mean() >= 5 / 6
    assert len(fmnist.weights_hash) == 64 and fmnist.weights_hash == fmnist.net.metadata["weights_sha256"]


def test_extract_rejects_nan_and_progress_can_be_disabled(fmnist, capsys):
    images = torch.rand(5, 1, 28, 28) * 2 - 1
    bad = images.clone()
    bad[3, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match=r"images 2\.\.3 contain NaN"):
        extract(fmnist, bad, batch_size=2, progress=False)
    capsys.readouterr()
    extract(fmnist, images, progress=False)
    assert capsys.readouterr().err == ""
    extract(fmnist, images, progress=True)
    assert "fmnist" in capsys.readouterr().err
    assert extract(fmnist, iter([images[:2], (images[2:], None)]), max_images=4, progress=False).shape == (4, 128)


def test_fmnist_weights_errors(fmnist, tmp_path):
    missing = tmp_path / "none.safetensors"
    with pytest.raises(ClassifierWeightsNotFoundError, match="train_fmnist_classifier") as err:
        load_fmnist_classifier(missing)
    assert str(missing) in str(err.value)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage" * 20)
    with pytest.raises(ClassifierWeightsError, match="corrupt") as err:
        create_extractor("fmnist", weights=corrupt)
    assert str(corrupt) in str(err.value)
    # a copy with changed weights has another hash
    changed = {k: v.clone() for k, v in fmnist.net.state_dict().items()}
    changed["head.bias"] += 0.5
    metadata = dict(fmnist.net.metadata)
    save_file(changed, str(tmp_path / "changed.safetensors"), metadata=metadata)
    other = create_extractor("fmnist", weights=tmp_path / "changed.safetensors")
    assert other.weights_hash != fmnist.weights_hash


def test_default_classifier_is_trained_when_missing_or_stale(fmnist, tmp_path, monkeypatch, capsys):
    """Without a path, a missing or unusable cache file is (re)trained with a message; training
    itself is faked here by copying the real classifier file."""
    import shutil

    from gauguin.metrics import classifier

    real = default_classifier_path()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def fake_train(path, progress=True):
        calls.append(path)
        shutil.copyfile(real, path)
        return {"accuracy": float(fmnist.net.metadata["test_accuracy"])}

    monkeypatch.setattr(classifier, "train_fmnist_classifier", fake_train)
    target = tmp_path / "gauguin" / "classifiers" / "fmnist.safetensors"
    target.parent.mkdir(parents=True)
    assert load_fmnist_classifier().weights_sha256 == fmnist.weights_hash
    assert calls == [target] and "no classifier at" in capsys.readouterr().err
    target.write_bytes(b"half-written")
    load_fmnist_classifier()
    assert len(calls) == 2 and "unusable" in capsys.readouterr().err
    load_fmnist_classifier()  # a good cache file is reused
    assert len(calls) == 2
