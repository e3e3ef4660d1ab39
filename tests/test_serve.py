"""The paint server's engine and HTTP API: decoding, batching, the bounded queue, and every bad
request answered 4xx by a real uvicorn server on loopback, which stays healthy afterwards."""
import base64
import io
import json
import re
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from gauguin.models.inference import draw_inputs
from gauguin.sampling import resize_ids as torch_resize_ids
from gauguin.serve.app import Limits, PaintServer
from gauguin.serve.engine import (Engine, EngineBusy, Label, ModelInfo, OnnxBackend, RequestError, TorchBackend,
                                  colors_to_label_ids, decode_label_map, resize_ids)
from gauguin.serve.export import export


class FakeBackend:
    """Image = label ids / 10 + the style code's mean; optionally slow, to fill the queue."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None):
        self.info = ModelInfo("fake", [Label(i, f"l{i}", (i * 20, 0, 255 - i * 20)) for i in range(4)], (8, 8), 1,
                              {"label_map": ("label_map", 4), "z": ("normal", 4)}, style_input="z")
        self.delay, self.fail_on, self.batch_sizes = delay, fail_on, []

    def run(self, inputs):
        time.sleep(self.delay)
        self.batch_sizes.append(len(inputs["label_map"]))
        if self.fail_on is not None and (inputs["label_map"] == self.fail_on).any():
            raise RuntimeError("backend failure")
        return (inputs["label_map"][:, None] / 10.0 + inputs["z"].mean(1)[:, None, None, None]).astype(np.float32)

    def encode(self, style):
        return np.repeat(style.mean(axis=(1, 2, 3))[:, None], 4, 1)


def png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.fromarray(array, mode).save(out, format=fmt)
    return out.getvalue()


def test_resize_ids_matches_pytorch_nearest_exact():
    ids = np.random.default_rng(0).integers(0, 7, (37, 23))
    for size in [(32, 32), (74, 46), (11, 5)]:
        expected = torch_resize_ids(torch.from_numpy(ids), size).numpy()
        np.testing.assert_array_equal(resize_ids(ids, size), expected)


def test_decode_label_map_modes_and_errors():
    info = FakeBackend().info
    ids = np.zeros((16, 16), np.uint8)
    ids[4:12, 4:12] = 3
    np.testing.assert_array_equal(decode_label_map(png(ids), info, 10_000), ids[::2, ::2])
    colours = np.array([label.color for label in info.labels], np.uint8)[ids]
    np.testing.assert_array_equal(decode_label_map(png(colours), info, 10_000), ids[::2, ::2])
    np.testing.assert_array_equal(colors_to_label_ids(colours, info), ids)
    palette = Image.fromarray(ids, "L").convert("P")
    out = io.BytesIO()
    palette.save(out, format="PNG")
    assert decode_label_map(out.getvalue(), info, 10_000).max() == 3
    cases = [(png(ids + 5), 422, "label id(s) [5, 8]"), (png(colours + 1), 422, "no label's colour"),
             (png(ids.astype(np.float32) * 0 + 1, "F", "TIFF"), 415, "TIFF"), (png(colours, fmt="JPEG"), 415, "JPEG"),
             (b"not an image", 415, "not a readable image"),
             (png(ids), 413, "limit of 100 pixels")]
    for data, status, text in cases:
        with pytest.raises(RequestError, match=re.escape(text)) as err:
            decode_label_map(data, info, 100 if status == 413 else 10_000)
        assert err.value.status == status


def test_engine_batches_concurrent_requests_with_the_same_results():
    backend = FakeBackend(delay=0.05)
    engine = Engine(backend, max_batch=8, cache_size=0)  # every request runs
    maps = [np.full((8, 8), i % 4, np.int64) for i in range(12)]
    alone = [engine.generate(m, seed=i) for i, m in enumerate(maps)]
    assert backend.batch_sizes == [1] * 12
    futures = [engine.submit(m, seed=i) for i, m in enumerate(maps)]
    together = [f.result(10) for f in futures]
    for a, b in zip(alone, together):
        np.testing.assert_array_equal(a, b)
    assert max(backend.batch_sizes[12:]) > 1 and sum(backend.batch_sizes[12:]) == 12
    style = np.full((1, 8, 8), 0.5, np.float32)
    styled = engine.generate(maps[1], style=style)
    np.testing.assert_allclose(styled, maps[1][None] / 10 + 0.5)
    engine.close()


def test_engine_answers_a_repeated_request_from_its_cache():
    backend = FakeBackend()
    engine = Engine(backend, cache_size=2)
    maps = [np.full((8, 8), i, np.int64) for i in range(3)]
    first = engine.generate(maps[0], seed=5)
    expected = first.copy()
    first[:] = -9  # the caller's copy: the cache keeps its own
    np.testing.assert_array_equal(engine.generate(maps[0], seed=5), expected)
    assert len(backend.batch_sizes) == 1 and engine.cache_hits == 1
    engine.generate(maps[0], seed=6)  # another seed, another style: generated
    style = np.full((1, 8, 8), 0.25, np.float32)
    engine.generate(maps[0], style=style)
    engine.generate(maps[0], style=style)  # the same style image: cached
    assert len(backend.batch_sizes) == 3 and engine.cache_hits == 2
    engine.generate(maps[1], seed=5)  # the oldest entry (map 0, seed 5) leaves a cache of 2
    engine.generate(maps[0], seed=5)
    assert len(backend.batch_sizes) == 5
    engine.close()


def test_engine_queue_is_bounded_and_survives_backend_errors():
    engine = Engine(FakeBackend(delay=0.2, fail_on=3), max_batch=1, queue_size=2)
    ok = np.zeros((8, 8), np.int64)
    first = engine.submit(ok)
    time.sleep(0.05)  # the worker holds the first; two more fill the queue
    engine.submit(ok)
    engine.submit(ok)
    with pytest.raises(EngineBusy, match="2 requests are waiting"):
        engine.submit(ok)
    first.result(5)
    with pytest.raises(RuntimeError, match="backend failure"):
        engine.generate(np.full((8, 8), 3, np.int64))
    assert engine.generate(ok).shape == (1, 8, 8)  # still serving
    with pytest.raises(RequestError, match="needs \\(8, 8\\)"):
        engine.submit(np.zeros((4, 4), np.int64))
    engine.close()


# ---------------------------------------------------------------------------- the real server
def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def generate_body(label_png: bytes, **options) -> bytes:
    return json.dumps({"label_map": base64.b64encode(label_png).decode(), **options}).encode()


@pytest.fixture(scope="module")
def server(paint_checkpoint):
    with PaintServer(Engine(TorchBackend(paint_checkpoint)), limits=Limits(max_request_bytes=200_000,
                                                                           max_pixels=512 * 512)) as running:
        yield running


def test_api_generates_pngs_and_documents_itself(server):
    labels = json.loads(urllib.request.urlopen(server.url + "/api/labels").read())
    assert labels["image_size"] == [32, 32] and labels["channels"] == 1
    assert [label["name"] for label in labels["labels"]][:3] == ["background", "T-shirt/top", "Trouser"]
    assert labels["style"] == {"seed": True, "image": True}
    ids = np.zeros((64, 64), np.uint8)
    ids[10:54, 16:48] = 2  # trousers, painted at twice the model's size
    status, data, headers = post(server.url + "/api/generate", generate_body(png(ids), seed=1))
    assert status == 200 and headers["content-type"] == "image/png" and float(headers["x-gauguin-latency-ms"]) > 0
    image = Image.open(io.BytesIO(data))
    assert image.size == (32, 32) and image.mode == "L"
    assert post(server.url + "/api/generate", generate_body(png(ids), seed=1))[1] == data  # a seed is a style
    assert post(server.url + "/api/generate", generate_body(png(ids), seed=2))[1] != data
    colours = np.array([label["color"] for label in labels["labels"]], np.uint8)[ids]
    data_url = "data:image/png;base64," + base64.b64encode(png(colours)).decode()
    assert post(server.url + "/api/generate", json.dumps({"label_map": data_url, "seed": 1}).encode())[1] == data
    ids[10:54, 16:48] = 5  # trousers → coat
    assert post(server.url + "/api/generate", generate_body(png(ids), seed=1))[1] != data
    style = png(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    styled = post(server.url + "/api/generate", generate_body(png(ids), style_image=base64.b64encode(style).decode()))
    assert styled[0] == 200 and styled[1] != data
    spec = json.loads(urllib.request.urlopen(server.url + "/openapi.json").read())
    assert {"/api/generate", "/api/labels", "/api/health"} <= set(spec["paths"])


def test_bad_requests_get_clear_4xx_and_the_server_keeps_serving(server):
    url = server.url + "/api/generate"
    ids = np.zeros((32, 32), np.uint8)
    cases = {
        "malformed JSON": (b'{"label_map": ', 400, "not valid JSON"),
        "missing field": (b'{"seed": 1}', 400, "label_map"),
        "bad base64": (json.dumps({"label_map": "@@@"}).encode(), 400, "base64"),
        "not an image": (generate_body(b"GIF89a-nonsense"), 415, "not a readable image"),
        "JPEG label map": (generate_body(png(np.stack([ids] * 3, -1), fmt="JPEG")), 415, "send a PNG"),
        "16-bit ids out of range": (generate_body(png(ids.astype(np.uint16) + 300)), 422, "label id(s) [300]"),
        "ids out of range": (generate_body(png(ids + 11)), 422, "labels 0..10"),
        "image too large": (generate_body(png(np.zeros((600, 600), np.uint8))), 413, "262144 pixels"),
        "body too large": (b"{" + b" " * 300_000 + b"}", 413, "200000 bytes"),
        "bad style image": (generate_body(png(ids), style_image=base64.b64encode(b"xx").decode()), 415, "style_image"),
    }
    for name, (body, status, text) in cases.items():
        got, data, _ = post(url, body)
        assert got == status, (name, got, data)
        assert text in json.loads(data)["detail"], (name, data)
    for path in ["/static/../pyproject.toml", "/static/%2e%2e/app.py", "/static/nothing.js"]:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + path)
        assert err.value.code == 404, path
    health = json.loads(urllib.request.urlopen(server.url + "/api/health").read())
    assert health["status"] == "ok" and health["waiting"] == 0
    assert post(url, generate_body(png(ids)))[0] == 200


def test_concurrent_clients_all_get_their_images(server):
    ids = [np.full((32, 32), i % 11, np.uint8) for i in range(24)]
    results = {}

    def client(k):
        for i in range(k, 24, 6):
            results[i] = post(server.url + "/api/generate", generate_body(png(ids[i]), seed=i))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(24)) and all(r[0] == 200 for r in results.values())
    again = post(server.url + "/api/generate", generate_body(png(ids[5]), seed=5))
    alone, batched = (np.asarray(Image.open(io.BytesIO(r[1])), np.int16) for r in (again, results[5]))
    assert np.abs(alone - batched).max() <= 1  # batched or alone, the same image (up to rounding)


@pytest.mark.parametrize("source", ["checkpoint", "shipped default"])
def test_paint_cli_serves_a_checkpoint_or_the_default_model(source, paint_checkpoint, tmp_path):
    """`gauguin paint CHECKPOINT` (exported once, cached) and `gauguin paint` (the shipped bundle, nothing
    exported or trained): the page and the API answer; the backend is picked by timing the passing paths."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:  # a free port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    given = [str(paint_checkpoint)] if source == "checkpoint" else []
    process = subprocess.Popen([sys.executable, "-m", "gauguin.cli", "paint", *given, "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        while True:
            try:
                health = json.loads(urllib.request.urlopen(url + "/api/health", timeout=5).read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert process.poll() is None and time.time() < deadline, process.stdout.read()
                time.sleep(0.5)
        assert health["family"] == "spade"
        page = urllib.request.urlopen(url + "/").read().decode()
        assert "gauguin paint" in page
        status, data, _ = post(url + "/api/generate", generate_body(png(np.full((32, 32), 4, np.uint8)), seed=3))
        assert status == 200 and Image.open(io.BytesIO(data)).size == (32, 32)
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"open http://127.0.0.1:{port}" in output, output
    exports = tmp_path / "cache" / "gauguin" / "paint" / "exports"
    if source == "checkpoint":
        assert "exporting" in output and "serving the fastest" in output
        assert [(e / "generator.onnx").is_file() and (e / "style_encoder.onnx").is_file() for e in exports.iterdir()] \
            == [True]
    else:
        assert "exporting" not in output and "training" not in output and not exports.exists()
        assert "OnnxBackend int8" in output  # the shipped bundle holds the int8 graphs


@pytest.mark.slow
def test_the_default_model_bundle_is_built_verified_and_served(tmp_path, monkeypatch):
    """`gauguin paint --retrain`'s build (tiny widths, 2 steps): a bundle of the int8 graphs (generator and
    style encoder, each PSNR-checked) and a manifest; a damaged file is named with the fix; a failed rebuild
    leaves the old bundle."""
    from gauguin.experiments import paint_model
    from gauguin.serve import paint_models

    monkeypatch.setattr(paint_model, "work_dir", lambda: tmp_path / "work")
    monkeypatch.setattr(paint_model, "RECIPE", {**paint_model.RECIPE, "ngf": 8, "ndf": 8, "batch_size": 4,
                                                "steps": 2, "checkpoint_every": 2})
    monkeypatch.setattr(paint_model, "SCORED_MAPS", 8)
    lines = []
    bundle = tmp_path / "bundle"
    manifest = paint_model.build(bundle, progress=False, log=lines.append)
    assert "training the default model" in lines[0] and lines[-1].startswith(f"gauguin paint: wrote {bundle}")
    assert manifest["step"] == 2 and manifest["recipe"]["ngf"] == 8 and manifest["config"]["ngf"] == 8
    assert set(manifest["files"]) == {"export/model.json", "export/generator_int8.onnx",
                                      "export/style_encoder_int8.onnx"}
    assert set(manifest["metrics"]["int8_psnr_db_vs_fp32"]) == {"generator_int8.onnx", "style_encoder_int8.onnx"}
    assert 0 <= manifest["metrics"]["segmentation"]["generated"]["miou"] <= 1
    assert paint_models.read_bundle(bundle) == manifest == json.loads((bundle / "manifest.json").read_text())
    assert paint_models.serving_paths(bundle / "export", None) == [("onnx", "int8")]
    with pytest.raises(ValueError, match="holds the int8 graph only"):
        OnnxBackend(bundle / "export", precision="fp32")
    backend = paint_models.load_backend(bundle, log=lines.append)  # one passing path: served, not timed
    assert backend.info.num_labels == 11 and backend.info.style_image and backend.precision == "int8"
    engine = Engine(backend)
    assert engine.generate(np.zeros((32, 32), np.int64), style=np.zeros((1, 32, 32), np.float32)).shape == (1, 32, 32)
    engine.close()
    onnx = bundle / "export" / "generator_int8.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(paint_models.DamagedModelError, match=r"generator_int8.onnx does not match the sha256 in .*"
                                                             r"manifest.json .*reinstall gauguin .*--retrain"):
        paint_models.load_backend(bundle)
    (bundle / "manifest.json").write_text("{")
    with pytest.raises(paint_models.DamagedModelError, match="is not a readable model manifest"):
        paint_models.read_bundle(bundle)
    before = {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()}
    monkeypatch.setattr(paint_model, "score", lambda checkpoint: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        paint_model.build(bundle, progress=False, log=lines.append)
    assert {p: p.read_bytes() for p in bundle.rglob("*") if p.is_file()} == before  # nothing saved is lost


def test_the_shipped_default_model_verifies_and_serves_without_the_training_loop(tmp_path):
    """The bundle in the package matches its manifest and the recipe of `gauguin paint --retrain`, stays small,
    and serving it (backend choice, app) imports neither the training loop nor the experiments."""
    import subprocess
    import sys

    from gauguin.experiments import paint_model
    from gauguin.serve.paint_models import SHIPPED, read_bundle

    manifest = read_bundle(SHIPPED)
    assert manifest["recipe"] == paint_model.RECIPE and manifest["name"].endswith(paint_model.VERSION)
    assert sum(entry["bytes"] for entry in manifest["files"].values()) < 20 * 2**20
    assert manifest["metrics"]["segmentation"]["generated"]["miou"] > 0.3  # follows its maps (real: ~0.6)
    code = ("import sys; from gauguin.serve.paint_models import SHIPPED, load_backend; "
            "from gauguin.serve.app import create_app; from gauguin.serve.engine import Engine; import gauguin.cli; "
            "engine = Engine(load_backend(SHIPPED, log=lambda line: None)); create_app(engine); "
            "print(engine.generate(__import__('numpy').zeros((32, 32), int), 3).shape); "
            "print(sorted(m for m in sys.modules if m.startswith(('gauguin.training', 'gauguin.experiments'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["(1, 32, 32)", "[]"]


def test_serving_paths_are_the_quality_passing_ones(tmp_path):
    """`--backend auto` times only the paths whose PSNR vs fp32 passed at export, and fp32; explicit choices
    are honoured where a backend runs them and refused in one line where none does."""
    from gauguin.serve.paint_models import serving_paths

    def folder(int8: bool | None, bf16: bool | None):
        out = tmp_path / f"e{int8}{bf16}"
        out.mkdir()
        graphs = {"generator.onnx": {}}
        if int8 is not None:
            graphs["generator_int8.onnx"] = {"quantization": {"passed": int8}}
        quality = {} if bf16 is None else {"torch-bf16": {"passed": bf16}}
        (out / "model.json").write_text(json.dumps({"graphs": graphs, "quality": quality}))
        return out

    checkpoint = tmp_path / "ckpt"
    both = folder(True, True)
    assert serving_paths(both, checkpoint) == [("torch", "bf16"), ("onnx", "int8"), ("torch", "fp32"), ("onnx", "fp32")]
    assert serving_paths(both, None) == [("onnx", "int8"), ("onnx", "fp32")]  # an export alone: onnxruntime
    assert serving_paths(folder(False, False), checkpoint) == [("torch", "fp32"), ("onnx", "fp32")]
    assert serving_paths(folder(None, None), checkpoint, "onnx") == [("onnx", "fp32")]
    assert serving_paths(both, checkpoint, "torch", "fp32") == [("torch", "fp32")]
    assert serving_paths(folder(False, None), checkpoint, "auto", "int8") == [("onnx", "int8")]  # asked: served
    assert serving_paths(both, checkpoint, "auto", "bf16") == [("torch", "bf16")]
    for args, message in (((both, None, "torch"), "runs on onnxruntime only"),
                          ((both, checkpoint, "torch", "int8"), "runs fp32 or bf16, not int8"),
                          ((both, checkpoint, "onnx", "bf16"), "runs fp32 or int8, not bf16")):
        with pytest.raises(ValueError, match=message):
            serving_paths(*args)


def test_psnr_by_hand():
    from gauguin.serve.quantize import psnr_db

    reference = np.zeros((1, 1, 4, 4), np.float32)
    assert psnr_db(reference, reference + 0.1) == pytest.approx(10 * np.log10(255**2 / 12.75**2))  # 26.02 dB
    assert psnr_db(reference, reference) == float("inf")


@pytest.mark.slow
def test_int8_export_is_checked_and_chosen_only_when_good(paint_checkpoint, tmp_path):
    import onnxruntime as ort

    from gauguin.serve.engine import OnnxBackend
    from gauguin.serve.export import export
    from gauguin.serve.quantize import psnr_db

    description = export(paint_checkpoint, tmp_path / "onnx", quantize="int8")
    quality = description["graphs"]["generator_int8.onnx"]["quantization"]
    assert quality["inputs"] == "fashion-mnist training data: items 0..15 calibrate, items 16..31 check"
    assert quality["calibration_inputs"] == quality["check_inputs"] == 16
    assert quality["passed"] == (quality["psnr_db_min"] >= 30.0)
    ids = np.zeros((1, 32, 32), np.int64)
    ids[0, 6:26, 8:24] = 2
    feeds = {"label_map": ids, "z": np.random.default_rng(0).standard_normal((1, 256), dtype=np.float32)}
    fp32, int8 = (ort.InferenceSession(str(tmp_path / "onnx" / f)).run(["image"], feeds)[0]
                  for f in ("generator.onnx", "generator_int8.onnx"))
    assert 15 < psnr_db(fp32, int8) < 100 and np.abs(fp32 - int8).max() > 0  # quantized, close to fp32
    model_json = tmp_path / "onnx" / "model.json"
    for passed, expected in ((True, "int8"), (False, "fp32")):
        meta = json.loads(model_json.read_text())
        meta["graphs"]["generator_int8.onnx"]["quantization"]["passed"] = passed
        model_json.write_text(json.dumps(meta))
        assert OnnxBackend(tmp_path / "onnx").precision == expected
    assert OnnxBackend(tmp_path / "onnx", precision="int8").precision == "int8"
    export(paint_checkpoint, tmp_path / "plain")
    with pytest.raises(ValueError, match="--quantize int8"):
        OnnxBackend(tmp_path / "plain", precision="int8")


def test_engine_drops_cancelled_requests_and_refuses_after_close():
    backend = FakeBackend(delay=0.2)
    engine = Engine(backend, max_batch=1, cache_size=0)  # the repeated map runs again
    ok = np.zeros((8, 8), np.int64)
    first, second = engine.submit(ok), engine.submit(ok)
    assert second.cancel()  # its caller gave up while it waited
    first.result(5)
    assert engine.generate(ok).shape == (1, 8, 8)  # the worker lives on
    assert backend.batch_sizes == [1, 1]  # the cancelled request cost no forward pass
    short = Engine(FakeBackend(), timeout_s=0.05)
    short.backend.run = lambda feeds: np.zeros((0, 1, 8, 8), np.float32)  # a backend that loses images
    with pytest.raises(RuntimeError, match="returned 0 images for 1 requests"):
        short.submit(ok).result(5)
    engine.close()
    with pytest.raises(EngineBusy, match="shut down"):
        engine.submit(ok)


def test_timeouts_and_chunked_bodies_over_the_limit_get_clear_answers():
    import http.client

    engine = Engine(FakeBackend(delay=0.5), max_batch=1, timeout_s=0.2)
    with PaintServer(engine, limits=Limits(max_request_bytes=2_000)) as server:
        body = generate_body(png(np.zeros((8, 8), np.uint8)))
        status, data, headers = post(server.url + "/api/generate", body)
        assert status == 503 and "no image within 0.2 s" in json.loads(data)["detail"] and headers["retry-after"] == "1"

        def chunked(payload: bytes) -> tuple[int, bytes]:
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            chunks = (payload[i:i + 500] for i in range(0, len(payload), 500))
            connection.request("POST", "/api/generate", chunks, {"Content-Type": "application/json"},
                               encode_chunked=True)
            response = connection.getresponse()
            return response.status, response.read()

        status, data = chunked(b'{"label_map": "' + b"A" * 5_000 + b'"}')
        assert status == 413 and "2000 bytes" in json.loads(data)["detail"]
        engine.timeout_s = 5
        status, data = chunked(body)  # under the limit: passes whole
        assert status == 200 and Image.open(io.BytesIO(data)).size == (8, 8)
        assert json.loads(urllib.request.urlopen(server.url + "/api/health").read())["status"] == "ok"


def test_an_export_that_failed_its_parity_check_is_not_served(paint_checkpoint, tmp_path):
    from gauguin.serve.engine import OnnxBackend
    from gauguin.serve.export import export

    export(paint_checkpoint, tmp_path / "onnx")
    model_json = tmp_path / "onnx" / "model.json"
    meta = json.loads(model_json.read_text())
    meta["graphs"]["generator.onnx"]["parity"]["passed"] = False
    model_json.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="failed its parity check .* export the checkpoint again"):
        OnnxBackend(tmp_path / "onnx")


@pytest.mark.slow
def test_a_failed_quantization_leaves_an_fp32_export_to_serve(paint_checkpoint, tmp_path, monkeypatch):
    from gauguin.serve import export as export_module
    from gauguin.serve.engine import OnnxBackend
    from gauguin.serve.paint_models import export_for_serving

    def broken(*args):
        raise RuntimeError("no kernel for this op")

    monkeypatch.setattr(export_module, "quantize_int8", broken)
    with pytest.raises(export_module.QuantizationError, match="no kernel for this op.*without --quantize"):
        export_module.export(paint_checkpoint, tmp_path / "first", quantize="int8")
    assert not (tmp_path / "first").exists()  # nothing written
    lines = []
    export_for_serving(paint_checkpoint, tmp_path / "served", lines.append)
    assert "serving fp32" in lines[0] and OnnxBackend(tmp_path / "served").precision == "fp32"


# ---------------------------------------------------------------------------- reliability (issue 15, item 9)
def one_line_detail(data: bytes) -> str:
    detail = json.loads(data)["detail"]
    assert isinstance(detail, str) and "\n" not in detail, detail
    return detail


def test_a_body_that_is_not_sent_as_json_gets_415_saying_so(server):
    import http.client

    body = generate_body(png(np.zeros((32, 32), np.uint8)))
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]:
        status, data, _ = post(server.url + "/api/generate", body, content_type)  # curl -d: a form
        assert status == 415, (content_type, data)
        detail = one_line_detail(data)
        assert content_type in detail and "send Content-Type: application/json" in detail
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("POST", "/api/generate", body)  # no Content-Type at all
    response = connection.getresponse()
    assert response.status == 415 and "(none)" in one_line_detail(response.read())
    assert post(server.url + "/api/generate", body, "application/json; charset=utf-8")[0] == 200


def test_a_seed_must_be_a_json_integer_in_range(server):
    ids = png(np.zeros((32, 32), np.uint8))
    for seed, shown in [(True, "true"), ("7", '"7"'), (2.0, "2.0"), (None, "null"), (-1, "-1"), (2**63, str(2**63))]:
        status, data, _ = post(server.url + "/api/generate", generate_body(ids, seed=seed))
        assert status == 422, (seed, data)
        assert one_line_detail(data) == (f"seed is {shown}; send a JSON integer in 0..{2**63 - 1} "
                                         "(no quotes, no decimal point)")
    assert post(server.url + "/api/generate", generate_body(ids, seed=2**63 - 1))[0] == 200
    assert post(server.url + "/api/generate", generate_body(ids, seed=7))[0] == 200


def test_label_maps_in_every_mode_training_reads_are_accepted_as_training_reads_them(server, tmp_path):
    from gauguin.data.label_files import read_label_file

    info = FakeBackend().info
    ids = np.zeros((16, 16), np.uint8)
    ids[4:12, 4:12] = 3
    ids[0, :4] = 1
    images = {"I;16": Image.fromarray(ids.astype(np.uint16)), "LA": Image.fromarray(np.stack([ids, ids * 0 + 9], -1)),
              "1": Image.fromarray(ids > 0).convert("1")}
    for mode, image in images.items():
        path = tmp_path / f"{mode.replace(';', '_')}.png"
        image.save(path)
        data = path.read_bytes()
        assert Image.open(io.BytesIO(data)).mode == mode
        expected = read_label_file(path)  # what training reads
        np.testing.assert_array_equal(decode_label_map(data, info, 10_000), resize_ids(expected, (8, 8)), err_msg=mode)
    np.testing.assert_array_equal(decode_label_map(png(ids.astype(np.uint16)), info, 10_000), resize_ids(ids, (8, 8)))
    with pytest.raises(RequestError, match=re.escape("label id(s) [1000]")) as err:
        decode_label_map(png(ids.astype(np.uint16) * 0 + 1000), info, 10_000)
    assert err.value.status == 422
    big = np.zeros((32, 32), np.uint16)
    big[8:24, 8:24] = 2
    for image in (Image.fromarray(big), Image.fromarray(big > 0).convert("1")):  # through the real server
        out = io.BytesIO()
        image.save(out, format="PNG")
        status, data, _ = post(server.url + "/api/generate", generate_body(out.getvalue(), seed=1))
        assert status == 200, data


def test_a_16_bit_style_image_is_scaled_as_training_scales_it(tmp_path):
    from gauguin.data.label_files import model_pixels, read_rgb_image
    from gauguin.serve.engine import decode_style_image

    info = FakeBackend().info
    grey = np.linspace(0, 65535, 16 * 16).reshape(16, 16).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "style.png")
    data = (tmp_path / "style.png").read_bytes()
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    style = decode_style_image(data, info, 10_000)
    expected = model_pixels(read_rgb_image(tmp_path / "style.png"), info.image_size, info.channels)  # training's
    np.testing.assert_array_equal(style, expected)
    assert (style >= 0.99).mean() < 0.2 and style.min() < -0.9  # not clipped white
    rgba = np.zeros((16, 16, 4), np.uint8)  # transparent: on white, as in training
    np.testing.assert_array_equal(decode_style_image(png(rgba), info, 10_000), np.ones((1, 8, 8), np.float32))


def test_a_request_limit_that_refuses_everything_is_refused_at_start(monkeypatch, capsys):
    from gauguin import cli
    from gauguin.serve import paint_models

    for size in (0, -1 << 20):
        with pytest.raises(ValueError, match=re.escape(f"max_request_bytes is {size} (--max-request-mb")):
            Limits(max_request_bytes=size)
    for bad in (dict(max_pixels=0), dict(read_timeout_s=0), dict(read_timeout_s=-1.0)):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} is"):
            Limits(**bad)
    loaded = []
    monkeypatch.setattr(paint_models, "load_backend", lambda *a, **k: loaded.append(a) or 1 / 0)
    for mb in ("0", "-1"):
        assert cli.main(["paint", "runs/x", "--port", "0", "--max-request-mb", mb]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"gauguin: error: max_request_bytes is {int(mb) << 20} (--max-request-mb {mb}): "), err
        assert err.count("\n") == 1 and "--max-request-mb 8" in err
    assert loaded == []  # refused before any model is loaded


