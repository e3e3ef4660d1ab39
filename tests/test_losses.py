"""Tests of gauguin.losses against hand-computed and analytic values."""
import math

import pytest
import torch

from gauguin.losses import (
    ADVERSARIAL_LOSSES,
    drift_penalty,
    feature_matching_loss,
    get_adversarial_loss,
    gradient_penalty,
    multiscale_feature_matching_loss,
    r1_penalty,
    weight_clip_,
)

REAL = [0.0, 2.0]
FAKE = [-1.0, 0.5]


def softplus(x: float) -> float:
    return math.log(1.0 + math.exp(x))


def _logits():
    return torch.tensor(REAL), torch.tensor(FAKE)


def _close(value: torch.Tensor, expected: float, tol: float = 1e-5) -> None:
    assert value.dim() == 0
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(expected, abs=tol)


# --- adversarial losses: hand-computed values ------------------------------------------

def test_minimax_values():
    loss = get_adversarial_loss("minimax")
    real, fake = _logits()
    # -log σ(l) = log(1 + e^{-l});  -log(1 - σ(l)) = log(1 + e^{l})
    expected_d = (math.log(2.0) + math.log(1 + math.exp(-2.0))) / 2 + (
        math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))
    ) / 2
    _close(loss.d_loss(real, fake), expected_d)
    # G minimises log(1 - σ(l)) = -log(1 + e^{l})
    expected_g = -(math.log(1 + math.exp(-1.0)) + math.log(1 + math.exp(0.5))) / 2
    _close(loss.g_loss(fake), expected_g)


def test_minimax_label_smoothing():
    loss = get_adversarial_loss("minimax")
    real, fake = _logits()
    t = 0.9
    real_term = (
        (t * softplus(-0.0) + (1 - t) * softplus(0.0)) + (t * softplus(-2.0) + (1 - t) * softplus(2.0))
    ) / 2
    fake_term = (softplus(-1.0) + softplus(0.5)) / 2
    _close(loss.d_loss(real, fake, real_target=t), real_term + fake_term)
    # smoothing only touches the real term
    assert loss.d_loss(real, fake, real_target=t).item() > loss.d_loss(real, fake).item()


def test_nonsaturating_values():
    loss = get_adversarial_loss("nonsaturating")
    real, fake = _logits()
    _close(loss.d_loss(real, fake), get_adversarial_loss("minimax").d_loss(real, fake).item())
    t = 0.8
    expected_smoothed = (
        (t * math.log(2) + (1 - t) * math.log(2)) + (t * softplus(-2.0) + (1 - t) * softplus(2.0))
    ) / 2 + (softplus(-1.0) + softplus(0.5)) / 2
    _close(loss.d_loss(real, fake, real_target=t), expected_smoothed)
    # G maximises log σ(l): loss -log σ(l) = log(1 + e^{-l})
    expected_g = (math.log(1 + math.exp(1.0)) + math.log(1 + math.exp(-0.5))) / 2
    _close(loss.g_loss(fake), expected_g)


def test_lsgan_values():
    loss = get_adversarial_loss("lsgan")
    real, fake = _logits()
    # ½ mean((r - 1)²) + ½ mean(f²) = ½ (1 + 1)/2 + ½ (1 + 0.25)/2
    _close(loss.d_loss(real, fake), 0.5 * 1.0 + 0.5 * 0.625)
    # b = 0.9: ½ (0.81 + 1.21)/2 + ½ 0.625
    _close(loss.d_loss(real, fake, real_target=0.9), 0.5 * 1.01 + 0.5 * 0.625)
    # ½ mean((f - 1)²) = ½ (4 + 0.25)/2
    _close(loss.g_loss(fake), 0.5 * 2.125)


def test_hinge_values():
    loss = get_adversarial_loss("hinge")
    real, fake = _logits()
    # relu(1 - [0, 2]) = [1, 0];  relu(1 + [-1, 0.5]) = [0, 1.5]
    _close(loss.d_loss(real, fake), 0.5 + 0.75)
    _close(loss.g_loss(fake), 0.25)


def test_wgan_values():
    loss = get_adversarial_loss("wgan")
    real, fake = _logits()
    _close(loss.d_loss(real, fake), -0.25 - 1.0)
    _close(loss.g_loss(fake), 0.25)


