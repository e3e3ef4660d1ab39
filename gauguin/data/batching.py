"""Batch helpers of the file-backed datasets: index checks, the random draws (taken first, from
torch's global RNG in the calling thread, so a resumed run sees the same batches), decoding in
a thread pool and the uint8 -> [-1, 1] conversion."""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import Tensor

DECODE_THREADS = min(8, os.cpu_count() or 1)  # PIL decodes without the GIL


def as_indices(indices: Tensor | Sequence[int], length: int) -> list[int]:
    """``indices`` as a list of ints in ``0..length-1``; none, or one out of range, is an error."""
    indices = torch.as_tensor(indices, dtype=torch.long, device="cpu").reshape(-1).tolist()
    if not indices:
        raise ValueError("get_batch needs at least one index")
    for index in indices:
        if not -length <= index < length:
            raise IndexError(f"index {index} out of range for {length} samples")
    return [index % length for index in indices]


def draw_preprocessing(n: int, augment: bool) -> list[tuple[float, float, float] | None]:
    """Uniform (crop y, crop x, flip) numbers for ``n`` samples from torch's global RNG, or None
    each (center crop, no flip; the RNG untouched) without augmentation."""
    if not augment:
        return [None] * n
    return [tuple(row) for row in torch.rand(n, 3, dtype=torch.float64).tolist()]


def decode_in_threads(decode: Callable[..., Any], jobs: Sequence[tuple]) -> list[Any]:
    """``[decode(*job) for job in jobs]``, in a thread pool when there are several (PIL frees the GIL)."""
    if len(jobs) == 1:
        return [decode(*jobs[0])]
    with ThreadPoolExecutor(max_workers=min(DECODE_THREADS, len(jobs))) as pool:
        return list(pool.map(lambda job: decode(*job), jobs))


def to_tensor(pixels: Sequence[np.ndarray]) -> Tensor:
    """uint8 ``[h, w, 3]`` arrays -> float32 ``[B, 3, h, w]`` in [-1, 1]."""
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2)
    return images.float().div_(127.5).sub_(1.0).contiguous()
