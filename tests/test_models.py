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


def test_conditional_batch_norm_gives_each_class_its_scale_and_shift():
    G = Generator(28, 1, z_dim=8, width=4, num_classes=10, conditioning="cbn")
    assert G.embed is None
    norm = G.norms[0]
    assert norm.gain.weight.mean().item() == pytest.approx(1.0, abs=0.01) and norm.bias.weight.abs().max() == 0
    with torch.no_grad():  # DCGAN's init: γ ~ N(1, 0.02), β = 0
        norm.gain.weight[3].fill_(2.0)
        norm.bias.weight[3].fill_(0.5)
        norm.gain.weight[0].fill_(1.0)
    x = torch.randn(6, norm.norm.num_features, 7, 7)
    labels = torch.tensor([3, 3, 3, 0, 0, 0])
    plain = torch.nn.functional.batch_norm(x, None, None, training=True, eps=norm.norm.eps)
    out = norm(x, labels)
    assert torch.allclose(out[:3], 2.0 * plain[:3] + 0.5, atol=1e-5)
    assert torch.allclose(out[3:], plain[3:], atol=1e-5)
    z = torch.randn(1, 8).repeat(2, 1)
    G.eval()
    a, b = G(z, torch.tensor([3, 0]))
    assert not torch.allclose(a, b)


def test_concat_discriminator_sees_the_label_as_planes_and_has_no_projection():
    D = Discriminator(28, 1, 4, num_classes=10, conditioning="concat").eval()
    assert D.embed is None and D.features[0].in_channels == 11
    x = torch.randn(1, 1, 28, 28)
    assert len({round(D(x, torch.tensor([k])).item(), 6) for k in range(10)}) == 10


def test_spectral_norm_discriminator_has_unit_spectral_norm_weights():
    D = Discriminator(28, 1, 4, num_classes=10, norm="spectral").train()
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    for _ in range(30):  # power iterations converge over forwards
        D(x, y)
    conv = D.features[2]
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2).item()
    assert sigma == pytest.approx(1.0, rel=0.05)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())


def test_generator_loads_checkpoints_of_the_sequential_layout():
    """G used to be one Sequential (net.0 conv, net.1 BN, net.2 ReLU, ..., net.9 last conv): old runs still load."""
    G = Generator(32, 1, 16, 8, 10)
    old = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(32, 32, 4, 1, 0, bias=False), torch.nn.BatchNorm2d(32), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(32, 16, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(16, 8, 4, 2, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(8, 1, 4, 2, 1), torch.nn.Tanh()).eval()
    for m in old.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    embed = torch.nn.Embedding(10, 16)
    G.load_state_dict({"net." + k: v for k, v in old.state_dict().items()} | {"embed.weight": embed.weight.data})
    z, y = torch.randn(4, 16), torch.arange(4)
    with torch.no_grad():
        assert torch.allclose(G.eval()(z, y), old(torch.cat([z, embed(y)], 1)[:, :, None, None]), atol=1e-6)


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
    dict(d_norm="spectral", loss="hinge"), dict(g_conditioning="cbn"), dict(d_conditioning="concat"),
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
