"""Evaluation metrics."""
from .swd import sliced_wasserstein

__all__ = ["sliced_wasserstein"]
