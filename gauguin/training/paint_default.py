"""The painter's default model: SPADE with a style encoder on Fashion-MNIST silhouettes (11 labels:
background + the 10 garment classes, 32 px, grey), trained by gauguin on first use (a few minutes on
a CPU, with a progress bar) under ``~/.cache/gauguin/paint``; ``gauguin paint`` serves its export.

An interrupted training resumes where it stopped; a finished one is never trained again.
"""
from __future__ import annotations

from pathlib import Path

from ..checkpoint import latest_meta
from ..fileio import user_cache_dir
from ..models import get_family

VERSION = "v1"  # change it when DEFAULT_CONFIG changes: a new cache folder, the old model is kept
FAMILY = "spade"
# configs/spade_fashion.yaml's model (ngf 16, the paper's losses and TTUR) with a shorter schedule
DEFAULT_CONFIG = dict(
    dataset="fashion-mnist", image_size=32, channels=1, use_vae=True, encoder_input_size=128,
    ngf=16, ndf=32, batch_size=32, steps=1200, lr_decay_start=0.5,
    log_every=50, sample_every=400, checkpoint_every=400, eval_every=0)


def default_run_dir() -> Path:
    return user_cache_dir("paint", f"spade_fashion_{VERSION}") / "run"


def default_paint_checkpoint(progress: bool = True, log=print) -> Path:
    """The run folder of the default model, trained (or its interrupted training resumed) on first use."""
    from .loop import train

    run = default_run_dir()
    cfg = get_family(FAMILY).config_class.from_dict({**DEFAULT_CONFIG, "out_dir": str(run), "progress": progress})
    newest = latest_meta(run / "checkpoints")
    if newest is None or newest[1]["step"] < cfg.steps:  # not trained, or interrupted
        log(f"gauguin paint: training the default model (SPADE on Fashion-MNIST silhouettes, {cfg.steps} steps, "
            f"about 8 minutes on 2 cores) into {run}; this happens once" + (" (resuming)" if newest else ""))
        train(FAMILY, cfg, resume=newest is not None)
    return run
