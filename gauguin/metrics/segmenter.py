"""The segmenter behind the mIoU / pixel-accuracy metrics: a small U-Net gauguin trains on real
image/label pairs (the SPADE papers use DeepLab-v2, DRN or UperNet, none of which can be
downloaded here).

Architecture (version 1): a U-Net (Ronneberger et al. 2015) with two poolings: 3x3 conv + batch
norm + ReLU pairs of ``width``, 2·width and 4·width channels, nearest up-sampling, skip
concatenation, and a 1x1 conv to per-pixel label logits. Trained with per-pixel cross-entropy
(don't-care pixels ignored), Adam lr 2e-3 decaying linearly to 0.

Weights are a safetensors file whose metadata records the label set, the input format and the
segmenter's own scores on the real test split, by default
``$XDG_CACHE_HOME/gauguin/segmenters/<dataset>.safetensors``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..fileio import WeightsFileError, load_weights_file, save_safetensors_atomic, state_dict_sha256, user_cache_dir
from .fitting import fit
from .segmentation import confusion_matrix, scores_from_confusion

ARCH_VERSION = 1
FORMAT = "gauguin-segmenter"
DEFAULTS = {"epochs": 1, "batch_size": 64, "lr": 2e-3, "width": 32}


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
    )


class Segmenter(nn.Module):
    """``forward(images [N, C, H, W] in [-1, 1]) -> logits [N, num_labels, H, W]`` for any H, W."""

    def __init__(self, in_channels: int, num_labels: int, width: int = DEFAULTS["width"],
                 label_names: list[str] | None = None, ignore_index: int | None = None) -> None:
        super().__init__()
        self.in_channels, self.num_labels, self.width = in_channels, num_labels, width
        self.label_names = list(label_names or [f"label_{k}" for k in range(num_labels)])
        self.ignore_index = ignore_index
        self.down0 = _double_conv(in_channels, width)
        self.down1 = _double_conv(width, 2 * width)
        self.bottom = _double_conv(2 * width, 4 * width)
        self.up1 = _double_conv(6 * width, 2 * width)
        self.up0 = _double_conv(3 * width, width)
        self.head = nn.Conv2d(width, num_labels, 1)
        self.metadata: dict[str, str] = {}
        self.weights_sha256 = ""

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"the segmenter takes images [N, {self.in_channels}, H, W], got {tuple(images.shape)}")
        skip0 = self.down0(images)
        skip1 = self.down1(F.max_pool2d(skip0, 2, ceil_mode=True))
        x = self.bottom(F.max_pool2d(skip1, 2, ceil_mode=True))
        x = self.up1(torch.cat([F.interpolate(x, size=skip1.shape[-2:], mode="nearest"), skip1], 1))
        x = self.up0(torch.cat([F.interpolate(x, size=skip0.shape[-2:], mode="nearest"), skip0], 1))
        return self.head(x)

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 256) -> Tensor:
        """Arg-max label maps ``[N, H, W]`` (int64)."""
        was_training = self.training
        self.eval()
        out = torch.cat([self(images[i : i + batch_size]).argmax(1) for i in range(0, len(images), batch_size)])
        self.train(was_training)
        return out


def segmenter_scores(segmenter: Segmenter, images: Tensor, label_maps: Tensor) -> dict[str, float]:
    """mIoU / pixel accuracy / mean accuracy of ``segmenter`` on ``images`` against ``label_maps``
    (real images: the segmenter's own quality; generated images: how well they follow their maps)."""
    if images.shape[0] != label_maps.shape[0] or images.shape[-2:] != label_maps.shape[-2:]:
        raise ValueError(f"images {tuple(images.shape)} and label maps {tuple(label_maps.shape)} do not pair up")
    if not torch.isfinite(images).all():
        raise ValueError("the images hold NaN/Inf values: no segmentation score can be computed")
    images, label_maps = _as_trained(segmenter, images, label_maps)
    confusion = torch.zeros(segmenter.num_labels, segmenter.num_labels, dtype=torch.long)
    for i in range(0, len(images), 256):
        confusion += confusion_matrix(segmenter.predict(images[i : i + 256]), label_maps[i : i + 256],
                                      segmenter.num_labels, segmenter.ignore_index)
    return scores_from_confusion(confusion, segmenter.ignore_index)


def _as_trained(segmenter: Segmenter, images: Tensor, label_maps: Tensor) -> tuple[Tensor, Tensor]:
    """Images and label maps at the segmenter's training size (bilinear / nearest) and channel count."""
    if images.shape[1] != segmenter.in_channels:
        if segmenter.in_channels == 1:
            images = images.mean(1, keepdim=True)
        else:
            images = images.expand(-1, segmenter.in_channels, -1, -1)
    size = json.loads(segmenter.metadata.get("image_size", "null") or "null")
    if size and tuple(images.shape[-2:]) != tuple(size):
        images = F.interpolate(images, size=tuple(size), mode="bilinear", antialias=True, align_corners=False)
        label_maps = F.interpolate(label_maps[:, None].float(), size=tuple(size), mode="nearest-exact")[:, 0].long()
    return images, label_maps


def fit_segmenter(images: Tensor, label_maps: Tensor, num_labels: int, ignore_index: int | None = None,
                  label_names: list[str] | None = None, epochs: int = DEFAULTS["epochs"], seed: int = 0,
                  batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
                  width: int = DEFAULTS["width"], progress: bool = True) -> Segmenter:
    """A fresh segmenter trained on real ``images`` ``[N, C, H, W]`` / ``label_maps`` ``[N, H, W]``;
    in eval mode. The caller's RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):  # the same initial weights for the same seed
        torch.manual_seed(seed)
        model = Segmenter(images.shape[1], num_labels, width, label_names, ignore_index)
    ignore = -100 if ignore_index is None else ignore_index
    return fit(model, images, label_maps, lambda logits, target: F.cross_entropy(logits, target, ignore_index=ignore),
               epochs, batch_size, lr, seed, progress, "segmenter")


def default_segmenter_path(dataset: str) -> Path:
    """``$XDG_CACHE_HOME/gauguin/segmenters/<dataset>.safetensors``."""
    return user_cache_dir("segmenters", f"{dataset.replace(':', '_').replace('/', '_')}.safetensors")


def _all_pairs(data) -> tuple[Tensor, Tensor]:
    batch = data.get_batch(torch.arange(len(data)))
    return batch["image"], batch["label_map"]


def train_segmenter(train_data, test_data, out_path: str | Path, dataset_name: str,
                    epochs: int = DEFAULTS["epochs"], seed: int = 0, progress: bool = True) -> dict:
    """Train a segmenter on ``train_data`` (a paired semantic dataset, see ``gauguin.data``), score it on
    ``test_data`` and write it atomically to ``out_path``. Returns the scores, path, hashes and seconds."""
    start = time.perf_counter()
    images, label_maps = _all_pairs(train_data)
    model = fit_segmenter(images, label_maps, train_data.num_labels, train_data.dont_care_index,
                          list(train_data.label_names), epochs=epochs, seed=seed, progress=progress)
    scores = segmenter_scores(model, *_all_pairs(test_data))
    seconds = time.perf_counter() - start
    state = model.state_dict()
    sha = state_dict_sha256(state)
    metadata = {
        "format": FORMAT, "architecture_version": str(ARCH_VERSION), "dataset": dataset_name,
        "in_channels": str(model.in_channels), "num_labels": str(model.num_labels), "width": str(model.width),
        "ignore_index": json.dumps(model.ignore_index), "label_names": json.dumps(model.label_names),
        "image_size": json.dumps(list(images.shape[-2:])), "test_scores": json.dumps(scores),
        "hparams": json.dumps({**DEFAULTS, "epochs": epochs, "seed": seed}), "weights_sha256": sha,
        "train_seconds": f"{seconds:.1f}", "torch_version": torch.__version__,
    }
    path = Path(out_path).expanduser()
    save_safetensors_atomic(state, path, metadata)
    return {**scores, "path": str(path), "sha256": sha, "seconds": seconds}


def load_segmenter(path: str | Path) -> Segmenter:
    """A segmenter written by :func:`train_segmenter`, in eval mode, with ``.metadata``."""
    from safetensors import SafetensorError, safe_open

    path = Path(path).expanduser()
    fix = "train one with `gauguin eval train-segmenter --data DATASET --out PATH`"
    if not path.is_file():
        raise WeightsFileError(f"segmenter weights {path} do not exist; {fix}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        model = Segmenter(int(meta["in_channels"]), int(meta["num_labels"]), int(meta["width"]),
                          json.loads(meta["label_names"]), json.loads(meta["ignore_index"]))
    except (SafetensorError, OSError, KeyError, ValueError) as err:
        raise WeightsFileError(f"{path} is not a readable gauguin segmenter ({err}); {fix}") from None
    model.metadata = load_weights_file(path, model, "gauguin segmenter", FORMAT, ARCH_VERSION, fix)
    model.weights_sha256 = state_dict_sha256(model.state_dict())
    return model.eval().requires_grad_(False)


def load_or_train_segmenter(dataset: str, path: str | Path | None = None, progress: bool = True) -> Segmenter:
    """The segmenter at ``path``; without one, the cached one for ``dataset`` (trained on first use,
    with a message; only the embedded ``fashion-mnist`` silhouettes can be trained implicitly)."""
    if path is not None:
        return load_segmenter(path)
    path = default_segmenter_path(dataset)
    if path.is_file():
        return load_segmenter(path)
    if dataset != "fashion-mnist":
        raise WeightsFileError(f"no segmenter for {dataset}: train one with `gauguin eval train-segmenter "
                               f"--data {dataset}` (it is cached at {path}) or pass --segmenter PATH")
    from ..data import FashionMNISTSilhouettes

    print(f"gauguin: no segmenter at {path}; training one on real Fashion-MNIST silhouettes "
          "(a few minutes on 2 CPU cores)", file=sys.stderr)
    result = train_segmenter(FashionMNISTSilhouettes("train"), FashionMNISTSilhouettes("test"), path,
                             "fashion-mnist", progress=progress)
    print(f"gauguin: segmenter test mIoU {result['miou']:.3f}, pixel accuracy {result['pixel_accuracy']:.3f}",
          file=sys.stderr)
    return load_segmenter(path)
