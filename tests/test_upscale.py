"""Tiled upscaling (gauguin.upscale): tiled == untiled, image layouts and bit depths, the streaming PNG writer,
bad inputs and bounded memory."""
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.upscale import PNGWriter, UpscaleError, read_image, upscale_file, upscale_image, upscale_tensor

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECEPTIVE_RADIUS = 11  # LR pixels: conv 5x5 (2) + 8 conv 3x3 (8) + conv 3x3 (1)


def small_srnet(channels: int = 3, scale: int = 2, width: int = 16, seed: int = 0) -> torch.nn.Module:
    """A small SRResNet-like generator: conv 5x5 + PReLU, 8 x (conv 3x3 + PReLU), conv 3x3, PixelShuffle, tanh."""
    torch.manual_seed(seed)
    layers = [torch.nn.Conv2d(channels, width, 5, padding=2), torch.nn.PReLU(width)]
    for _ in range(8):
        layers += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.PReLU(width)]
    layers += [torch.nn.Conv2d(width, channels * scale * scale, 3, padding=1), torch.nn.PixelShuffle(scale),
               torch.nn.Tanh()]
    return torch.nn.Sequential(*layers).eval()


@pytest.fixture(scope="module")
def rgb_net():
    return small_srnet(3)


@pytest.fixture(scope="module")
def grey_net():
    return small_srnet(1, seed=1)


def _untiled(net, x):
    with torch.no_grad():
        return net(x)


def _to_model_range(image: np.ndarray) -> torch.Tensor:
    a = image if image.ndim == 3 else image[:, :, None]
    return torch.from_numpy(a.astype(np.float32) / np.iinfo(image.dtype).max).permute(2, 0, 1)[None] * 2 - 1


def _quantise(y: torch.Tensor, dtype) -> np.ndarray:
    m = np.iinfo(dtype).max
    return np.rint(((y[0].permute(1, 2, 0).numpy() + 1) / 2).clip(0, 1) * m).astype(dtype)


@pytest.mark.parametrize("size,tile,overlap", [
    ((45, 70), 16, 12), ((45, 70), 20, 16), ((45, 70), 7, 12), ((37, 29), 16, 16), ((13, 9), 256, 16),
    ((13, 9), 16, 16), ((64, 64), 32, 11), ((45, 70), 32, 8), ((1, 1), 16, 16), ((2, 33), 16, 4)])
def test_tiled_equals_untiled(rgb_net, size, tile, overlap):
    x = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(sum(size))) * 2 - 1
    ref = _untiled(rgb_net, x)
    y = upscale_tensor(rgb_net, x, 2, tile=tile, overlap=overlap)
    diff = (y - ref).abs().max().item()
    assert y.shape == ref.shape
    assert diff < (1e-5 if overlap >= RECEPTIVE_RADIUS else 1e-3), diff


def test_no_overlap_shows_seams(rgb_net):
    """The check above is not vacuous: without context the tile edges are visibly wrong."""
    x = torch.rand(1, 3, 40, 40, generator=torch.Generator().manual_seed(3)) * 2 - 1
    assert (upscale_tensor(rgb_net, x, 2, tile=16, overlap=0) - _untiled(rgb_net, x)).abs().max() > 1e-2


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_image_matches_the_untiled_model(rgb_net, dtype):
    rng = np.random.default_rng(0)
    image = (rng.random((41, 27, 3)) * np.iinfo(dtype).max).astype(dtype)
    out = upscale_image(rgb_net, image, 2, tile=16, overlap=12)
    ref = _quantise(_untiled(rgb_net, _to_model_range(image)), dtype)
    assert out.dtype == dtype and out.shape == (82, 54, 3)
    assert np.abs(out.astype(np.int64) - ref.astype(np.int64)).max() <= 1  # rounding at a .5 boundary at most


@pytest.mark.parametrize("shape,dtype", [((19, 23), np.uint8), ((19, 23, 1), np.uint8), ((19, 23, 2), np.uint8),
                                         ((19, 23, 3), np.uint8), ((19, 23, 4), np.uint8), ((19, 23), np.uint16),
                                         ((19, 23, 3), np.uint16), ((19, 23, 4), np.uint16)])
