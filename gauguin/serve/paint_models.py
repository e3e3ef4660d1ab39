"""The models ``gauguin paint`` serves, and the backend that serves each fastest.

A source is one of:

- a **bundle** (``manifest.json`` + ``export/`` [+ ``checkpoint/``]): the default model shipped in the
  package (:data:`SHIPPED`, its int8 graphs, built by ``gauguin paint --retrain``); every file's sha256
  is checked against the manifest before it is served;
- an export folder (``model.json``, written by ``gauguin export``);
- a gauguin checkpoint or run folder, exported to ONNX once (with its int8 graph) and cached under
  ``~/.cache/gauguin/paint/exports`` by its weights' hash.

:func:`load_backend` with ``backend="auto"`` times each path whose quality passed the export's check
(onnxruntime int8 and fp32, PyTorch bf16 and fp32) on the model's own input size and serves the fastest.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..fileio import file_sha256, user_cache_dir

SHIPPED = Path(__file__).parent / "default_model"  # the painter's default model, in the package
MANIFEST = "manifest.json"
REBUILD = "reinstall gauguin (pip install --force-reinstall gauguin) or rebuild it with `gauguin paint --retrain`"


class DamagedModelError(ValueError):
    """A bundle whose files do not match its manifest (a damaged or edited install)."""


def is_bundle(folder: str | Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_bundle(folder: str | Path) -> dict:
    """The manifest of the bundle ``folder`` after checking each file it lists (size and sha256)."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DamagedModelError(f"{path} is not a readable model manifest ({type(err).__name__}: {err}); "
                                f"{REBUILD}") from None
    for name, entry in files.items():
        file = folder / name
        if not file.is_file():
            raise DamagedModelError(f"{file} is missing (listed in {path}); {REBUILD}")
        if file.stat().st_size != entry["bytes"] or file_sha256(file) != entry["sha256"]:
            raise DamagedModelError(f"{file} does not match the sha256 in {path} (a damaged or edited file); "
                                    f"{REBUILD}")
    return manifest


def export_for_serving(checkpoint: str | Path, out: Path, log=print) -> None:
    """The ONNX export with its int8 graph; where quantization fails, the fp32 export alone."""
    from .export import QuantizationError, export

    try:
        export(checkpoint, out, quantize="int8")
    except QuantizationError as err:
        log(f"gauguin paint: {err}; serving fp32")
        export(checkpoint, out)


def exported_checkpoint(checkpoint: str | Path, log=print) -> Path:
    """The ONNX export of a gauguin checkpoint, made once and cached by the weights' content hash."""
    from ..sampling import read_checkpoint
    from .engine import require_label_maps

    folder, _, meta = read_checkpoint(checkpoint)
    require_label_maps(meta, str(folder))  # a model that paints nothing: refused before the export is written
    out = user_cache_dir("paint", "exports", file_sha256(folder / "weights.safetensors")[:20])
    if not (out / "model.json").is_file():
        log(f"gauguin paint: exporting {folder} to ONNX ({out})")
        export_for_serving(folder, out, log)
    return out


def serving_files(source: str | Path, log=print) -> tuple[Path, Path | None]:
    """(export folder, checkpoint or None) of a bundle, an export folder or a checkpoint."""
    from .engine import MODEL_JSON

    source = Path(source)
    if is_bundle(source):
        read_bundle(source)
        checkpoint = source / "checkpoint"
        return source / "export", checkpoint if checkpoint.is_dir() else None
    if (source / MODEL_JSON).is_file():
        return source, None
    return exported_checkpoint(source, log), source


