"""Semantic-map inputs of SPADE / pix2pixHD, built on the training device from a batch's label and
instance maps (the data loader only hands over integer maps)."""
from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor


def is_exporting() -> bool:
    """Whether an ONNX / torch.export trace is running: data-dependent checks (reading tensor values
    into Python) cannot be traced, so they are skipped then (the graph gets valid ids from its caller)."""
    return torch.jit.is_tracing() or torch.compiler.is_exporting()


def checked_label_ids(label_map: Tensor, num_labels: int) -> Tensor:
    """``label_map`` ``[B, H, W]`` as int64 ids, checked: an id outside ``0..num_labels-1`` is a ValueError."""
    if label_map.ndim != 3:
        raise ValueError(f"label_map must be [B, H, W], got shape {tuple(label_map.shape)}")
    if label_map.dtype.is_floating_point or label_map.dtype == torch.bool:
        raise ValueError(f"label_map must hold integer ids, got {label_map.dtype}")
    if num_labels < 1:
        raise ValueError(f"num_labels must be positive, got {num_labels}")
    label_map = label_map.long()
    if label_map.numel() and not is_exporting():
        low, high = int(label_map.min()), int(label_map.max())
        if low < 0 or high >= num_labels:
            raise ValueError(
                f"label_map holds ids {low}..{high} but num_labels={num_labels} allows 0..{num_labels - 1}"
            )
    return label_map


def one_hot_labels(label_map: Tensor, num_labels: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot ``[B, num_labels, H, W]`` of an integer label map ``[B, H, W]`` (written with one
    ``scatter_``, no permuted copy). An id outside ``0..num_labels-1`` is a ValueError."""
    label_map = checked_label_ids(label_map, num_labels)
    b, h, w = label_map.shape
    out = torch.zeros(b, num_labels, h, w, dtype=dtype, device=label_map.device)
    return out.scatter_(1, label_map.unsqueeze(1), 1)


def instance_edges(instance: Tensor) -> Tensor:
    """Boundary map ``[B, 1, H, W]`` of an instance map ``[B, H, W]`` (pix2pixHD): 1 on both
    pixels of every horizontally or vertically adjacent pair with different ids, else 0."""
    if instance.ndim != 3:
        raise ValueError(f"instance must be [B, H, W], got shape {tuple(instance.shape)}")
    # built from zero-padded shifts, not in-place slice writes, so that it also exports to ONNX
    horizontal = (instance[:, :, 1:] != instance[:, :, :-1]).float()  # pixel vs its right neighbour
    vertical = (instance[:, 1:, :] != instance[:, :-1, :]).float()  # pixel vs its lower neighbour
    touching = (F.pad(horizontal, (1, 0)) + F.pad(horizontal, (0, 1))
                + F.pad(vertical, (0, 0, 1, 0)) + F.pad(vertical, (0, 0, 0, 1)))
    return (touching > 0).unsqueeze(1).float()


def semantic_input(
    batch: Mapping[str, Tensor], num_labels: int, use_instances: bool, dtype: torch.dtype = torch.float32
) -> Tensor:
    """The generator's semantic input: one-hot ``batch["label_map"]`` ``[B, num_labels, H, W]``,
    with the instance boundary map of ``batch["instance"]`` as one more channel when ``use_instances``."""
    one_hot = one_hot_labels(batch["label_map"], num_labels, dtype)
    if not use_instances:
        return one_hot
    if "instance" not in batch:
        raise ValueError(
            "use_instances is set but the batch has no 'instance' map; the dataset has no instance "
            "maps (train with use_instances=False, or add the instance maps)"
        )
    return torch.cat([one_hot, instance_edges(batch["instance"]).to(dtype)], dim=1)


def label_palette(num_labels: int) -> Tensor:
    """A fixed colour per label id, uint8 ``[num_labels, 3]``: 0 is black, the others spread in hue by
    the golden ratio so neighbouring ids differ clearly (for pictures of label maps only)."""
    import colorsys

    colours = [(0, 0, 0)] + [
        tuple(round(255 * c) for c in colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.65 + 0.35 * (k % 2), 0.95 - 0.3 * (k % 3 == 2)))
        for k in range(1, num_labels)
    ]
    return torch.tensor(colours[:num_labels], dtype=torch.uint8)


def colorize_labels(label_map: Tensor, num_labels: int) -> Tensor:
    """Label maps ``[B, H, W]`` as RGB images ``[B, 3, H, W]`` in [-1, 1] (see :func:`label_palette`)."""
    palette = label_palette(num_labels).to(label_map.device).float() / 127.5 - 1.0
    return palette[label_map.long()].permute(0, 3, 1, 2).contiguous()
