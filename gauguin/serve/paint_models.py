"""The painter's default model: SPADE with a style encoder on Fashion-MNIST silhouettes (11 labels:
background + the 10 garment classes, 32 px, grey), trained by gauguin on first use (a few minutes on a
CPU, with a progress bar), exported to ONNX (with the int8 graph) and cached under
``~/.cache/gauguin/paint``.

An interrupted training resumes where it stopped; a finished one is never trained again.
"""
from __future__ import annotations

from pathlib import Path

from ..fileio import user_cache_dir

VERSION = "v1"  # change it when DEFAULT_CONFIG changes: a new cache folder, the old model is kept

# configs/spade_fashion.yaml's model (ngf 16, the paper's losses and TTUR) with a shorter schedule
DEFAULT_CONFIG = dict(
    dataset="fashion-mnist", image_size=32, channels=1, use_vae=True, encoder_input_size=128,
    ngf=16, ndf=32, batch_size=32, steps=1200, lr_decay_start=0.5,
    log_every=50, sample_every=400, checkpoint_every=400, eval_every=0)


def default_model_dir() -> Path:
    return user_cache_dir("paint", f"spade_fashion_{VERSION}")


def default_paint_model(progress: bool = True, log=print) -> Path:
    """The export folder of the default model, trained and exported on first use."""
    from ..models.spade import SPADEConfig
    from ..training import train
    from ..checkpoint import latest_meta

    root = default_model_dir()
    exported = root / "onnx"
    if (exported / "model.json").is_file():
        return exported
    run = root / "run"
    cfg = SPADEConfig.from_dict({**DEFAULT_CONFIG, "out_dir": str(run), "progress": progress})
    newest = latest_meta(run / "checkpoints")
    if newest is None or newest[1]["step"] < cfg.steps:  # not trained, or interrupted
        log(f"gauguin paint: training the default model (SPADE on Fashion-MNIST silhouettes, {cfg.steps} steps, "
            f"about 8 minutes on 2 cores) into {run}; this happens once" + (" (resuming)" if newest else ""))
        train("spade", cfg, resume=newest is not None)
    export_for_serving(run, exported, log)
    return exported


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


def load_backend(source: str | Path | None, backend: str = "onnx", precision: str = "auto", threads: int | None = None,
                 log=print):
    """The backend for ``gauguin paint``: ``source`` is an export folder (``model.json``), a gauguin checkpoint or
    run folder, or None for the default model. ``backend`` "onnx" (onnxruntime; precision auto / fp32 / int8) or
    "torch" (PyTorch on checkpoints; precision fp32 / bf16, auto = fp32)."""
    if backend == "torch":
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"--backend torch runs fp32 or bf16, not {precision}")
        precision = "fp32" if precision == "auto" else precision
    from .engine import MODEL_JSON, OnnxBackend, TorchBackend

    if source is None:
        exported = default_paint_model(log=log)
        return (TorchBackend(default_model_dir() / "run", precision) if backend == "torch"
                else OnnxBackend(exported, threads, precision))
    source = Path(source)
    if (source / MODEL_JSON).is_file():
        if backend == "torch":
            raise ValueError(f"{source} is an ONNX export: it runs on onnxruntime only (drop --backend torch, or "
                             "pass the gauguin checkpoint it came from)")
        return OnnxBackend(source, threads, precision)
    if backend == "torch":
        return TorchBackend(source, precision)
    return OnnxBackend(exported_checkpoint(source, log), threads, precision)
