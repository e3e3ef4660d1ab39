"""Data-parallel helpers: process group set-up from ``torchrun``'s environment, gradient averaging.

gauguin averages gradients with one all-reduce per network after ``backward`` instead of
wrapping networks in ``DistributedDataParallel``: GAN steps call the discriminator in both
steps with its parameters frozen in one, and penalties (WGAN-GP, R1) differentiate twice,
which DDP's autograd hooks do not support. The result is the same synchronous data-parallel
SGD: identical initial weights (broadcast from rank 0), identical averaged gradients.

Every collective runs under a timeout (``GAUGUIN_DIST_TIMEOUT`` seconds, default 300): a rank whose
peer died, hangs or became unreachable raises :class:`LostContactError` (one line, naming the rank,
the cause and the remedy) instead of waiting for ever.
"""
from __future__ import annotations

import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..config import ConfigError

TIMEOUT_ENV = "GAUGUIN_DIST_TIMEOUT"
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


class LostContactError(RuntimeError):
    """A collective failed or timed out because another rank died, hangs or cannot be reached."""


def collective_timeout() -> timedelta:
    """How long a collective may wait for the other ranks: ``GAUGUIN_DIST_TIMEOUT`` seconds (default 300)."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: give the collective timeout in seconds (a positive number, "
                          f"default {DEFAULT_TIMEOUT_S:g})")
    return timedelta(seconds=seconds)


# what gloo, nccl and the c10d store say when a peer is gone, hung or unreachable
_LOST = re.compile(r"connection (closed|reset|refused|aborted)|closed by peer|broken pipe|timed? ?out|timeout|"
                   r"unreachable|no route|socket|peer|aborted|watchdog|communicator", re.IGNORECASE)
_SOURCE = re.compile(r"\[[^\]\s]*\.(?:cc|cpp|h|hpp):\d+\]\s*")  # gloo's "[../gloo/transport/tcp/pair.cc:534] "


def _is_lost_contact(err: BaseException) -> bool:
    return isinstance(err, dist.DistError) or isinstance(err, RuntimeError) and bool(_LOST.search(str(err)))


def _cause(err: BaseException) -> str:
    """The first line of a backend error, without source locations, shortened."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    text = _SOURCE.sub("", lines[0] if lines else type(err).__name__)
    text = re.split(r"\.\s+(?=This is typically|Check the logs)", text)[0].rstrip(".")  # gloo's boilerplate
    if re.search(r"timed? ?out|timeout", text, re.IGNORECASE):
        text = f"no answer within {collective_timeout().total_seconds():g} s ({TIMEOUT_ENV}): {text}"
    return text if len(text) <= 240 else text[:237] + "..."


@contextmanager
def _collective(what: str):
    """Run a collective; a lost peer becomes one clear :class:`LostContactError`."""
    try:
        yield
    except LostContactError:
        raise
    except Exception as err:
        if not _is_lost_contact(err):
            raise
        rank = dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))
        raise LostContactError(f"rank {rank}: lost contact with the other ranks ({_cause(err)}; in {what}); "
                               "continue with --resume once every host is back") from err


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group ``torchrun`` describes (gloo on CPU, nccl on CUDA); single process otherwise."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = collective_timeout()
        with _collective("init_process_group"):
            dist.init_process_group(backend=backend, timeout=timeout)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def broadcast_module(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if info.enabled:
        with _collective("broadcast of the initial weights"):
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=0)


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank, as DDP does each step."""
    if info.enabled:
        with _collective("broadcast of BatchNorm statistics"):
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)


def average_gradients(module: torch.nn.Module, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of ``module`` as one flat buffer."""
    if not info.enabled:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    with _collective("all_reduce of gradients"):
        dist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _flag_tensor(flag: bool) -> torch.Tensor:
    """``flag`` as a one-element tensor on the device the process group's backend talks through."""
    device = f"cuda:{torch.cuda.current_device()}" if dist.get_backend() == "nccl" else "cpu"
    return torch.tensor([int(flag)], device=device)


def broadcast_flag(flag: bool, info: DistInfo) -> bool:
    """Rank 0's decision, on every rank."""
    if not info.enabled:
        return flag
    tensor = _flag_tensor(flag)
    with _collective("broadcast of rank 0's decision"):
        dist.broadcast(tensor, src=0)
        return bool(tensor.item())


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any rank (a stop request seen by one rank stops all at the
    same step)."""
    if not info.enabled:
        return flag
    tensor = _flag_tensor(flag)
    with _collective("all_reduce of a stop request"):
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return bool(tensor.item())


def gather_objects(obj, info: DistInfo) -> list:
    """Every rank's ``obj`` (used for per-rank RNG states in checkpoints)."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    with _collective("all_gather of RNG states"):
        dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        with _collective("barrier"):
            dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