@pytest.mark.parametrize("name", ["hinge", "wgan"])
def test_hinge_and_wgan_reject_smoothing(name):
    real, fake = _logits()
    with pytest.raises(ValueError, match="smoothing"):
        get_adversarial_loss(name).d_loss(real, fake, real_target=0.9)


@pytest.mark.parametrize("name", ["minimax", "nonsaturating", "lsgan"])
@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_real_target_out_of_range(name, bad):
    real, fake = _logits()
    with pytest.raises(ValueError, match="real_target"):
        get_adversarial_loss(name).d_loss(real, fake, real_target=bad)


def test_minimax_stable_for_extreme_logits():
    loss = get_adversarial_loss("minimax")
    real = torch.tensor([-200.0, 200.0])
    fake = torch.tensor([200.0, -200.0])
    for value in (loss.d_loss(real, fake), loss.g_loss(fake), ADVERSARIAL_LOSSES["nonsaturating"].g_loss(fake)):
        assert torch.isfinite(value)
    _close(loss.d_loss(real, fake), 100.0 + 100.0, tol=1e-3)


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_LOSSES))
def test_patch_maps_are_averaged(name):
    loss = ADVERSARIAL_LOSSES[name]
    torch.manual_seed(0)
    real = torch.randn(3, 1, 4, 5)
    fake = torch.randn(2, 1, 4, 5)
    d = loss.d_loss(real, fake)
    g = loss.g_loss(fake)
    assert d.dim() == 0 and g.dim() == 0
    # same as treating every patch as one sample
    torch.testing.assert_close(d, loss.d_loss(real.flatten(), fake.flatten()))
    torch.testing.assert_close(g, loss.g_loss(fake.flatten()))


@pytest.mark.parametrize("name", sorted(ADVERSARIAL_LOSSES))
def test_bf16_logits_give_float32(name):
    loss = ADVERSARIAL_LOSSES[name]
    real32, fake32 = torch.tensor([0.5, 2.0, -1.0]), torch.tensor([-1.0, 0.25])
    real, fake = real32.bfloat16(), fake32.bfloat16()  # values exact in bf16
    d, g = loss.d_loss(real, fake), loss.g_loss(fake)
    assert d.dtype == torch.float32 and g.dtype == torch.float32
    torch.testing.assert_close(d, loss.d_loss(real32, fake32))
    torch.testing.assert_close(g, loss.g_loss(fake32))


def test_losses_under_autocast_backprop():
    torch.manual_seed(0)
    disc = torch.nn.Conv2d(3, 1, 3, padding=1)
    x_real, x_fake = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        real_logits, fake_logits = disc(x_real), disc(x_fake)
    assert real_logits.dtype == torch.bfloat16
    for loss in ADVERSARIAL_LOSSES.values():
        d = loss.d_loss(real_logits, fake_logits)
        assert d.dtype == torch.float32 and torch.isfinite(d)
    ADVERSARIAL_LOSSES["hinge"].d_loss(real_logits, fake_logits).backward()
    assert disc.weight.grad is not None and torch.isfinite(disc.weight.grad).all()


def test_get_adversarial_loss_unknown_name_suggests():
    with pytest.raises(ValueError) as excinfo:
        get_adversarial_loss("hinje")
    message = str(excinfo.value)
    assert "Did you mean 'hinge'" in message
    for name in ("minimax", "nonsaturating", "lsgan", "hinge", "wgan"):
        assert name in message


def test_registry_names():
    assert set(ADVERSARIAL_LOSSES) == {"minimax", "nonsaturating", "lsgan", "hinge", "wgan"}
    for name, loss in ADVERSARIAL_LOSSES.items():
        assert loss.name == name
        assert get_adversarial_loss(name) is loss


# --- gradient penalty -------------------------------------------------------------------

def _linear_critic(w: torch.Tensor, b: float = 0.3):
    def critic(x):
        return (x * w).flatten(1).sum(dim=1) + b
    return critic


def test_gradient_penalty_linear_critic_analytic():
    torch.manual_seed(0)
    w = torch.randn(3, 2, 2) * 0.7
    real, fake = torch.randn(4, 3, 2, 2), torch.randn(4, 3, 2, 2)
    gp = gradient_penalty(_linear_critic(w), real, fake)
    _close(gp, (w.norm().item() - 1.0) ** 2)
    # a different target norm
    gp2 = gradient_penalty(_linear_critic(w), real, fake, target_norm=2.0)
    _close(gp2, (w.norm().item() - 2.0) ** 2)


