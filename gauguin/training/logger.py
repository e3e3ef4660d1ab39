"""Run logging on rank 0: a progress bar, TensorBoard scalars and images, and ``metrics.jsonl``."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .images import to_uint8


class RunLogger:
    def __init__(self, out_dir: Path, total_steps: int, start_step: int, enabled: bool, progress: bool):
        self.enabled = enabled
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not (enabled and progress),
                        dynamic_ncols=True, unit="step")
        self.writer = None
        self.jsonl = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow to import

            self.writer = SummaryWriter(str(out_dir / "tensorboard"), purge_step=start_step or None)
            self.jsonl = open(out_dir / "metrics.jsonl", "a")
        self._last_time, self._last_images = time.perf_counter(), 0

    def images_per_second(self, images_seen: int) -> float:
        now = time.perf_counter()
        rate = (images_seen - self._last_images) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_images = now, images_seen
        return rate

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.jsonl.write(json.dumps({"step": step, **{k: round(float(v), 6) for k, v in values.items()}}) + "\n")
        self.jsonl.flush()
        shown = {k: f"{v:.3g}" for k, v in values.items() if k in ("d_loss", "g_loss", "img_per_s", "swd")}
        self.bar.set_postfix(shown, refresh=False)

    def image(self, step: int, tag: str, image: torch.Tensor) -> None:
        if self.enabled:
            self.writer.add_image(tag, to_uint8(image), step, dataformats="HW" if image.shape[0] == 1 else "HWC")

    def advance(self) -> None:
        self.bar.update(1)

    def write(self, message: str) -> None:
        if self.enabled:
            self.bar.write(message)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
            self.jsonl.close()
