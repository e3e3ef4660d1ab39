"""Feature extractors for the evaluation metrics, chosen by name, and batched extraction.

* ``inception``: the FID Inception-v3 (Heusel et al. 2017), 2048-d pool3 features and 1008-way
  probabilities for the Inception Score (Salimans et al. 2016); needs a weights file.
* ``fmnist``: gauguin's own Fashion-MNIST CNN, 128-d features and 10-way probabilities; trained
  on first use if its cache file is missing.
* any ``nn.Module`` via :func:`wrap_module` (features = its output, flattened).

Every extractor takes images ``[N, C, H, W]`` in [-1, 1] of any size and carries a
``weights_hash`` (SHA-256 of its weights) for keying cached statistics.
"""
from __future__ import annotations

import difflib
import itertools
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gauguin.fileio import state_dict_sha256
from gauguin.metrics.classifier import FashionMNISTClassifier, load_fmnist_classifier
from gauguin.metrics.inception import FastInceptionFID, InceptionFID, InceptionWeightsNotFoundError, load_inception

EXTRACTOR_NAMES = ("inception", "fmnist")
KINDS = ("features", "probabilities", "both")


class FeatureExtractor(nn.Module):
    """Base of all extractors: ``features(images) -> [N, feature_dim]`` and, where the network is
    a classifier, ``probabilities(images) -> [N, num_classes]`` (rows sum to 1).

    Attributes: ``name``; ``input_size`` (the side images are resized to, None if used as given);
    ``feature_dim`` and ``num_classes`` (None if unknown / not a classifier); ``weights_hash``.
    """

    name: str = "extractor"
    input_size: int | None = None
    feature_dim: int | None = None
    num_classes: int | None = None

    @property
    def weights_hash(self) -> str:
        """SHA-256 of the weights (see ``gauguin.metrics.classifier.state_dict_sha256``)."""
        return state_dict_sha256(self.state_dict())

    @property
    def has_probabilities(self) -> bool:
        """Whether ``probabilities`` is implemented (the network is a classifier)."""
        return type(self).probabilities is not FeatureExtractor.probabilities

    @property
    def device(self) -> torch.device:
        for tensor in itertools.chain(self.parameters(), self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def features(self, images: Tensor) -> Tensor:
        raise NotImplementedError

    def probabilities(self, images: Tensor) -> Tensor:
        raise NotImplementedError(
            f"feature extractor {self.name!r} is not a classifier: it gives features only, so "
            "Inception Score / class accuracy need the 'inception' or 'fmnist' extractor"
        )

    def features_and_probabilities(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Both at once (one forward pass where the network allows)."""
        return self.features(images), self.probabilities(images)

    def forward(self, images: Tensor) -> Tensor:
        return self.features(images)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, feature_dim={self.feature_dim}, num_classes={self.num_classes}"


class InceptionExtractor(FeatureExtractor):
    """FID Inception-v3: pool3 features ``[N, 2048]``; ``probabilities`` is the softmax of the 1008
    logits *without* the fc bias, as the original Inception Score code computes them.

    By default the images run through :class:`~gauguin.metrics.inception.FastInceptionFID`, an
    inference copy of ``net`` (BatchNorm folded into the convolutions, fused ReLU, channels-last,
    merged 1x1 convolutions): the same features to fp32 rounding, on a 2-core CPU ~2.1x faster
    than the plain module and ~1.4x faster than it in channels-last (this class's path before). ``fast=False`` runs ``net`` itself. The copy is made from ``net``'s weights at
    construction; ``net`` stays the module whose state dict is saved and hashed.
    """

    name = "inception"
    input_size = 299
    feature_dim = 2048
    num_classes = 1008

    def __init__(self, net: InceptionFID, fast: bool = True) -> None:
        super().__init__()
        self._hash = state_dict_sha256(net.state_dict())
        # channels-last weights: ~1.5x faster on CPU (oneDNN) for the plain path, same results to ~1e-7
        self.net = net.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.fast = FastInceptionFID(self.net) if fast else None

    @property
    def runner(self) -> InceptionFID | FastInceptionFID:
        """The module the images run through: the fast copy, or ``net`` with ``fast=False``."""
        return self.fast if self.fast is not None else self.net

    @property
    def weights_hash(self) -> str:
        return self._hash

    def features(self, images: Tensor) -> Tensor:
        return self.runner(images)

    def probabilities(self, images: Tensor) -> Tensor:
        return self.features_and_probabilities(images)[1]

    def features_and_probabilities(self, images: Tensor) -> tuple[Tensor, Tensor]:
        runner = self.runner
        feats = runner(images)
        return feats, F.softmax(runner.logits_from_features(feats, bias=False), dim=1)


class ClassifierExtractor(FeatureExtractor):
    """gauguin's Fashion-MNIST CNN: penultimate features ``[N, 128]``, class probabilities ``[N, 10]``."""

    name = "fmnist"
    input_size = 28
    feature_dim = 128
    num_classes = 10

    def __init__(self, net: FashionMNISTClassifier) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self._hash = net.weights_sha256 or state_dict_sha256(net.state_dict())

    @property
    def weights_hash(self) -> str:
        return self._hash

    def features(self, images: Tensor) -> Tensor:
        return self.net.features(images)

    def probabilities(self, images: Tensor) -> Tensor:
        return self.features_and_probabilities(images)[1]

    def features_and_probabilities(self, images: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.net.features(images)
        return feats, F.softmax(self.net.head(feats), dim=1)


class ModuleExtractor(FeatureExtractor):
    """Any module as an extractor: features are its output flattened to ``[N, D]``.

    With ``input_size``, images are first resized to that square (bilinear, antialiased). Without a
    given ``weights_hash`` the hash is recomputed from the module's weights on every access, so it
    follows later changes to them.
    """

    def __init__(self, module: nn.Module, name: str, weights_hash: str | None = None,
                 input_size: int | None = None) -> None:
        super().__init__()
        if not isinstance(module, nn.Module):
            raise TypeError(f"wrap_module needs a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.name = str(name)
        self.input_size = input_size
        self._hash = weights_hash

    @property
    def weights_hash(self) -> str:
        return self._hash if self._hash is not None else state_dict_sha256(self.module.state_dict())

    def features(self, images: Tensor) -> Tensor:
        if self.input_size is not None and images.shape[-2:] != (self.input_size, self.input_size):
            images = F.interpolate(images, size=(self.input_size, self.input_size), mode="bilinear",
                                   antialias=True, align_corners=False)
        out = self.module(images)
        if not isinstance(out, Tensor):
            raise TypeError(f"feature extractor {self.name!r}: the wrapped module returned a "
                            f"{type(out).__name__}, not a tensor")
        return out.reshape(out.shape[0], -1)


def wrap_module(module: nn.Module, name: str, weights_hash: str | None = None,
                input_size: int | None = None) -> ModuleExtractor:
    """Wrap a user ``nn.Module`` (put in eval mode) as a feature extractor called ``name``.

    Give ``weights_hash`` when the weights are known by a stable id; otherwise it is the SHA-256
    of the module's state dict.
    """
    return ModuleExtractor(module.eval(), name, weights_hash, input_size)


def create_extractor(name: str, weights: str | Path | None = None,
                     device: str | torch.device = "cpu") -> FeatureExtractor:
    """The extractor called ``name`` (``inception`` or ``fmnist``) on ``device``, in eval mode.

    ``inception`` needs ``weights``: the FID Inception weights (.pth or .safetensors).
    ``fmnist`` takes an optional ``weights`` file; without one it uses the default cache file
    (trained on first use, see ``gauguin.metrics.classifier.load_fmnist_classifier``).
    """
    key = str(name).strip().lower()
    if key == "inception":
        if weights is None:
            raise InceptionWeightsNotFoundError(
                "feature extractor 'inception' needs the FID Inception weights and none can be "
                "downloaded on this machine: get pt_inception-2015-12-05-6726825d.pth (the "
                "pytorch-fid release) elsewhere, copy it here, and pass --weights PATH "
                "(weights=PATH); or use the 'fmnist' extractor, which needs no download"
            )
        return InceptionExtractor(load_inception(weights)).to(device)
    if key == "fmnist":
        return ClassifierExtractor(load_fmnist_classifier(weights)).to(device)
    close = difflib.get_close_matches(key, EXTRACTOR_NAMES, n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(
        f"unknown feature extractor {name!r}; valid names are {', '.join(map(repr, EXTRACTOR_NAMES))}"
        f"{hint} (or wrap your own network with gauguin.metrics.extractors.wrap_module)"
    )


# -------------------------------------------------------------------------------- extraction
def _batches(images, batch_size: int) -> tuple[Iterator[Tensor], int | None]:
    """Batches of images from a tensor, a gauguin dataset (``get_batch``) or an iterable."""
    if isinstance(images, Tensor):
        if images.ndim != 4:
            raise ValueError(f"extract needs images shaped [N, C, H, W], got shape {tuple(images.shape)}")
        return iter(images.split(batch_size)), len(images)
    if hasattr(images, "get_batch") and hasattr(images, "__len__"):
        n = len(images)
        return (images.get_batch(torch.arange(i, min(i + batch_size, n)))[0] for i in range(0, n, batch_size)), n
    if isinstance(images, Iterable):
        try:
            total = len(images.dataset) if hasattr(images, "dataset") else None  # a DataLoader
        except TypeError:
            total = None

        def unpack() -> Iterator[Tensor]:
            for item in images:
                batch = item[0] if isinstance(item, (tuple, list)) else item
                if not isinstance(batch, Tensor):
                    raise TypeError(f"extract: the iterable gave a {type(batch).__name__}, expected image "
                                    "tensors [B, C, H, W] (or (images, labels) pairs)")
                if batch.ndim == 3:
                    batch = batch.unsqueeze(0)
                yield from batch.split(batch_size)

        return unpack(), total
    raise TypeError(f"extract takes an image tensor, a dataset with get_batch, or an iterable of "
                    f"image batches, not a {type(images).__name__}")


def extract(
    extractor: FeatureExtractor,
    images,
    batch_size: int = 50,
    kind: str = "features",
    progress: bool = True,
    max_images: int | None = None,
    desc: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Run ``extractor`` over ``images`` in batches under ``torch.no_grad``; float32 results on CPU.

    ``images``: a tensor ``[N, C, H, W]`` in [-1, 1], a gauguin dataset (anything with
    ``get_batch`` and ``len``), or an iterable of batches / (images, labels) pairs (a DataLoader,
    a generator of samples). ``kind``: "features" -> ``[N, D]``, "probabilities" -> ``[N, K]``,
    "both" -> the pair, from one forward pass. ``max_images`` stops early. A progress bar (tqdm)
    shows unless ``progress=False``. Images or features with NaN/Inf raise ``ValueError``.
    """
    from tqdm.auto import tqdm

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    if kind != "features" and not extractor.has_probabilities:
        FeatureExtractor.probabilities(extractor, None)  # raises the clear "not a classifier" error
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    batches, total = _batches(images, batch_size)
    if max_images is not None:
        total = max_images if total is None else min(total, max_images)
    device = extractor.device
    was_training = extractor.training
    extractor.eval()
    feats, probs, seen, warned = [], [], 0, False
    try:
        with torch.no_grad(), tqdm(total=total, desc=desc or f"{extractor.name} features", unit="img",
                                   disable=not progress, leave=False) as bar:
            for batch in batches:
                if max_images is not None:
                    if seen >= max_images:
                        break
                    batch = batch[: max_images - seen]
                span = f"images {seen}..{seen + len(batch) - 1}"
                batch = batch.to(device=device, dtype=torch.float32, non_blocking=True)
                if not torch.isfinite(batch).all():
                    raise ValueError(
                        f"extract({extractor.name!r}): {span} contain NaN or Inf values; a generator "
                        "that diverged produces these: check its losses, or evaluate an earlier checkpoint"
                    )
                if not warned and batch.numel() and (batch.min() < -1.5 or batch.max() > 1.5):
                    warned = True
                    warnings.warn(
                        f"extract({extractor.name!r}): {span} range over [{batch.min().item():.3g}, "
                        f"{batch.max().item():.3g}], but extractors expect [-1, 1] "
                        "(convert 0..255 images with x / 127.5 - 1)", stacklevel=2,
                    )
                if kind == "features":
                    f, p = extractor.features(batch), None
                elif kind == "probabilities":
                    f, p = None, extractor.probabilities(batch)
                else:
                    f, p = extractor.features_and_probabilities(batch)
                for out, what in ((f, "features"), (p, "probabilities")):
                    if out is not None and not torch.isfinite(out).all():
                        raise ValueError(
                            f"extract({extractor.name!r}): the {what} of {span} contain NaN or Inf "
                            "although the images are finite; the extractor's weights are broken "
                            "(reload or retrain them)"
                        )
                if f is not None:
                    feats.append(f.float().cpu())
                if p is not None:
                    probs.append(p.float().cpu())
                seen += len(batch)
                bar.update(len(batch))
    finally:
        extractor.train(was_training)
    if seen == 0:
        raise ValueError(f"extract({extractor.name!r}): no images were given")
    if kind == "features":
        return torch.cat(feats)
    if kind == "probabilities":
        return torch.cat(probs)
    return torch.cat(feats), torch.cat(probs)
