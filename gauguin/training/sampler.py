"""A resumable, rank-sharded batch order: shuffled epochs from a seed, with a saveable position."""
from __future__ import annotations

import torch


class EpochBatchSampler:
    """Yields index batches forever; epoch ``e`` is the permutation drawn from ``seed + e``.

    Each rank takes every ``world_size``-th index of the permutation, so ranks see disjoint
    data. A batch may ask for another size than ``batch_size`` (PGGAN's per-stage batches); a
    batch that would run past the epoch's end starts the next epoch. A batch larger than a rank's
    share of the data (a few labelled images) is filled from as many whole epochs as it takes, so
    it holds every item about equally often. The position (epoch, items taken in it) is all the
    state there is: a resumed run continues with exactly the batches an uninterrupted run would
    have drawn.
    """

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        per_rank = num_items // world_size
        if per_rank < 1:
            raise ValueError(f"the dataset has {num_items} items, fewer than one per rank x {world_size} "
                             "rank(s); add data or use fewer ranks")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = per_rank
        self.epoch, self.position = 0, 0
        self._order = None

    def _epoch_order(self) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_items, generator=gen)
        return order[self.rank :: self.world_size]

    def next_indices(self, count: int | None = None) -> torch.Tensor:
        """The next ``count`` indices of this rank (default ``batch_size``)."""
        count = count or self.batch_size
        if count > self.per_rank:  # whole epochs, the last one cut short; the next batch starts an epoch
            epochs = -(-count // self.per_rank)
            self.epoch += self.position > 0  # a started epoch is left, as when a batch runs past its end
            orders = []
            for _ in range(epochs):
                orders.append(self._epoch_order())
                self.epoch += 1
            self.position, self._order = 0, None
            return torch.cat(orders)[:count]
        if self.position + count > self.per_rank:
            self.epoch, self.position, self._order = self.epoch + 1, 0, None
        if self._order is None:
            self._order = self._epoch_order()
        indices = self._order[self.position : self.position + count]
        self.position += count
        return indices

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        position = state["position"] if "position" in state else int(state["batch"]) * self.batch_size  # older runs
        self.epoch, self.position, self._order = int(state["epoch"]), int(position), None
