"""Tiled super-resolution of images of any size with bounded memory, and a streaming PNG writer.

Tiling. The low-resolution (LR) image is cut into a grid of ``tile``×``tile`` cores (the last row and column of
cores are smaller when the image is not a multiple of ``tile``). Each core is run through the model together with
``overlap`` LR pixels of context on every side, clipped at the image's borders, and only the core's part of the
output (``scale``× the core) is kept: the context, where the tile's output is wrong because the network sees zero
padding at the tile's inner edges, is cropped away. Where a tile reaches the image's border there is no context,
so the network zero-pads there exactly as it does on the whole image. Hence an output pixel equals the untiled
run's whenever the network's receptive field reaches at most ``overlap`` LR pixels (up to float rounding), and the
error decays with the network's influence beyond that; no feathering is used, since blending in values from a tile
nearer its own edge can only add error. Models must be fully convolutional and per-pixel (no instance / layer
normalisation or attention over the whole input: those depend on the tile).

Memory. Tiles are processed row band by row band (one row of cores); ``upscale_file`` streams each finished band
of output rows into a PNG, so its peak memory is the input image, one band of output (``tile · scale`` rows) and
one tile's tensors, never the whole output.

Channels. ``channels`` is the model's channel count (1 or 3). A grey image into an RGB model is repeated to 3
channels and the output converted back to grey with the BT.601 luma weights (0.299, 0.587, 0.114). An RGB image
into a grey (luma) model is converted to full-range YCbCr (JPEG / BT.601): Y goes through the model and Cb, Cr
are upscaled bicubically, then converted back to RGB: the colour output users expect (the SRCNN recipe). Alpha is
never shown to the model (a GAN would paint texture into masks): it is upscaled bicubically (PIL, on floats) with
the same tiles, which is exact for ``overlap >= 3``. 8-bit images are read as x / 255, 16-bit as x / 65535, mapped
to [-1, 1] for the model; the output is checked finite (a NaN or Inf names its tile: never a black image), clipped
to [-1, 1] and rounded back to the input's dtype.
"""
from __future__ import annotations

import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)
_CHANNELS_OF_TYPE = {v: k for k, v in _COLOUR_TYPES.items()}
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


class UpscaleError(ValueError):
    """The model misbehaved on a tile (wrong output shape, NaN or Inf values)."""


# ---------------------------------------------------------------------------------------------------- tiling


def _check_params(scale, tile, overlap, channels=None) -> tuple[int, int, int]:
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a whole number >= 1, got {scale!r}")
    if isinstance(tile, bool) or int(tile) != tile or tile < 1:
        raise ValueError(f"tile must be a whole number of LR pixels >= 1, got {tile!r}")
    if isinstance(overlap, bool) or int(overlap) != overlap or overlap < 0:
        raise ValueError(f"overlap must be a whole number of LR pixels >= 0, got {overlap!r}")
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels (the model's) must be 1 (grey) or 3 (RGB), got {channels!r}")
    return int(scale), int(tile), int(overlap)


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[list[tuple[int, ...]]]:
    """Row bands of tiles: each tile is (y0, y1, x0, x1, ry0, ry1, rx0, rx1), its core and its core plus
    ``overlap`` px of context clipped to the image, in LR pixels."""
    bands = []
    for y0 in range(0, height, tile):
        y1 = min(height, y0 + tile)
        row = []
        for x0 in range(0, width, tile):
            x1 = min(width, x0 + tile)
            row.append((y0, y1, x0, x1, max(0, y0 - overlap), min(height, y1 + overlap),
                        max(0, x0 - overlap), min(width, x1 + overlap)))
        bands.append(row)
    return bands


def _tile_name(box, index) -> str:
    y0, y1, x0, x1 = box[:4]
    return f"tile {index} (LR rows {y0}..{y1 - 1}, columns {x0}..{x1 - 1})"


def _model_device(model):
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return None


def _run_model(model, x: torch.Tensor, scale: int, box, index) -> torch.Tensor:
    """Run ``model`` on one tile [1, C, h, w] in [-1, 1]; return the core's output [C, s·h_core, s·w_core] clipped
    to [-1, 1] (float32, CPU), or raise ``UpscaleError`` naming the tile."""
    y0, y1, x0, x1, ry0, ry1, rx0, rx1 = box
    device = _model_device(model)
    with torch.no_grad():
        y = model(x if device is None else x.to(device))
    y = torch.as_tensor(y).detach().to("cpu", torch.float32)
    expected = (1, x.shape[1], scale * x.shape[2], scale * x.shape[3])
    if tuple(y.shape) != expected:
        raise UpscaleError(f"the model returned shape {tuple(y.shape)} for {_tile_name(box, index)} of input "
                           f"{tuple(x.shape)}, expected {expected}: it must be fully convolutional, x{scale}, with "
                           f"{x.shape[1]} channels")
    # anywhere, context included (a broken model); the sum is a cheap first test: finite sum => all finite
    if not torch.isfinite(y.sum()) and not torch.isfinite(y).all():
        bad = int((~torch.isfinite(y)).sum())
        raise UpscaleError(f"the model returned {bad} NaN/Inf values on {_tile_name(box, index)}; the output would "
                           f"be wrong (black), so nothing was written: check the weights, or run in float32")
    core = y[0, :, (y0 - ry0) * scale:(y1 - ry0) * scale, (x0 - rx0) * scale:(x1 - rx0) * scale]
    return core.clamp(-1.0, 1.0)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="tile", desc="upscale", disable=not enabled, leave=False)


