"""The ``fmnist`` feature extractor: a small CNN that gauguin trains itself on real Fashion-MNIST
(Xiao et al. 2017), for when no Inception weights are at hand.

Its 128-d penultimate activations give a Fréchet classifier distance (the Fréchet distance of
FID, Heusel et al. 2017, with a domain classifier in place of Inception); its softmax gives an
Inception-Score-style score (Salimans et al. 2016) and the class accuracy of conditional samples.

Architecture (version 1): two blocks of 3x3 conv (no bias) + batch norm (Ioffe & Szegedy 2015) +
ReLU + 2x2 max pool (28 -> 14 -> 7, 16 then 32 channels), then Linear(1568, 128) + batch norm +
ReLU (the features) and Linear(128, 10). Trained 3 epochs with Adam (Kingma & Ba 2015), lr 3e-3
decaying linearly to 0, batch 128, no augmentation: ~92 % test accuracy in ~40 s on 2 CPU cores.

Weights are a safetensors file with JSON-able metadata (architecture version, test accuracy,
hyper-parameters); by default ``$XDG_CACHE_HOME/gauguin/classifiers/fmnist.safetensors``.
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..fileio import (WeightsFileError, file_sha256, load_weights_file, save_safetensors_atomic, state_dict_sha256,
                      user_cache_dir)
from .fitting import fit

ARCH_VERSION = 1
FORMAT = "gauguin-fmnist-classifier"
INPUT_SIZE = 28
FEATURE_DIM = 128
NUM_CLASSES = 10
DEFAULTS = {"epochs": 3, "batch_size": 128, "lr": 3e-3, "schedule": "linear-to-zero", "optimizer": "adam"}
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma weights (as PIL's "L" mode)


class ClassifierWeightsError(WeightsFileError):
    """A classifier weights file is corrupt, of another architecture version, or does not fit."""


class ClassifierWeightsNotFoundError(ClassifierWeightsError, FileNotFoundError):
    """A classifier weights file given explicitly does not exist."""


def default_classifier_path() -> Path:
    """``$XDG_CACHE_HOME/gauguin/classifiers/fmnist.safetensors`` (default ``~/.cache``)."""
    return user_cache_dir("classifiers", "fmnist.safetensors")


# ----------------------------------------------------------------------------------- network
def to_classifier_input(images: Tensor) -> Tensor:
    """Images ``[N, 1 or 3, H, W]`` in [-1, 1] -> ``[N, 1, 28, 28]``: RGB to luminance, then a
    bilinear antialiased resize if not already 28x28."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(
            f"the fmnist classifier takes images shaped [N, 1 or 3, H, W] in [-1, 1], got shape {tuple(images.shape)}"
        )
    x = images.float()
    if x.shape[1] == 3:
        luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x * luma).sum(1, keepdim=True)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True, align_corners=False)
    return x


def _conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(), nn.MaxPool2d(2)
    )


class FashionMNISTClassifier(nn.Module):
    """Small CNN: ``features(x) -> [N, 128]``, ``forward(x) -> [N, 10]`` logits.

    Inputs are images in [-1, 1] of any size with 1 or 3 channels (see :func:`to_classifier_input`);
    ``num_classes`` other than 10 serves other labelled data (e.g. TSTR on a class folder).
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv_block(1, 16), _conv_block(16, 32), nn.Flatten())  # 32 x 7 x 7
        self.embed = nn.Sequential(nn.Linear(32 * 7 * 7, FEATURE_DIM), nn.BatchNorm1d(FEATURE_DIM), nn.ReLU())
        self.head = nn.Linear(FEATURE_DIM, num_classes)
        self.metadata: dict[str, str] = {}
        self.weights_sha256 = ""

    def features(self, images: Tensor) -> Tensor:
        """Penultimate activations ``[N, 128]``."""
        return self.embed(self.body(to_classifier_input(images)))

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``[N, 10]`` (Fashion-MNIST class order, see ``gauguin.data.FASHION_MNIST_CLASSES``)."""
        return self.head(self.features(images))