def test_gradient_penalty_unit_norm_is_zero():
    torch.manual_seed(1)
    w = torch.randn(5, 7)
    w = w / w.norm()
    real, fake = torch.randn(6, 5, 7), torch.randn(6, 5, 7)
    _close(gradient_penalty(_linear_critic(w), real, fake), 0.0, tol=1e-6)


def test_gradient_penalty_grad_wrt_weights():
    torch.manual_seed(2)
    w = (torch.randn(3, 4, 4) * 0.5).requires_grad_(True)
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    gradient_penalty(_linear_critic(w), real, fake).backward()
    norm = w.detach().norm()
    expected = 2.0 * (norm - 1.0) * w.detach() / norm
    torch.testing.assert_close(w.grad, expected, rtol=1e-5, atol=1e-6)


def test_gradient_penalty_interpolation_uses_global_rng_per_sample():
    # quadratic critic D(x) = ½‖x‖²: ∇D(x̂) = x̂, so the penalty exposes the ε draw
    torch.manual_seed(3)
    real, fake = torch.randn(4, 2, 3, 3), torch.randn(4, 2, 3, 3)

    def critic(x):
        return 0.5 * x.flatten(1).square().sum(dim=1)

    torch.manual_seed(123)
    gp = gradient_penalty(critic, real, fake)
    torch.manual_seed(123)
    eps = torch.rand(4, 1, 1, 1)
    mixed = eps * real + (1 - eps) * fake
    expected = ((mixed.flatten(1).norm(dim=1) - 1.0) ** 2).mean()
    torch.testing.assert_close(gp, expected)


def test_gradient_penalty_patch_critic_and_rank2():
    torch.manual_seed(4)
    conv = torch.nn.Conv2d(2, 1, 3, padding=1)
    real, fake = torch.randn(3, 2, 6, 6), torch.randn(3, 2, 6, 6)
    gp = gradient_penalty(conv, real, fake)
    assert gp.dim() == 0 and gp.dtype == torch.float32 and torch.isfinite(gp)
    gp.backward()
    assert conv.weight.grad is not None
    # rank-2 inputs: ε of shape [B, 1]
    w = torch.tensor([3.0, 4.0])
    _close(gradient_penalty(_linear_critic(w), torch.randn(5, 2), torch.randn(5, 2)), 16.0)


def test_gradient_penalty_bf16_critic():
    torch.manual_seed(5)
    conv = torch.nn.Conv2d(2, 1, 3, padding=1)
    real, fake = torch.randn(2, 2, 5, 5), torch.randn(2, 2, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        gp = gradient_penalty(conv, real, fake)
    assert gp.dtype == torch.float32 and torch.isfinite(gp)


def test_gradient_penalty_shape_mismatch():
    w = torch.ones(3)
    with pytest.raises(ValueError, match="same shape"):
        gradient_penalty(_linear_critic(w), torch.randn(2, 3), torch.randn(3, 3))


# --- R1 -------------------------------------------------------------------------------

def test_r1_linear_critic_is_norm_squared():
    torch.manual_seed(6)
    w = torch.randn(3, 4, 4)
    x = torch.randn(5, 3, 4, 4, requires_grad=True)
    r1 = r1_penalty(_linear_critic(w)(x), x)
    _close(r1, w.norm().item() ** 2, tol=1e-4)


def test_r1_quadratic_critic_is_mean_sq_norm():
    torch.manual_seed(7)
    x = torch.randn(4, 2, 3, 3, requires_grad=True)
    logits = 0.5 * x.flatten(1).square().sum(dim=1)
    r1 = r1_penalty(logits, x)
    expected = x.detach().flatten(1).square().sum(dim=1).mean()
    torch.testing.assert_close(r1, expected)


def test_r1_backprops_into_weights():
    torch.manual_seed(8)
    w = torch.randn(6, requires_grad=True)
    x = torch.randn(3, 6, requires_grad=True)
    r1_penalty(_linear_critic(w)(x), x).backward()
    torch.testing.assert_close(w.grad, 2.0 * w.detach())


def test_r1_requires_grad_on_images():
    x = torch.randn(2, 3)
    logits = x.sum(dim=1)
    with pytest.raises(ValueError, match="requires_grad"):
        r1_penalty(logits, x)


# --- weight clipping, drift -----------------------------------------------------------

def test_weight_clip_clamps_in_place():
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.5, -0.5, 0.005], [-0.02, 0.0, 0.01]]))
        layer.bias.copy_(torch.tensor([-3.0, 0.003]))
    weight_before = layer.weight
    weight_clip_(layer, 0.01)
    assert layer.weight is weight_before
    torch.testing.assert_close(layer.weight.data, torch.tensor([[0.01, -0.01, 0.005], [-0.01, 0.0, 0.01]]))
    torch.testing.assert_close(layer.bias.data, torch.tensor([-0.01, 0.003]))
    with pytest.raises(ValueError):
        weight_clip_(layer, 0.0)


