"""The painter's default model, built from scratch: ``gauguin paint --retrain`` (or
``python scripts/build_paint_model.py``, which writes the copy shipped in ``gauguin/serve/default_model``).

SPADE with the VAE style encoder on Fashion-MNIST silhouettes (11 labels: background + the 10 garment
classes, 32 px, grey), :data:`RECIPE` (configs/spade_fashion.yaml's model and losses, the paper's TTUR rates
G 1e-4 / D 4e-4, 1,200 iterations). The build trains it (resuming an interrupted build), exports the EMA generator to ONNX,
quantizes the generator and the style encoder to int8 (each checked by the PSNR of the images it changes,
gate 30 dB), scores what the painter serves (gauguin's segmenter on the served images of held-out maps)
and writes a bundle: ``export/`` (the int8 graphs and model.json: 17 MiB where the fp32 graphs and
weights would take 120) and ``manifest.json`` (recipe, step, data, metrics, versions, each file's sha256),
replacing the old bundle only when the new one is complete.
"""
from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

import torch

from .. import __version__
from .. import checkpoint as ckpt
from ..fileio import file_sha256, user_cache_dir, write_bytes_atomic
from ..models import get_family
from ..serve.paint_models import MANIFEST, SHIPPED, export_for_serving
from ..training import train

VERSION = "v2"  # change it with RECIPE: an interrupted build of another recipe is never resumed
FAMILY = "spade"
RECIPE = dict(
    dataset="fashion-mnist", image_size=32, channels=1, use_vae=True, encoder_input_size=128,
    ngf=16, ndf=32, batch_size=32, steps=1200, lr_decay_start=0.5, seed=0,
    log_every=50, sample_every=400, checkpoint_every=400, eval_every=0)
SCORED_MAPS = 2000  # held-out test silhouettes the segmenter scores


def work_dir() -> Path:
    return user_cache_dir("paint", f"build_{VERSION}")


def train_recipe(run: Path, progress: bool = True, log=print) -> Path:
    """The last checkpoint of :data:`RECIPE` trained into ``run`` (an interrupted training resumed)."""
    cfg = get_family(FAMILY).config_class.from_dict({**RECIPE, "out_dir": str(run), "progress": progress})
    newest = ckpt.latest_meta(run / "checkpoints")
    if newest is not None and newest[1]["step"] >= cfg.steps:
        return newest[0]
    log(f"gauguin paint: training the default model (SPADE on Fashion-MNIST silhouettes, {cfg.steps} steps, "
        f"about 8 minutes on 2 cores) into {run}" + (" (resuming)" if newest else ""))
    return train(FAMILY, cfg, resume=newest is not None)


def ship_export(full: Path, checkpoint: Path, out: Path) -> dict:
    """``out``: the int8 graphs of the export ``full`` (the generator's, and the style encoder quantized here,
    its images checked against the fp32 encoder's) with their model.json; fp32 graphs are left out (the
    bundle stays small). Returns model.json's content."""
    from ..sampling import load_generator
    from ..serve.quantize import CALIBRATION_INPUTS, CHECK_INPUTS, model_inputs, quantize_encoder_int8

    meta = json.loads((full / "model.json").read_text())
    graphs = meta["graphs"]
    generator = graphs.pop("generator.onnx")
    shipped = {"generator_int8.onnx": graphs.pop("generator_int8.onnx")}
    out.mkdir(parents=True)
    shutil.copyfile(full / "generator_int8.onnx", out / "generator_int8.onnx")
    loaded, n = load_generator(checkpoint), CALIBRATION_INPUTS + CHECK_INPUTS
    for name, entry in graphs.items():  # the style encoder
        test = type(loaded.family).build_dataset(loaded.family.cfg).get_batch(torch.arange(n))
        calibration, check, _ = model_inputs(loaded, None, CALIBRATION_INPUTS, CHECK_INPUTS)
        images = [test["image"][i:i + 1].numpy() for i in range(n)]
        model, quality = quantize_encoder_int8((full / name).read_bytes(), (full / "generator.onnx").read_bytes(),
                                               images[:CALIBRATION_INPUTS], list(zip(images[CALIBRATION_INPUTS:], [
                                                   {k: v for k, v in feeds.items() if k != entry["replaces"]}
                                                   for feeds in check])), entry["replaces"])
        file = name.replace(".onnx", "_int8.onnx")
        write_bytes_atomic(out / file, model)
        shipped[file] = {**entry, "file": file, "bytes": len(model), "sha256": file_sha256(out / file),
                         "parity": None, "quantization": {**quality, "measured_on": "generated images (fp32 "
                                                          "generator) from the int8 vs the fp32 codes of training "
                                                          f"images {CALIBRATION_INPUTS}..{n - 1}"}}
    meta["graphs"] = shipped
    meta["source"]["checkpoint"] = "gauguin paint --retrain"  # not shipped: the bundle holds the int8 graphs
    meta["fp32_generator_parity"] = generator["parity"]
    write_bytes_atomic(out / "model.json", (json.dumps(meta, indent=2) + "\n").encode())
    return meta


