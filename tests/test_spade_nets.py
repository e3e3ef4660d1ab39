"""SPADE / GauGAN networks: SPADE layers, generator, encoder, PatchGAN discriminators, VGG loss."""
import pytest
import torch

from gauguin.nn.spectral import SpectralNormConv2d
import torch.nn.functional as F
from safetensors.torch import save_file

from gauguin.models.spade_nets import (
    ConvEncoder,
    SPADEGenerator,
    build_spade_networks,
    init_spade_weights_,
    latent_size,
    reparameterize,
)
from gauguin.nn import spade as spade_module
from gauguin.nn.patchgan import MultiscaleDiscriminator, NLayerDiscriminator
from gauguin.nn.spade import SPADE, SegmapPyramid, SPADEResBlock, resize_segmap
from gauguin.nn.vgg import VGG19, VGGLoss, load_vgg19


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def random_onehot(b: int, c: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    labels = torch.randint(0, c, (b, h, w), generator=torch.Generator().manual_seed(seed))
    return F.one_hot(labels, c).permute(0, 3, 1, 2).float()


# ------------------------------------------------------------------------------------ SPADE
@pytest.mark.parametrize("norm", ["batch", "instance"])
def test_spade_constant_map_is_norm_times_constant_plus_constant(norm):
    torch.manual_seed(0)
    spade = SPADE(norm_nc=4, label_nc=3, hidden=16, param_free_norm=norm)
    x = torch.randn(2, 4, 10, 10)
    segmap = torch.zeros(2, 3, 10, 10)
    segmap[:, 1] = 1.0  # every pixel is class 1
    out = spade(x, segmap)

    # by hand, away from the zero padding: each 3×3 conv on a constant map sums its kernel
    shared = spade.mlp_shared
    h = torch.relu(shared.weight[:, 1].sum(dim=(1, 2)) + shared.bias)  # [16]
    gb = spade.mlp_gamma_beta
    gamma_beta = torch.einsum("oikl,i->o", gb.weight, h) + gb.bias
    gamma, beta = gamma_beta[:4].view(1, 4, 1, 1), gamma_beta[4:].view(1, 4, 1, 1)
    if norm == "batch":
        normalized = F.batch_norm(x, None, None, training=True)
    else:
        normalized = F.instance_norm(x)
    expected = normalized * (1 + gamma) + beta
    inner = (..., slice(2, -2), slice(2, -2))  # two stacked 3×3 convs: the border sees the padding
    torch.testing.assert_close(out[inner], expected[inner])


def test_fused_gamma_beta_conv_equals_two_convs():
    torch.manual_seed(0)
    spade = SPADE(norm_nc=5, label_nc=3, hidden=8)
    seg = random_onehot(2, 3, 6, 6)
    gamma, beta = spade.modulation(seg)
    actv = F.relu(spade.mlp_shared(seg))
    w, b = spade.mlp_gamma_beta.weight, spade.mlp_gamma_beta.bias
    torch.testing.assert_close(gamma, F.conv2d(actv, w[:5], b[:5], padding=1))
    torch.testing.assert_close(beta, F.conv2d(actv, w[5:], b[5:], padding=1))
    # same parameter count as the paper's two convs (128→C each)
    assert n_params(spade) == (3 * 8 * 9 + 8) + 2 * (8 * 5 * 9 + 5)


@pytest.mark.parametrize("size", [(8, 8), (4, 4), (6, 5), (32, 32)])
def test_segmap_resize_is_nearest_and_stays_onehot(size):
    seg = random_onehot(2, 7, 16, 16)
    small = resize_segmap(seg, size)
    assert small.shape == (2, 7, *size)
    assert set(small.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(small.sum(dim=1), torch.ones(2, *size))
    if size == (8, 8):
        torch.testing.assert_close(small, seg[..., ::2, ::2])


def test_spade_layers_see_onehot_maps_at_their_resolution():
    torch.manual_seed(0)
    block = SPADEResBlock(6, 4, label_nc=5, param_free_norm="batch")
    seen = []
    for spade in (block.norm_0, block.norm_1, block.norm_s):
        spade.mlp_shared.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.randn(2, 6, 8, 8)
    block(x, random_onehot(2, 5, 32, 32))
    assert len(seen) == 3
    for seg in seen:
        assert seg.shape == (2, 5, 8, 8)
        assert set(seg.unique().tolist()) <= {0.0, 1.0}
        torch.testing.assert_close(seg.sum(dim=1), torch.ones(2, 8, 8))


def test_pyramid_resizes_each_size_once_per_forward(monkeypatch):
    calls = []
    real_resize = spade_module.resize_segmap

    def counting_resize(segmap, size):
        calls.append(tuple(size))
        return real_resize(segmap, size)

    monkeypatch.setattr(spade_module, "resize_segmap", counting_resize)
    G = SPADEGenerator(5, ngf=4, crop_size=64, param_free_norm="batch")
    G(random_onehot(1, 5, 64, 64))
    # sizes 2 (input conv, head_0), 4, 8, 16, 32; 64 is the map itself
    assert sorted(calls) == [(2, 2), (4, 4), (8, 8), (16, 16), (32, 32)]

    pyramid = SegmapPyramid(random_onehot(1, 5, 16, 16))
    assert pyramid.at((4, 4)) is pyramid.at((4, 4))


def test_spade_takes_a_tensor_or_a_pyramid():
    torch.manual_seed(0)
    spade = SPADE(4, 5, hidden=8).eval()
    x, seg = torch.randn(2, 4, 8, 8), random_onehot(2, 5, 16, 16)
    torch.testing.assert_close(spade(x, seg), spade(x, SegmapPyramid(seg)))
    torch.testing.assert_close(spade(x, seg), spade(x, resize_segmap(seg, (8, 8))))


@pytest.mark.parametrize("kernel,extra,bias", [(3, 0, True), (3, 1, True), (5, 2, False), (1, 0, True)])
def test_one_hot_conv_is_the_conv_of_the_one_hot(kernel, extra, bias):
    """The lookup equals the dense conv of the one-hot (+ extra channels) at every pixel, borders included."""
    from gauguin.nn.labels import one_hot_labels
    from gauguin.nn.spade import one_hot_conv

    torch.manual_seed(kernel + extra)
    conv = torch.nn.Conv2d(7 + extra, 16, kernel, padding=kernel // 2, bias=bias)
    ids = torch.randint(0, 7, (2, 9, 11))
    extras = (torch.rand(2, extra, 9, 11) > 0.5).float() if extra else None
    dense = one_hot_labels(ids, 7) if not extra else torch.cat([one_hot_labels(ids, 7), extras], 1)
    out = one_hot_conv(conv, ids, extras)
    torch.testing.assert_close(out, conv(dense), rtol=0, atol=1e-5)  # fp32 sums of <= 25 + 2 terms
    assert out.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", torch.bfloat16):  # in the autocast dtype, as the dense conv would be
        assert one_hot_conv(conv, ids, extras).dtype == torch.bfloat16


def test_generator_with_label_ids_equals_the_dense_generator():
    """SPADE's inference path (ids in the pyramid: lookups, no one-hot resizes) gives the dense path's images,
    with instance edges as an extra channel too; the lookup table is rebuilt when the weights change."""
    from gauguin.nn.labels import one_hot_labels

    torch.manual_seed(0)
    G = SPADEGenerator(6, ngf=4, crop_size=32, param_free_norm="batch", use_vae=True, z_dim=8).eval()
    ids = torch.randint(0, 5, (2, 32, 32))
    edges = (torch.rand(2, 1, 32, 32) > 0.8).float()
    segmap, z = torch.cat([one_hot_labels(ids, 5), edges], 1), torch.randn(2, 8)
    with torch.no_grad():
        torch.testing.assert_close(G(SegmapPyramid.from_ids(ids, 5, edges), z), G(segmap, z), rtol=0, atol=1e-5)
        for p in G.head_0.norm_0.mlp_shared.parameters():
            p.add_(1.0)  # in place: the cached table must follow
        torch.testing.assert_close(G(SegmapPyramid.from_ids(ids, 5, edges), z), G(segmap, z), rtol=0, atol=1e-5)
    pyramid = SegmapPyramid.from_ids(ids, 5, edges)
    for size in ((32, 32), (8, 8), (2, 2)):  # a layer that asks for the map gets the dense one's resize
        torch.testing.assert_close(pyramid.at(size), resize_segmap(segmap, size), rtol=0, atol=0)
    with pytest.raises(ValueError, match="do not describe a segmentation map"):
        SegmapPyramid.from_ids(ids, 5, edges[:, :, :16])


@pytest.mark.parametrize("fin,fout", [(8, 8), (8, 4), (4, 8)])
def test_learned_shortcut_iff_channels_change(fin, fout):
    block = SPADEResBlock(fin, fout, label_nc=3, param_free_norm="batch")
    assert block.learned_shortcut == (fin != fout)
    assert hasattr(block, "conv_s") == hasattr(block, "norm_s") == (fin != fout)
    assert block.conv_0.out_channels == min(fin, fout)
    convs = [block.conv_0, block.conv_1] + ([block.conv_s] if fin != fout else [])
    assert all(isinstance(c, SpectralNormConv2d) for c in convs)
    if fin != fout:
        assert block.conv_s.bias is None and block.conv_s.kernel_size == (1, 1)
    spade_convs = [m for m in block.modules() if isinstance(m, SPADE)]
    assert not any(isinstance(s.mlp_shared, SpectralNormConv2d) or isinstance(s.mlp_gamma_beta, SpectralNormConv2d)
                   for s in spade_convs)
    out = block(torch.randn(2, fin, 4, 4), random_onehot(2, 3, 8, 8))
    assert out.shape == (2, fout, 4, 4)


# ------------------------------------------------------------------------------- param counts
# (num_labels, dont_care, instance_edges, crop, aspect, upsampling): G, G with VAE, D (2 scales), encoder
PARAM_COUNTS = {
    "coco-stuff": ((182, True, True, 256, 1.0, "normal"), 97_480_899, 112_626_883, 5_904_514, 10_463_424),
    "ade20k": ((150, True, False, 256, 1.0, "normal"), 96_492_483, 111_942_595, 5_836_930, 10_463_424),
    # 101,136,579 has a 4×8 first map (fc: 256 → 16·64·4·8), as with crop 512 × 256 and "more"
    # (or a 256 × 128 crop); crop 512, aspect 2, "normal" starts at 8×16: see the next test
    "cityscapes": ((35, False, True, 512, 2.0, "more"), 93_048_003, 101_136_579, 5_601_410, 10_463_424),
}


@pytest.mark.parametrize("dataset", list(PARAM_COUNTS))
def test_param_counts_match_the_official_networks(dataset):
    (labels, dont_care, edges, crop, aspect, ups), g, g_vae, d, e = PARAM_COUNTS[dataset]
    kw = dict(dont_care=dont_care, instance_edges=edges, crop_size=crop, aspect_ratio=aspect,
              num_upsampling_layers=ups, init_gain=None)
    with torch.device("meta"):
        plain = SPADEGenerator(labels + dont_care + edges, crop_size=crop, aspect_ratio=aspect,
                               num_upsampling_layers=ups)
        vae = build_spade_networks(labels, use_vae=True, **kw)
    assert (n_params(plain), n_params(vae.generator), n_params(vae.discriminator), n_params(vae.encoder)) == (
        g, g_vae, d, e)
    assert vae.semantic_nc == labels + dont_care + edges


def test_cityscapes_512x256_normal_vae_fc_projects_to_8x16():
    assert latent_size(512, 2.0, "normal") == (8, 16)
    assert latent_size(512, 2.0, "more") == latent_size(256, 2.0, "normal") == (4, 8)
    with torch.device("meta"):
        G = SPADEGenerator(36, crop_size=512, aspect_ratio=2.0, use_vae=True)
    assert n_params(G) == 101_136_579 - (256 + 1) * 1024 * 4 * 8 + (256 + 1) * 1024 * 8 * 16 == 126_400_707


def test_init_keeps_spectral_norm_and_counts():
    with torch.device("meta"):
        nets = build_spade_networks(10, ngf=8, ndf=8, use_vae=True, init_gain=None)
    counts = [n_params(n) for n in (nets.generator, nets.discriminator, nets.encoder)]
    for net in (nets.generator, nets.discriminator, nets.encoder):
        init_spade_weights_(net)
    assert [n_params(n) for n in (nets.generator, nets.discriminator, nets.encoder)] == counts
    assert isinstance(nets.generator.head_0.conv_0, SpectralNormConv2d)
    torch.manual_seed(0)
    block = init_spade_weights_(SPADEResBlock(4, 4, 3))
    w = block.conv_0.weight
    assert w.std().item() == pytest.approx(0.02 * (2 / (4 * 9 + 4 * 9)) ** 0.5, rel=0.5)
    normalized = (w / block.conv_0.sigma()).flatten(1)
    assert torch.linalg.matrix_norm(normalized, ord=2).item() == pytest.approx(1.0, rel=0.05)


# ------------------------------------------------------------------------------- generator
@pytest.mark.parametrize("h,w,crop,aspect", [(64, 64, 64, 1.0), (128, 128, 128, 1.0), (256, 512, 512, 2.0)])
def test_generator_output_shapes(h, w, crop, aspect):
    torch.manual_seed(0)
    G = SPADEGenerator(6, ngf=4, crop_size=crop, aspect_ratio=aspect, param_free_norm="batch")
    out = G(random_onehot(2, 6, h, w))
    assert out.shape == (2, 3, h, w)
    assert out.abs().max() <= 1.0


@pytest.mark.parametrize("ups", ["more", "most"])
def test_generator_more_and_most_upsampling(ups):
    G = SPADEGenerator(4, ngf=4, crop_size=128, num_upsampling_layers=ups, use_vae=True, param_free_norm="batch")
    assert hasattr(G, "up_4") == (ups == "most")
    out = G(random_onehot(2, 4, 128, 128), z=torch.randn(2, 256))
    assert out.shape == (2, 3, 128, 128)


def test_generator_default_syncbatch_runs_without_distributed_and_samples_z():
    torch.manual_seed(0)
    G = SPADEGenerator(4, ngf=4, crop_size=64, use_vae=True)
    assert isinstance(G.head_0.norm_0.param_free_norm, torch.nn.SyncBatchNorm)
    seg = random_onehot(2, 4, 64, 64)
    a, b = G(seg), G(seg)
    assert a.shape == (2, 3, 64, 64) and not torch.allclose(a, b)  # fresh z each call
    with pytest.raises(ValueError, match="label_nc"):
        G(random_onehot(2, 5, 64, 64))


# --------------------------------------------------------------------------------- encoder
@pytest.mark.parametrize("h,w", [(64, 64), (128, 128), (256, 256), (256, 512)])
def test_encoder_any_size_gives_z_dim_mu_logvar(h, w):
    torch.manual_seed(0)
    E = ConvEncoder(ndf=8)
    mu, logvar = E(torch.randn(2, 3, h, w))
    assert mu.shape == logvar.shape == (2, 256)
    assert not torch.allclose(mu[0], mu[1])  # the two images are told apart


def test_encoder_without_resize_pools_to_4x4():
    E = ConvEncoder(ndf=4, z_dim=8, input_size=None)
    mu, _ = E(torch.randn(2, 3, 512, 256))
    assert mu.shape == (2, 8)


def test_reparameterize():
    mu, logvar = torch.zeros(4, 8), torch.zeros(4, 8)
    a = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    b = reparameterize(mu, logvar, torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(reparameterize(mu + 3, torch.full((4, 8), -1e4)), mu + 3)  # σ → 0


# ---------------------------------------------------------------------------- discriminator
def test_multiscale_discriminator_returns_features_per_scale():
    torch.manual_seed(0)
    D = MultiscaleDiscriminator(5 + 3, num_d=2, ndf=8)
    out = D(torch.randn(2, 8, 64, 64))
    assert len(out) == 2 and all(len(feats) == 5 for feats in out)
    for feats in out:
        assert [f.shape[1] for f in feats] == [8, 16, 32, 64, 1]
    assert out[1][-1].shape[-1] < out[0][-1].shape[-1]
    x = torch.randn(2, 8, 64, 64)
    D.eval()
    out = D(x)
    torch.testing.assert_close(out[0][-1], D.discriminators[0](x)[-1])  # scale 1: the input itself
    half = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    torch.testing.assert_close(out[1][-1], D.discriminators[1](half)[-1])


def test_nlayer_discriminator_layout():
    with torch.device("meta"):
        D = NLayerDiscriminator(187, ndf=64, n_layers=6)
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 512, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (2, 2) for c in convs)
    assert [isinstance(c, SpectralNormConv2d) for c in convs] == [False] + [True] * 5 + [False]
    assert [c.bias is not None for c in convs] == [True] + [False] * 5 + [True]
    plain = NLayerDiscriminator(3, ndf=4, n_layers=3, norm="none", spectral=False, padding=1)
    convs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is not None and not isinstance(c, SpectralNormConv2d) for c in convs)
    assert len(plain(torch.randn(1, 3, 32, 32))) == 4
    bn = NLayerDiscriminator(3, ndf=4, norm="batch")
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules()) == 3
    with pytest.raises(ValueError, match="norm"):
        NLayerDiscriminator(3, norm="layer")


# --------------------------------------------------------------------------------------- VGG
@pytest.fixture(scope="module")
def vgg_state():
    torch.manual_seed(0)
    state = VGG19().state_dict()
    state["classifier.6.weight"] = torch.randn(10, 4)  # a torchvision file also holds these: ignored
    return state


def test_vgg19_layout_matches_torchvision_names(vgg_state):
    convs = [k for k in vgg_state if k.startswith("features") and k.endswith("weight")]
    assert len(convs) == 13  # conv1_1 ... conv5_1
    assert convs[0] == "features.0.weight" and convs[-1] == "features.28.weight"
    assert vgg_state["features.16.weight"].shape == (256, 256, 3, 3)


def test_load_vgg19_from_pth_and_safetensors(tmp_path, vgg_state):
    pth, st = tmp_path / "vgg.pth", tmp_path / "vgg.safetensors"
    torch.save(vgg_state, pth)
    save_file(vgg_state, str(st))
    for path in (pth, st):
        vgg = load_vgg19(path)
        torch.testing.assert_close(vgg.features[28].weight, vgg_state["features.28.weight"])
        assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    feats = vgg(torch.randn(1, 3, 32, 32))
    assert [f.shape[1:] for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]


def test_load_vgg19_errors_name_the_file(tmp_path, vgg_state):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_vgg19(missing)
    wrong = dict(vgg_state, **{"features.2.weight": torch.zeros(64, 32, 3, 3)})
    torch.save(wrong, tmp_path / "wrong_shape.pth")
    with pytest.raises(ValueError, match=r"wrong_shape\.pth.*features\.2\.weight"):
        load_vgg19(tmp_path / "wrong_shape.pth")
    renamed = {k.replace("features.", "body."): v for k, v in vgg_state.items()}
    save_file(renamed, str(tmp_path / "renamed.safetensors"))
    with pytest.raises(ValueError, match=r"renamed\.safetensors.*missing"):
        load_vgg19(tmp_path / "renamed.safetensors")


def test_vgg_loss(vgg_state):
    vgg = VGG19()
    vgg.load_state_dict({k: v for k, v in vgg_state.items() if k.startswith("features")})
    loss_fn = VGGLoss(vgg).train()
    assert not loss_fn.vgg.training
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss_fn(y, y.clone()).item() == 0.0
    x = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    loss = loss_fn(x, y)
    assert loss.item() > 0
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in vgg.parameters())


