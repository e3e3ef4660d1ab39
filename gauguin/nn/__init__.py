"""Building blocks: layers, normalisations and blocks shared by the model families."""
from .layers import MinibatchStddev

__all__ = ["MinibatchStddev"]
