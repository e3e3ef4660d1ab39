"""Image history buffer: Shrivastava et al. 2017 ("Learning from Simulated and Unsupervised Images
through Adversarial Training", SimGAN §2.3) in the form of Zhu et al. 2017 (CycleGAN §4): the
discriminator is shown generated images drawn from a pool of the last ones instead of only the
newest, which damps oscillation.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["ImagePool"]


class ImagePool:
    """A pool of up to ``size`` generated images (CycleGAN: 50).

    :meth:`query` takes a batch and returns one of the same shape, image by image in batch order:
    while the pool holds fewer than ``size`` images, the new image is stored and returned as is;
    once full, with probability ½ a uniformly chosen stored image is returned and the new one takes
    its slot, else the new image is returned. Stored images are detached copies; new images are
    returned as given (still attached to their graph, if any). ``size=0`` passes batches through.

    Draws come from torch's global (CPU) generator, one uniform per image and one index per swap,
    so a run restored with its RNG state and this pool's :meth:`state_dict` continues identically.
    """

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"size must be ≥ 0, got {size}")
        self.size = size
        self.count = 0
        self._images: Tensor | None = None  # [size, ...], the first `count` rows filled

    def __len__(self) -> int:
        return self.count

    def query(self, images: Tensor) -> Tensor:
        """The batch [B, ...] to show the discriminator (see the class docstring)."""
        if self.size == 0:
            return images
        new = images.detach()
        if self._images is None:
            self._images = new.new_empty((self.size, *new.shape[1:]))
        elif self._images.shape[1:] != new.shape[1:]:
            raise ValueError(f"the pool holds images of shape {tuple(self._images.shape[1:])}, "
                             f"got {tuple(new.shape[1:])}")
        elif self._images.device != new.device or self._images.dtype != new.dtype:
            self._images = self._images.to(new)
        out: list[Tensor] = []
        swapped = False
        for i in range(images.shape[0]):
            if self.count < self.size:
                self._images[self.count].copy_(new[i])
                self.count += 1
                out.append(images[i])
            elif torch.rand(()).item() < 0.5:
                slot = int(torch.randint(self.size, ()).item())
                out.append(self._images[slot].clone())
                self._images[slot].copy_(new[i])
                swapped = True
            else:
                out.append(images[i])
        return torch.stack(out) if swapped else images

    def state_dict(self) -> dict[str, Tensor]:
        """``images`` [count, ...] (the stored images, stacked; [0] when empty) and ``count`` (int64
        scalar): only tensors, contiguous and unshared, so a safetensors file can hold them."""
        if self._images is None or self.count == 0:
            images = torch.empty(0)
        else:
            images = self._images[: self.count].clone()
        return {"images": images, "count": torch.tensor(self.count, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the content saved by :meth:`state_dict` (on the tensors' device; moved to the
        images' device at the next :meth:`query`)."""
        count = int(state["count"])
        images = state["images"]
        if count > self.size:
            raise ValueError(f"the state holds {count} images, more than this pool's size {self.size}")
        if count and images.shape[0] != count:
            raise ValueError(f"the state's count {count} does not match its {images.shape[0]} images")
        self.count = count
        if count == 0:
            self._images = None
            return
        self._images = images.new_empty((self.size, *images.shape[1:]))
        self._images[:count].copy_(images)