@pytest.mark.parametrize("spatial", [2, 24])  # output smaller than the weight (divides the output), and larger
def test_spectral_conv_matches_torch_spectral_norm(spatial):
    """Same outputs, power iteration and gradients as ``torch.nn.utils.spectral_norm`` (the one SPADE's
    code uses: v then u, Miyato et al. Alg. 1) with the same u, v, on both paths."""
    from torch.nn.utils import spectral_norm

    torch.manual_seed(0)
    ours = SpectralNormConv2d(16, 32, 3, padding=1)
    ref = spectral_norm(torch.nn.Conv2d(16, 32, 3, padding=1))
    with torch.no_grad():
        ref.weight_orig.copy_(ours.weight)
        ref.bias.copy_(ours.bias)
        ref.weight_u.copy_(ours.weight_u)
        ref.weight_v.copy_(ours.weight_v)
    assert (ours._output_numel(torch.zeros(1, 16, spatial, spatial)) < ours.weight.numel()) == (spatial == 2)
    x = torch.randn(2, 16, spatial, spatial)
    out_ours, out_ref = ours(x), ref(x)
    torch.testing.assert_close(out_ours, out_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.weight_u, ref.weight_u)
    (out_ours.square().sum()).backward()
    (out_ref.square().sum()).backward()
    torch.testing.assert_close(ours.weight.grad, ref.weight_orig.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ours.bias.grad, ref.bias.grad, rtol=1e-4, atol=1e-6)
    ours.eval()
    u = ours.weight_u.clone()
    ours(x)
    assert torch.equal(u, ours.weight_u)  # no power iteration in eval mode


