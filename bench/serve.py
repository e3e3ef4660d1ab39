"""The paint server's latency per backend, its choice at start-up, and the server under load, in one process.

1. **ADE20K config** (the paper's: 256x256, 151 label channels, ngf 64, no style encoder), batch 1, on a
   label map of 16x16-pixel regions, random weights (timing does not depend on them; none can be
   downloaded here). Forward seconds of: PyTorch fp32 with the dense one-hot convs (SPADE as the paper
   computes it: the baseline), PyTorch fp32 and bf16 (autocast, channels-last) with gauguin's one-hot
   lookups, bf16 dense (before the lookups), onnxruntime fp32 and int8 on gauguin's export. Then each
   serving backend's **request path** (label-map PNG in → engine → PNG out), p50 / p95 over
   ``--requests-per-path`` requests of different maps, and which path ``gauguin paint``'s start-up timing
   picks among those whose quality passed (random weights make a chaotic network: the PSNR printed for
   them is no measure of quality; the gate is measured on trained models, see 2).
2. **The shipped default model** (gauguin/serve/default_model): its export's quality checks, p50 / p95 of
   each backend's request path, the backend picked, and the time from `gauguin paint`'s start to the
   first image it serves (a subprocess: imports, hash check, backend timing, HTTP).
3. **Load**: ``--clients`` concurrent HTTP clients against the real server (uvicorn on loopback, the
   ADE20K model on the picked backend): errors, throughput, p50 / p95; /api/health polled throughout.
   **Overload**: the same clients against a queue of 2: every refusal is a 503 with Retry-After.

    python bench/serve.py            # the above; --json FILE also writes the figures
    python bench/serve.py --quick    # CI: tiny widths at 64 px, few requests
"""
from __future__ import annotations

import argparse
import base64
import copy
import io
import json
import os
import socket
import statistics
import subprocess
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

from gauguin import checkpoint as ckpt  # noqa: E402
from gauguin.models import DataInfo, get_family  # noqa: E402
from gauguin.nn.labels import semantic_input  # noqa: E402
from gauguin.serve.app import PaintServer  # noqa: E402
from gauguin.serve.engine import Engine, decode_label_map, serving_copy, to_png  # noqa: E402
from gauguin.serve.export import export  # noqa: E402
from gauguin.serve.paint_models import SHIPPED, fastest, open_backend, path_name, serving_paths  # noqa: E402
from gauguin.serve.quantize import psnr_db  # noqa: E402


def make_checkpoint(folder: Path, size: int, ngf: int, labels: int) -> Path:
    """A gauguin checkpoint of a freshly initialised SPADE generator (what a trained one looks like on disk)."""
    family_cls = get_family("spade")
    cfg = family_cls.config_class.from_dict({"dataset": "ade20k:/no-data-here", "image_size": size, "channels": 3,
                                             "ngf": ngf, "ndf": 16, "use_vae": False, "out_dir": str(folder)})
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