def test_layouts_and_bit_depths_round_trip(rgb_net, grey_net, shape, dtype):
    rng = np.random.default_rng(1)
    image = (rng.random(shape) * np.iinfo(dtype).max).astype(dtype)
    colour = 1 if len(shape) == 2 or shape[2] <= 2 else 3
    for net, channels in ((rgb_net, 3), (grey_net, 1)):
        out = upscale_image(net, image, 2, tile=8, overlap=12, channels=channels)
        assert out.dtype == dtype and out.shape == (38, 46) + shape[2:]
        if channels == colour:  # the model sees the image as it is
            flat = image if image.ndim == 3 else image[:, :, None]
            ref = _quantise(_untiled(net, _to_model_range(np.ascontiguousarray(flat[:, :, :colour]))), dtype)
            got = out if out.ndim == 3 else out[:, :, None]
            assert np.abs(got[:, :, :colour].astype(np.int64) - ref.astype(np.int64)).max() <= 1
    if shape[-1] in (2, 4) and len(shape) == 3:  # alpha: bicubic of the whole plane, tile seams invisible
        alpha = image[:, :, -1].astype(np.float32) / np.iinfo(dtype).max
        ref = np.asarray(Image.fromarray(alpha).resize((46, 38), Image.BICUBIC))
        ref = np.rint(ref.clip(0, 1) * np.iinfo(dtype).max)
        assert np.abs(out[:, :, -1].astype(np.float64) - ref).max() <= 1


def test_grey_image_into_rgb_model_and_rgb_image_into_luma_model():
    rng = np.random.default_rng(2)
    grey = (rng.random((12, 14)) * 255).astype(np.uint8)

    def identity(x):  # nearest x2 keeps the colours: the conversions are the only change
        return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    out = upscale_image(identity, grey, 2, channels=3)  # repeated to RGB, back to grey by the BT.601 luma
    assert out.shape == (24, 28) and np.array_equal(out, grey.repeat(2, 0).repeat(2, 1))
    yy, xx = np.mgrid[0:12, 0:14]
    rgb = np.stack([40 + 10 * xx, 200 - 8 * yy, 60 + 5 * (xx + yy)], axis=2).astype(np.uint8)  # smooth colours
    out = upscale_image(identity, rgb, 2, tile=5, overlap=4, channels=1)  # Y by the model, CbCr bicubic
    assert out.shape == (24, 28, 3) and out.dtype == np.uint8
    smooth = np.asarray(Image.fromarray(rgb).resize((28, 24), Image.BICUBIC)).astype(np.int64)
    assert np.abs(out.astype(np.int64) - smooth).max() <= 12  # colour kept: near the bicubic image
    luma = out.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    expected_luma = (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])).repeat(2, 0).repeat(2, 1)
    assert np.abs(luma - expected_luma).max() < 1.5  # luma from the model (nearest), up to rounding
    flat = np.full((7, 9, 3), (200, 30, 90), dtype=np.uint8)
    assert np.abs(upscale_image(identity, flat, 2, channels=1).astype(int) - flat[0, 0]).max() <= 1


def _read_back_with_pil(path):
    with Image.open(path) as im:
        return im.mode, np.asarray(im)


@pytest.mark.parametrize("shape,dtype", [((21, 17), np.uint8), ((21, 17, 3), np.uint8), ((21, 17, 4), np.uint8),
                                         ((21, 17, 2), np.uint8), ((21, 17), np.uint16), ((21, 17, 3), np.uint16),
                                         ((21, 17, 4), np.uint16)])
