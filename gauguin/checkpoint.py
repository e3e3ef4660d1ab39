"""Checkpoints: a folder of safetensors files plus ``meta.json``, written atomically, no pickle.

Layout of ``<out_dir>/checkpoints/step_0001000/``::

    weights.safetensors      networks (generator, discriminator, generator_ema, ...)
    train_state.safetensors  optimizer moments, RNG states
    meta.json                family, config, step, data position, optimizer hyper-parameters,
                             and the SHA-256 of both tensor files (checked on load)

A checkpoint is written into a hidden temporary folder, every file fsync'ed, and renamed into
place, so a crash mid-write never leaves a half checkpoint under a real name. ``meta.json`` is
checked against :data:`META_SCHEMA` on load: a checkpoint whose meta.json lacks a key or holds a
value of the wrong type is corrupt like one whose file fails its checksum. A corrupt checkpoint is
never overwritten or pruned: resuming past it first moves it aside to ``step_N.corrupt``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .fileio import file_sha256, write_fix

STEP_DIR = re.compile(r"^step_(\d+)$")
META = "meta.json"
FORMAT = "gauguin-checkpoint-1"
TENSOR_FILES = ("weights.safetensors", "train_state.safetensors")
EARLIER = "; use an earlier checkpoint"  # the fix a corrupt checkpoint's message ends with


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or corrupt; the message names the file."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (full disk, permissions); the checkpoints before it are intact."""

    def __str__(self) -> str:
        return self.strerror


# ------------------------------------------------------------------ meta.json schema
def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_file_entry(v: Any) -> bool:
    return (isinstance(v, dict) and isinstance(v.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", v["sha256"])
            is not None and _is_int(v.get("bytes")) and v["bytes"] >= 0)


def _is_optimizer(v: Any) -> bool:
    return isinstance(v, dict) and isinstance(v.get("param_groups"), list) and isinstance(v.get("scalars"), dict)


# every checkpoint: what sampling, export and serving read
META_SCHEMA: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "format": (f"the string {FORMAT!r}", lambda v: v == FORMAT),
    "family": ("a family name", lambda v: isinstance(v, str) and v != ""),
    "config": ("a mapping", lambda v: isinstance(v, dict)),
    "num_classes": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "classes": ("a list or null", lambda v: v is None or isinstance(v, list)),
    "data": ("a mapping", lambda v: isinstance(v, dict)),
    "step": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "time": ("a string", lambda v: isinstance(v, str)),
    "files": ("a mapping of file name to {sha256, bytes}",
              lambda v: isinstance(v, dict) and TENSOR_FILES[0] in v and all(map(_is_file_entry, v.values()))),
}
# and what a resumed run needs besides
TRAINING_SCHEMA: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "world_size": ("an integer >= 1", lambda v: _is_int(v) and v >= 1),
    "sampler": ("a mapping", lambda v: isinstance(v, dict)),
    "optimizers": ("a mapping with opt_g and opt_d",
                   lambda v: isinstance(v, dict) and all(_is_optimizer(v.get(k)) for k in ("opt_g", "opt_d"))),
    "schedulers": ("a mapping with sched_g and sched_d",
                   lambda v: isinstance(v, dict) and all(isinstance(v.get(k), dict) for k in ("sched_g", "sched_d"))),
    "ema_updates": ("an integer >= 0", lambda v: _is_int(v) and v >= 0),
    "best_metric": ("a number or null", lambda v: v is None or _is_number(v)),
    "metric_history": ("a list", lambda v: isinstance(v, list)),
    "rng": ("a list of mappings", lambda v: isinstance(v, list) and all(isinstance(r, dict) for r in v)),
}
# checked where present: checkpoints written before these keys existed still load and resume
OPTIONAL_SCHEMA: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "precision": ("'fp32' or 'bf16' (what precision=auto resolved to)", lambda v: v in ("fp32", "bf16")),
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate_meta(meta: Any, meta_path: Path, training: bool = False) -> dict:
    """``meta`` if it fits :data:`META_SCHEMA` (and, with ``training``, :data:`TRAINING_SCHEMA`: what a
    resumed run needs); else :class:`CheckpointError` naming the key."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{meta_path} is corrupt (a JSON {type(meta).__name__}, not an object){EARLIER}")
    training = training or any(k in meta for k in TRAINING_SCHEMA)  # a training key present: all must be
    schema = {**META_SCHEMA, **TRAINING_SCHEMA} if training else META_SCHEMA
    for key, (expected, check) in {**schema, **OPTIONAL_SCHEMA}.items():
        if key not in meta:
            if key in OPTIONAL_SCHEMA:
                continue
            raise CheckpointError(f"{meta_path} is corrupt (no '{key}'){EARLIER}")
        if not check(meta[key]):
            raise CheckpointError(f"{meta_path} is corrupt ('{key}' must be {expected}, got "
                                  f"{_short(meta[key])}){EARLIER}")
    if training and len(meta["rng"]) != meta["world_size"]:
        raise CheckpointError(f"{meta_path} is corrupt ({len(meta['rng'])} RNG states for world_size "
                              f"{meta['world_size']}){EARLIER}")
    if training and TENSOR_FILES[1] not in meta["files"]:
        raise CheckpointError(f"{meta_path} is corrupt (no {TENSOR_FILES[1]} in 'files'){EARLIER}")
    return meta


def read_meta(path: Path, training: bool = False) -> dict:
    """The validated meta.json of the checkpoint folder ``path`` (its tensor files are not read);
    ``training``: it must also hold what a resumed run needs."""
    meta_path = Path(path) / META
    if not meta_path.is_file():
        raise CheckpointError(f"{meta_path} is missing: {path} is not a gauguin checkpoint folder")
    try:
        meta = json.loads(meta_path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise CheckpointError(f"{meta_path} is corrupt ({type(err).__name__}){EARLIER}") from None
    except OSError as err:
        raise CheckpointError(f"{meta_path} cannot be read ({err.strerror}){EARLIER}") from None
    return validate_meta(meta, meta_path, training)


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
        meta = validate_meta(dict(meta, files=checksums), target / META)  # never write what load refuses
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
    except (OSError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, SafetensorError):  # safetensors reports the OS error as text: "... (os error 28)"
            code = re.search(r"os error (\d+)", str(err))
            err = OSError(int(code.group(1)) if code else None, str(err))
        where = f": {err.filename}" if err.filename else ""
        raise CheckpointWriteError(err.errno, f"could not write the checkpoint {target} ({err.strerror}{where}); "
                                   f"{write_fix(err)}, then continue with --resume: the checkpoints already in "
                                   f"{target.parent} are intact", str(target)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_checkpoint(path: Path, training: bool = False) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """Read and verify a checkpoint folder (``training``: one a run can resume from); raise
    :class:`CheckpointError` naming the bad file."""
    path = Path(path)
    if path.is_file() and path.name == META:
        path = path.parent
    meta = read_meta(path, training)
    tensors = {}
    for name, info in meta["files"].items():
        file = path / name
        if Path(name).name != name or not file.is_file():
            raise CheckpointError(f"{file} is missing{EARLIER}")
        if file.stat().st_size != info["bytes"] or file_sha256(file) != info["sha256"]:
            raise CheckpointError(f"{file} is truncated or corrupt (checksum mismatch){EARLIER}")
        try:
            tensors[name] = load_file(str(file))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{file} cannot be read ({err}){EARLIER}") from None
    return tensors, meta


def step_checkpoints(root: Path) -> list[Path]:
    """``step_*`` folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := STEP_DIR.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_meta(root: Path, training: bool = False) -> tuple[Path, dict] | None:
    """The newest step checkpoint whose meta.json is valid, without verifying its tensor files: the
    cheap look at a run's config before :func:`load_latest` verifies and loads everything."""
    for path in reversed(step_checkpoints(root)):
        try:
            return path, read_meta(path, training)
        except CheckpointError:
            continue
    return None