def test_drift_penalty():
    _close(drift_penalty(torch.tensor([1.0, -2.0, 3.0])), 14.0 / 3.0)
    _close(drift_penalty(torch.tensor([[1.0, 2.0]]).bfloat16().view(1, 1, 1, 2)), 2.5)


# --- feature matching -----------------------------------------------------------------

def test_feature_matching_single_tensor():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # batch mean [2, 3]
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0]])  # batch mean [1, 1]
    _close(feature_matching_loss(real, fake), (1.0 + 4.0) / 2)


def test_feature_matching_list_and_detach():
    real1 = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    fake1 = torch.tensor([[0.0, 0.0], [2.0, 2.0]], requires_grad=True)
    real2 = torch.ones(2, 1, 2, 2)  # mean 1 everywhere
    fake2 = torch.full((2, 1, 2, 2), 4.0)  # mean 4 everywhere -> sq diff 9
    loss = feature_matching_loss([real1, real2], [fake1, fake2])
    _close(loss, (2.5 + 9.0) / 2)
    loss.backward()
    assert real1.grad is None
    # d/dfake of ½·mean((m_r - m_f)²) over 2 elements, batch mean over 2 samples
    torch.testing.assert_close(fake1.grad, torch.tensor([[-0.25, -0.5], [-0.25, -0.5]]))


def test_feature_matching_mismatched_layers():
    with pytest.raises(ValueError):
        feature_matching_loss([torch.ones(2, 3)], [torch.ones(2, 3), torch.ones(2, 3)])


def test_multiscale_feature_matching():
    real = [
        [torch.zeros(1, 2), torch.ones(1, 1, 2, 2)],
        [torch.tensor([[1.0, -1.0, 2.0]], requires_grad=True)],
    ]
    fake = [
        [torch.tensor([[1.0, 3.0]]), torch.ones(1, 1, 2, 2)],  # L1 means 2, 0 -> 1
        [torch.tensor([[0.0, 0.0, 0.0]], requires_grad=True)],  # L1 mean 4/3
    ]
    loss = multiscale_feature_matching_loss(real, fake)
    _close(loss, (1.0 + 4.0 / 3.0) / 2)
    loss.backward()
    assert real[1][0].grad is None
    # d/dfake of ½·mean|fake - real| over 3 elements = ½·sign(fake - real)/3
    torch.testing.assert_close(fake[1][0].grad, torch.tensor([[-1.0, 1.0, -1.0]]) / 6)
    # SPADE's code sums over layers: (2 + 0) and 4/3, averaged over the two discriminators
    _close(multiscale_feature_matching_loss(real, fake, layers="sum"), (2.0 + 4.0 / 3.0) / 2)


def test_multiscale_feature_matching_bf16_float32():
    real = [[torch.ones(2, 3).bfloat16()]]
    fake = [[torch.zeros(2, 3).bfloat16()]]
    _close(multiscale_feature_matching_loss(real, fake), 1.0)


def test_kl_divergence_closed_form():
    from gauguin.losses import kl_divergence

    mu = torch.tensor([[0.0, 1.0], [2.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0], [math.log(4.0), 0.0]])
    # per sample: -½Σ(1 + log σ² - μ² - σ²): [0 + ½] and [½(4 - 1 - log 4 + 4) + 0]
    expected = (0.5 + 0.5 * (4.0 - 1.0 - math.log(4.0) + 4.0)) / 2
    _close(kl_divergence(mu, logvar), expected)
    _close(kl_divergence(torch.zeros(3, 5), torch.zeros(3, 5)), 0.0)
