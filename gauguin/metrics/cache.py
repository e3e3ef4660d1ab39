"""On-disk cache of reference statistics, keyed by a hash of everything they depend on.

The key covers the reference images' content fingerprint, the extractor and its weights' hash
and the protocol, so a changed file, other weights or another protocol can never reuse stale
statistics. Entries are safetensors files (arrays) with their key's parts as metadata.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from ..fileio import user_cache_dir


def cache_dir() -> Path:
    return user_cache_dir("stats")


def cache_key(**parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def load_cached(key: str, folder: Path | None = None) -> dict[str, np.ndarray] | None:
    """The arrays stored under ``key``, or None (missing, or unreadable: then recomputed)."""
    path = (folder or cache_dir()) / f"{key}.safetensors"
    if not path.is_file():
        return None
    try:
        return load_file(str(path))
    except (SafetensorError, OSError):
        return None


def save_cached(key: str, arrays: dict[str, np.ndarray], parts: dict, folder: Path | None = None) -> Path:
    """Store ``arrays`` under ``key`` atomically; ``parts`` (what the key hashes) go in the metadata."""
    folder = folder or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.safetensors"
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp),
              metadata={"key_parts": json.dumps(parts, sort_keys=True, default=str)})
    os.replace(tmp, path)
    return path
