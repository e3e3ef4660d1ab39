"""Evaluation by protocol: which images, how many, which extractor; what ``gauguin eval`` runs.

A result is named by its protocol, e.g. ``fid10k-fmnist-fashion-mnist:test``: metric, number
of images, extractor, reference set. Features of the reference set are cached on disk under a
key hashing the reference images' content, the extractor's weights and the protocol.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .cache import cache_key, load_cached, save_cached
from .classifier import classifier_accuracy, fit_classifier
from .extractors import FeatureExtractor, create_extractor, extract
from .frechet import fid_from_features
from .inception_score import inception_score
from .kid import kernel_inception_distance
from .msssim import ms_ssim_diversity
from .prdc import precision_recall_density_coverage
from .segmenter import load_or_train_segmenter, segmenter_scores
from .swd import laplacian_swd
from .sources import FASHION_SIDE, ImageSet, load_image_set, match_images

METRICS = ("fid", "kid", "is", "pr", "msssim", "accuracy", "tstr", "miou", "lswd")
FEATURE_METRICS = {"fid", "kid", "pr"}  # those compared with the real images' features
EXTRACTOR_METRICS = FEATURE_METRICS | {"is", "accuracy"}  # those that run the feature extractor
CACHE_VERSION = 1


def count_label(n: int) -> str:
    """10000 -> "10k", 2500 -> "2500": the image count in protocol names."""
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


@dataclass
class Evaluation:
    real: ImageSet
    extractor: FeatureExtractor | None
    progress: bool = True
    cache_hit: bool | None = None  # whether the reference features came from the cache

    def real_features(self) -> torch.Tensor:
        """Reference features, from the cache when the same images and weights were seen before."""
        parts = {"images": self.real.fingerprint, "extractor": self.extractor.name,
                 "weights": self.extractor.weights_hash, "version": CACHE_VERSION}
        key = cache_key(**parts)
        cached = load_cached(key)
        if cached is not None and cached["features"].shape[0] == len(self.real.images):
            self.cache_hit = True
            return torch.from_numpy(cached["features"])
        self.cache_hit = False
        features = extract(self.extractor, self.real.images, progress=self.progress, desc=f"features {self.real.name}")
        save_cached(key, {"features": features.numpy()}, parts)
        return features



def check_metric_names(metrics: list[str]) -> None:
    for name in metrics:
        if name not in METRICS:
            close = difflib.get_close_matches(name, METRICS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown metric {name!r}{hint} (known: {', '.join(METRICS)})")


def compute_metrics(metrics: list[str], fake: ImageSet, extractor: FeatureExtractor | None,
                    real_features: torch.Tensor | None = None, seed: int = 0, progress: bool = True,
                    segmenter: str | None = None, real_images: torch.Tensor | None = None) -> dict:
    """``metrics`` of the ``fake`` images, keyed by metric name (``pr`` gives a dict of four, ``kid`` and
    ``is`` a mean and std, ``miou`` mIoU, pixel and mean accuracy). ``fid``, ``kid`` and ``pr`` need the
    reference ``real_features``; ``miou`` needs images made from label maps and a segmenter (a weights
    file, or gauguin's own for the label maps' dataset); ``lswd`` (PGGAN's sliced Wasserstein distance
    per Laplacian-pyramid level) needs the ``real_images``."""
    check_metric_names(metrics)
    if FEATURE_METRICS & set(metrics) and real_features is None:
        raise ValueError(f"{', '.join(sorted(FEATURE_METRICS & set(metrics)))} need the real images' features")
    fake_f = fake_p = None
    if EXTRACTOR_METRICS & set(metrics):
        kind = "both" if extractor.has_probabilities else "features"
        out = extract(extractor, fake.images, kind=kind, progress=progress, desc=f"features {fake.name}")
        fake_f, fake_p = out if kind == "both" else (out, None)
    results: dict = {}
    for name in metrics:
        if name == "fid":
            results[name] = fid_from_features(real_features.numpy(), fake_f.numpy())
        elif name == "kid":
            subset = min(1000, len(real_features), len(fake_f))  # an unbiased estimate at any subset size
            mean, std = kernel_inception_distance(real_features.numpy(), fake_f.numpy(), subset_size=subset, seed=seed)
            results[name] = {"mean": mean, "std": std}
        elif name == "pr":
            results[name] = precision_recall_density_coverage(real_features, fake_f)
        elif name == "is":
            results[name] = dict(zip(("mean", "std"), inception_score(_need_probs(fake_p, extractor.name).numpy())))
        elif name == "accuracy":
            labels = _need_labels(fake, "accuracy")
            results[name] = (_need_probs(fake_p, extractor.name).argmax(1) == labels).float().mean().item()
        elif name == "msssim":
            results[name] = ms_ssim_diversity(fake.images, seed=seed, labels=fake.labels)
        elif name == "tstr":
            results[name] = tstr(fake, seed=seed, progress=progress)
        elif name == "miou":
            if fake.label_maps is None:
                raise ValueError(f"miou needs images generated from label maps: {fake.name} is not from a "
                                 "semantic model (SPADE, pix2pix)")
            model = load_or_train_segmenter(_segmenter_dataset(fake.label_source), segmenter, progress)
            results[name] = segmenter_scores(model, fake.images, fake.label_maps)
        elif name == "lswd":
            if real_images is None:
                raise ValueError("lswd compares with the real images: pass real_images")
            results[name] = laplacian_swd(real_images, match_images(fake.images, real_images), seed=seed)
    return results


def flat_scores(values: dict, suffix: str = "") -> dict[str, float]:
    """``compute_metrics``' results as flat scalars: ``kid`` and ``is`` by their mean, ``pr`` and ``miou``
    by each of their numbers (precision, recall, ...; miou, pixel_accuracy, ...), each name + ``suffix``."""
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update({name + suffix: value["mean"]} if "mean" in value else
                        {key + suffix: item for key, item in value.items()})
        else:
            flat[name + suffix] = float(value)
    return flat


def _segmenter_dataset(spec: str) -> str:
    return "fashion-mnist" if spec.lower().replace("_", "-").startswith(("fashion-mnist", "fmnist")) else spec


def evaluate(metrics: list[str], real: str, fake: str, n: int = 10_000, extractor: str = "fmnist",
             weights: str | None = None, seed: int = 0, progress: bool = True, segmenter: str | None = None) -> dict:
    """Compute ``metrics`` of the ``fake`` images against the ``real`` ones; a JSON-able dict whose
    results are named by protocol (metric, image count, extractor, reference set)."""
    check_metric_names(metrics)
    fake_set = load_image_set(fake, n, seed)
    real_set = load_image_set(real, n, seed, image_size=fake_set.images.shape[-1])  # Fashion-MNIST: at the fakes' size
    fake_set.images = match_images(fake_set.images, real_set.images)
    if fake_set.label_maps is not None and fake_set.label_maps.shape[-2:] != fake_set.images.shape[-2:]:
        fake_set.label_maps = F.interpolate(fake_set.label_maps[:, None].float(), size=fake_set.images.shape[-2:],
                                            mode="nearest-exact")[:, 0].long()  # follow the resized images
    ev = Evaluation(real_set, create_extractor(extractor, weights) if EXTRACTOR_METRICS & set(metrics) else None,
                    progress)
    real_f = ev.real_features() if FEATURE_METRICS & set(metrics) else None
    values = compute_metrics(metrics, fake_set, ev.extractor, real_f, seed, progress, segmenter, real_set.images)
    count = count_label(len(fake_set.images))
    protocol = {"pr": f"prdc{count}-{extractor}-{real_set.name}", "msssim": f"msssim{count}-{fake_set.name}",
                "tstr": f"tstr{count}-fashion-mnist:test" + _size_suffix(fake_set), "miou": f"miou{count}-segmenter-{fake_set.label_source}"}
    results = {protocol.get(name, f"{name}{count}-{extractor}-{real_set.name}"): value for name, value in values.items()}
    return {"real": real_set.name, "fake": fake_set.name, "n": len(fake_set.images), "extractor": extractor,
            "weights_hash": ev.extractor.weights_hash if ev.extractor else None, "reference_cache_hit": ev.cache_hit,
            "results": results}


def tstr(fake: ImageSet, seed: int = 0, progress: bool = True, baselines: dict | None = None) -> dict:
    """Train on synthetic, test on real (Esteban et al. 2017; Shmelkov et al. 2018 "GAN-train"): a
    classifier trained on the labelled fakes, tested on the real Fashion-MNIST test split, next to the
    same classifier trained on as many real training images (the baseline). ``baselines``, a dict the
    caller keeps, holds the baseline's accuracy per image count, size and seed across calls."""
    labels = _need_labels(fake, "tstr")
    size = fake.images.shape[-1]  # the real images at the fakes' size, made as training made them
    test = load_image_set("fashion-mnist:test", image_size=size)
    images = match_images(fake.images, test.images)
    synthetic = fit_classifier(images, labels, seed=seed, progress=progress)
    key = (len(images), size, seed)
    if baselines is None or key not in baselines:
        baseline = load_image_set("fashion-mnist:train", n=len(images), seed=seed, image_size=size)
        real_model = fit_classifier(baseline.images, baseline.labels, seed=seed, progress=progress)
        accuracy = classifier_accuracy(real_model, test.images, test.labels)
        if baselines is None:
            baselines = {}
        baselines[key] = accuracy
    return {"train_on_fake": classifier_accuracy(synthetic, test.images, test.labels), "train_on_real": baselines[key]}


def _size_suffix(images: ImageSet) -> str:
    """"@32" when TSTR's real images were read at the fakes' 32 px instead of Fashion-MNIST's 28."""
    size = images.images.shape[-1]
    return "" if size == FASHION_SIDE else f"@{size}"


def _need_labels(images: ImageSet, metric: str) -> torch.Tensor:
    if images.labels is None:
        raise ValueError(f"{metric} needs class labels: {images.name} is unconditional / unlabelled")
    return images.labels


def _need_probs(probs, extractor: str) -> torch.Tensor:
    if probs is None:
        raise ValueError(f"extractor {extractor!r} gives no class probabilities; use --extractor fmnist or inception")
    return probs


def format_table(report: dict) -> str:
    """The results as aligned text lines."""
    lines = [f"real {report['real']}  fake {report['fake']}  n {report['n']}  extractor {report['extractor']}"]
    for name, value in report["results"].items():
        if isinstance(value, dict):
            text = "  ".join(f"{k} {v:.4f}" for k, v in value.items())
        else:
            text = f"{value:.4f}"
        lines.append(f"{name:<40} {text}")
    return "\n".join(lines)


__all__ = ["METRICS", "compute_metrics", "evaluate", "flat_scores", "format_table", "tstr"]