def serving_paths(export: Path, checkpoint: Path | None, backend: str = "auto",
                  precision: str = "auto") -> list[tuple[str, str]]:
    """The (backend, precision) paths that may serve: asked for explicitly, or with "auto" each whose
    quality passed the export's check (PSNR vs fp32 >= 30 dB), fastest-looking first."""
    from .engine import MODEL_JSON

    if backend not in ("auto", "onnx", "torch"):
        raise ValueError(f"--backend is onnx, torch or auto, not {backend!r}")
    if precision not in ("auto", "fp32", "int8", "bf16"):
        raise ValueError(f"--precision is auto, fp32, int8 or bf16, not {precision!r}")
    if backend == "torch" and precision == "int8":
        raise ValueError("--backend torch runs fp32 or bf16, not int8 (int8 is onnxruntime's: --backend onnx)")
    if backend == "onnx" and precision == "bf16":
        raise ValueError("--backend onnx runs fp32 or int8, not bf16 (bf16 is PyTorch's: --backend torch)")
    if checkpoint is None and backend == "torch":
        raise ValueError(f"{export} is an ONNX export: it runs on onnxruntime only (drop --backend torch, or pass "
                         "the gauguin checkpoint it came from)")
    meta = json.loads((export / MODEL_JSON).read_text())
    graphs = meta.get("graphs") or {}
    int8 = (graphs.get("generator_int8.onnx") or {}).get("quantization")
    bf16 = (meta.get("quality") or {}).get("torch-bf16")
    onnx = [("onnx", "int8")] if int8 and int8["passed"] else []
    if "generator.onnx" in graphs:  # a shipped bundle holds the int8 graph only
        onnx.append(("onnx", "fp32"))
    torch = [("torch", "bf16")] if bf16 and bf16["passed"] else []
    torch.append(("torch", "fp32"))
    if checkpoint is None:
        torch = []
    if precision != "auto":  # what was asked for, on the backends that run it
        onnx = [("onnx", precision)] if precision in ("fp32", "int8") and (
            f"generator{'_int8' if precision == 'int8' else ''}.onnx" in graphs) else []
        torch = [("torch", precision)] if precision in ("fp32", "bf16") and checkpoint is not None else []
    return {"onnx": onnx, "torch": torch, "auto": torch[:1] + onnx[:1] + torch[1:] + onnx[1:]}[backend]


def path_name(path: tuple[str, str]) -> str:
    """("onnx", "int8") → "onnxruntime int8"."""
    return f"{'onnxruntime' if path[0] == 'onnx' else 'pytorch'} {path[1]}"


def open_backend(path: tuple[str, str], export: Path, checkpoint: Path | None, threads: int | None = None):
    from .engine import OnnxBackend, TorchBackend

    backend, precision = path
    if backend == "torch":
        return TorchBackend(checkpoint, precision)
    return OnnxBackend(export, threads, precision)


def probe_label_map(size: tuple[int, int], num_labels: int) -> np.ndarray:
    """A painted-looking map: a few labels in blocks of ~1/8 of the image."""
    h, w = size
    block = max(1, min(h, w) // 8)
    cells = np.random.default_rng(0).integers(0, num_labels, (-(-h // block), -(-w // block)))
    return cells.repeat(block, 0).repeat(block, 1)[:h, :w].astype(np.int64)


def seconds_per_image(backend, budget_s: float = 1.5, rounds: int = 5) -> float:
    """The best of up to ``rounds`` timed forward passes (after one warm-up) within about ``budget_s``."""
    from .engine import generator_feeds

    info = backend.info
    feeds = generator_feeds(info, probe_label_map(info.image_size, info.num_labels)[None], [0])
    start = time.perf_counter()
    backend.run(feeds)  # warm-up: kernel choice, graph optimisation
    best, spent = float("inf"), time.perf_counter() - start
    for _ in range(rounds):
        if spent > budget_s and best < float("inf"):
            break
        t = time.perf_counter()
        backend.run(feeds)
        best = min(best, time.perf_counter() - t)
        spent = time.perf_counter() - start
    return best


def load_backend(source: str | Path, backend: str = "auto", precision: str = "auto", threads: int | None = None,
                 log=print):
    """The backend for ``gauguin paint``: ``source`` a bundle, an export folder or a gauguin checkpoint.
    ``backend`` "onnx" (onnxruntime: int8 / fp32), "torch" (PyTorch: bf16 / fp32) or "auto" (both); with
    more than one path allowed (``precision`` "auto"), each is timed here and the fastest serves."""
    export, checkpoint = serving_files(source, log)
    paths = serving_paths(export, checkpoint, backend, precision)
    if not paths:
        raise ValueError(f"no backend runs --precision {precision} here; pass --precision auto")
    return fastest(paths, export, checkpoint, threads, log)


def fastest(paths: list[tuple[str, str]], export: Path, checkpoint: Path | None, threads: int | None = None,
            log=print):
    """The backend of the fastest of ``paths`` (timed here when there are several)."""
    if len(paths) == 1:
        return open_backend(paths[0], export, checkpoint, threads)
    timed = []
    for path in paths:
        candidate = open_backend(path, export, checkpoint, threads)
        timed.append((seconds_per_image(candidate), path, candidate))
    best = min(timed, key=lambda t: t[0])
    log("gauguin paint: " + ", ".join(f"{path_name(p)} {s * 1000:.1f} ms" for s, p, _ in timed)
        + " per image → serving the fastest")
    return best[2]