def test_head_health_answers_200_without_a_body(server):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("HEAD", "/api/health")
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b""
    assert json.loads(urllib.request.urlopen(server.url + "/api/health").read())["status"] == "ok"


def test_a_stalled_request_body_gets_408_and_its_connection_closed():
    import socket

    with PaintServer(Engine(FakeBackend()), limits=Limits(read_timeout_s=1.0)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as client:
            client.sendall(b"POST /api/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 1000\r\n\r\n" + b'{"label_map": "AAAA')  # then nothing
            start, answer = time.time(), b""
            while chunk := client.recv(65536):  # until the server closes the connection
                answer += chunk
            waited = time.time() - start
        assert 0.9 < waited < 5, waited
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), answer
        assert one_line_detail(body) == ("request body stalled: no data for 1 s after 19 bytes; send the whole body "
                                         "at once")
        body = generate_body(png(np.zeros((8, 8), np.uint8)))
        assert post(server.url + "/api/generate", body)[0] == 200  # still serving


def test_paint_refuses_a_model_without_label_maps_before_exporting_it(tmp_path, monkeypatch):
    from conftest import tiny_config
    from gauguin.serve import paint_models
    from gauguin.training import train

    checkpoint = train("dcgan", tiny_config(tmp_path / "dcgan", steps=2, eval_every=0))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exported = []
    monkeypatch.setattr(paint_models, "export_for_serving", lambda *args: exported.append(args))
    with pytest.raises(ValueError, match="is a dcgan model: it takes no label maps, so there is nothing to paint"):
        paint_models.load_backend(checkpoint)
    assert exported == [] and not (tmp_path / "cache").exists()  # nothing exported, nothing cached


