"""SimGAN's central experiment (Shrivastava et al. 2017 §3.1-3.2): train on refined synthetic
images, test on real ones.

On the embedded default, a classifier is trained three ways (on the raw simulator renders, on their
refinements by a SimGAN refiner, on as many real labelled images: the upper bound) and each is
tested on the real Fashion-MNIST test split, which neither SimGAN nor the classifiers ever see.
Also measured: whether refinement keeps the annotation (IoU of the silhouettes of each synthetic
image and its refinement; shift of the silhouette centroid in pixels, like the paper's pupil-centre
shift) and a "visual Turing test" by machine (accuracy of a fresh classifier trained to tell real
from refined images, next to real from raw synthetic; 50 % = indistinguishable).

    gauguin experiment simgan-tstr --out runs/simgan_tstr        # trains SimGAN first
    gauguin experiment simgan-tstr --checkpoint runs/simgan       # uses a trained refiner

The rows that do not depend on the refiner (raw and real accuracy, real told from raw) are cached
by everything they depend on (data files, protocol, seed, CPU, torch), so comparing refiners
trains two classifiers per refiner instead of five.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.fashion_mnist import FashionMNIST
from ..data.preprocessing import Preprocessing
from ..data.silhouettes import FOREGROUND_THRESHOLD
from ..data.simulated import FashionMNISTSimulated
from ..fileio import write_bytes_atomic
from ..metrics.cache import cache_key, load_cached, save_cached
from ..metrics.classifier import DEFAULTS, classifier_accuracy, fit_classifier
from ..metrics.sources import fingerprint_files
from ..nn.layers import cpu_model
from ..models.simgan import SimGANConfig
from ..sampling import load_generator
from ..training import train

FOREGROUND = FOREGROUND_THRESHOLD / 127.5 - 1.0  # the silhouettes' threshold in [-1, 1]


def silhouette(images: Tensor) -> Tensor:
    """Garment masks ``[N, H, W]`` of images in [-1, 1] (Fashion-MNIST backgrounds are black)."""
    return images.float().mean(1) > FOREGROUND


def annotation_preservation(synthetic: Tensor, refined: Tensor) -> dict[str, float]:
    """Mean IoU of the silhouettes of each synthetic image and its refinement, and the mean distance
    (pixels) between their centroids."""
    a, b = silhouette(synthetic), silhouette(refined)
    iou = (a & b).sum((1, 2)).float() / (a | b).sum((1, 2)).clamp(min=1).float()
    h, w = a.shape[-2:]
    grid_y, grid_x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                                    indexing="ij")

    def centroid(mask: Tensor) -> Tensor:
        area = mask.sum((1, 2)).clamp(min=1).float()
        return torch.stack([(mask * grid_y).sum((1, 2)) / area, (mask * grid_x).sum((1, 2)) / area], 1)

    shift = (centroid(a) - centroid(b)).norm(dim=1)
    return {"silhouette_iou": iou.mean().item(), "centroid_shift_px": shift.mean().item()}


def distinguishability(real: Tensor, other: Tensor, epochs: int, seed: int) -> float:
    """Test accuracy of a fresh classifier trained on half of ``real`` (label 0) and ``other``
    (label 1) and tested on the other halves: 0.5 means the two sets cannot be told apart."""
    n = min(len(real), len(other)) // 2
    train_x = torch.cat([real[:n], other[:n]])
    train_y = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long)])
    test_x = torch.cat([real[n : 2 * n], other[n : 2 * n]])
    model = fit_classifier(train_x, train_y, epochs=epochs, seed=seed, progress=False)
    return classifier_accuracy(model, test_x, train_y)


REFERENCE_PROTOCOL = "simgan-tstr-reference/1"
ORACLE_PROTOCOL = "simgan-tstr-oracles/1"


def oracle_refinements(synthetic: Tensor, own_real: Tensor, window: int = 5) -> dict[str, Tensor]:
    """What ideal refiners of each render would give, from the real image it was rendered from
    (``own_real``, same silhouette): ``own_tone`` the silhouette filled flat with that image's mean
    garment level; ``own_shading`` each garment pixel the mean of the garment pixels in the
    ``window`` x ``window`` square around it (light without texture); ``own_image`` the real image
    itself. Trained on, they split the raw -> real gap into tone, coarse shading and fine texture."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd number of pixels, got {window}")
    mask = silhouette(synthetic)[:, None]
    weight = mask.to(own_real.dtype)
    level = (own_real * weight).sum((2, 3), keepdim=True) / weight.sum((2, 3), keepdim=True).clamp(min=1)

    def box(x: Tensor) -> Tensor:
        return F.avg_pool2d(x, window, stride=1, padding=window // 2, count_include_pad=True)

    shading = box(own_real * weight) / box(weight).clamp(min=1e-6)
    background = torch.full_like(own_real, -1.0)
    return {"own_tone": torch.where(mask, level.expand_as(own_real), background),
            "own_shading": torch.where(mask, shading, background), "own_image": own_real}


def cached_rows(parts: dict, compute: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``compute()``'s figures, cached under everything ``parts`` names (plus the CPU and torch,
    whose kernels round differently)."""
    parts = {**parts, "cpu": cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    key = cache_key(**parts)
    cached = load_cached(key)
    if cached is not None:
        return {name: float(value.reshape(-1)[0]) for name, value in cached.items()}
    rows = compute()
    try:
        save_cached(key, {name: np.array([value], np.float64) for name, value in rows.items()}, parts)
    except OSError:
        pass  # a read-only cache: recomputed next time
    return rows


def simgan_tstr(checkpoint: str | Path | None = None, out_dir: str | Path = "runs/simgan_tstr",
                overrides: dict | None = None, classifier_epochs: int = 3, turing_images: int = 10_000,
                images: int | None = None, seed: int = 0, device: str = "cpu", progress: bool = True,
                oracles: bool = False) -> dict:
    """Run the experiment; returns (and writes to ``out_dir/report.json``) the table's numbers.
    Without ``checkpoint`` SimGAN is trained first with ``SimGANConfig`` + ``overrides``. ``images``
    limits the synthetic (and real) training images of the classifiers (default: all 30,000);
    ``oracles`` adds the accuracy after :func:`oracle_refinements`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if checkpoint is None:
        cfg = SimGANConfig.from_dict({"out_dir": str(out_dir / "simgan"), "progress": progress, "seed": seed,
                                      **(overrides or {})})
        train("simgan", cfg)
        checkpoint = out_dir / "simgan"
    loaded = load_generator(checkpoint, device)
    cfg = loaded.family.cfg
    if cfg.synthetic or cfg.real:
        raise ValueError("simgan-tstr tests on the real Fashion-MNIST test split: use a refiner trained on the "
                         "embedded default (no synthetic=/real= folders)")
    trained_s = time.perf_counter() - started
    data = FashionMNISTSimulated(root=cfg.data_root or None, image_size=cfg.image_size, channels=cfg.channels,
                                 seed=cfg.seed)
    count = min(images or len(data), len(data))
    synthetic, labels = data.synthetic_batch(torch.arange(count))
    refined = torch.cat([loaded.translate_images(synthetic[i : i + 500]) for i in range(0, count, 500)])
    prep = Preprocessing(crop_size=cfg.image_size, channels=cfg.channels)
    real_train = FashionMNIST("train", prep, root=cfg.data_root or None)
    real_images, real_labels = real_train.get_batch(torch.arange(len(data), len(data) + count))  # the real half
    test_set = FashionMNIST("test", prep, root=cfg.data_root or None)
    test_images, test_labels = test_set.get_batch(torch.arange(10_000))

    def tstr(images: Tensor, targets: Tensor) -> float:
        model = fit_classifier(images, targets, epochs=classifier_epochs, seed=seed, progress=progress)
        return classifier_accuracy(model, test_images, test_labels)

    n = min(turing_images, count)
    parts = {"data": fingerprint_files(real_train.source_files + test_set.source_files), "count": count,
             "image_size": cfg.image_size, "channels": cfg.channels, "simulator_seed": cfg.seed, "seed": seed,
             "classifier": DEFAULTS, "epochs": classifier_epochs, "turing_images": n}
    reference = cached_rows({**parts, "protocol": REFERENCE_PROTOCOL}, lambda: {
        "synthetic": tstr(synthetic, labels), "real": tstr(real_images, real_labels),
        "real_vs_synthetic": distinguishability(real_images[:n], synthetic[:n], classifier_epochs, seed)})
    accuracy = {"synthetic": reference["synthetic"], "refined": tstr(refined, labels), "real": reference["real"]}
    gap = accuracy["real"] - accuracy["synthetic"]
    report = {
        "checkpoint": str(loaded.folder),
        "train_images": count,
        "test_images": len(test_images),
        "test_accuracy": accuracy,
        "gain_refined_over_synthetic": accuracy["refined"] - accuracy["synthetic"],
        "gap_closed": (accuracy["refined"] - accuracy["synthetic"]) / gap if gap > 0 else None,
        "annotation": annotation_preservation(synthetic, refined),
        "turing_test_accuracy": {
            "real_vs_refined": distinguishability(real_images[:n], refined[:n], classifier_epochs, seed),
            "real_vs_synthetic": reference["real_vs_synthetic"]},
    }
    if oracles:
        own_real = real_train.get_batch(torch.arange(count))[0]  # the images the renders were made from
        report["oracle_accuracy"] = cached_rows({**parts, "protocol": ORACLE_PROTOCOL}, lambda: {
            name: tstr(images, labels) for name, images in oracle_refinements(synthetic, own_real).items()})
    report["seconds"] = {"simgan": trained_s, "total": time.perf_counter() - started}
    write_bytes_atomic(out_dir / "report.json", (json.dumps(report, indent=2) + "\n").encode())
    return report


def format_report(report: dict) -> str:
    acc, turing, ann = report["test_accuracy"], report["turing_test_accuracy"], report["annotation"]
    lines = [f"classifier trained on ({report['train_images']} images) | accuracy on the real test split "
             f"({report['test_images']})",
             f"raw synthetic                   | {100 * acc['synthetic']:.1f} %",
             f"refined synthetic (SimGAN)      | {100 * acc['refined']:.1f} %",
             f"real, labelled (upper bound)    | {100 * acc['real']:.1f} %",
             f"gain of refinement              | {100 * report['gain_refined_over_synthetic']:+.1f} points"
             + (f" ({100 * report['gap_closed']:.0f} % of the raw -> real gap)" if report["gap_closed"] is not None
                else ""),
             f"silhouette IoU synthetic/refined: {ann['silhouette_iou']:.3f}; centroid shift "
             f"{ann['centroid_shift_px']:.2f} px",
             f"visual Turing test (accuracy telling real from ...): refined {100 * turing['real_vs_refined']:.1f} %, "
             f"raw synthetic {100 * turing['real_vs_synthetic']:.1f} % (50 % = indistinguishable)"]
    for name, value in report.get("oracle_accuracy", {}).items():
        lines.append(f"oracle refinement {name:<13} | {100 * value:.1f} %")
    return "\n".join(lines)
