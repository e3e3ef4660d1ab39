"""The protocol of image translators (pix2pix, CycleGAN): their outputs on the held-out split, scored.

- **paired** data (an ``input`` and its real ``image``; pix2pix, Isola et al. 2017 §4.2): ``l1`` and
  ``ssim`` of each output against its real target, ``fid`` / ``kid`` / ``precision`` / ``recall`` of the
  outputs against the real images;
- **unpaired** data (two domains; CycleGAN, Zhu et al. 2017 §5.1): per direction, ``accuracy_<dir>`` — the
  share of translated images the classifier puts in the target domain's class (where the domains are
  classes it knows), ``fid_<dir>`` against the target domain's held-out images, and ``cycle_l1_<dir>``, the
  mean |G_back(G(x)) - x| of the round trip.

Images are in [-1, 1], so an L1 of 0.1 is 5 % of the grey range.
"""
from __future__ import annotations

import torch

from ..data import FASHION_MNIST_CLASSES
from ..metrics.evaluate import Evaluation, compute_metrics, count_label, flat_scores
from ..metrics.extractors import FeatureExtractor
from ..metrics.msssim import ssim
from ..metrics.sources import ImageSet, fingerprint_files

BATCH = 250


def is_translator(loaded) -> bool:
    """Whether a loaded checkpoint translates images (and so is scored here, not by its samples)."""
    return bool(loaded.spec.translators) and not loaded.data.num_labels


def translation_scores(loaded, extractor: FeatureExtractor, real_features: torch.Tensor, n: int,
                       seed: int) -> tuple[dict, dict]:
    """Flat scores and protocol-named ones of ``loaded`` on up to ``n`` held-out inputs (a random subset
    drawn with ``seed``); ``real_features``: of the real test images the paired outputs are judged against."""
    data = type(loaded.family).build_dataset(loaded.family.cfg, split="val")
    stamp = fingerprint_files([loaded.folder / "weights.safetensors"], f"{loaded.meta['step']}|{n}|{seed}")
    if hasattr(data, "get_domain"):
        flat = _unpaired(loaded, data, extractor, n, seed, stamp)
    else:
        flat = _paired(loaded, data, extractor, real_features, n, seed, stamp)
    where = f"{loaded.family.cfg.dataset}:val"
    return flat, {f"{name}{count_label(min(n, len(data)))}-{where}": value for name, value in flat.items()}


def _subset(length: int, n: int, seed: int) -> torch.Tensor:
    return torch.randperm(length, generator=torch.Generator().manual_seed(seed))[: min(n, length)].sort().values


def _paired(loaded, data, extractor, real_features, n: int, seed: int, stamp: str) -> dict:
    graph = loaded.spec.translators[0]
    name = graph.input("image").name
    outputs, targets = [], []
    for chunk in _subset(len(data), n, seed).split(BATCH):
        batch = data.get_batch(chunk)
        outputs.append(loaded.translate_images(batch[name], graph.direction))
        targets.append(batch["image"])
    out, target = torch.cat(outputs), torch.cat(targets)
    values = compute_metrics(["fid", "kid", "pr"], ImageSet(out, None, "translated", stamp), extractor,
                             real_features, seed, progress=False)
    return {"l1": (out - target).abs().mean().item(), "ssim": ssim(out, target).mean().item(), **flat_scores(values)}


def _unpaired(loaded, data, extractor, n: int, seed: int, stamp: str) -> dict:
    graphs = {g.input("image").name: g for g in loaded.spec.translators}  # "a" -> the A-to-B graph, ...
    lengths = {"a": data.len_a, "b": data.len_b}
    classes = [FASHION_MNIST_CLASSES.index(d) if d in FASHION_MNIST_CLASSES else None for d in data.domains]
    flat = {}
    for source, graph in graphs.items():
        target = "b" if source == "a" else "a"
        images = data.get_domain(source, _subset(lengths[source], n, seed))
        out = torch.cat([loaded.translate_images(part, graph.direction) for part in images.split(BATCH)])
        real_target = data.get_domain(target, torch.arange(lengths[target]))
        reference = ImageSet(real_target, None, f"{data.domains['ab'.index(target)]}:val",
                             fingerprint_files(getattr(data, "source_files", []), f"{data!r}|{target}"))
        features = Evaluation(reference, extractor, progress=False).real_features()
        target_class = classes["ab".index(target)]
        labels = None if None in classes else torch.full((len(out),), target_class)
        values = compute_metrics(["fid"] + (["accuracy"] if labels is not None else []),
                                 ImageSet(out, labels, "translated", stamp + source), extractor, features, seed,
                                 progress=False)
        way = graph.direction or source
        flat.update({f"{key}_{way}": value for key, value in flat_scores(values).items()})
        if target in graphs:
            back = torch.cat([loaded.translate_images(part, graphs[target].direction) for part in out.split(BATCH)])
            flat[f"cycle_l1_{way}"] = (back - images).abs().mean().item()
    return flat
