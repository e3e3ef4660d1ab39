"""Every label map of a dataset checked once, before training: distinct ids (or colours) of each
file, decoded on a thread pool and cached by (path, size, mtime_ns) under
``user_cache_dir("label_maps")``, so a bad id stops a run before its first step and names every bad
file at once (:func:`scan_label_maps`; the dataset turns the scan into its error).
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gauguin.data.errors import BadDataError
from gauguin.data.batching import DECODE_THREADS
from gauguin.data.label_files import _colour_codes, read_label_file
from gauguin.fileio import user_cache_dir, write_bytes_atomic

logger = logging.getLogger(__name__)

LABEL_CACHE_VERSION = 1  # bump when what is cached changes
_CACHE_FILES_KEPT = 64  # cache files of other folders beyond this many are deleted, oldest first
_SHOWN_BAD_FILES = 20  # bad label maps named in a message (``LabelMapError.files`` has all)


@dataclass
class LabelCheck:
    """What checking a dataset's label maps did: ``files`` checked, ``decoded`` (read from disk) and
    ``cached`` (taken from the cache file ``cache_file``, None when not cached)."""

    files: int
    decoded: int
    cached: int
    cache_file: Path | None


@dataclass
class LabelScan:
    """The distinct raw values of label maps: ``stats[path]`` is ``{"ids": [...]}`` (id-valued maps)
    or ``{"colours": [...]}`` (RGB maps, as ``(r << 16) | (g << 8) | b``); ``errors[path]`` the
    :class:`BadDataError` of a file that cannot be used at all (unreadable, wrong mode, empty)."""

    stats: dict[Path, dict[str, list[int]]]
    errors: dict[Path, BadDataError]
    check: LabelCheck


def label_cache_file(folder: str | Path) -> Path:
    """The cache file of the label maps under ``folder``: ``user_cache_dir("label_maps")/<hash>.json``,
    one per folder (by its absolute path)."""
    key = hashlib.sha256(str(Path(folder).expanduser().resolve()).encode()).hexdigest()[:24]
    return user_cache_dir("label_maps") / f"{key}.json"


def distinct_ids(array: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer id map (bincount for small non-negative ids)."""
    flat = array.ravel()
    if flat.size == 0:
        return np.zeros(0, dtype=np.int64)
    low, high = int(flat.min()), int(flat.max())
    if low >= 0 and high < 1 << 20:
        return np.flatnonzero(np.bincount(flat, minlength=high + 1))
    return np.unique(flat).astype(np.int64)


def label_map_stats(path: str | Path) -> dict[str, list[int]]:
    """What checking needs of one label map: ``{"ids": distinct ids}`` or ``{"colours": distinct colour
    codes}``; :class:`BadDataError` naming the file when it cannot be used (see :func:`read_label_file`)."""
    array = read_label_file(path)
    if array.size == 0:
        raise BadDataError(f"label map {path} is empty (0 pixels); fix: re-export it")
    if array.ndim == 3:
        return {"colours": np.unique(_colour_codes(array)).tolist()}
    return {"ids": distinct_ids(array).tolist()}


def scan_label_maps(files: Sequence[Path], folder: str | Path | None = None, *, cache: bool = True) -> LabelScan:
    """:func:`label_map_stats` of every file, decoded in a thread pool; with ``cache`` (and a ``folder``),
    the results are kept in :func:`label_cache_file` of ``folder``, keyed by each file's path, size
    and ``mtime_ns``, so a second scan of unchanged files decodes none. The cache file is written
    atomically and only when something changed; a cache that cannot be read or written is ignored.
    A file's errors are never cached."""
    files = [Path(path) for path in files]
    cache_file = label_cache_file(folder) if cache and folder is not None else None
    base = Path(folder).expanduser().resolve() if folder is not None else None
    old = _read_label_cache(cache_file, base) if cache_file else {}
    stats: dict[Path, dict[str, list[int]]] = {}
    errors: dict[Path, BadDataError] = {}
    entries: dict[str, dict[str, Any]] = {}
    todo: list[tuple[Path, str, tuple[int, int] | None]] = []
    for path in files:
        key = _cache_key(path, base)
        try:
            st = path.stat()
            stamp: tuple[int, int] | None = (st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None  # read_label_file says what is wrong
        entry = old.get(key)
        if stamp is not None and entry is not None and (entry.get("size"), entry.get("mtime_ns")) == stamp:
            found = {k: entry[k] for k in ("ids", "colours") if k in entry}
            if len(found) == 1 and all(isinstance(v, list) for v in found.values()):
                stats[path] = found
                entries[key] = entry
                continue
        todo.append((path, key, stamp))

    def one(path: Path) -> dict[str, list[int]] | BadDataError:
        try:
            return label_map_stats(path)
        except BadDataError as err:
            return err

    if len(todo) > 1:
        with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, len(todo))) as pool:  # PIL frees the GIL
            results = list(pool.map(one, [path for path, _, _ in todo]))
    else:
        results = [one(path) for path, _, _ in todo]
    for (path, key, stamp), result in zip(todo, results):
        if isinstance(result, BadDataError):
            errors[path] = result
            continue
        stats[path] = result
        if stamp is not None:
            entries[key] = {"size": stamp[0], "mtime_ns": stamp[1], **result}
    if cache_file is not None and (todo or set(old) != set(entries)):
        _write_label_cache(cache_file, base, entries)
    return LabelScan(stats, errors, LabelCheck(len(files), len(todo), len(files) - len(todo), cache_file))


def _cache_key(path: Path, base: Path | None) -> str:
    absolute = path.expanduser().resolve()
    if base is not None:
        try:
            return absolute.relative_to(base).as_posix()
        except ValueError:
            pass
    return str(absolute)


def _read_label_cache(cache_file: Path, base: Path | None) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(cache_file.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != LABEL_CACHE_VERSION or data.get("folder") != str(base):
        return {}
    files = data.get("files")
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def _write_label_cache(cache_file: Path, base: Path | None, entries: dict[str, dict[str, Any]]) -> None:
    data = {"version": LABEL_CACHE_VERSION, "folder": str(base), "files": entries}
    try:
        write_bytes_atomic(cache_file, json.dumps(data, separators=(",", ":")).encode())
        others = sorted((p for p in cache_file.parent.glob("*.json") if p != cache_file),
                        key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for stale in others[_CACHE_FILES_KEPT - 1:]:
            stale.unlink(missing_ok=True)
    except OSError as err:  # a read-only or full cache dir costs only speed
        logger.debug("cannot write the label-map cache %s: %s", cache_file, err)