def upscale_tensor(model, x: torch.Tensor, scale: int, tile: int = 256, overlap: int = 16,
                   progress: bool = False) -> torch.Tensor:
    """Apply ``model`` tile by tile to ``x`` [1, C, H, W] in [-1, 1]: [1, C, s·H, s·W] float32 (the module's
    tiling, without the image conversions; equal to ``model(x)`` up to the network's reach beyond ``overlap``)."""
    scale, tile, overlap = _check_params(scale, tile, overlap)
    x = torch.as_tensor(x).detach().to("cpu", torch.float32)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ValueError(f"x must be one image [1, C, H, W], got shape {tuple(x.shape)}")
    _, c, h, w = x.shape
    out = torch.empty(1, c, h * scale, w * scale)
    bands = tile_grid(h, w, tile, overlap)
    index = 0
    with _progress(sum(map(len, bands)), progress) as bar:
        for row in bands:
            for box in row:
                y0, y1, x0, x1, ry0, ry1, rx0, rx1 = box
                out[0, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = _run_model(
                    model, x[:, :, ry0:ry1, rx0:rx1].contiguous(), scale, box, index)
                index += 1
                bar.update()
    return out


# ------------------------------------------------------------------------------------------------ images


def _bicubic(plane: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic (PIL, a = -0.5) upscaling of a float32 plane [h, w] by ``scale``."""
    from PIL import Image

    h, w = plane.shape
    return np.asarray(Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32)).resize(
        (w * scale, h * scale), Image.BICUBIC), dtype=np.float32)


def _image_layout(image: np.ndarray) -> tuple[int, bool]:
    """(colour channels 1 or 3, has alpha) of an HxW or HxWxC uint8/uint16 image."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"image must be uint8 or uint16, got {image.dtype}")
    if image.ndim == 2:
        return 1, False
    if image.ndim == 3 and image.shape[2] in (1, 2, 3, 4):
        return (1 if image.shape[2] <= 2 else 3), image.shape[2] in (2, 4)
    raise ValueError(f"image must be HxW or HxWxC with C in 1 (grey), 2 (grey+alpha), 3 (RGB), 4 (RGBA); "
                     f"got shape {image.shape}")


def _iter_bands(model, image: np.ndarray, channels: int | None, scale: int, tile: int, overlap: int,
                progress: bool):
    """Yield the upscaled image band by band: arrays [rows, s·W, C] of the image's dtype, top to bottom."""
    colour, alpha = _image_layout(image)
    channels = colour if channels is None else channels
    scale, tile, overlap = _check_params(scale, tile, overlap, channels)
    img = image if image.ndim == 3 else image[:, :, None]
    h, w, nc = img.shape
    if h == 0 or w == 0:
        raise ValueError(f"image is empty ({h}x{w} px)")
    maxv = float(np.iinfo(image.dtype).max)
    bands = tile_grid(h, w, tile, overlap)
    index = 0
    with _progress(sum(map(len, bands)), progress) as bar:
        for row in bands:
            y0, y1 = row[0][:2]
            band = np.empty(((y1 - y0) * scale, w * scale, nc), dtype=image.dtype)
            for box in row:
                _, _, x0, x1, ry0, ry1, rx0, rx1 = box
                cy, cx = (y0 - ry0) * scale, (x0 - rx0) * scale
                ch, cw = (y1 - y0) * scale, (x1 - x0) * scale
                region = img[ry0:ry1, rx0:rx1].astype(np.float32) / maxv  # [h, w, nc] in [0, 1]
                rgb = region[:, :, :colour]
                if colour == channels:
                    model_in = rgb
                elif colour == 1:  # grey image, RGB model
                    model_in = np.repeat(rgb, 3, axis=2)
                else:  # RGB image, luma model: full-range YCbCr
                    y = rgb @ np.asarray(LUMA, dtype=np.float32)
                    cb = 0.5 + (rgb[:, :, 2] - y) / 1.772
                    cr = 0.5 + (rgb[:, :, 0] - y) / 1.402
                    model_in = y[:, :, None]
                x = torch.from_numpy(np.ascontiguousarray(model_in.transpose(2, 0, 1)))[None] * 2 - 1
                out = _run_model(model, x, scale, box, index).numpy().transpose(1, 2, 0)  # a fresh array
                out += 1.0
                out *= 0.5
                if colour != channels and colour == 1:
                    out = out @ np.asarray(LUMA, dtype=np.float32)[:, None]
                elif colour != channels:
                    yy = out[:, :, 0]
                    cb_up = _bicubic(cb, scale)[cy:cy + ch, cx:cx + cw] - 0.5
                    cr_up = _bicubic(cr, scale)[cy:cy + ch, cx:cx + cw] - 0.5
                    r, b = yy + 1.402 * cr_up, yy + 1.772 * cb_up
                    g = (yy - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
                    out = np.stack([r, g, b], axis=2)
                if alpha:
                    a = _bicubic(region[:, :, colour], scale)[cy:cy + ch, cx:cx + cw]
                    out = np.concatenate([out, a[:, :, None]], axis=2)
                out *= maxv
                if alpha or colour != channels:  # bicubic and colour conversions may overshoot
                    np.clip(out, 0, maxv, out=out)
                band[:, x0 * scale:x1 * scale] = np.rint(out, out=out)
                del out, x
                index += 1
                bar.update()
            yield band
            del band  # one band alive at a time


def upscale_image(model, image: np.ndarray, scale: int, tile: int = 256, overlap: int = 16, progress: bool = False,
                  channels: int | None = None) -> np.ndarray:
    """Upscale ``image`` (HxW or HxWxC, C in 1-4, uint8 or uint16) by ``scale`` with ``model`` tile by tile:
    the upscaled array, of the same dtype and channel layout. ``model`` maps a float32 [1, C, h, w] in [-1, 1] to
    [1, C, s·h, s·w] in [-1, 1]; ``channels`` is its C (default: the image's colour channels, 1 or 3)."""
    colour, _ = _image_layout(image)
    h, w = image.shape[:2]
    out = np.empty((h * scale, w * scale) + image.shape[2:], dtype=image.dtype)
    flat = out if out.ndim == 3 else out[:, :, None]
    row = 0
    for band in _iter_bands(model, image, channels, scale, tile, overlap, progress):
        flat[row:row + len(band)] = band
        row += len(band)
    return out


# --------------------------------------------------------------------------------------------------- PNG


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class PNGWriter:
    """Write a PNG row band by row band (filter 0, zlib level ``compress_level``), atomically: into a temporary
    file in the target's folder, moved over ``path`` by ``close`` (``os.replace``) once every row is written;
    ``abort`` (or an exception inside ``with``) deletes it. 8- or 16-bit; 1, 2, 3 or 4 channels."""

    IDAT_SIZE = 1 << 20

    def __init__(self, path, width: int, height: int, channels: int, bit_depth: int = 8, compress_level: int = 6):
        if channels not in _COLOUR_TYPES or bit_depth not in (8, 16):
            raise ValueError(f"PNG of {channels} channels and {bit_depth} bits: need 1-4 channels, 8 or 16 bits")
        if not (0 < width < 2**31 and 0 < height < 2**31):
            raise ValueError(f"a PNG is 1 to 2^31 - 1 px a side, got {width}x{height}")
        self.path, self.width, self.height = Path(path), int(width), int(height)
        self.channels, self.bit_depth = channels, bit_depth
        self.rows = 0
        self._pending = bytearray()
        self._zip = zlib.compressobj(compress_level)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        self._file = os.fdopen(fd, "wb")
        try:
            self._file.write(PNG_SIGNATURE + _chunk(b"IHDR", struct.pack(
                ">IIBBBBB", self.width, self.height, bit_depth, _COLOUR_TYPES[channels], 0, 0, 0)))
        except BaseException:
            self.abort()
            raise

    def _emit(self, data: bytes, final: bool = False) -> None:
        self._pending += data
        while len(self._pending) >= self.IDAT_SIZE or (final and self._pending):
            piece = bytes(self._pending[:self.IDAT_SIZE])
            del self._pending[:self.IDAT_SIZE]
            self._file.write(_chunk(b"IDAT", piece))

    def write_rows(self, rows: np.ndarray) -> None:
        """Append rows [k, width] or [k, width, channels] (uint8 for 8 bits, uint16 for 16)."""
        rows = np.asarray(rows)
        if rows.ndim == 2:
            rows = rows[:, :, None]
        dtype = np.uint8 if self.bit_depth == 8 else np.uint16
        if rows.ndim != 3 or rows.shape[1:] != (self.width, self.channels) or rows.dtype != dtype:
            raise ValueError(f"rows must be [k, {self.width}, {self.channels}] {np.dtype(dtype)}, got "
                             f"{rows.shape} {rows.dtype}")
        if self.rows + len(rows) > self.height:
            raise ValueError(f"{self.path}: {self.rows + len(rows)} rows written, the PNG has {self.height}")
        step = max(1, (4 << 20) // max(1, rows[0].nbytes))  # ~4 MiB of raw rows per compress call
        for start in range(0, len(rows), step):
            part = rows[start:start + step]
            raw = np.zeros((len(part), 1 + part[0].nbytes), dtype=np.uint8)  # column 0: filter type 0
            raw[:, 1:] = part.astype(">u2" if self.bit_depth == 16 else np.uint8).reshape(len(part), -1).view(
                np.uint8)
            self._emit(self._zip.compress(raw))
        self.rows += len(rows)

    def close(self) -> Path:
        """Finish the stream and move the file into place; every row must have been written."""
        if self.rows != self.height:
            self.abort()
            raise ValueError(f"{self.path}: only {self.rows} of {self.height} rows were written; nothing was saved")
        try:
            self._emit(self._zip.flush(), final=True)
            self._file.write(_chunk(b"IEND", b""))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.chmod(self._tmp, 0o644)
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        return self.path

    def abort(self) -> None:
        """Close and delete the temporary file; ``path`` is left as it was."""
        try:
            self._file.close()
        finally:
            Path(self._tmp).unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if kind is None:
            self.close()
        else:
            self.abort()


def _paeth_unfilter(kinds: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Undo PNG row filters (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) of ``data`` [h, w, bpp] uint8 whose rows
    have filter types ``kinds`` [h]. Pixel (r, i) depends on (r, i-1), (r-1, i), (r-1, i-1): the anti-diagonals
    r + i = d are decoded in order, each one vectorised over its pixels."""
    h, w, bpp = data.shape
    if not kinds.any():
        return data
    if kinds.max() > 4:
        raise ValueError(f"unknown PNG filter type {int(kinds.max())}")
    padded = np.zeros(((h + 1) * (w + 1), bpp), dtype=np.uint8)  # a zero row above and a zero column left
    flat = data.reshape(h * w, bpp)
    kinds = kinds.astype(np.intp)
    for d in range(h + w - 1):
        r = np.arange(max(0, d - w + 1), min(h - 1, d) + 1)
        i = d - r
        at = (r + 1) * (w + 1) + i + 1
        a = padded[at - 1].astype(np.int16)
        b = padded[at - w - 1].astype(np.int16)
        c = padded[at - w - 2].astype(np.int16)
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        choices = (np.zeros_like(a), a, b, (a + b) >> 1, paeth)
        pred = np.choose(np.broadcast_to(kinds[r, None], a.shape), choices)
        padded[at] = (flat[r * w + i].astype(np.int16) + pred) & 255
    return padded.reshape(h + 1, w + 1, bpp)[1:, 1:]


def _read_png16(path: Path) -> np.ndarray:
    """Decode a 16-bit grey+alpha / RGB / RGBA PNG (which PIL reduces to 8 bits) to uint16 [H, W, C]."""
    data = path.read_bytes()
    pos, ihdr, idat = 8, None, []
    while True:
        if pos + 12 > len(data):
            raise ValueError("truncated: the file ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body, crc = data[pos + 8:pos + 8 + length], data[pos + 8 + length:pos + 12 + length]
        if len(crc) < 4:
            raise ValueError(f"truncated inside its {kind.decode('latin-1')} chunk")
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", crc)[0]:
            raise ValueError(f"corrupt: bad CRC in its {kind.decode('latin-1')} chunk")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    w, h, depth, ctype, _, _, interlace = ihdr
    if interlace:
        raise ValueError("Adam7-interlaced 16-bit PNGs are not supported; re-save it without interlacing")
    nc = _CHANNELS_OF_TYPE[ctype]
    bpp = 2 * nc
    try:
        raw = zlib.decompress(b"".join(idat))
    except zlib.error as err:
        raise ValueError(f"corrupt image data ({err})") from None
    stride = 1 + w * bpp
    if len(raw) < h * stride:
        raise ValueError(f"truncated image data ({len(raw)} of {h * stride} bytes)")
    rows = np.frombuffer(raw, dtype=np.uint8, count=h * stride).reshape(h, stride)
    pixels = _paeth_unfilter(rows[:, 0], rows[:, 1:].reshape(h, w, bpp))
    return np.ascontiguousarray(pixels).view(">u2").reshape(h, w, nc).astype(np.uint16)


def _png_header(path: Path):
    with open(path, "rb") as f:
        head = f.read(33)
    if len(head) == 33 and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR":
        return struct.unpack(">IIBBBBB", head[16:29])
    return None


def read_image(source) -> np.ndarray:
    """Read an image file as uint8 or uint16 HxW (grey), HxWx2 (grey+alpha), HxWx3 (RGB) or HxWx4 (RGBA).
    16-bit PNGs keep 16 bits; palette images become RGB (RGBA with transparency); other modes become RGB.
    A missing, non-image, truncated or corrupt file raises one ``ValueError`` line naming it and the fix."""
    from PIL import Image

    path = Path(source)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass an existing PNG or JPEG image")
    fix = "pass a PNG or JPEG image (re-save the file if it is damaged)"
    try:
        header = _png_header(path)
        if header is not None and header[2] == 16 and header[3] in (2, 4, 6):
            return _read_png16(path)
        with Image.open(path) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
                return np.asarray(im).astype(np.uint16)
            if mode == "I":
                a = np.asarray(im)
                if a.size and (a.min() < 0 or a.max() > 65535):
                    raise ValueError("32-bit integer pixels outside 0..65535")
                return a.astype(np.uint16)
            if mode == "F":
                raise ValueError("32-bit float pixels are not supported; save it as a 16-bit PNG")
            if mode in ("L", "LA", "RGB", "RGBA"):  # copied in bands: no whole-image bytes copy besides PIL's
                w, h = im.size
                first = np.asarray(im.crop((0, 0, w, min(h, 256))))
                out = np.empty((h,) + first.shape[1:], dtype=first.dtype)
                out[:len(first)] = first
                for y in range(256, h, 256):
                    out[y:y + 256] = np.asarray(im.crop((0, y, w, min(h, y + 256))))
                return out
            if mode in ("1", "L"):
                return np.asarray(im.convert("L"))
            if mode == "La":
                return np.asarray(im.convert("LA"))
            if mode in ("P", "PA"):
                keep_alpha = mode == "PA" or "transparency" in im.info
                return np.asarray(im.convert("RGBA" if keep_alpha else "RGB"))
            if mode in ("RGBA", "RGBa"):
                return np.asarray(im.convert("RGBA"))
            return np.asarray(im.convert("RGB"))
    except ValueError as err:
        raise ValueError(f"{path}: not a readable image ({err}); {fix}") from None
    except Exception as err:  # PIL's UnidentifiedImageError, OSError (truncated), SyntaxError, bomb errors
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: not a readable image ({reason}); {fix}") from None


def upscale_file(model, channels: int, scale: int, source, out, tile: int = 256, overlap: int = 16,
                 progress: bool = True, compress_level: int = 6) -> Path:
    """Upscale the image file ``source`` by ``scale`` into the PNG ``out`` (same bit depth and channels), streamed
    band by band and written atomically: peak memory is the input, one band of output and one tile, and a failure
    leaves nothing behind. ``channels`` is the model's (1 or 3). Returns ``out``."""
    scale, tile, overlap = _check_params(scale, tile, overlap, channels)
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ValueError(f"{out}: the output is written as PNG; give it a .png name")
    if out.is_dir():
        raise ValueError(f"{out} is a folder; give the output file's name, e.g. {out / 'upscaled.png'}")
    image = read_image(source)
    h, w = image.shape[:2]
    nc = 1 if image.ndim == 2 else image.shape[2]
    with PNGWriter(out, w * scale, h * scale, nc, 16 if image.dtype == np.uint16 else 8, compress_level) as writer:
        for band in _iter_bands(model, image, channels, scale, tile, overlap, progress):
            writer.write_rows(band)
            del band
    return out
