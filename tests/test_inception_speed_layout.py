"""The fast inference copy of the FID Inception-v3 (``FastInceptionFID``: BatchNorm folded into the
convolutions, fused ReLU, channels-last, merged 1x1 convolutions, pool-after-conv) computes the
plain module's function: features, logits and FID agree to fp32 rounding, on weights made here.

Tolerances: fp32 convolutions differ between kernels (oneDNN's blocking and summation order,
the folded BN) by rounding only. On the network below, either path is ~3e-7 (of the feature norm)
off a float64 forward and the two paths ~4e-7 apart on this CPU (AVX-512); FID differs by ~1e-6
relative. The bounds, 1e-4 of the norm (and of the largest entry for the largest difference) and
0.1 % of FID, leave two to three orders of magnitude for other CPUs' kernels and still fail on any
real change (zeroing one of the 94 folded biases, in Mixed_6b, moves them by 7e-3 of their norm). No
timing is asserted here: bench/eval.py measures the speed.
"""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import gauguin.metrics.inception as inception_module
from gauguin.metrics.extractors import InceptionExtractor, create_extractor, extract
from gauguin.metrics.frechet import fid_from_features
from gauguin.metrics.inception import FastInceptionFID, FoldedConv, InceptionFID

REL_TOL = 1e-4  # of the feature / logit norm (see the module docstring)
FID_REL_TOL = 1e-3  # 0.1 %


@pytest.fixture(scope="module")
def net():
    """A seeded FID Inception with non-trivial BatchNorm (random scale, shift, running mean and
    variance), so that a fold that mixed them up changes the features. The convolutions get
    He-normal weights, whose ReLU outputs keep their scale through the 94 layers, as a trained
    network's do: with PyTorch's default init the signal fades and every image gets nearly the same
    features, and BN statistics calibrated to that faded signal scale rounding up ~10x per block,
    so that the plain fp32 module itself is off float64 by ~1e-4 (an ill-conditioned net, not
    the FID network). Here the fp32 error of either path against float64 is ~3e-7."""
    torch.manual_seed(0)
    model = InceptionFID()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                module.weight.uniform_(0.8, 1.2)
                module.bias.uniform_(-0.1, 0.1)
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
        model.fc.bias.uniform_(-0.5, 0.5)
    return model.eval().requires_grad_(False)


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(1)
    return {
        "grey28": torch.rand(3, 1, 28, 28, generator=g) * 2 - 1,  # resized, grey (one-channel stem)
        "rgb40": torch.rand(2, 3, 40, 40, generator=g) * 2 - 1,  # resized, RGB
        "rgb299": torch.rand(1, 3, 299, 299, generator=g) * 2 - 1,  # the network's own size: no resize
    }


@pytest.fixture(scope="module")
def plain_features(net, images):
    with torch.no_grad():
        return {name: net(x) for name, x in images.items()}


