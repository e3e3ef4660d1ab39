"""Inference engine of the paint server: a label map (and a style) in, an image out.

Two backends with one interface: :class:`OnnxBackend` runs an export folder (``gauguin export``) with
onnxruntime, the server's default; :class:`TorchBackend` runs a gauguin checkpoint with PyTorch
(for models or inputs the export does not cover). :class:`Engine` puts one worker thread in front
of a backend: requests wait in a bounded queue (a full queue is refused at once, never stalls the
server), and requests that arrive while a batch runs are stacked into the next batch.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import queue
import threading
from collections import OrderedDict
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

MODEL_JSON = "model.json"  # written by gauguin.serve.export next to the .onnx files


class RequestError(ValueError):
    """A request the model cannot take (bad label ids, wrong image); the server answers 4xx."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


class EngineBusy(RuntimeError):
    """The request queue is full; the server answers 503 and the client retries later."""


@dataclass(frozen=True)
class Label:
    id: int
    name: str
    color: tuple[int, int, int]


@dataclass
class ModelInfo:
    """What a client needs to paint for a model, and what the engine must feed it."""

    family: str
    labels: list[Label]
    image_size: tuple[int, int]  # (H, W) of the generator's input and output
    channels: int
    inputs: dict[str, tuple[str, int]]  # the generator's inputs: name -> (kind, size), as the family declares
    style_input: str = ""  # the input a style encoder's code stands for ("": no style encoder)
    source: str = ""

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def style_image(self) -> bool:
        return bool(self.style_input)

    @property
    def seeded(self) -> bool:
        """Whether the seed changes the image (the generator draws a style from it)."""
        return any(kind in ("normal", "uniform") for kind, _ in self.inputs.values())

    def to_dict(self) -> dict:
        return {"family": self.family, "image_size": list(self.image_size), "channels": self.channels,
                "labels": [{"id": label.id, "name": label.name, "color": list(label.color)} for label in self.labels],
                "style": {"seed": self.seeded, "image": self.style_image}}


def default_colors(num_labels: int) -> list[tuple[int, int, int]]:
    """gauguin's fixed label colours (the sample grids' colours) for models whose data has no palette."""
    from ..nn.labels import label_palette

    return [tuple(int(c) for c in row) for row in label_palette(num_labels).tolist()]


def require_label_maps(meta: dict, source: str, inputs: list[str] | None = None) -> int:
    """The label count of a model that paints label maps, from its meta (``meta.json`` / ``model.json``)
    and, where known, its generator's input names; ValueError for any other model. Cheap: checked
    before a checkpoint is loaded or exported."""
    data = meta.get("data") or meta
    num_labels = int(data.get("num_labels") or 0)
    if num_labels < 1 or (inputs is not None and "label_map" not in inputs):
        raise ValueError(f"{source} is a {meta.get('family')} model: it takes no label maps, so there is "
                         "nothing to paint (the painter needs SPADE, pix2pixHD or pix2pix with input=labels)")
    return num_labels


def model_info_from_meta(meta: dict, inputs: dict[str, tuple[str, int]], style_input: str, source: str) -> ModelInfo:
    """ModelInfo of a checkpoint's meta (``meta.json`` / the export's ``model.json``)."""
    data = meta.get("data") or meta
    num_labels = require_label_maps(meta, source, inputs)
    names = list(data.get("label_names") or []) or [f"label {i}" for i in range(num_labels)]
    palette = data.get("palette") or {}
    raw_ids = data.get("raw_to_index") or []
    colors = default_colors(num_labels)
    for raw, index in enumerate(raw_ids):  # a dataset palette is keyed by raw file ids
        if index >= 0 and str(raw) in palette:
            colors[index] = tuple(int(c) for c in palette[str(raw)])
    labels = [Label(i, names[i] if i < len(names) else f"label {i}", colors[i]) for i in range(num_labels)]
    size = data.get("image_size") or meta.get("image_size")
    return ModelInfo(family=meta.get("family", "?"), labels=labels, image_size=(int(size[0]), int(size[1])),
                     channels=int(data.get("channels", 3)), inputs=dict(inputs), style_input=style_input,
                     source=source)


