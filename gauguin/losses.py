"""Adversarial losses, gradient penalties and auxiliary GAN terms.

Every function here takes raw discriminator outputs (logits, or critic values for WGAN) of
any shape ``[B]``, ``[B, 1]`` or ``[B, 1, H, W]`` (PatchGAN maps) and returns a float32
scalar: the mean over the batch and any spatial dimensions. Inputs are cast to float32
first, so outputs of a bf16 autocast region are safe to pass in.

The weights of the terms (λ for WGAN-GP, γ/2 for R1, ε_drift, λ_FM) are applied by the
caller; the functions below compute the unweighted terms.
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "AdversarialLoss",
    "MinimaxLoss",
    "NonSaturatingLoss",
    "LeastSquaresLoss",
    "HingeLoss",
    "WassersteinLoss",
    "ADVERSARIAL_LOSSES",
    "get_adversarial_loss",
    "gradient_penalty",
    "r1_penalty",
    "weight_clip_",
    "drift_penalty",
    "feature_matching_loss",
    "multiscale_feature_matching_loss",
    "relativistic_average_losses",
]


def _check_real_target(real_target: float) -> None:
    if not 0.0 < real_target <= 1.0:
        raise ValueError(f"real_target must be in (0, 1], got {real_target}")


def _reject_smoothing(loss_name: str, real_target: float) -> None:
    if real_target != 1.0:
        raise ValueError(
            f"label smoothing (real_target={real_target}) is undefined for the {loss_name!r} loss: "
            "its discriminator outputs are unbounded scores, not probabilities with a target; "
            "use real_target=1.0, or a 'minimax', 'nonsaturating' or 'lsgan' loss for smoothing"
        )


def _bce_with_target(logits: Tensor, target: float) -> Tensor:
    """Elementwise binary cross-entropy of sigmoid(logits) against a constant target t:
    -t log σ(l) - (1-t) log(1-σ(l)) = t·softplus(-l) + (1-t)·softplus(l)."""
    if target == 1.0:
        return F.softplus(-logits)
    return target * F.softplus(-logits) + (1.0 - target) * F.softplus(logits)


class AdversarialLoss:
    """Base: a discriminator objective and a generator objective over raw D outputs (logits/critic values).

    Both methods return float32 scalars to be minimised; ``real_target`` below 1 applies
    one-sided label smoothing (Salimans et al. 2016) where the loss defines it.
    """

    name: str = ""

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
        """Discriminator loss for raw D outputs on real and on generated samples."""
        raise NotImplementedError

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        """Generator loss for raw D outputs on generated samples."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MinimaxLoss(AdversarialLoss):
    """Original saturating GAN loss, Goodfellow et al. 2014, "Generative Adversarial Nets".

    D maximises E_x[log D(x)] + E_z[log(1 - D(G(z)))] with D = σ(l), i.e. minimises
        E[softplus(-l_real)] + E[softplus(l_fake)]
    (with smoothing target t: E[t·softplus(-l_real) + (1-t)·softplus(l_real)] for the real term).
    G minimises E_z[log(1 - D(G(z)))] = E[-softplus(l_fake)].
    """

    name = "minimax"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
        _check_real_target(real_target)
        real_term = _bce_with_target(real_logits.float(), real_target).mean()
        fake_term = F.softplus(fake_logits.float()).mean()
        return real_term + fake_term

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        # log(1 - σ(l)) = -softplus(l)
        return (-F.softplus(fake_logits.float())).mean()


class NonSaturatingLoss(MinimaxLoss):
    """Non-saturating GAN loss, Goodfellow et al. 2014 (Sec. 3).

    D loss as in :class:`MinimaxLoss`. G maximises E_z[log D(G(z))] instead, i.e. minimises
        E[-log σ(l_fake)] = E[softplus(-l_fake)],
    which gives strong gradients early in training when D rejects the samples.
    """

    name = "nonsaturating"

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return F.softplus(-fake_logits.float()).mean()