def _newest_verifying(root: Path, training: bool) -> tuple[tuple[Path, dict, dict] | None, list]:
    """The newest step checkpoint under ``root`` that verifies (or None), and the (folder, error) of
    each newer one that did not, newest first."""
    failures = []
    for path in reversed(step_checkpoints(root)):
        try:
            return (path, *load_checkpoint(path, training)), failures
        except CheckpointError as err:
            failures.append((path, err))
    return None, failures


def load_latest(root: Path) -> tuple[Path, dict, dict] | None:
    """The newest readable checkpoint under ``root``; a corrupt newer one is reported and skipped."""
    found, failures = _newest_verifying(root, training=False)
    for _, err in failures:
        warnings.warn(f"skipping corrupt checkpoint: {err}", stacklevel=2)
    return found


def resume_point(root: Path, move_corrupt: bool = True) -> tuple[Path, dict, dict]:
    """The checkpoint a resumed run continues from: the newest that verifies.

    Newer corrupt ones are moved aside to ``step_N.corrupt`` (``move_corrupt``), so the resumed run
    neither overwrites nor prunes them. When none verifies, nothing is touched and
    :class:`CheckpointError` lists every failure."""
    root = Path(root)
    found, failures = _newest_verifying(root, training=True)
    if found is not None:
        for bad, err in failures if move_corrupt else ():
            aside = _free_name(bad.with_name(bad.name + ".corrupt"))
            os.rename(bad, aside)
            warnings.warn(f"skipping corrupt checkpoint ({err}); moved it to {aside}, resuming from {found[0]}",
                          stacklevel=2)
        return found
    if not failures:
        raise CheckpointError(f"--resume: no checkpoint under {root}; drop --resume to start a new run")
    reasons = "; ".join(str(err).removesuffix(EARLIER) for _, err in failures)
    raise CheckpointError(f"--resume: none of the {len(failures)} checkpoint(s) under {root} verifies ({reasons}). "
                          "Nothing was changed: restore them from a backup, or start a new run in another "
                          "folder with out_dir=NEW_FOLDER")


def _free_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def recover_interrupted_writes(root: Path) -> None:
    """Undo what a process killed inside :func:`save_checkpoint` left: half-written ``.NAME.tmp``
    folders are deleted, and a ``.NAME.old`` whose replacement never arrived is moved back."""
    root = Path(root)
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if not (entry.name.startswith(".") and entry.is_dir()):
            continue
        if entry.name.endswith(".tmp"):
            shutil.rmtree(entry, ignore_errors=True)
        elif entry.name.endswith(".old"):
            target = root / entry.name[1 : -len(".old")]
            if target.exists():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                os.rename(entry, target)


def saved_checkpoints(root: Path) -> list[Path]:
    """Every checkpoint folder under ``root`` a new run must not overwrite: ``step_*``, ``best`` and
    the ones moved aside as corrupt."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (STEP_DIR.match(p.name) or p.name == "best" or ".corrupt" in p.name or (p / META).exists()))


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
