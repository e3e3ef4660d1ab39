"""Graceful stops: SIGTERM (a scheduler's notice before preemption) and SIGINT (Ctrl+C) finish the
current step, write a checkpoint and stop; a second signal aborts at once."""
from __future__ import annotations

import signal
import sys
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingStopped(KeyboardInterrupt):
    """Training stopped on a signal. ``checkpoint`` is the folder written on the way out (None when a
    second signal aborted first); the conventional exit code is ``128 + signum``."""

    def __init__(self, signum: int, checkpoint=None, step: int | None = None):
        self.signum, self.checkpoint, self.step = signum, checkpoint, step
        super().__init__(self.message)

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def message(self) -> str:
        name = signal.Signals(self.signum).name
        if self.checkpoint is None:
            return f"aborted by a second {name}; continue with --resume from the last checkpoint"
        return f"stopped by {name} at step {self.step}; checkpoint {self.checkpoint}; continue with --resume"


class StopSignals:
    """While active, the first SIGTERM/SIGINT only sets ``requested`` (the loop checks it after each
    step); a second one raises :class:`TrainingStopped` wherever the program is. Outside the main
    thread (where Python cannot take signals) it does nothing."""

    def __init__(self, announce: bool = True):
        self.requested: int | None = None
        self.announce = announce
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame) -> None:
        if self.requested is not None:
            self.__exit__()
            raise TrainingStopped(signum)
        self.requested = signum
        if self.announce:
            print(f"\ngauguin: {signal.Signals(signum).name} received: finishing this step and writing a checkpoint "
                  "(send it again to abort at once)", file=sys.stderr, flush=True)