# ---------------------------------------------------------------------------------- training
@torch.no_grad()
def classifier_accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` whose arg-max class is ``labels``."""
    was_training = model.training
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        correct += (logits.argmax(1).cpu() == labels[start : start + batch_size].cpu()).sum().item()
    model.train(was_training)
    return correct / max(len(images), 1)


def fit_classifier(images: Tensor, labels: Tensor, epochs: int = DEFAULTS["epochs"], seed: int = 0,
                   progress: bool = True, batch_size: int = DEFAULTS["batch_size"],
                   lr: float = DEFAULTS["lr"], num_classes: int = NUM_CLASSES,
                   augment: Callable[[Tensor, torch.Generator], Tensor] | None = None) -> FashionMNISTClassifier:
    """A fresh classifier trained on ``images`` / ``labels`` (Adam, lr decaying linearly to 0), in eval
    mode. Used for the fmnist extractor, TSTR and the augmentation experiment; ``augment(batch, generator)``
    transforms each training batch. The caller's RNG state is left untouched."""
    with torch.random.fork_rng(devices=[]):  # the same initial weights for the same seed
        torch.manual_seed(seed)
        model = FashionMNISTClassifier(num_classes)
    return fit(model, images, labels, F.cross_entropy, epochs, batch_size, lr, seed, progress, "classifier",
               augment)


def train_fmnist_classifier(
    out_path: str | Path | None = None,
    epochs: int = DEFAULTS["epochs"],
    seed: int = 0,
    progress: bool = True,
    batch_size: int = DEFAULTS["batch_size"],
    lr: float = DEFAULTS["lr"],
    data_root: str | Path | None = None,
) -> dict:
    """Train the classifier on the real Fashion-MNIST train split, test it, and write it.

    ``out_path`` defaults to :func:`default_classifier_path`; the write is atomic. Returns
    ``dict(accuracy, path, sha256, file_sha256, seconds)`` where ``sha256`` is the weights hash
    (:func:`state_dict_sha256`, the extractor's ``weights_hash``) and ``file_sha256`` the file's.
    The caller's RNG state is left untouched.
    """
    from gauguin.data import FashionMNIST

    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs >= 1, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    path = Path(out_path).expanduser() if out_path is not None else default_classifier_path()
    train = FashionMNIST("train", root=data_root)
    test = FashionMNIST("test", root=data_root)
    start_time = time.perf_counter()
    images, labels = train.get_batch(torch.arange(len(train)))
    model = fit_classifier(images, labels, epochs=epochs, seed=seed, progress=progress, batch_size=batch_size, lr=lr)
    test_images, test_labels = test.get_batch(torch.arange(len(test)))
    accuracy = classifier_accuracy(model, test_images, test_labels)
    seconds = time.perf_counter() - start_time
    state = model.state_dict()
    sha = state_dict_sha256(state)
    hparams = {**DEFAULTS, "epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    metadata = {
        "format": FORMAT,
        "architecture_version": str(ARCH_VERSION),
        "test_accuracy": f"{accuracy:.4f}",
        "hparams": json.dumps(hparams, sort_keys=True),
        "weights_sha256": sha,
        "train_seconds": f"{seconds:.1f}",
        "torch_version": torch.__version__,
    }
    save_safetensors_atomic(state, path, metadata)
    return {"accuracy": accuracy, "path": str(path), "sha256": sha, "file_sha256": file_sha256(path),
            "seconds": seconds}


# ----------------------------------------------------------------------------------- loading
def _read(path: Path) -> FashionMNISTClassifier:
    """Load ``path``; :class:`ClassifierWeightsError` names the file and what is wrong with it."""
    model = FashionMNISTClassifier()
    fix = f"retrain it with gauguin.metrics.classifier.train_fmnist_classifier({str(path)!r})"
    model.metadata = load_weights_file(path, model, "gauguin Fashion-MNIST classifier", FORMAT, ARCH_VERSION, fix,
                                       ClassifierWeightsError)
    model.weights_sha256 = state_dict_sha256(model.state_dict())
    return model.eval().requires_grad_(False)


def load_fmnist_classifier(
    path: str | Path | None = None, device: str | torch.device = "cpu", progress: bool = True
) -> FashionMNISTClassifier:
    """The trained classifier in eval mode, with ``.metadata`` and ``.weights_sha256``.

    Without ``path``, the default cache file is used, and trained first (with a message, about a
    minute on 2 CPU cores) when it is missing, unreadable or of an older architecture version.
    An explicit ``path`` that is missing or bad raises :class:`ClassifierWeightsError` instead.
    """
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ClassifierWeightsNotFoundError(
                f"Fashion-MNIST classifier weights {path} do not exist; train them with "
                f"gauguin.metrics.classifier.train_fmnist_classifier({str(path)!r}), or pass no path "
                f"to use (and, the first time, train) the default {default_classifier_path()}"
            )
        return _read(path).to(device)
    path = default_classifier_path()
    if path.is_file():
        try:
            return _read(path).to(device)
        except ClassifierWeightsError as err:
            reason = f"the cached classifier is unusable ({err})"
    else:
        reason = f"no classifier at {path}"
    print(f"gauguin: {reason}; training the Fashion-MNIST classifier on the real train split "
          "(about a minute on 2 CPU cores)", file=sys.stderr)
    result = train_fmnist_classifier(path, progress=progress)
    print(f"gauguin: classifier test accuracy {result['accuracy']:.2%}, saved to {path}", file=sys.stderr)
    return _read(path).to(device)