def score(export_folder: Path, n: int = SCORED_MAPS) -> dict:
    """gauguin's segmenter on the images the painter serves (the export, the engine, seed i for map i) for the
    first ``n`` held-out test maps, and on the real test images (the ceiling)."""
    import numpy as np

    from ..data import FashionMNISTSilhouettes, Preprocessing
    from ..metrics.segmenter import load_or_train_segmenter, segmenter_scores
    from ..serve.engine import Engine, OnnxBackend

    test = FashionMNISTSilhouettes("test", Preprocessing(crop_size=32)).get_batch(torch.arange(n))
    engine = Engine(OnnxBackend(export_folder), max_batch=32, queue_size=n + 1)
    futures = [engine.submit(m.numpy(), seed=i) for i, m in enumerate(test["label_map"])]
    images = torch.from_numpy(np.stack([f.result(600) for f in futures]))
    engine.close()
    segmenter = load_or_train_segmenter("fashion-mnist")
    fake, real = segmenter_scores(segmenter, images, test["label_map"]), segmenter_scores(
        segmenter, test["image"], test["label_map"])
    return {"protocol": f"miou{n}-segmenter-fashion-mnist:test (served int8 images, seed i for test map i)",
            "generated": {k: round(v, 4) for k, v in fake.items()}, "real": {k: round(v, 4) for k, v in real.items()}}


def build(out: str | Path = SHIPPED, progress: bool = True, log=print) -> dict:
    """Train, export, quantize, score and write the bundle ``out``; returns its manifest."""
    out, work = Path(out), work_dir()
    started = time.perf_counter()
    last = train_recipe(work / "run", progress, log)
    meta = ckpt.read_meta(last)
    staging = out.parent / f".{out.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(work / "export", ignore_errors=True)
    log(f"gauguin paint: exporting step {meta['step']} to ONNX with its int8 graphs")
    export_for_serving(last, work / "export", log)
    description = ship_export(work / "export", last, staging / "export")
    log(f"gauguin paint: scoring {SCORED_MAPS} served test images with gauguin's segmenter")
    scores = score(staging / "export")
    quality = {name: {k: g["quantization"][k] for k in ("psnr_db_mean", "psnr_db_min", "passed")}
               for name, g in description["graphs"].items()}
    files = {str(p.relative_to(staging)): {"bytes": p.stat().st_size, "sha256": file_sha256(p)}
             for p in sorted(staging.rglob("*")) if p.is_file()}
    manifest = {
        "format": "gauguin-paint-model-1", "name": f"spade_fashion_{VERSION}", "family": FAMILY,
        "description": "SPADE + VAE style encoder on Fashion-MNIST silhouettes (background + 10 garments), 32 px; "
                       "int8 ONNX graphs (onnxruntime)",
        "rebuild": "gauguin paint --retrain  (python scripts/build_paint_model.py writes gauguin/serve/default_model)",
        "recipe": RECIPE, "config": meta["config"], "step": meta["step"],
        "data": "fashion-mnist train split (60,000 images; silhouettes by thresholding), labels = garment class",
        "trained": {"finished": meta["time"], "precision": meta["config"].get("precision"),
                    "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
                    "torch_threads": torch.get_num_threads()},
        "metrics": {"segmentation": scores, "int8_psnr_db_vs_fp32": quality,
                    "fp32_parity_vs_pytorch": description["fp32_generator_parity"]},
        "versions": {"gauguin": __version__, "torch": torch.__version__},
        "build_seconds": round(time.perf_counter() - started, 1), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "files": files,
    }
    write_bytes_atomic(staging / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
    old = out.parent / f".{out.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    size = sum(entry["bytes"] for entry in files.values())
    log(f"gauguin paint: wrote {out} ({size / 2**20:.1f} MiB; served-image mIoU {scores['generated']['miou']:.3f}, "
        f"real images {scores['real']['miou']:.3f})")
    return manifest


__all__ = ["RECIPE", "build", "score", "train_recipe"]