def _assert_close(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, what
    assert torch.isfinite(got).all(), what
    err = (got - want).norm() / want.norm()
    assert err <= REL_TOL, f"{what}: relative error {err:.2e} > {REL_TOL}"
    worst = (got - want).abs().max() / want.abs().max()
    assert worst <= REL_TOL, f"{what}: largest difference {worst:.2e} of the largest entry > {REL_TOL}"


def test_fast_copy_equals_plain_features_and_logits(net, images, plain_features):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = FastInceptionFID(net)
    assert fast.state_dict() == {}  # nothing of its own to save: net's state dict is the weights file
    for k, v in net.state_dict().items():  # building the copy leaves the plain module untouched
        assert torch.equal(v, before[k]), k
    merged = [m for m in fast.modules() if isinstance(m, FoldedConv) and len(m.splits) > 1]
    assert len(merged) == 10  # the shared-input 1x1 heads of Mixed_5b-d, 6b-e, 7a, 7b, 7c
    with torch.no_grad():
        for name, x in images.items():
            want = plain_features[name]
            got = fast(x)
            _assert_close(got, want, f"{name} features")
            for bias in (True, False):
                _assert_close(fast.logits_from_features(got, bias=bias), net.logits_from_features(want, bias=bias),
                              f"{name} logits (bias={bias})")
        _assert_close(fast.logits(images["rgb40"]), net.logits(images["rgb40"]), "logits(x)")
    grey = plain_features["grey28"]
    spread = (grey - grey.mean(0)).norm() / grey.mean(0).norm()
    assert spread > 0.01, spread  # the features depend on the image, so the comparison means something


def test_batch_splitting_does_not_change_features(net, images, plain_features):
    """The stem and the Mixed blocks run on sub-batches: any split gives the same per-image features."""
    fast = FastInceptionFID(net)
    fast.stem_batch, fast.block_batch = 1, 2  # 3 images: blocks on 2 + 1, the stem one by one
    with torch.no_grad():
        _assert_close(fast(images["grey28"]), plain_features["grey28"], "split features")
        assert fast(images["grey28"][:0]).shape == (0, 2048)


def test_fallback_path_equals_plain(net, images, plain_features, monkeypatch):
    """Off oneDNN (another device, a torch without it, or inputs that need gradients) the folded
    weights run through F.conv2d: the same function, and differentiable."""
    fast = FastInceptionFID(net)
    monkeypatch.setattr(inception_module, "_ONEDNN", False)
    with torch.no_grad():
        _assert_close(fast(images["rgb40"]), plain_features["rgb40"], "fallback features")
    monkeypatch.undo()
    xg = images["rgb40"][:1].clone().requires_grad_()
    fast(xg).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def _fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """fid_from_features of two small sets, computed in the subspace their features span.

    With n samples a covariance lives in the span of the n centred feature vectors, and FID is
    invariant under rotations: so FID of the 2048-d features equals FID of their coordinates in an
    orthonormal basis of [centred real, centred fake, mean difference] (2n - 1 dimensions). The
    same function, without three 2048x2048 eigen-decompositions (~20 s on a busy 2-core CPU).
    """
    real, fake = real.double(), fake.double()
    span = torch.cat([real - real.mean(0), fake - fake.mean(0), (real.mean(0) - fake.mean(0))[None]])
    basis = torch.linalg.qr(span.T).Q  # [D, 2n + 1], orthonormal columns
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # singular covariance: n <= dimensions
        return fid_from_features((real @ basis).numpy(), (fake @ basis).numpy())


def test_fid_in_feature_span_is_fid():
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(6, 300, generator=g).exp(), torch.randn(6, 300, generator=g).exp() + 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        full = fid_from_features(real.double().numpy(), fake.double().numpy())
    # equal up to the sqrt of round-off eigenvalues (~1e-13) that the full-size computation adds
    assert _fid(real, fake) == pytest.approx(full, rel=1e-6)


def test_fid_from_fast_features_equals_plain(net):
    """FID of two small image sets (6 grey noise vs 6 RGB stripe images, 2048-d features) is the
    same to 0.1 % whichever path extracted the features. With 6 < 2048 samples the covariances are
    singular, which makes FID more sensitive to the features, not less."""
    g = torch.Generator().manual_seed(2)
    real = torch.rand(6, 1, 28, 28, generator=g) * 2 - 1
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    fake = (torch.sin(3 * xx + 2 * yy)[None, None] * torch.rand(6, 3, 1, 1, generator=g)
            + 0.2 * torch.randn(6, 3, 32, 32, generator=g)).clamp(-1, 1)
    plain = InceptionExtractor(InceptionFID().eval(), fast=False)
    plain.net.load_state_dict(net.state_dict())
    fast = InceptionExtractor(plain.net)
    assert fast.runner is fast.fast and plain.runner is plain.net
    fids = {}
    for label, ext in (("plain", plain), ("fast", fast)):
        fids[label] = _fid(*(extract(ext, imgs, batch_size=6, progress=False) for imgs in (real, fake)))
    assert fids["plain"] > 1.0, fids  # two different sets: a distance far above rounding
    assert abs(fids["fast"] - fids["plain"]) <= FID_REL_TOL * fids["plain"], fids


def test_created_extractor_uses_fast_path_and_keeps_weights_file_layout(net, tmp_path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "fid.safetensors"))
    ext = create_extractor("inception", weights=tmp_path / "fid.safetensors")
    assert isinstance(ext.fast, FastInceptionFID) and ext.runner is ext.fast
    assert set(ext.state_dict()) == {f"net.{k}" for k in net.state_dict()}  # the fast copy adds no keys
    plain = InceptionExtractor(net, fast=False)
    assert ext.weights_hash == plain.weights_hash
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 2 - 1
    feats, probs = extract(ext, x, batch_size=2, kind="both", progress=False)
    want_feats, want_probs = extract(plain, x, batch_size=2, kind="both", progress=False)
    _assert_close(feats, want_feats, "extractor features")
    _assert_close(probs, want_probs, "extractor probabilities")
