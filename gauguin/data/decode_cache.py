"""A bounded memory of decoded images: a small dataset is decoded once, a large one stays bounded."""
from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np


class DecodeCache:
    """``cache(key)`` = ``decode(key)``, remembered for the last keys up to ``budget`` bytes of pixels
    (least recently used dropped first); safe to call from decoding threads."""

    def __init__(self, decode: Callable[[Hashable], np.ndarray], budget: int = 512 << 20) -> None:
        self.decode, self.budget = decode, budget
        self.items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self.bytes = 0
        self.lock = threading.Lock()

    def __call__(self, key: Hashable) -> np.ndarray:
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        pixels = self.decode(key)
        with self.lock:
            if key not in self.items:
                self.items[key] = pixels
                self.bytes += pixels.nbytes
            while self.bytes > self.budget and len(self.items) > 1:
                self.bytes -= self.items.popitem(last=False)[1].nbytes
        return pixels
