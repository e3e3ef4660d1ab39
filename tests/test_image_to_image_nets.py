"""pix2pix and CycleGAN networks: U-Net and ResNet generators, PatchGAN / PixelGAN / ImageGAN
discriminators, and the image history pool."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from gauguin.nn import (
    ImagePool,
    NLayerDiscriminator,
    NoiseDropout,
    PixelDiscriminator,
    ResnetBlock,
    ResnetGenerator,
    UnetGenerator,
    image_gan,
    patchgan_receptive_field,
    pix2pix_patchgan,
    unet_depth,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors (tests/conftest.py)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def convs_of(module: torch.nn.Module) -> list[torch.nn.Module]:
    return [m for m in module.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


# ------------------------------------------------------------------------------------ U-Net
@pytest.mark.parametrize("norm, expected", [("batch", 54_413_955), ("instance", 54_409_603)])
def test_unet_256_parameter_count_is_the_official_one(norm, expected):
    # batch: convs 19,532,800 + transposed convs 34,871,296 + BN affines 9,856 + the last bias 3;
    # instance: every conv has a bias (5,504 in all), the affine-free norms have no parameters
    with torch.device("meta"):
        G = UnetGenerator(3, 3, 256, ngf=64, norm=norm)
    assert G.depth == 8
    assert n_params(G) == expected
    with torch.device("meta"):
        assert n_params(UnetGenerator(3, 3, 128)) == 41_828_995  # the official unet_128


def test_unet_layout_and_biases():
    with torch.device("meta"):
        G = UnetGenerator(3, 2, 256, norm="batch")
    down = convs_of(G.down)
    assert [c.out_channels for c in down] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1) for c in convs_of(G))
    # only the last conv (up[0], listed first of the decoder) keeps a bias
    assert [c.bias is None for c in convs_of(G)] == [True] * 8 + [False] + [True] * 7
    assert [c.out_channels for c in convs_of(G.up)] == [2, 64, 128, 256, 512, 512, 512, 512]
    assert [c.in_channels for c in convs_of(G.up)] == [128, 256, 512, 1024, 1024, 1024, 1024, 512]
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in G.down[0].modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in G.down[-1].modules())  # innermost, 1×1
    assert isinstance(G.down[0][0], torch.nn.Conv2d)  # the first conv sees the raw image
    assert isinstance(G.up[0][-1], torch.nn.Tanh)
    dropout_levels = [i for i, block in enumerate(G.up) if any(isinstance(m, NoiseDropout) for m in block)]
    assert dropout_levels == [4, 5, 6]  # the three 512-channel decoder blocks above the innermost
    with torch.device("meta"):
        assert not any(isinstance(m, torch.nn.Dropout) for m in UnetGenerator(3, 3, 64, dropout=False).modules())
        inst = UnetGenerator(3, 3, 64, norm="instance")
    assert all(c.bias is not None for c in convs_of(inst))


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_unet_skip_shapes_at_each_depth(size):
    torch.manual_seed(0)
    G = UnetGenerator(3, 2, size, ngf=4)
    depth = unet_depth(size)
    assert G.depth == depth == size.bit_length() - 1
    shapes = []
    hooks = [block.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for block in G.down]
    x = torch.randn(2, 3, size, size)
    y = G(x)
    for h in hooks:
        h.remove()
    widths = [4 * min(2**i, 8) for i in range(depth)]
    assert shapes == [(2, w, size >> (i + 1), size >> (i + 1)) for i, w in enumerate(widths)]
    assert shapes[-1][-2:] == (1, 1)
    assert y.shape == (2, 2, size, size)
    assert y.abs().max() < 1


def test_unet_skip_connections_carry_the_input():
    # with the bottleneck cut off (innermost decoder conv zeroed), the output still depends on x
    torch.manual_seed(0)
    G = UnetGenerator(1, 1, 32, ngf=4, dropout=False).eval()
    with torch.no_grad():
        G.up[-1][1].weight.zero_()
    x = torch.randn(1, 1, 32, 32, requires_grad=True)
    G(x)[0, 0, 16, 16].backward()
    assert x.grad.abs().sum() > 0


def test_unet_rejects_bad_sizes():
    for size in (16, 48, 100, 0):
        with pytest.raises(ValueError, match="power of two"):
            UnetGenerator(3, 3, size, ngf=4)
    with pytest.raises(ValueError, match="norm"):
        UnetGenerator(3, 3, 32, norm="layer")
    with pytest.raises(ValueError, match="multiples of"):
        UnetGenerator(3, 3, 32, ngf=4)(torch.randn(1, 3, 48, 48))


def test_unet_dropout_is_noise_at_test_time():
    torch.manual_seed(0)
    G = UnetGenerator(3, 3, 32, ngf=4, norm="instance").eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(G(x), G(x))  # dropout stays on in eval mode (the paper's noise)
    G = UnetGenerator(3, 3, 32, ngf=4, norm="instance", dropout_at_test=False).eval()
    with torch.no_grad():
        assert torch.equal(G(x), G(x))
        G.train()
        assert not torch.equal(G(x), G(x))


# --------------------------------------------------------------------------- discriminators
def test_pix2pix_patchgan_layout_and_parameter_counts():
    with torch.device("meta"):
        D = pix2pix_patchgan(6)
        D_in = pix2pix_patchgan(6, norm="instance")
    assert isinstance(D, NLayerDiscriminator)
    convs = convs_of(D)
    assert [c.out_channels for c in convs] == [64, 128, 256, 512, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) and c.padding == (1, 1) for c in convs)
    assert [c.bias is not None for c in convs] == [True, False, False, False, True]
    assert all(c.bias is not None for c in convs_of(D_in))
    # official basic D on 6 channels: convs 2,766,913 (with first and last biases) + BN affines 1,792
    assert n_params(D) == 2_768_705
    # instance norm: affine-free norms, biases 128 + 256 + 512 on the normalised convs instead
    assert n_params(D_in) == 2_767_809
    with torch.device("meta"):
        deep = pix2pix_patchgan(3, n_layers=5, ndf=16)
    assert [c.out_channels for c in convs_of(deep)] == [16, 32, 64, 128, 128, 128, 1]  # capped at 8·ndf


def input_reached(D: torch.nn.Module, size: int, at: tuple[int, int] | None = None) -> torch.Tensor:
    """[size, size] mask of the input pixels whose gradient from one output (the centre one by
    default) is non-zero, by backprop to an input of ones (eval mode: batch norm is then per pixel;
    all weights positive, so no gradient cancels)."""
    D.eval()
    with torch.no_grad():
        for p in D.parameters():
            p.fill_(0.01)
    x = torch.ones(1, convs_of(D)[0].in_channels, size, size, requires_grad=True)
    out = D(x)[-1]
    h, w = out.shape[-2:]
    i, j = at if at is not None else (h // 2, w // 2)
    out[0, 0, i, j].backward()
    return x.grad[0].abs().sum(0) > 0


def measured_receptive_field(D: torch.nn.Module, size: int = 256) -> int:
    """Input pixels along a row that reach the centre output."""
    reached = input_reached(D, size)
    width = int(reached.any(0).sum())
    assert int(reached.any(1).sum()) == width and int(reached[size // 2].sum()) == width
    return width


@pytest.mark.parametrize("n_layers, rf", [(1, 16), (2, 34), (3, 70), (4, 142)])
def test_patchgan_receptive_field_by_gradients(n_layers, rf):
    assert patchgan_receptive_field(n_layers) == rf
    assert measured_receptive_field(pix2pix_patchgan(3, n_layers, ndf=4)) == rf


def test_pixelgan_sees_one_pixel():
    D = PixelDiscriminator(6, ndf=8)
    assert measured_receptive_field(D, size=16) == 1
    assert [c.kernel_size for c in convs_of(D)] == [(1, 1)] * 3
    assert [c.out_channels for c in convs_of(D)] == [8, 16, 1]
    assert D(torch.randn(2, 6, 10, 12))[-1].shape == (2, 1, 10, 12)
    with torch.device("meta"):
        assert n_params(PixelDiscriminator(6)) == 448 + 8_192 + 256 + 129


@pytest.mark.parametrize("size, n_layers", [(256, 6), (128, 5), (100, 5), (64, 4), (32, 3), (8, 1)])
def test_image_gan_depth(size, n_layers):
    with torch.device("meta"):
        D = image_gan(3, size)
    assert len(D.layers) == n_layers + 2  # n stride-2 convs, the stride-1 conv and the head
    with pytest.raises(ValueError, match="no PatchGAN depth"):
        image_gan(3, 4)


@pytest.mark.parametrize("size", [32, 64])
def test_image_gan_every_output_sees_every_pixel(size):
    D = image_gan(3, size, ndf=4)
    h, w = D(torch.zeros(1, 3, size, size))[-1].shape[-2:]
    assert (h, w) == (2, 2)
    for at in [(i, j) for i in range(h) for j in range(w)]:
        assert input_reached(D, size, at).all()
    # the paper's 286×286 net at 256 (n_layers=5) misses columns even from its central outputs
    assert measured_receptive_field(pix2pix_patchgan(3, 5, ndf=2)) == 255


# ------------------------------------------------------------------------------ ResNet gen.
@pytest.mark.parametrize("n_blocks, expected", [(9, 11_378_179), (6, 7_837_699)])
def test_resnet_generator_parameter_count_is_the_official_one(n_blocks, expected):
    # c7s1-64 9,472 + d128 73,856 + d256 295,168 + u128 295,040 + u64 73,792 + c7s1-3 9,411
    # + R256 1,180,160 per block (all convs with biases; instance norm without parameters)
    with torch.device("meta"):
        G = ResnetGenerator(3, 3, ngf=64, n_blocks=n_blocks)
    assert n_params(G) == expected


def test_resnet_generator_layout():
    with torch.device("meta"):
        G = ResnetGenerator(3, 3, n_blocks=9)
    pads = [m for m in G.modules() if isinstance(m, torch.nn.ReflectionPad2d)]
    assert [p.padding for p in pads] == [(3, 3, 3, 3)] + [(1, 1, 1, 1)] * 18 + [(3, 3, 3, 3)]
    convs = convs_of(G)
    assert [c.kernel_size[0] for c in convs] == [7, 3, 3] + [3] * 18 + [3, 3, 7]
    assert [c.out_channels for c in convs] == [64, 128, 256] + [256] * 18 + [128, 64, 3]
    up = [c for c in convs if isinstance(c, torch.nn.ConvTranspose2d)]
    assert all(c.stride == (2, 2) and c.padding == (1, 1) and c.output_padding == (1, 1) for c in up)
    assert all(c.bias is not None for c in convs)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in G.modules()) == 5 + 18
    with torch.device("meta"):
        bn = ResnetGenerator(3, 3, n_blocks=2, norm="batch")
    assert [c.bias is not None for c in convs_of(bn)] == [False] * 9 + [True]


@pytest.mark.parametrize("size", [8, 32, 48])
def test_resnet_generator_keeps_the_size(size):
    torch.manual_seed(0)
    G = ResnetGenerator(3, 2, ngf=4, n_blocks=2)
    y = G(torch.randn(2, 3, size, size))
    assert y.shape == (2, 2, size, size) and y.abs().max() < 1
    with pytest.raises(ValueError, match="multiples of 4"):
        G(torch.randn(1, 3, 30, 32))


def test_resnet_block_is_a_residual():
    torch.manual_seed(0)
    block = ResnetBlock(8)
    with torch.no_grad():
        last = [m for m in block.branch if isinstance(m, torch.nn.Conv2d)][-1]
        last.weight.zero_()
        last.bias.zero_()
    x = torch.randn(2, 8, 6, 6)
    torch.testing.assert_close(block(x), x)  # the branch is instance-norm(0) = 0


# --------------------------------------------------------------------------------- ImagePool
def ids_image(ids: list[int]) -> torch.Tensor:
    """A batch whose image k is filled with ids[k]."""
    return torch.tensor(ids, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 3).contiguous()


def ids_of(batch: torch.Tensor) -> list[int]:
    return [int(v) for v in batch[:, 0, 0, 0]]


def test_image_pool_returns_new_images_until_full():
    torch.manual_seed(0)
    pool = ImagePool(5)
    for start in (0, 2):
        batch = ids_image([start, start + 1])
        assert pool.query(batch) is batch
    out = pool.query(ids_image([4, 5, 6]))
    assert ids_of(out)[0] == 4  # the 5th image fills the pool, returned as is
    assert len(pool) == 5


def test_image_pool_swaps_half_and_returns_only_stored_images():
    torch.manual_seed(0)
    size = 10
    pool = ImagePool(size)
    stored = list(range(size))  # a model of the pool's content
    for i in stored:
        pool.query(ids_image([i]))
    swaps = 0
    queries = 2000
    for new in range(size, size + queries):
        got = ids_of(pool.query(ids_image([new])))[0]
        if got != new:
            swaps += 1
            assert got in stored  # an image put in before and still held
            stored[stored.index(got)] = new
    assert 0.45 <= swaps / queries <= 0.55
    assert sorted(ids_of(pool.state_dict()["images"])) == sorted(stored)


def test_image_pool_stores_detached_copies_and_passes_through_at_size_0():
    pool = ImagePool(2)
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = x * 2
    assert pool.query(y) is y  # returned as is, graph and all
    state = pool.state_dict()
    assert not state["images"].requires_grad
    with torch.no_grad():
        y.zero_()
    torch.testing.assert_close(state["images"], pool.state_dict()["images"])
    assert pool.state_dict()["images"].abs().sum() > 0
    with pytest.raises(ValueError, match="shape"):
        pool.query(torch.randn(1, 3, 5, 5))
    empty = ImagePool(0)
    assert empty.query(x) is x and len(empty) == 0
    assert int(empty.state_dict()["count"]) == 0


@pytest.mark.parametrize("filled", [3, 6])
def test_image_pool_state_round_trip_continues_identically(tmp_path, filled):
    torch.manual_seed(1)
    pool = ImagePool(6)
    for k in range(filled):
        pool.query(torch.randn(1, 2, 3, 3))
    path = tmp_path / "pool.safetensors"
    save_file(pool.state_dict(), str(path))
    rng = torch.get_rng_state()
    batches = [torch.randn(2, 2, 3, 3) for _ in range(20)]

    torch.set_rng_state(rng)
    expected = [pool.query(b) for b in batches]
    restored = ImagePool(6)
    restored.load_state_dict(load_file(str(path)))
    assert len(restored) == filled
    torch.set_rng_state(rng)
    for b, e in zip(batches, expected):
        torch.testing.assert_close(restored.query(b), e, rtol=0, atol=0)
    with pytest.raises(ValueError, match="size"):
        ImagePool(2).load_state_dict(load_file(str(path)))