def test_streamed_png_reads_back_equal_to_the_in_memory_result(tmp_path, rgb_net, shape, dtype):
    rng = np.random.default_rng(3)
    image = (rng.random(shape) * np.iinfo(dtype).max).astype(dtype)
    src = tmp_path / "in.png"
    with PNGWriter(src, shape[1], shape[0], 1 if len(shape) == 2 else shape[2], 8 * dtype().itemsize) as w:
        w.write_rows(image)
    assert np.array_equal(read_image(src), image)
    out = upscale_file(rgb_net, 3, 2, src, tmp_path / "out.png", tile=8, overlap=12, progress=False)
    expected = upscale_image(rgb_net, image, 2, tile=8, overlap=12, channels=3)
    mode, pil = _read_back_with_pil(out)
    if dtype == np.uint8 or len(shape) == 2:  # PIL reads these exactly
        assert np.array_equal(pil.astype(dtype), expected), mode
    else:  # PIL reduces 16-bit colour to its high bytes; gauguin's reader keeps 16 bits
        assert np.array_equal(pil, (expected >> 8).astype(np.uint8)), mode
    assert np.array_equal(read_image(out), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png", "out.png"]  # no temporary file left


def test_pil_written_pngs_and_jpegs_are_read(tmp_path):
    rng = np.random.default_rng(4)
    rgba = (rng.random((9, 11, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "a.png")
    assert np.array_equal(read_image(tmp_path / "a.png"), rgba)
    grey16 = (rng.random((9, 11)) * 65535).astype(np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g.png")
    assert np.array_equal(read_image(tmp_path / "g.png"), grey16) and read_image(tmp_path / "g.png").dtype == np.uint16
    Image.fromarray(rgba[..., :3]).save(tmp_path / "c.jpg")
    assert read_image(tmp_path / "c.jpg").shape == (9, 11, 3)
    Image.fromarray(rgba[..., 0]).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (9, 11, 3)


def _encode_filtered_png16(image: np.ndarray) -> bytes:
    """A 16-bit PNG using every row filter (row r gets filter r % 5), as libpng's adaptive filtering would."""
    h, w, nc = image.shape
    x = image.astype(">u2").view(np.uint8).reshape(h, w, 2 * nc).astype(np.int32)
    a = np.zeros_like(x)
    a[:, 1:] = x[:, :-1]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    c = np.zeros_like(x)
    c[1:, 1:] = x[:-1, :-1]
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    preds = [np.zeros_like(x), a, b, (a + b) // 2, paeth]
    rows = b"".join(bytes([r % 5]) + ((x[r] - preds[r % 5][r]) % 256).astype(np.uint8).tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ctype = {2: 4, 3: 2, 4: 6}[nc]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("nc", [2, 3, 4])
def test_16_bit_png_decoder_undoes_every_filter(tmp_path, nc):
    rng = np.random.default_rng(nc)
    smooth = np.cumsum(rng.integers(0, 900, size=(23, 31, nc)), axis=1) % 65536
    image = smooth.astype(np.uint16)
    (tmp_path / "f.png").write_bytes(_encode_filtered_png16(image))
    assert np.array_equal(read_image(tmp_path / "f.png"), image)


def test_a_nan_model_names_the_tile_and_writes_nothing(tmp_path, rgb_net):
    def nan_in_one_tile(x):
        y = rgb_net(x)
        if x.shape[-1] < 20:  # only the last column of tiles is narrow
            y[..., 0, 0] = float("nan")
        return y

    image = np.zeros((20, 40, 3), dtype=np.uint8)
    with pytest.raises(UpscaleError, match=r"NaN/Inf values on tile 2 \(LR rows 0\.\.15, columns 32\.\.39\)"):
        upscale_image(nan_in_one_tile, image, 2, tile=16, overlap=4)
    Image.fromarray(image).save(tmp_path / "in.png")
    with pytest.raises(UpscaleError, match="tile"):
        upscale_file(nan_in_one_tile, 3, 2, tmp_path / "in.png", tmp_path / "out.png", tile=16, overlap=4,
                     progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]
    with pytest.raises(UpscaleError, match="shape"):
        upscale_image(lambda x: x, image, 2)


def test_bad_files_give_one_line_naming_the_file(tmp_path, rgb_net):
    (tmp_path / "text.png").write_text("not an image")
    rng = np.random.default_rng(5)
    Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(tmp_path / "good.png")
    data = (tmp_path / "good.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) // 2])
    with PNGWriter(tmp_path / "good16.png", 40, 40, 3, 16) as w:
        w.write_rows((rng.random((40, 40, 3)) * 65535).astype(np.uint16))
    data16 = (tmp_path / "good16.png").read_bytes()
    (tmp_path / "cut16.png").write_bytes(data16[:len(data16) // 2])
    for name in ("text.png", "cut.png", "cut16.png", "missing.png"):
        with pytest.raises(ValueError) as err:
            upscale_file(rgb_net, 3, 2, tmp_path / name, tmp_path / "out.png", progress=False)
        message = str(err.value)
        assert name in message and "\n" not in message and ("pass" in message), message
    assert not (tmp_path / "out.png").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    with pytest.raises(ValueError, match=r"\.png name"):
        upscale_file(rgb_net, 3, 2, tmp_path / "good.png", tmp_path / "out.jpg", progress=False)
    with pytest.raises(ValueError, match="channels"):
        upscale_file(rgb_net, 2, 2, tmp_path / "good.png", tmp_path / "out.png", progress=False)


def test_png_writer_refuses_an_incomplete_image(tmp_path):
    (tmp_path / "keep.png").write_bytes(b"old")
    w = PNGWriter(tmp_path / "keep.png", 4, 3, 1, 8)
    w.write_rows(np.zeros((2, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="2 of 3 rows"):
        w.close()
    assert (tmp_path / "keep.png").read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


# Above the baseline of importing torch: a full 16000x12000 RGB output alone would be 576 MB (uint8), 2.3 GB as
# float32. Streaming holds the 36 MB input, one 49 MB band of output rows and one tile's tensors (~16 MB each);
# measured: about +180 MB, glibc's heap retention included.
PEAK_RSS_INCREMENT_BOUND_MB = 300


_CHILD = textwrap.dedent("""
    import json, sys
    import torch, numpy, PIL.Image
    import gauguin.upscale as up
    if sys.argv[1] == "run":
        def nearest_x4(x):
            return torch.nn.functional.interpolate(x, scale_factor=4, mode="nearest")
        torch.set_num_threads(1)
        up.upscale_file(nearest_x4, 3, 4, sys.argv[2], sys.argv[3], progress=False, compress_level=1)
    # VmHWM: this process's peak RSS (ru_maxrss would also count the forking pytest process, kept across exec)
    hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
    print(json.dumps({"peak_rss_mb": int(hwm.split()[1]) / 1024}))
""")


def test_memory_stays_bounded_for_a_4000x3000_image_at_x4(tmp_path):
    yy, xx = np.ogrid[0:3000, 0:4000]
    image = np.empty((3000, 4000, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = (xx // 16) % 256, (yy // 12) % 256, ((xx + yy) // 28) % 256
    Image.fromarray(image).save(tmp_path / "big.png", compress_level=1)
    corner = image[2990:, 3990:].repeat(4, 0).repeat(4, 1)
    del yy, xx, image
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])))

    def child(*args):
        done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, env=env,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        return json.loads(done.stdout.strip().splitlines()[-1])["peak_rss_mb"]

    baseline = child("import")
    peak = child("run", str(tmp_path / "big.png"), str(tmp_path / "big_x4.png"))
    print(f"peak RSS: importing torch + gauguin.upscale {baseline:.0f} MB; upscaling 4000x3000 x4 {peak:.0f} MB")
    assert peak - baseline < PEAK_RSS_INCREMENT_BOUND_MB, (baseline, peak)
    _check_png_stream(tmp_path / "big_x4.png", 16000, 12000, last_row=corner[-1])


def _check_png_stream(path, width, height, last_row):
    """Check a big RGB PNG's header, chunk CRCs, pixel count and last row, decompressing as a stream."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, unzip, size, tail = 8, zlib.decompressobj(), 0, b""
    while True:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert zlib.crc32(kind + body) == struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0]
        if kind == b"IHDR":
            assert struct.unpack(">IIBBBBB", body) == (width, height, 8, 2, 0, 0, 0)
        elif kind == b"IDAT":
            piece = unzip.decompress(body)
            size += len(piece)
            tail = (tail + piece)[-(1 + 3 * width):]
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert pos + 12 == len(data) and unzip.eof
    assert size == height * (1 + 3 * width)
    assert tail[0] == 0 and tail[-last_row.nbytes:] == last_row.tobytes()
