"""pix2pixHD networks: global generator, local enhancer, instance feature encoder, discriminator."""
import pytest
import torch
import torch.nn.functional as F

from gauguin.models.pix2pixhd_nets import (
    GlobalGenerator,
    InstanceFeatureEncoder,
    LocalEnhancer,
    build_pix2pixhd_networks,
    init_pix2pixhd_weights_,
    instance_average,
)
from gauguin.nn.labels import instance_edges, one_hot_labels
from gauguin.nn.patchgan import MultiscaleDiscriminator
from gauguin.nn.spectral import SpectralNormConv2d


def n_params(params) -> int:
    if isinstance(params, torch.nn.Module):
        params = params.parameters()
    return sum(p.numel() for p in params)


def three_regions(b: int, h: int, w: int) -> torch.Tensor:
    """A Cityscapes-like 16-bit instance map: road (7), a car (26001) and a person (24000)."""
    inst = torch.full((b, h, w), 7, dtype=torch.int32)
    inst[:, : h // 2, : w // 3] = 26001
    inst[:, h // 2 :, w // 2 :] = 24000
    if b > 1:
        inst[1, :, : w // 4] = 26001  # another shape in the second image: its own mean
    return inst


# ---------------------------------------------------------------------------- global generator
@pytest.mark.parametrize("size", [(64, 64), (64, 128), (48, 32)])
def test_global_generator_keeps_the_size(size):
    torch.manual_seed(0)
    G = GlobalGenerator(6, 3, ngf=4, n_blocks=2)
    out = G(torch.randn(2, 6, *size))
    assert out.shape == (2, 3, *size)
    assert out.abs().max() <= 1
    convs = [m for m in G.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 32, 64] + [64] * 4 + [3]
    ups = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [u.out_channels for u in ups] == [32, 16, 8, 4]
    norms = [m for m in G.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert len(norms) == 1 + 4 + 2 * 2 + 4 and not any(n.affine or n.track_running_stats for n in norms)


def test_global_generator_batch_norm_trains_and_evaluates():
    torch.manual_seed(0)
    G = GlobalGenerator(3, 3, ngf=4, n_blocks=1, norm="batch")
    x = torch.randn(2, 3, 32, 32)
    G(x).mean().backward()
    assert G.body[1].weight.grad is not None
    assert G.eval()(x[:1]).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="norm"):
        GlobalGenerator(3, norm="layer")


@pytest.mark.parametrize("size", [(16, 16), (32, 16), (40, 48), (64, 60)])
def test_global_generator_rejects_small_or_odd_sizes(size):
    G = GlobalGenerator(3, 3, ngf=4, n_blocks=1)
    with pytest.raises(ValueError, match="multiples of 16 and at least 32"):
        G(torch.randn(1, 3, *size))


def test_global_generator_checks_channels():
    with pytest.raises(ValueError, match=r"\[B, 5, H, W\]"):
        GlobalGenerator(5, ngf=4, n_blocks=1)(torch.randn(1, 4, 32, 32))


# ---------------------------------------------------------------------------- local enhancer
def test_local_enhancer_runs_the_global_body_at_half_resolution():
    torch.manual_seed(0)
    g1 = GlobalGenerator(5, 3, ngf=8, n_blocks=1)
    G2 = LocalEnhancer(5, 3, ngf=4, n_blocks_local=2, global_generator=g1)
    assert G2.global_body is g1.body  # shared, not copied
    seen = {}
    G2.global_body.register_forward_hook(lambda m, args, out: seen.update(inp=args[0], out=out))
    x = torch.randn(2, 5, 128, 128)
    out = G2(x)
    assert out.shape == (2, 3, 128, 128) and out.abs().max() <= 1
    assert seen["inp"].shape == (2, 5, 64, 64) and seen["out"].shape == (2, 8, 64, 64)
    torch.testing.assert_close(seen["inp"], F.avg_pool2d(x, 3, 2, 1, count_include_pad=False))
    assert G2(torch.randn(1, 5, 64, 128)).shape == (1, 3, 64, 128)
    with pytest.raises(ValueError, match="multiples of 32 and at least 64"):
        G2(torch.randn(1, 5, 32, 64))  # G1 would see 16×32: a 1×2 bottleneck


def test_local_enhancer_checks_its_global_generator():
    with pytest.raises(ValueError, match="ngf = 2 × 4 = 8"):
        LocalEnhancer(5, ngf=4, global_generator=GlobalGenerator(5, ngf=4, n_blocks=1))
    with pytest.raises(ValueError, match="in_channels=5"):
        LocalEnhancer(5, ngf=4, global_generator=GlobalGenerator(6, ngf=8, n_blocks=1))
    with torch.device("meta"):
        default = LocalEnhancer(39)
    # default G1: ngf 2 × 32, 4 downsamplings, 9 blocks; its body ends at u64's ReLU (no c7s1-3)
    assert default.global_n_downsampling == 4 and len(default.global_body) == 4 + 4 * 3 + 9 + 4 * 3
    assert default.global_body[0 + 1].out_channels == 64 and isinstance(default.global_body[-1], torch.nn.ReLU)


def test_global_and_local_parameters_split_all_parameters_once():
    g1 = GlobalGenerator(5, 3, ngf=8, n_blocks=1)
    G2 = LocalEnhancer(5, 3, ngf=4, n_blocks_local=1, global_generator=g1)
    global_ids = [id(p) for p in G2.global_parameters()]
    local_ids = [id(p) for p in G2.local_parameters()]
    all_ids = [id(p) for p in G2.parameters()]
    assert len(set(global_ids)) == len(global_ids) and len(set(local_ids)) == len(local_ids)
    assert not set(global_ids) & set(local_ids)
    assert sorted(global_ids + local_ids) == sorted(all_ids)
    assert set(global_ids) == {id(p) for p in g1.body.parameters()}
    assert not {id(p) for p in g1.to_image.parameters()} & set(all_ids)  # G1's c7s1-3 is not in G2

    G2.freeze_global()
    assert not any(p.requires_grad for p in G2.global_parameters())
    assert all(p.requires_grad for p in G2.local_parameters())
    G2(torch.randn(1, 5, 64, 64)).mean().backward()
    assert all(p.grad is None for p in G2.global_parameters())
    assert all(p.grad is not None for p in G2.local_parameters())
    G2.freeze_global(False)
    assert all(p.requires_grad for p in G2.parameters())


def test_local_enhancer_loads_a_trained_global_generator():
    torch.manual_seed(0)
    trained = GlobalGenerator(5, 3, ngf=8, n_blocks=1)
    G2 = LocalEnhancer(5, 3, ngf=4, n_blocks_local=1, global_generator=GlobalGenerator(5, 3, ngf=8, n_blocks=1))
    G2.load_global_state_dict(trained.state_dict())
    for p, q in zip(G2.global_parameters(), trained.body.parameters()):
        torch.testing.assert_close(p, q)


# ---------------------------------------------------------------------------- feature encoder
def slow_instance_mean(features: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(features)
    for b in range(features.shape[0]):
        for i in inst[b].unique():
            mask = inst[b] == i
            out[b][:, mask] = features[b][:, mask].mean(dim=1, keepdim=True)
    return out


def test_instance_encoder_output_is_the_instance_mean_of_its_features():
    torch.manual_seed(0)
    E = InstanceFeatureEncoder(3, 3, ngf=4)
    image = torch.randn(2, 3, 32, 48)
    inst = three_regions(2, 32, 48)
    out = E(image, inst)
    assert out.shape == (2, 3, 32, 48)
    for b in range(2):
        for i in (7, 24000, 26001):
            region = out[b][:, inst[b] == i]
            torch.testing.assert_close(region, region[:, :1].expand_as(region))
    raw = E.to_features(E.body(image))
    torch.testing.assert_close(out, slow_instance_mean(raw, inst))
    assert not torch.allclose(out[0], out[1])  # each image has its own means
    torch.testing.assert_close(E(image, inst.unsqueeze(1)), out)  # [B, 1, H, W] maps too
    out.square().sum().backward()
    assert E.body[1].weight.grad is not None and E.body[1].weight.grad.abs().sum() > 0


def test_instance_average_handles_any_ids_and_keeps_dtype():
    torch.manual_seed(0)
    features = torch.randn(2, 4, 6, 5)
    inst = torch.randint(0, 3, (2, 6, 5)) * 33000 - 1  # ids -1, 32999, 65999
    torch.testing.assert_close(instance_average(features, inst), slow_instance_mean(features, inst))
    half = instance_average(features.bfloat16(), inst)
    assert half.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="integer"):
        instance_average(features, inst.float())
    with pytest.raises(ValueError, match=r"\[2, 6, 5\]"):
        instance_average(features, inst[:, :5])
    with pytest.raises(ValueError, match="multiples of 16"):
        InstanceFeatureEncoder(ngf=4)(torch.randn(1, 3, 16, 16), torch.zeros(1, 16, 16, dtype=torch.long))


# ---------------------------------------------------------------------------- build + discriminator
def test_built_networks_run_end_to_end_and_d_returns_three_scales():
    torch.manual_seed(0)
    nets = build_pix2pixhd_networks(5, instance_edges=True, feature_channels=3, ngf=4, ndf=4,
                                    n_blocks_global=1, nef=4)
    assert (nets.semantic_nc, nets.generator_in_channels) == (6, 9)
    labels = torch.randint(0, 5, (2, 64, 64))
    inst = three_regions(2, 64, 64)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    semantic = torch.cat([one_hot_labels(labels, 5), instance_edges(inst)], dim=1)
    fake = nets.generator(torch.cat([semantic, nets.encoder(image, inst)], dim=1))
    assert fake.shape == (2, 3, 64, 64)
    out = nets.discriminator(torch.cat([semantic, fake], dim=1))
    assert isinstance(nets.discriminator, MultiscaleDiscriminator)
    assert len(out) == 3 and all(len(feats) == 5 for feats in out)
    for feats in out:
        assert [f.shape[1] for f in feats] == [4, 8, 16, 32, 1]
    # k4 p2: stride 2 gives h // 2 + 1, stride 1 gives h + 1; 64 → 33 → 17 → 9 → 10 → 11, 32 → 7, 16 → 5
    assert [feats[-1].shape[-1] for feats in out] == [11, 7, 5]

    D = nets.discriminator.discriminators[0]
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (2, 2) and c.bias is not None for c in convs)
    assert not any(isinstance(c, SpectralNormConv2d) for c in convs)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in D.modules()) == 3

    plain = build_pix2pixhd_networks(5, instance_edges=False, ngf=4, ndf=4, n_blocks_global=1)
    assert plain.encoder is None and plain.generator_in_channels == plain.semantic_nc == 5
    with pytest.raises(ValueError, match="n_local_enhancers"):
        build_pix2pixhd_networks(5, instance_edges=False, n_local_enhancers=2)


def test_init_draws_weights_from_n0_002_and_zeroes_biases():
    torch.manual_seed(0)
    G = init_pix2pixhd_weights_(GlobalGenerator(3, ngf=16, n_blocks=1, norm="batch"))
    w = G.body[13].weight  # d256's weights: 128·256·9 draws
    assert abs(w.std().item() - 0.02) < 1e-3 and abs(w.mean().item()) < 1e-3
    assert all(m.bias.abs().sum() == 0 for m in G.modules() if isinstance(m, torch.nn.Conv2d))
    assert abs(G.body[2].weight.mean().item() - 1) < 0.01


# ---------------------------------------------------------------------------- parameter counts
def test_cityscapes_parameter_counts():
    """Cityscapes: 35 labels + instance edge + 3 feature channels = 39 generator inputs; D sees 35 + 1 + 3 = 39."""
    with torch.device("meta"):
        g1 = build_pix2pixhd_networks(35, instance_edges=True, feature_channels=3, init_std=None)
        g2 = build_pix2pixhd_networks(35, instance_edges=True, feature_channels=3, n_local_enhancers=1,
                                      init_std=None)
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731  (weights + bias; ConvTranspose alike)
    stem = conv(39, 64, 7)  # 122_368
    down = sum(conv(64 * 2**i, 128 * 2**i, 3) for i in range(4))  # 6_268_800
    blocks = 9 * 2 * conv(1024, 1024, 3)  # 169_887_744
    up = sum(conv(128 * 2**i, 64 * 2**i, 3) for i in range(4))  # 6_267_840
    body = stem + down + blocks + up
    assert body == 182_546_752
    assert n_params(g1.generator) == body + conv(64, 3, 7) == 182_556_163

    local = conv(39, 32, 7) + conv(32, 64, 3) + 3 * 2 * conv(64, 64, 3) + conv(64, 32, 3) + conv(32, 3, 7)
    assert local == 324_419
    assert n_params(g2.generator.global_parameters()) == body
    assert n_params(g2.generator.local_parameters()) == local
    assert n_params(g2.generator) == body + local == 182_871_171

    d_scale = conv(39, 64, 4) + conv(64, 128, 4) + conv(128, 256, 4) + conv(256, 512, 4) + conv(512, 1, 4)
    assert d_scale == 2_801_601
    assert n_params(g1.discriminator) == 3 * d_scale == 8_404_803

    encoder = (conv(3, 16, 7) + sum(conv(16 * 2**i, 32 * 2**i, 3) for i in range(4))
               + sum(conv(32 * 2**i, 16 * 2**i, 3) for i in range(4)) + conv(16, 3, 7))
    assert n_params(g1.encoder) == encoder == 788_803