class Backend(Protocol):
    info: ModelInfo

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Images ``[N, C, H, W]`` float32 in [-1, 1] for named inputs with batch axis N."""

    def encode(self, style: np.ndarray) -> np.ndarray:
        """Style codes ``[N, z_dim]`` of images ``[N, C, H, W]`` in [-1, 1]."""


def session_options(threads: int | None = None):
    """onnxruntime options: every graph optimisation, one intra-op thread per core (or ``OMP_NUM_THREADS``, the
    knob PyTorch reads too)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or int(os.environ.get("OMP_NUM_THREADS") or 0) or os.cpu_count() or 1
    options.inter_op_num_threads = 1
    return options


class OnnxBackend:
    """An export folder (``model.json`` + ``generator.onnx`` [+ ``style_encoder.onnx``]) on onnxruntime.

    ``precision``: "fp32" runs ``generator.onnx``; "int8" ``generator_int8.onnx`` (``gauguin export
    --quantize int8``); "auto" the int8 graph where the export measured its quality good enough
    (PSNR vs fp32 >= 30 dB), else fp32.
    """

    def __init__(self, folder: str | Path, threads: int | None = None, precision: str = "auto"):
        import onnxruntime as ort

        self.folder = Path(folder)
        meta_path = self.folder / MODEL_JSON
        if not meta_path.is_file():
            raise FileNotFoundError(f"{self.folder} holds no {MODEL_JSON}: pass a folder written by "
                                    "`gauguin export CHECKPOINT --format onnx --out DIR`, or a gauguin checkpoint")
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{meta_path} is not readable JSON ({err}); export the checkpoint again") from err
        graphs = meta.get("graphs") or {}
        if "generator.onnx" not in graphs and "generator_int8.onnx" not in graphs:
            raise ValueError(f"{meta_path} lists no generator.onnx (a safetensors export?); export with --format onnx")
        int8 = graphs.get("generator_int8.onnx", {}).get("quantization")
        if precision == "int8" and int8 is None:
            raise ValueError(f"{self.folder} has no int8 graph: export with `gauguin export CHECKPOINT --quantize int8`")
        if "generator.onnx" not in graphs and precision == "fp32":
            raise ValueError(f"{self.folder} holds the int8 graph only (a shipped model): serve it with --precision "
                             "auto or int8")
        if precision == "int8" or (precision == "auto" and int8 is not None and (
                int8["passed"] or "generator.onnx" not in graphs)):
            self.precision, file = "int8", "generator_int8.onnx"
        elif precision in ("auto", "fp32"):
            self.precision, file = "fp32", "generator.onnx"
        else:
            raise ValueError(f"onnxruntime runs precision fp32, int8 or auto, not {precision!r}")
        for name, entry in graphs.items():
            parity = entry.get("parity")
            if parity is not None and not parity["passed"]:
                raise ValueError(f"{self.folder / name} failed its parity check at export (max abs diff "
                                 f"{parity['max_abs_diff']:.3g}): it is not served; export the checkpoint again")
        options = session_options(threads)
        providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(self.folder / file), options, providers=providers)
        self.encoder, style_input = None, ""
        encoder = next(((name, g) for name, g in graphs.items() if g.get("replaces")), None)
        if encoder is None and "style_encoder.onnx" in graphs:  # exports before graphs declared their inputs
            encoder = "style_encoder.onnx", {"replaces": "z"}
        if encoder is not None:
            self.encoder = ort.InferenceSession(str(self.folder / encoder[0]), options, providers=providers)
            style_input = encoder[1]["replaces"]
        declared = graphs[file].get("declared_inputs")
        if declared is not None:
            inputs = {i["name"]: (i["kind"], int(i["size"])) for i in declared}
        else:  # older exports: the inputs' names said their kinds
            num_labels = int((meta.get("data") or {}).get("num_labels") or 0)
            kinds = {"label_map": ("label_map", num_labels), "instance": ("instance", 0),
                     "feature_draw": ("uniform", num_labels)}
            inputs = {i.name: kinds.get(i.name) or ("normal", int(i.shape[1])) for i in self.session.get_inputs()}
        self.info = model_info_from_meta(meta, inputs, style_input, str(self.folder))

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["image"], inputs)[0]

    def encode(self, style: np.ndarray) -> np.ndarray:
        return self.encoder.run(["mu"], {"style": style})[0]


