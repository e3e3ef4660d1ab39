"""Experiments that combine training and evaluation into one published comparison, by name."""
from __future__ import annotations

EXPERIMENTS = {"simgan-tstr": "gauguin.experiments.simgan_tstr:simgan_tstr"}

__all__ = ["EXPERIMENTS"]
