"""The paint server's inference path against PyTorch, and the server under load, in one process.

1. Forward time of the SPADE generator at the paper's ADE20K config (256x256, 151 label channels,
   ngf 64, no style encoder), batch 1, on one label map of 16x16-pixel regions: PyTorch fp32 eager
   (the baseline), PyTorch under bf16 autocast with channels-last, onnxruntime on gauguin's export
   (``gauguin export``: spectral norm folded, every graph optimisation) in fp32 and int8
   (``--quantize int8``), and the engine the server runs (label-map PNG in → PNG out, through the
   worker queue, on the int8 graph).

   Random weights make a chaotic network: a rounding anywhere can flip saturated pixels, so the PSNR of
   int8 (or bf16) against fp32 printed here is no measure of their quality. That is measured on a
   trained model: the export's check (``model.json``), printed at the end for the painter's default
   model when it is in the cache (``gauguin paint`` trains it once). Weights are random (timing does not depend
   on them; none can be downloaded here; PyTorch's default init, so the images span [-1, 1]); outputs
   are compared with the fp32 eager ones (PSNR on the 0..255 scale the server returns).
2. Load: ``--requests`` requests from ``--clients`` concurrent HTTP clients against the real server
   (uvicorn on loopback) serving that export: errors, throughput, p50 / p95 latency.

    python bench/serve.py            # ADE20K config 256², load 200 requests from 16 clients
    python bench/serve.py --quick    # CI: tiny widths at 64 px, 20 requests from 4 clients
"""
from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gauguin.models import DataInfo, get_family  # noqa: E402
from gauguin.serve.app import PaintServer  # noqa: E402
from gauguin.serve.engine import Engine, OnnxBackend, decode_label_map, to_png  # noqa: E402
from gauguin.serve.export import export  # noqa: E402
from gauguin.serve.paint_models import exported_checkpoint  # noqa: E402
from gauguin.training.paint_default import default_run_dir  # noqa: E402
from gauguin.serve.quantize import psnr_db  # noqa: E402
from gauguin import checkpoint as ckpt  # noqa: E402


def make_checkpoint(folder: Path, size: int, ngf: int, labels: int) -> Path:
    """A gauguin checkpoint of a freshly initialised SPADE generator (what a trained one looks like on disk)."""
    family_cls = get_family("spade")
    cfg = family_cls.config_class.from_dict({"dataset": "ade20k:/no-data-here", "image_size": size, "channels": 3, "ngf": ngf, "ndf": 16,
                                             "use_vae": False, "out_dir": str(folder)})
    data = DataInfo(num_labels=labels, label_names=[f"label {i}" for i in range(labels)], image_size=(size, size),
                    channels=3, raw_to_index=list(range(labels)))
    torch.manual_seed(0)
    family = family_cls(cfg, data)
    for module in family.generator.modules():  # PyTorch's default init: outputs over the whole range
        if isinstance(module, torch.nn.Conv2d):  # (SPADE's N(0, 0.02) init gives images of ~1e-6)
            module.reset_parameters()
    meta = {"format": "gauguin-checkpoint-1", "family": "spade", "config": cfg.to_dict(), "num_classes": 1,
            "classes": [], "data": data.to_dict(), "step": 0, "time": "random weights"}
    weights = ckpt.module_state("generator", family.generator)
    return ckpt.save_checkpoint(folder / "checkpoints" / "step_0000000", {"weights.safetensors": weights}, meta)


