"""Image history buffers (Shrivastava et al. 2017, "Learning from Simulated and Unsupervised Images
through Adversarial Training", SimGAN §2.3): the discriminator is also shown generated images of
earlier steps instead of only the newest, which damps oscillation. :class:`HistoryBuffer` is
SimGAN's form, :class:`ImagePool` CycleGAN's (Zhu et al. 2017 §4).
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["HistoryBuffer", "ImagePool"]


class _ImageStore:
    """Up to ``size`` detached images in one preallocated tensor; the first ``count`` rows are filled."""

    what = "store"

    def __init__(self, size: int):
        self.size = size
        self.count = 0
        self._images: Tensor | None = None  # [size, ...]

    def __len__(self) -> int:
        return self.count

    def _prepare(self, new: Tensor) -> Tensor:
        """The storage, allocated like ``new`` (shape per image, device, dtype) at the first call."""
        if self._images is None:
            self._images = new.new_empty((self.size, *new.shape[1:]))
        elif self._images.shape[1:] != new.shape[1:]:
            raise ValueError(f"the {self.what} holds images of shape {tuple(self._images.shape[1:])}, "
                             f"got {tuple(new.shape[1:])}")
        elif self._images.device != new.device or self._images.dtype != new.dtype:
            self._images = self._images.to(new)
        return self._images

    def state_dict(self) -> dict[str, Tensor]:
        """``images`` [count, ...] (the stored images, stacked; [0] when empty) and ``count`` (int64
        scalar): only tensors, contiguous and unshared, so a safetensors file can hold them."""
        images = self._images[: self.count].clone() if self._images is not None and self.count else torch.empty(0)
        return {"images": images, "count": torch.tensor(self.count, dtype=torch.int64)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the content saved by :meth:`state_dict` (on the tensors' device; moved to the
        images' device at the next use)."""
        count, images = int(state["count"]), state["images"]
        if count > self.size:
            raise ValueError(f"the state holds {count} images, more than this {self.what}'s size {self.size}")
        if count and images.shape[0] != count:
            raise ValueError(f"the state's count {count} does not match its {images.shape[0]} images")
        self.count = count
        self._images = None
        if count:
            self._images = images.new_empty((self.size, *images.shape[1:]))
            self._images[:count] = images


class HistoryBuffer(_ImageStore):
    """SimGAN's buffer of up to ``size`` refined images (§2.3).

    :meth:`mix` takes the current refined batch (B images) and returns D's batch: once the buffer
    holds at least B/2 images, the first B − ⌊B/2⌋ current images and ⌊B/2⌋ stored ones drawn at
    random; before that, the current batch alone. Then ⌊B/2⌋ current images (the last ones) enter the
    buffer: appended while it fills, afterwards each replacing a distinct random entry.
    ``last_from_buffer`` says how many images of the last mixed batch came from the buffer. Draws
    come from torch's global (CPU) generator, so a restored run continues identically.
    """

    what = "buffer"

    def __init__(self, size: int):
        if size < 1:
            raise ValueError(f"the history buffer needs size ≥ 1, got {size}")
        super().__init__(size)
        self.last_from_buffer = 0

    def mix(self, refined: Tensor) -> Tensor:
        new = refined.detach()
        half = len(new) // 2
        if len(new) > self.size:
            raise ValueError(f"a batch of {len(new)} images does not fit a history buffer of {self.size}; "
                             "raise buffer_size to at least the batch size")
        stored = self._prepare(new)
        self.last_from_buffer = half if half and self.count >= half else 0
        shown = new
        if self.last_from_buffer:
            drawn = torch.randint(self.count, (half,)).to(new.device)
            shown = torch.cat([new[: len(new) - half], stored[drawn]])
        incoming = new[len(new) - half :]
        fill = min(half, self.size - self.count)
        stored[self.count : self.count + fill] = incoming[:fill]
        self.count += fill
        if fill < half:
            slots = torch.randperm(self.size)[: half - fill].to(new.device)
            stored[slots] = incoming[fill:]
        return shown


class ImagePool(_ImageStore):
    """A pool of up to ``size`` generated images (CycleGAN: 50).

    :meth:`query` takes a batch and returns one of the same shape, image by image in batch order:
    while the pool holds fewer than ``size`` images, the new image is stored and returned as is;
    once full, with probability ½ a uniformly chosen stored image is returned and the new one takes
    its slot, else the new image is returned. Stored images are detached copies; new images are
    returned as given (still attached to their graph, if any). ``size=0`` passes batches through.

    Draws come from torch's global (CPU) generator, one uniform per image and one index per swap,
    so a run restored with its RNG state and this pool's :meth:`state_dict` continues identically.
    """

    what = "pool"

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"size must be ≥ 0, got {size}")
        super().__init__(size)

    def query(self, images: Tensor) -> Tensor:
        """The batch [B, ...] to show the discriminator (see the class docstring)."""
        if self.size == 0:
            return images
        new = images.detach()
        stored = self._prepare(new)
        out: list[Tensor] = []
        swapped = False
        for i in range(images.shape[0]):
            if self.count < self.size:
                stored[self.count].copy_(new[i])
                self.count += 1
                out.append(images[i])
            elif torch.rand(()).item() < 0.5:
                slot = int(torch.randint(self.size, ()).item())
                out.append(stored[slot].clone())
                stored[slot].copy_(new[i])
                swapped = True
            else:
                out.append(images[i])
        return torch.stack(out) if swapped else images