def test_a_busy_port_is_named_with_the_fix(monkeypatch, capsys):
    import socket

    from gauguin import cli
    from gauguin.serve import paint_models

    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        message = f"port {port} on 127.0.0.1 is in use; pass --port N or stop the other server"
        engine = Engine(FakeBackend())
        with pytest.raises(OSError) as err:
            PaintServer(engine, port=port)
        assert str(err.value) == message
        engine.close()
        loaded = []
        monkeypatch.setattr(paint_models, "load_backend", lambda *a, **k: loaded.append(a) or 1 / 0)
        assert cli.main(["paint", "--port", str(port)]) == 1
        assert capsys.readouterr().err == f"gauguin: error: {message}\n"
        assert loaded == []  # refused before the model is loaded (or the default model trained)


def test_one_seed_gives_the_page_and_translate_the_same_image(server, paint_checkpoint, tmp_path):
    """The page's image for (label map, seed) is `gauguin translate --seed`'s and the library's."""
    import io

    from PIL import Image

    from gauguin.cli import main
    from gauguin.sampling import load_generator

    ids = np.zeros((32, 32), np.uint8)
    ids[6:26, 8:24] = 3
    ids[12:20, 2:30] = 7
    Image.fromarray(ids).save(tmp_path / "map.png")
    loaded = load_generator(paint_checkpoint)
    export(paint_checkpoint, tmp_path / "export")
    onnx_engine = Engine(OnnxBackend(tmp_path / "export", precision="fp32"))
    for seed in (0, 7, 2**40 + 3):
        status, body, _ = post(server.url + "/api/generate", generate_body((tmp_path / "map.png").read_bytes(),
                                                                          seed=seed))
        assert status == 200
        page = np.asarray(Image.open(io.BytesIO(body)), np.int16)
        library = loaded.translate(loaded.read_label_map(tmp_path / "map.png"), n=1, seed=seed)[0, 0]
        expected = np.clip((library.numpy() + 1) * 127.5 + 0.5, 0, 255).astype(np.int16)
        assert np.abs(page - expected).max() <= 1, seed  # the same image, to PNG rounding
        assert main(["translate", str(paint_checkpoint), "--labels", str(tmp_path / "map.png"), "--seed", str(seed),
                     "--out", str(tmp_path / f"cli{seed}")]) == 0
        cli = np.asarray(Image.open(tmp_path / f"cli{seed}" / f"map_seed{seed}_00.png"), np.int16)
        assert np.abs(page - cli).max() <= 1, seed
        # before the PNG's rounding: the engine's style code is translate's, and so is its image
        label_map = loaded.read_label_map(tmp_path / "map.png")
        engine = server.engine
        feeds = engine.inputs(label_map[None].numpy(), [seed], None)
        drawn = draw_inputs(loaded.spec.main, 1, torch.Generator().manual_seed(seed), {"label_map": label_map[None]})
        assert np.array_equal(feeds["z"], drawn["z"].numpy())
        image = engine.generate(label_map.numpy(), seed)
        assert np.abs(image - library.numpy()).max() < 1e-4, seed
        exported = onnx_engine.generate(label_map.numpy(), seed)  # the export: the same draw, the same image
        assert np.abs(exported - library.numpy()).max() < 1e-3, seed
    other = post(server.url + "/api/generate", generate_body((tmp_path / "map.png").read_bytes(), seed=8))[1]
    assert not np.array_equal(np.asarray(Image.open(io.BytesIO(other)), np.int16), page)  # seeds do matter