def serving_copy(generator, precision: str = "fp32"):
    """``generator`` as :class:`TorchBackend` runs it: a copy with spectral norm folded into the weights (no σ
    per forward); for ``bf16`` also its conv / linear weights in bf16 (autocast then casts no weight per
    forward; norms keep fp32 statistics) and channels-last memory (what oneDNN's bf16 kernels want)."""
    import torch

    from ..nn.spectral import fold_spectral_norm

    served = fold_spectral_norm(generator).eval()
    if precision == "bf16":
        for module in served.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                module.to(torch.bfloat16)
        served.to(memory_format=torch.channels_last)
    return served


class TorchBackend:
    """A gauguin checkpoint on PyTorch (:func:`serving_copy`); ``bf16`` runs under bfloat16 autocast."""

    def __init__(self, checkpoint: str | Path, precision: str = "fp32", device: str = "cpu"):
        from ..sampling import load_generator

        if precision not in ("fp32", "bf16"):
            raise ValueError(f"PyTorch serves precision fp32 or bf16, not {precision!r}")
        self.loaded = load_generator(checkpoint, device)
        self.precision = precision
        self.generator = serving_copy(self.loaded.generator, precision)
        spec = self.loaded.spec
        self.encoder = spec.style_encoder
        inputs = {i.name: (i.kind, i.size) for i in spec.main.inputs}
        self.info = model_info_from_meta(self.loaded.meta, inputs, self.encoder.replaces if self.encoder else "",
                                         str(self.loaded.folder))

    def _autocast(self):
        import torch

        return torch.autocast(self.loaded.device.type, torch.bfloat16, enabled=self.precision == "bf16")

    def run(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        tensors = {k: torch.from_numpy(v).to(self.loaded.device) for k, v in inputs.items()}
        with torch.inference_mode(), self._autocast():
            return self.loaded.spec.main.run(self.generator, tensors).float().cpu().numpy()

    def encode(self, style: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), self._autocast():
            code = self.encoder.run(self.generator, {"style": torch.from_numpy(style).to(self.loaded.device)})
        return code[0].float().cpu().numpy()


class ImageGraph:
    """An exported image translator (one graph of an export folder taking one ``image`` input) as a
    callable on tensors ``[N, C, h, w]`` in [-1, 1], for tiled upscaling (``gauguin upscale``).
    ``scale``: how much larger its outputs are (1: a same-size translator)."""

    def __init__(self, folder: str | Path, threads: int | None = None, precision: str = "fp32"):
        import onnxruntime as ort

        self.folder = Path(folder)
        meta = json.loads((self.folder / MODEL_JSON).read_text())
        graphs = meta.get("graphs") or {}
        file = "generator_int8.onnx" if precision == "int8" else "generator.onnx"
        entry = graphs.get(file)
        declared = (entry or {}).get("declared_inputs") or []
        if entry is None or len(declared) != 1 or declared[0]["kind"] != "image":
            raise ValueError(f"{self.folder} holds no {file} taking one image (an export of an image model, "
                             f"--quantize int8 for int8); export the checkpoint again with `gauguin export`")
        if not entry.get("spatial", {}).get("dynamic"):
            raise ValueError(f"{self.folder / file} has fixed height and width; tiles need dynamic axes: export "
                             "the checkpoint again with this gauguin")
        self.name, self.channels, self.scale = declared[0]["name"], int(declared[0]["size"]), int(entry.get("scale", 1))
        self.session = ort.InferenceSession(str(self.folder / file), session_options(threads),
                                            providers=["CPUExecutionProvider"])

    def __call__(self, images):
        import torch

        return torch.from_numpy(self.session.run(["image"], {self.name: images.float().numpy()})[0])


# ---------------------------------------------------------------------------- request decoding
def resize_ids(ids: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An id map ``[H, W, ...]`` at ``size`` by nearest neighbour (pixel centres, as PyTorch's ``nearest-exact``)."""
    from ..data.semantic import nearest_indices

    h, w = ids.shape[:2]
    if (h, w) == tuple(size):
        return ids
    return ids[np.ix_(nearest_indices(h, size[0]), nearest_indices(w, size[1]))]


def open_png(data: bytes, what: str, max_pixels: int) -> Image.Image:
    """A decoded image of at most ``max_pixels``, checked before its pixels are decoded."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise RequestError(f"{what} is too large ({err})", 413) from err
    except Exception as err:  # PIL raises several types for undecodable bytes
        raise RequestError(f"{what} is not a readable image ({type(err).__name__}); send a PNG", 415) from err
    if image.width * image.height > max_pixels:
        raise RequestError(f"{what} is {image.width}x{image.height}: more than the server's limit of "
                           f"{max_pixels} pixels", 413)
    try:
        image.load()
    except Exception as err:
        raise RequestError(f"{what} is a truncated or corrupt image ({err})", 415) from err
    return image


def seeded_draws(seeds: list[int], kind: str, size: int) -> np.ndarray:
    """``[len(seeds), size]`` float32: for each seed the draw that ``gauguin translate --seed s`` (and
    :meth:`LoadedGenerator.translate`) makes for its first image (:func:`gauguin.models.inference.draw`
    from torch's CPU generator seeded with ``s``): one seed, one image, in the page, the CLI and the library."""
    import torch

    from ..models.inference import Input, draw

    spec = Input("", kind, size)
    return np.stack([draw(spec, 1, torch.Generator().manual_seed(seed))[0].numpy() for seed in seeds])


def generator_feeds(info: ModelInfo, label_maps: np.ndarray, seeds: list[int]) -> dict[str, np.ndarray]:
    """A generator's named inputs for a batch: the ids, and the style drawn from each seed."""
    feeds: dict[str, np.ndarray] = {}
    for name, (kind, size) in info.inputs.items():
        if kind in ("label_map", "instance"):  # a painted region is one instance
            feeds[name] = label_maps
        elif kind in ("normal", "uniform"):
            feeds[name] = seeded_draws(seeds, kind, size)
        else:
            raise ValueError(f"{info.source}: the engine cannot feed the generator input {name!r} ({kind})")
    return feeds


def read_as_training_does(reader, data: bytes, what: str):
    """``reader`` (a :mod:`gauguin.data.label_files` reader: what training decodes its files with)
    on a request's bytes, so that a request's pixels mean what the training files' pixels meant.
    Its errors become 415 naming ``what``."""
    from ..data.errors import BadDataError

    try:
        return reader(io.BytesIO(data), f"in the request's {what}")
    except BadDataError as err:
        raise RequestError(str(err), 415) from err


def decode_label_map(data: bytes, info: ModelInfo, max_pixels: int) -> np.ndarray:
    """Label ids ``[H, W]`` at the model's size from a PNG, its pixels read as training reads label files
    (:func:`gauguin.data.label_files.read_label_file`): grey (8- or 16-bit, bilevel, alpha dropped) or palette
    pixels are the ids, RGB(A) pixels are the labels' colours (``/api/labels``)."""
    from ..data.label_files import read_label_file

    image = open_png(data, "label_map", max_pixels)
    if image.format != "PNG":
        raise RequestError(f"label_map is a {image.format} image; send a PNG (lossy formats change the ids)", 415)
    pixels = read_as_training_does(read_label_file, data, "label_map")  # the modes training reads
    if pixels.ndim == 3:  # colours; resized first: they are looked up (and checked) on the model's pixels
        return colors_to_label_ids(resize_ids(pixels, info.image_size), info)
    if pixels.size and (int(pixels.max()) >= info.num_labels or int(pixels.min()) < 0):
        bad = np.unique(pixels[(pixels >= info.num_labels) | (pixels < 0)])[:8].tolist()
        raise RequestError(f"label_map holds label id(s) {bad}; this model has labels 0..{info.num_labels - 1} "
                           "(GET /api/labels)")
    return resize_ids(pixels, info.image_size).astype(np.int64)


def colors_to_label_ids(rgb: np.ndarray, info: ModelInfo) -> np.ndarray:
    from ..data.label_files import lookup_colors, unique_colors

    ids, unknown = lookup_colors(rgb, {label.id: label.color for label in info.labels})
    if unknown.any():
        shown = ["#%02x%02x%02x" % color for color in unique_colors(rgb[unknown][:, None, :])[:5]]
        raise RequestError(f"label_map has colour(s) {shown} that are no label's colour (GET /api/labels)")
    return ids.astype(np.int64)


def decode_style_image(data: bytes, info: ModelInfo, max_pixels: int) -> np.ndarray:
    """A style photo as ``[C, H, W]`` float32 in [-1, 1] at the model's size (bicubic), its pixels read as
    training reads photos (16-bit grey scaled to 8 bits, alpha on white)."""
    from ..data.label_files import model_pixels, read_rgb_image

    open_png(data, "style_image", max_pixels)  # a readable image within the pixel limit, or a 4xx
    image = read_as_training_does(read_rgb_image, data, "style_image")
    return model_pixels(image, info.image_size, info.channels)


def to_png(image: np.ndarray) -> bytes:
    """``[C, H, W]`` in [-1, 1] → PNG bytes (grey or RGB)."""
    pixels = np.clip((image + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8).transpose(1, 2, 0)
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(out, format="PNG")
    return out.getvalue()


# ---------------------------------------------------------------------------- the engine
@dataclass
class _Request:
    label_map: np.ndarray
    seed: int
    style: np.ndarray | None
    future: Future = field(default_factory=Future)
    key: bytes = b""


class Engine:
    """Thread-safe front of a backend: ``submit`` / ``generate`` may be called from any number of threads.

    One worker thread owns the backend. Requests wait in a queue of ``queue_size``; a full queue
    raises :class:`EngineBusy` at once. The worker takes every waiting request (up to ``max_batch``)
    into one batch, so concurrent clients share a forward pass. A request whose caller gave up
    (its future cancelled, e.g. after a timeout) is dropped before it costs a forward pass.
    The last ``cache_size`` images are kept by (map, seed, style): a request the page repeats (undo to
    a map it showed, a style it comes back to) is answered without a forward pass.
    """

    def __init__(self, backend: Backend, max_batch: int = 8, queue_size: int = 64, timeout_s: float = 60.0,
                 cache_size: int = 64):
        self.backend = backend
        self.info = backend.info
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self.cache_size = cache_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.cache_hits = 0
        self._queue: queue.Queue[_Request | None] = queue.Queue(maxsize=queue_size)
        self._closed = False
        self.served = 0
        self.batches = 0
        self._worker = threading.Thread(target=self._work, name="gauguin-engine", daemon=True)
        self._worker.start()

    def inputs(self, label_maps: np.ndarray, seeds: list[int], styles: np.ndarray | None) -> dict[str, np.ndarray]:
        """The generator's named inputs for a batch (:func:`generator_feeds`), with the encoder's code of
        each style image where there are style images."""
        feeds = generator_feeds(self.info, label_maps, seeds)
        if styles is not None:
            feeds[self.info.style_input] = self.backend.encode(styles).astype(np.float32)
        return feeds

    def submit(self, label_map: np.ndarray, seed: int = 0, style: np.ndarray | None = None) -> Future:
        """Queue one request: ``label_map`` ids ``[H, W]`` at the model's size; the future gives ``[C, H, W]``."""
        if tuple(label_map.shape) != self.info.image_size:
            raise RequestError(f"label map is {label_map.shape}, the model needs {self.info.image_size}")
        if style is not None and not self.info.style_image:
            raise RequestError("this model has no style encoder: it takes a seed, not a style image")
        if self._closed:
            raise EngineBusy("the engine is shut down")
        request = _Request(label_map.astype(np.int64, copy=False), int(seed), style)
        if self.cache_size > 0:  # the key is a hash of the map: skipped where nothing is cached
            request.key = self._key(request)
            with self._cache_lock:
                image = self._cache.get(request.key)
                if image is not None:
                    self._cache.move_to_end(request.key)
                    self.cache_hits += 1
                    request.future.set_result(image.copy())
                    return request.future
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            raise EngineBusy(f"{self._queue.maxsize} requests are waiting; try again shortly") from None
        return request.future

    def generate(self, label_map: np.ndarray, seed: int = 0, style: np.ndarray | None = None) -> np.ndarray:
        """One image ``[C, H, W]``; :class:`EngineBusy` if it is not done within ``timeout_s``."""
        future = self.submit(label_map, seed, style)
        try:
            return future.result(self.timeout_s)
        except FutureTimeout:
            raise self.give_up(future) from None

    def give_up(self, future: Future) -> EngineBusy:
        """After a timeout: cancel ``future`` (still queued, the worker drops it); the error to raise."""
        future.cancel()
        return EngineBusy(f"no image within {self.timeout_s:g} s (the server is overloaded); try again")

    def _key(self, request: _Request) -> bytes:
        digest = hashlib.blake2b(np.ascontiguousarray(request.label_map).tobytes(), digest_size=16)
        digest.update(str(request.label_map.shape).encode())
        if request.style is not None:
            digest.update(np.ascontiguousarray(request.style, np.float32).tobytes())
        else:
            digest.update(request.seed.to_bytes(8, "little", signed=False))
        return digest.digest()

    def _remember(self, request: _Request, image: np.ndarray) -> None:
        if self.cache_size < 1:
            return
        with self._cache_lock:
            self._cache[request.key] = image.copy()
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Finish the requests already queued, then stop the worker; later submits raise EngineBusy."""
        self._closed = True
        try:
            self._queue.put(None, timeout=self.timeout_s)
        except queue.Full:
            pass
        self._worker.join(timeout=self.timeout_s)

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True  # close(): finish this batch, then return
                    break
                batch.append(more)
            batch = [r for r in batch if r.future.set_running_or_notify_cancel()]  # callers that gave up: dropped
            # requests with a style image and requests with a seed go in separate passes
            for group in ([r for r in batch if r.style is None], [r for r in batch if r.style is not None]):
                if group:
                    self._run(group)

    def _run(self, group: list[_Request]) -> None:
        try:
            styles = np.stack([r.style for r in group]) if group[0].style is not None else None
            feeds = self.inputs(np.stack([r.label_map for r in group]), [r.seed for r in group], styles)
            images = self.backend.run(feeds)
            if len(images) != len(group):
                raise RuntimeError(f"the backend returned {len(images)} images for {len(group)} requests")
        except Exception as err:  # the worker never dies: each caller gets the error
            for request in group:
                request.future.set_exception(err)
            return
        self.batches += 1
        self.served += len(group)
        for request, image in zip(group, images):
            self._remember(request, image)
            request.future.set_result(image)
