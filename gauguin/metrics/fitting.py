"""The small supervised training loop behind gauguin's own evaluation networks (classifier, segmenter)."""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def fit(model: nn.Module, inputs: Tensor, targets: Tensor, loss_fn: Callable[[Tensor, Tensor], Tensor],
        epochs: int, batch_size: int, lr: float, seed: int, progress: bool, desc: str,
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None) -> nn.Module:
    """Train ``model`` on (``inputs``, ``targets``) with Adam, lr decaying linearly to 0, shuffled
    minibatches drawn from ``seed``, each transformed by ``augment(batch, generator)`` if given; returns
    it in eval mode. The caller's RNG state is left untouched."""
    from tqdm.auto import tqdm

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        total = epochs * -(-len(inputs) // batch_size)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 - step / total)
        model.train()
        with tqdm(total=total, desc=desc, unit="step", disable=not progress) as bar:
            for epoch in range(epochs):
                order = torch.randperm(len(inputs), generator=gen)
                for first in range(0, len(order), batch_size):
                    batch = order[first : first + batch_size]
                    x = inputs[batch] if augment is None else augment(inputs[batch], gen)
                    loss = loss_fn(model(x), targets[batch])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    bar.update()
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()
