"""Model families, by name: ``get_family("dcgan")`` → the family class (timm-style registry)."""
from __future__ import annotations

import difflib
import importlib

from .base import DataInfo, GANFamily

# name -> "module:Class"; adding a family is one line here plus models/<family>.py
FAMILIES = {
    "dcgan": "gauguin.models.dcgan:DCGAN",
    "spade": "gauguin.models.spade:SPADE",
    "pix2pixhd": "gauguin.models.pix2pixhd:Pix2PixHD",
    "pix2pix": "gauguin.models.pix2pix:Pix2Pix",
    "cyclegan": "gauguin.models.cyclegan:CycleGAN",
    "simgan": "gauguin.models.simgan:SimGAN",
    "pggan": "gauguin.models.pggan:PGGAN",
    "srgan": "gauguin.models.srgan:SRGAN",
}


def get_family(name: str) -> type[GANFamily]:
    if name not in FAMILIES:
        close = difflib.get_close_matches(name, FAMILIES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown model family {name!r}{hint} (known: {', '.join(FAMILIES)})")
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["FAMILIES", "DataInfo", "GANFamily", "get_family"]
