"""Run logging on rank 0: a progress bar, TensorBoard scalars and images, and ``metrics.jsonl``.

A write that fails (a full disk, say) raises an ``OSError`` naming the file; TensorBoard's writer
thread keeps its traceback to itself (its error reaches the loop through the next write)."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..fileio import named_os_error, write_bytes_atomic
from ..images import to_uint8


def truncate_jsonl(path: Path, last_step: int) -> None:
    """Keep the rows of ``path`` up to ``last_step``: a resumed run re-logs the steps after its checkpoint."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= last_step:
                kept.append(line + "\n")
        except (json.JSONDecodeError, AttributeError):
            continue  # a row cut short by a crash
    write_bytes_atomic(path, "".join(kept).encode())


class RunLogger:
    def __init__(self, out_dir: Path, total_steps: int | None, start_step: int, enabled: bool, progress: bool):
        self.enabled = enabled
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not (enabled and progress),
                        dynamic_ncols=True, unit="step")
        self.writer = None
        self.jsonl = None
        self.tensorboard_dir = out_dir / "tensorboard"
        self.jsonl_path = out_dir / "metrics.jsonl"
        self._previous_hook = None
        if enabled:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow to import

            self._quiet_writer_threads()
            with named_os_error(self.tensorboard_dir):
                self.writer = SummaryWriter(str(self.tensorboard_dir), purge_step=start_step or None)
            with named_os_error(self.jsonl_path):
                truncate_jsonl(self.jsonl_path, start_step)
                self.jsonl = open(self.jsonl_path, "a")
        self._last_time, self._last_images = time.perf_counter(), 0

    def _quiet_writer_threads(self) -> None:
        """TensorBoard's writer thread re-raises its OSError, printing a traceback; the same error
        reaches this logger's next write, where it is named: keep that thread quiet."""
        previous = self._previous_hook = threading.excepthook

        def hook(args):
            if type(args.thread).__name__ != "_AsyncWriterThread":
                previous(args)
        threading.excepthook = hook

    def images_per_second(self, images_seen: int) -> float:
        now = time.perf_counter()
        rate = (images_seen - self._last_images) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_images = now, images_seen
        return rate

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        with named_os_error(self.tensorboard_dir):
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
        with named_os_error(self.jsonl_path):
            self.jsonl.write(json.dumps({"step": step, **{k: round(float(v), 6) for k, v in values.items()}}) + "\n")
            self.jsonl.flush()
        shown = {k: f"{v:.3g}" for k, v in values.items() if k in ("d_loss", "g_loss", "img_per_s", "swd")}
        self.bar.set_postfix(shown, refresh=False)

    def image(self, step: int, tag: str, image: torch.Tensor) -> None:
        if self.enabled:
            with named_os_error(self.tensorboard_dir):
                self.writer.add_image(tag, to_uint8(image), step,
                                      dataformats="HW" if image.shape[0] == 1 else "HWC")

    def flush(self) -> None:
        if self.enabled:
            with named_os_error(self.tensorboard_dir):
                self.writer.flush()

    def advance(self) -> None:
        self.bar.update(1)

    def write(self, message: str) -> None:
        if self.enabled:
            self.bar.write(message)

    def close(self, quiet: bool = False) -> None:
        """Close the files. ``quiet``: a run that already failed (on a full disk, say) is not failed again
        by the close; otherwise a failed close raises, naming its file."""
        self.bar.close()
        try:
            for closer, path in ((self.writer, self.tensorboard_dir), (self.jsonl, self.jsonl_path)):
                try:
                    if closer is not None:
                        with named_os_error(path):
                            closer.close()
                except OSError:
                    if not quiet:
                        raise
        finally:
            self.writer = self.jsonl = None
            if self._previous_hook is not None:
                threading.excepthook = self._previous_hook
                self._previous_hook = None
