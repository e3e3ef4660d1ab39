"""A resumable, rank-sharded batch order: shuffled epochs from a seed, with a saveable position."""
from __future__ import annotations

import torch


class EpochBatchSampler:
    """Yields index batches forever; epoch ``e`` is the permutation drawn from ``seed + e``.

    Each rank takes every ``world_size``-th index of the permutation, so ranks see disjoint
    data. The position (epoch, batch) is all the state there is: a resumed run continues
    with exactly the batches an uninterrupted run would have drawn.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        per_rank = num_items // world_size
        if per_rank < batch_size:
            raise ValueError(
                f"the dataset has {num_items} items, fewer than one batch of {batch_size} per rank "
                f"x {world_size} rank(s); lower batch_size or add data"
            )
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = per_rank // batch_size
        self.epoch, self.batch = 0, 0
        self._order = None

    def _epoch_order(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_items, generator=gen)
        return order[self.rank :: self.world_size]

    def next_indices(self) -> torch.Tensor:
        if self._order is None:
            self._order = self._epoch_order()
        start = self.batch * self.batch_size
        indices = self._order[start : start + self.batch_size]
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self.epoch, self.batch, self._order = self.epoch + 1, 0, None
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch, self._order = int(state["epoch"]), int(state["batch"]), None