def label_png(ids: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(ids.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


def percentiles(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    return {"p50_s": statistics.median(ordered), "p95_s": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
            "n": len(ordered)}


def request_path(backend, maps: list[np.ndarray]) -> dict:
    """p50 / p95 of what POST /api/generate runs after JSON parsing (PNG decode, engine, PNG encode), each
    request a different map (no cache hits); one warm-up first."""
    engine = Engine(backend, max_batch=1, cache_size=0)
    pngs = [label_png(m) for m in maps]
    seconds = []
    for i, data in enumerate([pngs[0], *pngs]):
        start = time.perf_counter()
        to_png(engine.generate(decode_label_map(data, backend.info, 1 << 24), seed=i))
        if i:
            seconds.append(time.perf_counter() - start)
    engine.close()
    return percentiles(seconds)


def forward_times(checkpoint: Path, folder: Path, size: int, labels: int, rounds: int) -> dict:
    from gauguin.sampling import load_generator

    loaded = load_generator(checkpoint)
    ids = blocky_label_map(size, labels)
    inputs = {"label_map": torch.from_numpy(ids)[None]}
    run, G = loaded.spec.main.run, loaded.generator
    G_cl = copy.deepcopy(G).to(memory_format=torch.channels_last)  # .to() is in place: a copy
    dense = semantic_input(inputs, labels, False)

    def bf16(fn):
        def wrapped():
            with torch.autocast("cpu", torch.bfloat16):
                return fn()
        return wrapped

    onnx = {p: open_backend(p, folder, checkpoint) for p in (("onnx", "fp32"), ("onnx", "int8"))}
    feeds = {"label_map": ids[None]}
    served = {precision: serving_copy(G, precision) for precision in ("fp32", "bf16")}
    variants = {
        "pytorch fp32, dense one-hot convs (baseline)": lambda: G(dense),
        "pytorch fp32 as served (lookups, SN folded)": lambda: run(served["fp32"], inputs),
        "pytorch bf16 autocast channels-last, dense (before)": bf16(lambda: G_cl(dense.contiguous(
            memory_format=torch.channels_last))),
        "pytorch bf16 as served (lookups, SN folded, bf16 weights)": bf16(lambda: run(served["bf16"], inputs)),
        "onnxruntime fp32 (export, lookups)": lambda: onnx[("onnx", "fp32")].run(feeds),
        "onnxruntime int8 (export, lookups)": lambda: onnx[("onnx", "int8")].run(feeds),
    }
    with torch.inference_mode():
        reference = G(dense).float().numpy()
        outputs = {}
        for name, fn in variants.items():
            out = fn()
            outputs[name] = out.float().numpy() if torch.is_tensor(out) else np.asarray(out)
        seconds = {name: best_time(fn, rounds) for name, fn in variants.items()}
    quality = {name: {"max_abs_diff": float(np.abs(out - reference).max()), "psnr_db": psnr_db(reference, out)}
               for name, out in outputs.items()}
    return {"seconds": seconds, "vs_fp32_dense": quality, "output_std": float(reference.std())}


def serving_report(export_folder: Path, checkpoint: Path | None, size: int, labels: int, requests: int) -> dict:
    """Each serving path's request p50 / p95 (every path, passing or not), and what auto picks."""
    maps = [blocky_label_map(size, labels, block=max(2, size // 16), seed=k) for k in range(requests)]
    report = {}
    graphs = json.loads((export_folder / "model.json").read_text())["graphs"]
    every = [("onnx", p) for p, f in (("int8", "generator_int8.onnx"), ("fp32", "generator.onnx")) if f in graphs]
    every += [("torch", "bf16"), ("torch", "fp32")] if checkpoint is not None else []
    for path in every:
        report[path_name(path)] = request_path(open_backend(path, export_folder, checkpoint), maps)
    picked = []
    chosen = fastest(serving_paths(export_folder, checkpoint), export_folder, checkpoint, log=picked.append)
    report["auto"] = {"passing": [path_name(p) for p in serving_paths(export_folder, checkpoint)],
                      "picked": f"{type(chosen).__name__} {chosen.precision}", "timing": picked}
    return report


def time_to_first_image(port: int) -> dict:
    """`gauguin paint` (the shipped model) from process start to its first served image."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "gauguin.cli", "paint", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/api/health", timeout=2).read()
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.perf_counter() - start > 120:
                    raise SystemExit(f"gauguin paint did not start: {process.stdout.read()}")
                time.sleep(0.05)
        health = time.perf_counter() - start
        body = json.dumps({"label_map": base64.b64encode(label_png(blocky_label_map(32, 11, 4))).decode(),
                           "seed": 0}).encode()
        urllib.request.urlopen(urllib.request.Request(url + "/api/generate", body,
                                                      {"Content-Type": "application/json"}), timeout=60).read()
        image = time.perf_counter() - start
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    return {"health_s": health, "first_image_s": image,
            "log": [line for line in output.splitlines() if line.startswith("gauguin paint:")]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_test(backend, size: int, labels: int, requests: int, clients: int, queue_size: int = 64) -> dict:
    bodies = [json.dumps({"label_map": base64.b64encode(label_png(blocky_label_map(size, labels, seed=k))).decode(),
                          "seed": k}).encode() for k in range(requests)]  # all different: no cache hits
    latencies, errors, refused, health = [], [], [], []
    lock, done = threading.Lock(), threading.Event()
    with PaintServer(Engine(backend, max_batch=8, queue_size=queue_size, cache_size=0)) as server:
        url = server.url + "/api/generate"

        def client(k: int) -> None:
            for i in range(k, requests, clients):
                start = time.perf_counter()
                try:
                    request = urllib.request.Request(url, bodies[i], {"Content-Type": "application/json"})
                    with urllib.request.urlopen(request, timeout=600) as response:
                        response.read()
                    with lock:
                        latencies.append(time.perf_counter() - start)
                except urllib.error.HTTPError as err:
                    with lock:
                        (refused if err.code == 503 and err.headers.get("Retry-After") else errors).append(err.code)
                except (urllib.error.URLError, OSError) as err:
                    with lock:
                        errors.append(repr(err))

        def poll_health() -> None:
            while not done.is_set():
                start = time.perf_counter()
                try:
                    urllib.request.urlopen(server.url + "/api/health", timeout=5).read()
                    health.append(time.perf_counter() - start)
                except (urllib.error.URLError, OSError) as err:
                    errors.append(f"health: {err!r}")
                time.sleep(0.1)

        poller = threading.Thread(target=poll_health)
        poller.start()
        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        done.set()
        poller.join()
        batches = server.engine.batches
    return {"requests": requests, "clients": clients, "queue_size": queue_size, "errors": len(errors),
            "first_error": errors[:1], "refused_503_retry_after": len(refused), "wall_s": wall,
            "requests_per_s": len(latencies) / wall, "mean_batch": len(latencies) / max(batches, 1),
            **(percentiles(latencies) if latencies else {}), "health_polls": len(health),
            "health_max_s": max(health) if health else None}


def print_paths(report: dict) -> None:
    for name, figures in report.items():
        if name != "auto":
            print(f"  request path {name:18s} p50 {figures['p50_s']:7.3f} s  p95 {figures['p95_s']:7.3f} s")
    auto = report["auto"]
    print(f"  start-up choice among the passing paths ({', '.join(auto['passing'])}): {auto['picked']}")
    for line in auto["timing"]:
        print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny widths at 64 px, few requests (CI)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests-per-path", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    size, ngf, labels = (64, 8, 12) if args.quick else (256, 64, 151)
    rounds, per_path = (1, 3) if args.quick else (args.rounds, args.requests_per_path)
    requests, clients = (24, 8) if args.quick else (args.requests, args.clients)
    figures = {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; SPADE generator "
          f"{size}x{size}, {labels} labels, ngf {ngf}, batch 1")
    with tempfile.TemporaryDirectory() as tmp:
        run = make_checkpoint(Path(tmp) / "run", size, ngf, labels)
        folder = Path(tmp) / "onnx"
        export(run, folder, quantize="int8")
        forward = figures["forward"] = forward_times(run, folder, size, labels, rounds)
        base = forward["seconds"]["pytorch fp32, dense one-hot convs (baseline)"]
        print(f"  forward (best of {rounds}; fp32 output std {forward['output_std']:.3f}, PSNR on 0..255 vs the "
              "baseline: random weights, no measure of quality)")
        for name, seconds in forward["seconds"].items():
            q = forward["vs_fp32_dense"][name]
            print(f"  {name:50s} {seconds:7.3f} s  {base / seconds:5.2f}x   max |diff| {q['max_abs_diff']:.1e}, "
                  f"PSNR {q['psnr_db']:.1f} dB")
        figures["ade20k_paths"] = serving_report(folder, run, size, labels, per_path)
        print_paths(figures["ade20k_paths"])
        paths = {name: f for name, f in figures["ade20k_paths"].items() if name != "auto"}
        quickest = min(paths, key=lambda name: paths[name]["p50_s"])  # server behaviour under load, on the
        chosen = open_backend(next(p for p in (("onnx", "int8"), ("onnx", "fp32"), ("torch", "bf16"),  # fastest path
                                               ("torch", "fp32")) if path_name(p) == quickest), folder, run)
        figures["load"] = load = load_test(chosen, size, labels, requests, clients)
        print(f"load ({quickest}, the fastest path): {load['requests']} requests from {clients} clients "
              f"in {load['wall_s']:.1f} s, {load['errors']} errors, {load['requests_per_s']:.2f} req/s, mean batch "
              f"{load['mean_batch']:.2f}, p50 {load['p50_s']:.3f} s, p95 {load['p95_s']:.3f} s; /api/health polled "
              f"{load['health_polls']}x, slowest {load['health_max_s']:.3f} s")
        figures["overload"] = over = load_test(chosen, size, labels, requests, clients, queue_size=2)
        print(f"overload (queue of 2): {over['refused_503_retry_after']} of {requests} refused with 503 + "
              f"Retry-After, {over['errors']} other errors, /api/health polled {over['health_polls']}x, slowest "
              f"{over['health_max_s']:.3f} s")
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    quality = manifest["metrics"]
    print(f"shipped default model ({manifest['name']}, step {manifest['step']}): served-image segmenter mIoU "
          f"{quality['segmentation']['generated']['miou']:.3f} (real {quality['segmentation']['real']['miou']:.3f}); "
          f"int8 PSNR vs fp32: {quality['int8_psnr_db_vs_fp32']}")
    figures["default_paths"] = serving_report(SHIPPED / "export", None, 32, 11, per_path * 5)
    print_paths(figures["default_paths"])
    figures["open"] = opened = time_to_first_image(free_port())
    print(f"`gauguin paint` (shipped model): /api/health answers {opened['health_s']:.1f} s after the process "
          f"starts, first image {opened['first_image_s']:.1f} s")
    errors = figures["load"]["errors"] + figures["overload"]["errors"]
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    if errors:
        raise SystemExit(f"load test: {errors} failed requests, first: "
                         f"{figures['load']['first_error'] or figures['overload']['first_error']}")


if __name__ == "__main__":
    main()
