import math

import pytest
import torch

from gauguin.models import DataInfo, get_family
from gauguin.models.dcgan import DCGAN, DCGANConfig, Discriminator, Generator
from gauguin.nn import MinibatchStddev


@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_generator_and_discriminator_shapes(size, channels):
    G = Generator(size, channels, z_dim=8, width=4, num_classes=10)
    D = Discriminator(size, channels, width=4, num_classes=10, minibatch_stddev=True)
    z, y = torch.randn(4, 8), torch.randint(0, 10, (4,))
    x = G(z, y)
    assert x.shape == (4, channels, size, size)
    assert x.min() >= -1 and x.max() <= 1
    assert D(x, y).shape == (4,)


def test_unconditional_models_take_no_labels():
    G, D = Generator(32, 1, 8, 4), Discriminator(32, 1, 4)
    assert D(G(torch.randn(2, 8))).shape == (2,)
    with pytest.raises(ValueError, match="pass labels"):
        Generator(32, 1, 8, 4, num_classes=10)(torch.randn(2, 8))


def test_projection_discriminator_depends_on_the_label():
    D = Discriminator(28, 1, 4, num_classes=10).eval()
    x = torch.randn(1, 1, 28, 28)
    out = [D(x, torch.tensor([k])).item() for k in range(10)]
    assert len({round(v, 6) for v in out}) == 10
    _, h = D(x, torch.tensor([3]), return_features=True)
    expected = D.head(h).squeeze(1) + (D.embed.weight[3] * h).sum(1)
    assert torch.allclose(D(x, torch.tensor([3])), expected)


def test_minibatch_stddev_matches_a_hand_computation():
    x = torch.arange(2 * 1 * 2 * 2, dtype=torch.float32).reshape(2, 1, 2, 2)  # values 0..7
    out = MinibatchStddev(group_size=2)(x)
    assert out.shape == (2, 2, 2, 2)
    # each pixel's two samples differ by 4: population std = 2 everywhere
    assert torch.allclose(out[:, 1], torch.full((2, 2, 2), 2.0), atol=1e-3)
    assert torch.equal(out[:, :1], x)


def test_minibatch_stddev_handles_batches_not_divisible_by_the_group():
    out = MinibatchStddev(group_size=4)(torch.randn(6, 3, 4, 4))
    assert out.shape == (6, 4, 4, 4)


def test_registry_suggests_close_names():
    assert get_family("dcgan") is DCGAN
    with pytest.raises(ValueError, match="did you mean 'dcgan'"):
        get_family("dcgna")


@pytest.mark.parametrize("options", [
    dict(loss="minimax"), dict(loss="nonsaturating", label_smoothing=0.1), dict(loss="lsgan"), dict(loss="hinge"),
    dict(loss="wgan"), dict(loss="wgan-gp"), dict(r1_gamma=10.0), dict(instance_noise=0.1),
    dict(feature_matching=1.0), dict(minibatch_stddev=True), dict(d_batches="joint"), dict(conditional=False),
    dict(diffaugment="color,translation,cutout", feature_matching=1.0, r1_gamma=1.0),
])
def test_every_loss_and_aid_gives_finite_losses_and_gradients(options):
    cfg = DCGANConfig(image_size=28, g_width=4, d_width=4, z_dim=8, **options)
    fam = DCGAN(cfg, DataInfo(num_classes=10))
    batch = {"image": torch.rand(8, 1, 28, 28) * 2 - 1, "label": torch.randint(0, 10, (8,))}
    with torch.no_grad():
        fakes = fam.fakes(fam.generator, batch, step=0)
    d_loss, d_logs = fam.d_loss(fam.discriminator, batch, fakes, step=0)
    d_loss.backward()
    assert math.isfinite(d_loss.item()) and all(math.isfinite(v) for v in d_logs.values())
    assert all(p.grad is not None for p in fam.discriminator.parameters())
    assert all(p.grad is None for p in fam.generator.parameters()), "the D step must not backprop into G"
    g_loss, _ = fam.g_loss(fam.generator, fam.discriminator, batch, fam.fakes(fam.generator, batch, 0), step=0)
    g_loss.backward()
    assert all(p.grad is not None for p in fam.generator.parameters())
    if options.get("loss") == "wgan":  # the critic is clipped before every use
        assert max(p.abs().max().item() for p in fam.discriminator.parameters()) <= cfg.clip_value


def test_instance_noise_anneals_to_zero():
    fam = DCGAN(DCGANConfig(instance_noise=0.5, steps=100), DataInfo(num_classes=10))
    x = torch.zeros(1000)
    assert fam._instance_noise(x, 0).std().item() == pytest.approx(0.5, rel=0.1)
    assert fam._instance_noise(x, 50).std().item() == pytest.approx(0.25, rel=0.1)
    assert torch.equal(fam._instance_noise(x, 100), x)