def blocky_label_map(size: int, labels: int, block: int = 16, seed: int = 0) -> np.ndarray:
    cells = np.random.default_rng(seed).integers(0, labels, (size // block, size // block))
    return cells.repeat(block, 0).repeat(block, 1).astype(np.int64)


def best_time(fn, rounds: int) -> float:
    fn()  # warm-up: primitive creation, graph optimisation
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def forward_times(folder: Path, checkpoint: Path, size: int, labels: int, rounds: int) -> dict:
    from gauguin.sampling import load_generator

    loaded = load_generator(checkpoint)
    ids = blocky_label_map(size, labels)
    inputs = {"label_map": torch.from_numpy(ids)[None]}
    run, G = loaded.spec.main.run, loaded.generator
    with torch.inference_mode():
        reference = run(G, inputs).float().numpy()

    def eager_fp32():
        with torch.inference_mode():
            return run(G, inputs)

    G_cl = copy.deepcopy(G).to(memory_format=torch.channels_last)  # .to() is in place: a copy

    def eager_bf16():
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            return run(G_cl, inputs)

    with torch.inference_mode():
        bf16_out = eager_bf16().float().numpy()

    backend, fp32 = OnnxBackend(folder, precision="int8"), OnnxBackend(folder, precision="fp32")
    feeds = {"label_map": ids[None]}
    ort_out, server_out = fp32.run(feeds), backend.run(feeds)
    engine = Engine(backend, max_batch=1)
    label_png = io.BytesIO()
    Image.fromarray(ids.astype(np.uint8)).save(label_png, format="PNG")
    data = label_png.getvalue()

    def server_path():  # what POST /api/generate runs after JSON parsing
        return to_png(engine.generate(decode_label_map(data, backend.info, 1 << 24), seed=0))

    results = {}
    server = f"server path: onnxruntime {backend.precision}, engine, PNG in/out"
    for name, fn in (("pytorch fp32 eager", eager_fp32), ("pytorch bf16 channels-last", eager_bf16),
                     ("onnxruntime fp32", lambda: fp32.run(feeds)), (f"onnxruntime {backend.precision}", lambda: backend.run(feeds)),
                     (server, server_path)):
        results[name] = best_time(fn, rounds)
    engine.close()
    quality = {"pytorch bf16 channels-last": bf16_out, "onnxruntime fp32": ort_out, f"onnxruntime {backend.precision}": server_out}
    quality = {name: {"max_abs_diff": float(np.abs(out - reference).max()), "psnr_db": psnr_db(reference, out)}
               for name, out in quality.items()}
    return {"seconds": results, "vs_fp32_eager": quality, "output_std": float(reference.std())}


def load_test(folder: Path, size: int, labels: int, requests: int, clients: int) -> dict:
    bodies = []
    for k in range(8):
        out = io.BytesIO()
        Image.fromarray(blocky_label_map(size, labels, seed=k).astype(np.uint8)).save(out, format="PNG")
        bodies.append(json.dumps({"label_map": base64.b64encode(out.getvalue()).decode(), "seed": k}).encode())
    latencies, errors = [], []
    lock = threading.Lock()
    with PaintServer(Engine(OnnxBackend(folder, precision="int8"), max_batch=8)) as server:
        url = server.url + "/api/generate"

        def client(k: int) -> None:
            for i in range(k, requests, clients):
                start = time.perf_counter()
                try:
                    request = urllib.request.Request(url, bodies[i % len(bodies)], {"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=600) as response:
                        response.read()
                    with lock:
                        latencies.append(time.perf_counter() - start)
                except (urllib.error.URLError, OSError) as err:
                    with lock:
                        errors.append(repr(err))

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        batches = server.engine.batches
    latencies.sort()
    return {"requests": requests, "clients": clients, "errors": len(errors), "first_error": errors[:1],
            "wall_s": wall, "requests_per_s": len(latencies) / wall, "mean_batch": len(latencies) / max(batches, 1),
            "p50_s": statistics.median(latencies) if latencies else None,
            "p95_s": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else None}


def segmentation_quality(folder: Path, n: int) -> dict:
    """mIoU / pixel accuracy of gauguin's segmenter on images generated by the fp32 and the int8 graph
    from the first ``n`` held-out Fashion-MNIST silhouettes (the ``miou`` metric's protocol)."""
    from gauguin.data import FashionMNISTSilhouettes, Preprocessing
    from gauguin.metrics.segmenter import load_or_train_segmenter, segmenter_scores

    maps = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32)).get_batch(torch.arange(n))["label_map"]
    segmenter = load_or_train_segmenter("fashion-mnist")
    scores = {}
    for precision in ("fp32", "int8"):
        engine = Engine(OnnxBackend(folder, precision=precision), max_batch=32, queue_size=n + 1)
        futures = [engine.submit(m.numpy(), seed=i) for i, m in enumerate(maps)]
        images = torch.from_numpy(np.stack([f.result(600) for f in futures]))
        engine.close()
        scores[precision] = segmenter_scores(segmenter, images, maps)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny widths at 64 px (CI)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--segmentation", type=int, default=0, metavar="N",
                        help="also score the default paint model's fp32 and int8 images of N test silhouettes "
                             "with gauguin's segmenter")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    size, ngf, labels = (64, 8, 12) if args.quick else (256, 64, 151)
    requests, clients, rounds = (20, 4, 1) if args.quick else (args.requests, args.clients, args.rounds)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; SPADE generator {size}x{size}, "
          f"{labels} labels, ngf {ngf}, batch 1")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = make_checkpoint(Path(tmp) / "run", size, ngf, labels)
        folder = Path(tmp) / "onnx"
        export(checkpoint, folder, quantize="int8")
        forward = forward_times(folder, checkpoint, size, labels, rounds)
        base = forward["seconds"]["pytorch fp32 eager"]
        print(f"  (fp32 eager output std {forward['output_std']:.3f}; PSNR on the 0..255 scale)")
        for name, seconds in forward["seconds"].items():
            quality = forward["vs_fp32_eager"].get(name)
            print(f"  {name:52s} {seconds:8.3f} s  {base / seconds:5.2f}x" +
                  (f"   vs fp32 eager: max |diff| {quality['max_abs_diff']:.2e}, PSNR {quality['psnr_db']:.1f} dB"
                   if quality else ""))
        load = load_test(folder, size, labels, requests, clients)
        print(f"load: {load['requests']} requests from {load['clients']} clients in {load['wall_s']:.1f} s, "
              f"{load['errors']} errors, {load['requests_per_s']:.2f} req/s, mean batch {load['mean_batch']:.2f}, "
              f"p50 {load['p50_s']:.3f} s, p95 {load['p95_s']:.3f} s")
        if load["errors"]:
            raise SystemExit(f"load test: {load['errors']} failed requests, first: {load['first_error']}")
    if ckpt.step_checkpoints(default_run_dir() / "checkpoints"):
        trained = exported_checkpoint(default_run_dir())
        quality = json.loads((trained / "model.json").read_text())["graphs"]["generator_int8.onnx"]["quantization"]
        print(f"int8 quality on the trained default paint model (its export's check): PSNR vs fp32 "
              f"{quality['psnr_db_mean']:.1f} dB mean, {quality['psnr_db_min']:.1f} dB min over "
              f"{quality['check_inputs']} label maps ({quality['inputs']})")
        if args.segmentation:
            scores = segmentation_quality(trained, args.segmentation)
            print(f"  segmenter on {args.segmentation} generated test images: " + ", ".join(
                f"{name} mIoU {s['miou']:.3f} / pixel accuracy {s['pixel_accuracy']:.3f}" for name, s in scores.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"forward": forward, "load": load}, indent=2))


if __name__ == "__main__":
    main()