class LeastSquaresLoss(AdversarialLoss):
    """Least-squares GAN, Mao et al. 2017, "Least Squares Generative Adversarial Networks".

    With targets a = 0 (fake), b = real_target (real) and c = 1 (what G wants D to say):
        D: ½ E_x[(D(x) - b)²] + ½ E_z[D(G(z))²]
        G: ½ E_z[(D(G(z)) - 1)²]
    """

    name = "lsgan"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
        _check_real_target(real_target)
        real_term = 0.5 * (real_logits.float() - real_target).square().mean()
        fake_term = 0.5 * fake_logits.float().square().mean()
        return real_term + fake_term

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return 0.5 * (fake_logits.float() - 1.0).square().mean()


class HingeLoss(AdversarialLoss):
    """Hinge loss, Lim & Ye 2017 ("Geometric GAN"); Miyato et al. 2018 (SN-GAN).

        D: E_x[relu(1 - D(x))] + E_z[relu(1 + D(G(z)))]
        G: -E_z[D(G(z))]
    Label smoothing is undefined for it (``real_target`` must be 1).
    """

    name = "hinge"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
        _reject_smoothing(self.name, real_target)
        real_term = F.relu(1.0 - real_logits.float()).mean()
        fake_term = F.relu(1.0 + fake_logits.float()).mean()
        return real_term + fake_term

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.float().mean()


class WassersteinLoss(AdversarialLoss):
    """Wasserstein GAN, Arjovsky et al. 2017, "Wasserstein GAN".

        critic: E_z[D(G(z))] - E_x[D(x)]
        G:      -E_z[D(G(z))]
    The critic must be kept (roughly) 1-Lipschitz: with :func:`weight_clip_` (Arjovsky et al.
    2017) or :func:`gradient_penalty` (Gulrajani et al. 2017). Label smoothing is undefined
    for it (``real_target`` must be 1).
    """

    name = "wgan"

    def d_loss(self, real_logits: Tensor, fake_logits: Tensor, real_target: float = 1.0) -> Tensor:
        _reject_smoothing(self.name, real_target)
        return fake_logits.float().mean() - real_logits.float().mean()

    def g_loss(self, fake_logits: Tensor) -> Tensor:
        return -fake_logits.float().mean()


ADVERSARIAL_LOSSES: dict[str, AdversarialLoss] = {
    loss.name: loss
    for loss in (MinimaxLoss(), NonSaturatingLoss(), LeastSquaresLoss(), HingeLoss(), WassersteinLoss())
}


def get_adversarial_loss(name: str) -> AdversarialLoss:
    """The registered loss called ``name``; ValueError listing the valid names otherwise."""
    try:
        return ADVERSARIAL_LOSSES[name]
    except KeyError:
        pass
    valid = ", ".join(repr(n) for n in ADVERSARIAL_LOSSES)
    message = f"unknown adversarial loss {name!r}; valid names: {valid}"
    close = difflib.get_close_matches(str(name), list(ADVERSARIAL_LOSSES), n=1)
    if close:
        message += f". Did you mean {close[0]!r}?"
    raise ValueError(message)


def local_adversarial_loss(logits: Tensor, real: bool) -> Tensor:
    """SimGAN's local adversarial loss (Shrivastava et al. 2017 §2.2): D gives logits ``[B, 2, h, w]``
    (refined, real) for each of h·w image patches; the loss is the cross-entropy of the target
    class (1 = real, 0 = refined), averaged over patches and images."""
    target = torch.full((logits.shape[0], *logits.shape[2:]), int(real), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits.float(), target)


