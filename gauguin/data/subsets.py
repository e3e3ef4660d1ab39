"""Class-balanced labelled subsets: the few-labels setting (e.g. DAGAN, Antoniou et al. 2017; CAS,
Ravuri & Vinyals 2019), where N images per class keep their labels and the rest of the split may
serve as unlabelled images."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gauguin.data.errors import BadDataError


def balanced_subset(labels: Tensor, per_class: int, seed: int = 0, classes: Sequence[str] = (),
                    what: str = "the data") -> Tensor:
    """Sorted indices of ``per_class`` items of every class of ``labels`` (int64 ``[N]``), drawn without
    replacement by a generator seeded with ``seed`` (the same seed, the same subset, on any machine).
    A class with fewer items than ``per_class`` is a BadDataError naming it and the largest N that works."""
    if per_class < 1:
        raise BadDataError(f"labels_per_class={per_class} must be at least 1 (0 = every labelled image)")
    counts = torch.bincount(labels)
    present = torch.nonzero(counts).flatten()
    if len(present) < 2:
        raise BadDataError(f"{what} has {len(present)} class: a labelled subset needs at least 2 classes")
    smallest = int(present[counts[present].argmin()])
    if per_class > counts[smallest]:
        name = classes[smallest] if smallest < len(classes) else str(smallest)
        raise BadDataError(f"labels_per_class={per_class} exceeds the smallest class of {what} ({name!r}, "
                           f"{int(counts[smallest])} images); set labels_per_class <= {int(counts[smallest])}")
    gen = torch.Generator().manual_seed(seed)
    picked = []
    for c in present.tolist():
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(len(members), generator=gen)[:per_class]])
    return torch.cat(picked).sort().values


def labelled_subset(labels: Tensor, labels_per_class: int, subset_seed: int, classes: Sequence[str],
                    what: str) -> Tensor | None:
    """The indices a dataset's ``labels_per_class`` / ``subset_seed`` options keep (None: all of them);
    a seed without a count is an error, not ignored."""
    if subset_seed and not labels_per_class:
        raise BadDataError(f"subset_seed={subset_seed} does nothing without labels_per_class: set both or neither")
    return balanced_subset(labels, labels_per_class, subset_seed, classes, what) if labels_per_class else None