def test_modulate_matches_autograd_of_the_formula():
    from gauguin.nn.spade import spade_modulate

    torch.manual_seed(0)
    n = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    gb = torch.randn(2, 6, 4, 5, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(spade_modulate, (n, gb))
    gamma, beta = gb.chunk(2, dim=1)
    torch.testing.assert_close(spade_modulate(n, gb), n * (1 + gamma) + beta)
    cl = gb.detach().to(memory_format=torch.channels_last).requires_grad_(True)
    spade_modulate(n, cl).sum().backward()
    torch.testing.assert_close(cl.grad, torch.cat([n.detach(), torch.ones_like(n)], 1))


def _fp32_sum_error(terms: int) -> float:
    """Higham's γ_n = n·u / (1 - n·u): the worst-case relative error of an n-term sum in fp32."""
    u = torch.finfo(torch.float32).eps / 2
    return terms * u / (1 - terms * u)


def test_spectral_conv_same_in_channels_last():
    """σ, the power iteration and the gradient do not depend on the weight's memory layout.

    The two layouts run different kernels (oneDNN blocks the sums differently, AMX most of all), so
    each result is compared within twice the fp32 summation bound γ_n·Σ|terms| of its float64
    value's terms, not at a fixed tolerance: a layout bug (a transposed or misread weight) misses
    by the size of the values, rounding by ~1e-6 of them."""
    torch.manual_seed(0)
    a = SpectralNormConv2d(6, 8, 3, padding=1)
    b = SpectralNormConv2d(6, 8, 3, padding=1)
    b.load_state_dict(a.state_dict())
    b.to(memory_format=torch.channels_last)
    assert b.weight.is_contiguous(memory_format=torch.channels_last) and not b.weight.is_contiguous()
    x = torch.randn(2, 6, 5, 5)
    ya, yb = a(x), b(x.to(memory_format=torch.channels_last))
    sigma = (a.weight_u @ a.weight.flatten(1) @ a.weight_v).double().abs()
    x64, w64 = x.double().abs(), a.weight.detach().double().abs()
    reduction = w64[0].numel()  # in·k·k products per output pixel
    y_terms = F.conv2d(x64, w64, padding=1) / sigma + a.bias.detach().double().abs()[:, None, None]
    assert ((ya - yb).double().abs() <= 2 * _fp32_sum_error(reduction + 1) * y_terms).all()
    v_bound = 2 * _fp32_sum_error(max(a.weight.shape[0], reduction)) * a.weight_v.abs().max()
    torch.testing.assert_close(a.weight_v, b.weight_v, rtol=0, atol=float(v_bound))
    ya.square().sum().backward()
    yb.square().sum().backward()
    # ∂L/∂W sums batch·pixels products of x and 2y (2y itself a sum of in·k·k), then σ's path (a dot
    # product over every weight): the longest chain of sums bounds the error
    chain = x.shape[0] * x.shape[2] * x.shape[3] + reduction + a.weight.numel()
    g_terms = torch.nn.grad.conv2d_weight(x64, a.weight.shape, 2 * y_terms, padding=1) / sigma
    diff = (a.weight.grad - b.weight.grad).double().abs()
    bound = 2 * 2 * _fp32_sum_error(chain) * g_terms
    assert (diff <= bound).all(), diff.max()  # 2: the direct and σ terms
    assert b.weight.grad.is_contiguous(memory_format=torch.channels_last)


def test_small_map_conv_gradients_match_conv2d():
    """The one-GEMM weight gradient of small maps equals autograd's conv2d gradient."""
    from gauguin.nn.spectral import _SmallMapConv

    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda a, b: _SmallMapConv.apply(a, b, (1, 1)), (x, w))
    conv = SpectralNormConv2d(16, 32, 3, padding=1)
    small = torch.randn(2, 16, 4, 4)  # 32 output rows: the small-map path
    ref = torch.nn.functional.conv2d(small, conv.weight, None, padding=1)
    torch.testing.assert_close(conv._conv_unscaled(small), ref, rtol=1e-5, atol=1e-6)
    conv._conv_unscaled(small).square().sum().backward()
    expected, = torch.autograd.grad(ref.square().sum(), conv.weight)
    torch.testing.assert_close(conv.weight.grad, expected, rtol=1e-4, atol=1e-5)