def relativistic_average_losses(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """(D's loss, G's loss) of the relativistic average GAN (Jolicoeur-Martineau 2018; ESRGAN Eq. 1-2):
    D_Ra(a, b) = σ(C(a) − E[C(b)]); L_D = −E[log D_Ra(x_r, x_f)] − E[log(1 − D_Ra(x_f, x_r))] and
    L_G = −E[log(1 − D_Ra(x_r, x_f))] − E[log D_Ra(x_f, x_r)]. In G's step pass ``real_logits``
    without gradients; both terms are written with BCE-with-logits, so they are stable."""
    real, fake = real_logits.float(), fake_logits.float()
    real_vs_fake, fake_vs_real = real - fake.mean(), fake - real.mean()
    ones, zeros = torch.ones_like(real_vs_fake), torch.zeros_like(real_vs_fake)
    bce = F.binary_cross_entropy_with_logits
    d_loss = bce(real_vs_fake, ones) + bce(fake_vs_real, torch.zeros_like(fake_vs_real))
    g_loss = bce(real_vs_fake, zeros) + bce(fake_vs_real, torch.ones_like(fake_vs_real))
    return d_loss, g_loss


def _per_sample_grad_sq_norm(outputs: Tensor, inputs: Tensor) -> Tensor:
    """‖∇_inputs Σ outputs‖² per sample (float32, shape [B]), with a graph for double backprop."""
    (grad,) = torch.autograd.grad(
        outputs=outputs.float().sum(), inputs=inputs, create_graph=True
    )
    return grad.float().flatten(start_dim=1).square().sum(dim=1)


def gradient_penalty(
    critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor, target_norm: float = 1.0
) -> Tensor:
    """WGAN-GP gradient penalty, Gulrajani et al. 2017, "Improved Training of Wasserstein GANs".

        E_x̂[(‖∇_x̂ D(x̂)‖₂ - target_norm)²],   x̂ = ε x + (1 - ε) G(z),  ε ~ U[0, 1] per sample.

    ε is drawn with ``torch.rand`` from the global RNG, shape [B, 1, ..., 1]. The gradient
    norm is taken per sample over all non-batch dims, in float32; the graph is kept
    (``create_graph=True``) so the penalty backpropagates into the critic's weights.
    ``real`` and ``fake`` are detached. For a patch critic the gradient is that of the sum
    of its outputs. The caller multiplies the result by λ (10 in the paper).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.dim() < 2:
        raise ValueError(f"expected batched inputs of rank >= 2, got shape {tuple(real.shape)}")
    eps = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device)
    mixed = eps * real.detach().float() + (1.0 - eps) * fake.detach().float()
    mixed = mixed.to(real.dtype).requires_grad_(True)
    # tiny constant keeps the sqrt differentiable where the gradient vanishes
    grad_norm = torch.sqrt(_per_sample_grad_sq_norm(critic(mixed), mixed) + 1e-12)
    return (grad_norm - target_norm).square().mean()


def r1_penalty(real_logits: Tensor, real_images: Tensor) -> Tensor:
    """R1 regulariser, Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?".

        E_x[‖∇_x D(x)‖²]   for real x.

    ``real_images`` must have ``requires_grad`` set before the forward pass that produced
    ``real_logits``. The graph is kept (``create_graph=True``). For a patch discriminator
    the gradient is that of the sum of its outputs. The caller multiplies by γ/2.
    """
    if not real_images.requires_grad:
        raise ValueError(
            "r1_penalty needs the gradient of D with respect to the real images: call "
            "real_images.requires_grad_(True) before computing real_logits = D(real_images)"
        )
    return _per_sample_grad_sq_norm(real_logits, real_images).mean()


@torch.no_grad()
def weight_clip_(module: torch.nn.Module, clip: float) -> None:
    """WGAN weight clipping, Arjovsky et al. 2017: clamp every parameter in place to [-c, c]
    (c = 0.01 in the paper), after each critic step."""
    if clip <= 0:
        raise ValueError(f"clip must be positive, got {clip}")
    for param in module.parameters():
        param.clamp_(-clip, clip)


def drift_penalty(real_logits: Tensor) -> Tensor:
    """Drift penalty, Karras et al. 2018 (PGGAN, "Progressive Growing of GANs"): E_x[D(x)²],
    keeping critic values near zero. The caller multiplies by ε_drift (0.001 in the paper)."""
    return real_logits.float().square().mean()


def _as_layer_list(features: Tensor | Sequence[Tensor], what: str) -> list[Tensor]:
    if isinstance(features, Tensor):
        return [features]
    layers = list(features)
    if not layers or not all(isinstance(f, Tensor) for f in layers):
        raise ValueError(f"{what} must be a Tensor or a non-empty list of Tensors")
    return layers


def feature_matching_loss(
    real_features: Tensor | Sequence[Tensor], fake_features: Tensor | Sequence[Tensor]
) -> Tensor:
    """Feature matching, Salimans et al. 2016, "Improved Techniques for Training GANs".

        ‖E_x f(x) - E_z f(G(z))‖²₂

    on the batch means of the features, averaged over feature elements (the mean squared
    difference of the batch-mean features). Accepts one tensor each or a list of tensors each
    (one per layer; the result is the average of the per-layer terms). Real features are
    detached; batch sizes of real and fake may differ.
    """
    real_layers = _as_layer_list(real_features, "real_features")
    fake_layers = _as_layer_list(fake_features, "fake_features")
    if len(real_layers) != len(fake_layers):
        raise ValueError(f"got {len(real_layers)} real and {len(fake_layers)} fake feature layers")
    terms = []
    for real, fake in zip(real_layers, fake_layers):
        real_mean = real.detach().float().mean(dim=0)
        fake_mean = fake.float().mean(dim=0)
        if real_mean.shape != fake_mean.shape:
            raise ValueError(f"feature shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
        terms.append((real_mean - fake_mean).square().mean())
    return torch.stack(terms).mean()


def multiscale_feature_matching_loss(
    real_feats: Sequence[Sequence[Tensor]], fake_feats: Sequence[Sequence[Tensor]], layers: str = "mean"
) -> Tensor:
    """Discriminator feature matching, Wang et al. 2018 (pix2pixHD, "High-Resolution Image
    Synthesis and Semantic Manipulation with Conditional GANs"):

        (1/K) Σ_k (1/T) Σ_i mean|D_k^(i)(x) - D_k^(i)(G(s))|

    ``real_feats[k][i]`` is layer i of discriminator k on real data (detached here), matched
    element-wise against the same layer on generated data: the mean L1 distance per layer,
    averaged over layers (``layers="sum"``: summed, as SPADE's code does) and then over the K
    discriminators. The caller multiplies by λ_FM (10 in the paper).
    """
    if layers not in ("mean", "sum"):
        raise ValueError(f"layers must be 'mean' or 'sum', got {layers!r}")
    if len(real_feats) != len(fake_feats) or not real_feats:
        raise ValueError(
            f"need the same non-zero number of discriminators, got {len(real_feats)} real and {len(fake_feats)} fake"
        )
    per_disc = []
    for k, (real_layers, fake_layers) in enumerate(zip(real_feats, fake_feats)):
        if len(real_layers) != len(fake_layers) or not real_layers:
            raise ValueError(
                f"discriminator {k}: need the same non-zero number of layers, "
                f"got {len(real_layers)} real and {len(fake_layers)} fake"
            )
        layer_terms = []
        for real, fake in zip(real_layers, fake_layers):
            if real.shape != fake.shape:
                raise ValueError(f"discriminator {k}: feature shapes differ: {tuple(real.shape)} vs {tuple(fake.shape)}")
            layer_terms.append((fake.float() - real.detach().float()).abs().mean())
        stacked = torch.stack(layer_terms)
        per_disc.append(stacked.sum() if layers == "sum" else stacked.mean())
    return torch.stack(per_disc).mean()


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) of a VAE posterior (Kingma & Welling 2014, appendix B), summed over
    the latent dimensions and averaged over the batch:

        D_KL = -½ Σ_j (1 + log σ_j² - μ_j² - σ_j²)

    (SPADE's code sums over its per-GPU batch as well, which ties λ_KL to the batch per GPU; the
    mean per sample keeps λ_KL meaningful at any batch size.)
    """
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1).mean()
