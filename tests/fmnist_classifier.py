"""A small Fashion-MNIST CNN classifier for the learning test, cached as safetensors.

It judges whether generated images look like their conditioning class. Trained on the real
train split (inputs in [-1, 1], 28x28 grey, as ``FashionMNIST.get_batch`` gives them), it is
cached under ``$XDG_CACHE_HOME/gauguin/test-classifier/`` (default ``~/.cache``) in a file
named by a hash of its architecture and training hyper-parameters, so a rerun reuses it and
any change to either retrains it.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from gauguin.data import FashionMNIST

# Two epochs of Adam, lr decaying linearly to 0: ~89.5% test accuracy in ~10 s on 2 CPU cores.
HPARAMS = {"epochs": 2, "batch_size": 128, "lr": 2e-3, "schedule": "linear", "seed": 0, "format": 1}


def build_classifier() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),  # 14x14
        nn.Conv2d(16, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),  # 7x7
        nn.Flatten(), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )


def _spec() -> str:
    with torch.random.fork_rng(devices=[]):  # building the network draws its initial weights
        arch = repr(build_classifier())
    return json.dumps({"arch": arch, **HPARAMS}, sort_keys=True)


def cache_key() -> str:
    return hashlib.sha256(_spec().encode()).hexdigest()[:16]


def cache_path() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "gauguin" / "test-classifier" / f"cnn-{cache_key()}.safetensors"


def _train(model: nn.Module, data: FashionMNIST) -> None:
    gen = torch.Generator().manual_seed(HPARAMS["seed"])
    batch = HPARAMS["batch_size"]
    total = HPARAMS["epochs"] * -(-len(data) // batch)
    opt = torch.optim.Adam(model.parameters(), lr=HPARAMS["lr"])
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total)
    model.train()
    for _ in range(HPARAMS["epochs"]):
        order = torch.randperm(len(data), generator=gen)
        for start in range(0, len(order), batch):
            images, labels = data.get_batch(order[start : start + batch])
            loss = nn.functional.cross_entropy(model(images), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()


def load_or_train() -> tuple[nn.Module, bool]:
    """The classifier in eval mode, and whether it came from the cache (a cold, unreadable or
    mismatched cache file means training it, ~10 s, and writing the file)."""
    path = cache_path()
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
        torch.manual_seed(HPARAMS["seed"])
        model = build_classifier()
        if path.is_file():
            try:
                model.load_state_dict(load_file(str(path)))
                return model.eval(), True
            except (SafetensorError, OSError, RuntimeError):
                pass  # damaged file: retrain and overwrite it
        _train(model, FashionMNIST("train", image_size=28, channels=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    os.chmod(tmp, 0o644)
    try:  # atomic: a concurrent run never reads a half-written file
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp, metadata={"spec": _spec()})
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return model.eval(), False


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """Class indices of ``[N, 1, 28, 28]`` images in [-1, 1]."""
    return torch.cat([model(images[i : i + batch]).argmax(1) for i in range(0, len(images), batch)])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (predict(model, images) == labels).float().mean().item()
