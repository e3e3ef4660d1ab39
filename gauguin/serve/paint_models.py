"""The models ``gauguin paint`` serves: an export folder, or a gauguin checkpoint exported to ONNX once
(with its int8 graph) and cached under ``~/.cache/gauguin/paint/exports`` by its weights' hash."""
from __future__ import annotations

from pathlib import Path

from ..fileio import user_cache_dir


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
    from ..fileio import file_sha256
    from ..sampling import read_checkpoint
    from .engine import require_label_maps

    folder, _, meta = read_checkpoint(checkpoint)
    require_label_maps(meta, str(folder))  # a model that paints nothing: refused before the export is written
    out = user_cache_dir("paint", "exports", file_sha256(folder / "weights.safetensors")[:20])
    if not (out / "model.json").is_file():
        log(f"gauguin paint: exporting {folder} to ONNX ({out})")
        export_for_serving(folder, out, log)
    return out


def load_backend(source: str | Path, backend: str = "onnx", precision: str = "auto", threads: int | None = None,
                 log=print):
    """The backend for ``gauguin paint``: ``source`` is an export folder (``model.json``), or a gauguin checkpoint
    or run folder. ``backend`` "onnx" (onnxruntime; precision auto / fp32 / int8) or
    "torch" (PyTorch on checkpoints; precision fp32 / bf16, auto = fp32)."""
    if backend == "torch":
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"--backend torch runs fp32 or bf16, not {precision}")
        precision = "fp32" if precision == "auto" else precision
    from .engine import MODEL_JSON, OnnxBackend, TorchBackend

    source = Path(source)
    if (source / MODEL_JSON).is_file():
        if backend == "torch":
            raise ValueError(f"{source} is an ONNX export: it runs on onnxruntime only (drop --backend torch, or "
                             "pass the gauguin checkpoint it came from)")
        return OnnxBackend(source, threads, precision)
    if backend == "torch":
        return TorchBackend(source, precision)
    return OnnxBackend(exported_checkpoint(source, log), threads, precision)
