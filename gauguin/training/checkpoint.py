"""Checkpoints: a folder of safetensors files plus ``meta.json``, written atomically, no pickle.

Layout of ``<out_dir>/checkpoints/step_0001000/``::

    weights.safetensors      networks (generator, discriminator, generator_ema, ...)
    train_state.safetensors  optimizer moments, RNG states
    meta.json                family, config, step, data position, optimizer hyper-parameters,
                             and the SHA-256 of both tensor files (checked on load)

A checkpoint is written into a hidden temporary folder, every file fsync'ed, and renamed into
place, so a crash mid-write never leaves a half checkpoint under a real name.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..fileio import file_sha256

STEP_DIR = re.compile(r"^step_(\d+)$")
META = "meta.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or corrupt; the message names the file."""


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(target: Path, tensor_files: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> Path:
    """Write ``tensor_files`` (file name -> tensors) and ``meta`` to the folder ``target`` atomically.

    An existing ``target`` is replaced only after the new one is complete on disk.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        checksums = {}
        for name, tensors in tensor_files.items():
            path = tmp / name
            save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
            _fsync(path)
            checksums[name] = {"sha256": file_sha256(path), "bytes": path.stat().st_size}
        meta = dict(meta, files=checksums)
        with open(tmp / META, "w") as f:
            json.dump(meta, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        _fsync(tmp)
        old = target.parent / f".{target.name}.old"
        if target.exists():
            if old.exists():
                shutil.rmtree(old)
            os.rename(target, old)
        os.rename(tmp, target)
        _fsync(target.parent)
        if old.exists():
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_checkpoint(path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read and verify a checkpoint folder; raise :class:`CheckpointError` naming the bad file."""
    path = Path(path)
    if path.is_file() and path.name == META:
        path = path.parent
    meta_path = path / META
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path} is missing: {path} is not a gauguin checkpoint folder")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{meta_path} is corrupt ({err}); use an earlier checkpoint") from None
    tensors = {}
    for name, info in meta.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"{file} is missing; use an earlier checkpoint")
        if file.stat().st_size != info["bytes"] or file_sha256(file) != info["sha256"]:
            raise CheckpointError(f"{file} is truncated or corrupt (checksum mismatch); use an earlier checkpoint")
        try:
            tensors[name] = load_file(str(file))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{file} cannot be read ({err}); use an earlier checkpoint") from None
    return tensors, meta


def step_checkpoints(root: Path) -> list[Path]:
    """``step_*`` folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_meta(root: Path) -> tuple[Path, dict] | None:
    """The newest step checkpoint's meta.json that reads, without verifying its tensor files: the
    cheap look at a run's config before :func:`load_latest` verifies and loads everything."""
    for path in reversed(step_checkpoints(root)):
        try:
            return path, json.loads((path / META).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
    return None


def load_latest(root: Path) -> tuple[Path, dict, dict] | None:
    """The newest readable checkpoint under ``root``; a corrupt newer one is reported and skipped."""
    for path in reversed(step_checkpoints(root)):
        try:
            tensors, meta = load_checkpoint(path)
        except CheckpointError as err:
            warnings.warn(f"skipping corrupt checkpoint: {err}", stacklevel=2)
            continue
        return path, tensors, meta
    return None


def prune(root: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints (the ``best`` folder is separate)."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    for path in step_checkpoints(root)[:-keep]:
        shutil.rmtree(path)


# --------------------------------------------------------------------- state (de)flattening
def flatten_optimizer(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.state.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(opt: torch.optim.Optimizer, prefix: str, tensors: dict, info: dict) -> None:
    state: dict[int, dict] = {}
    head = f"{prefix}.state."
    for name, value in tensors.items():
        if name.startswith(head):
            index, key = name[len(head) :].split(".", 1)
            state.setdefault(int(index), {})[key] = value
    for name, value in info["scalars"].items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in info["param_groups"]]  # JSON made lists
    opt.load_state_dict({"state": state, "param_groups": groups})
    for group in opt.param_groups:  # moments in the parameter's memory layout (channels_last): fused kernels need it
        for param in group["params"]:
            for key, value in opt.state.get(param, {}).items():
                if torch.is_tensor(value) and value.shape == param.shape:
                    opt.state[param][key] = torch.empty_like(param).copy_(value)


def module_state(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_module_state(module: torch.nn.Module, prefix: str, tensors: dict, source: str) -> None:
    head = f"{prefix}."
    state = {k[len(head) :]: v for k, v in tensors.items() if k.startswith(head)}
    if not state:
        raise CheckpointError(f"{source} holds no '{prefix}' weights")
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{source}: '{prefix}' weights do not fit this network ({str(err).splitlines()[0]}...); "
            "was the checkpoint trained with another config (image_size, widths, classes)?"
        ) from None
