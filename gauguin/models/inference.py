"""Inference specs: what a family's generator takes and how each input is drawn, declared as data.

Sampling (``gauguin.sampling``), export (``gauguin.serve.export``), the paint engine and the
training loop's sample grids read a family's :class:`InferenceSpec`; none of them names a family.

A generator graph has named inputs of six kinds: drawn from a seed (``normal`` style codes / noise,
``uniform`` draws such as pix2pixHD's feature picks, ``class`` labels) or taken from data
(``label_map`` and ``instance`` id maps, ``image`` inputs). A spec whose main graph takes nothing
from data is *noise-driven* (``gauguin sample``); one that takes data *translates* (``gauguin
translate``). One RNG rule for every caller: the drawn inputs of ``n`` images come from one
``torch.Generator`` seeded with the seed, in the order the inputs are declared, so the first image
of ``translate --seed s`` is the paint server's image for seed ``s``.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

Kind = Literal["normal", "uniform", "class", "label_map", "instance", "image"]
DRAWN: tuple[str, ...] = ("normal", "uniform", "class")  # the others come from data


@dataclasses.dataclass(frozen=True)
class Input:
    """One named generator input. ``size``: the vector length (``normal``, ``uniform``), the class
    or label count (``class``, ``label_map``), the channels (``image``); 0 for ``instance``."""

    name: str
    kind: Kind
    size: int = 0

    @property
    def drawn(self) -> bool:
        return self.kind in DRAWN

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size}


@dataclasses.dataclass(frozen=True)
class Graph:
    """One network a server runs: ``run(G, inputs)`` on the family's generator module.

    ``outputs``: names of what ``run`` returns (one tensor, or a tuple in that order). Size rule:
    ``multiple`` 0 fixes height and width at the model's size; else any multiple of ``multiple``
    from ``min_blocks`` multiples up. ``direction``: what an image translator translates (``AtoB``,
    ``BtoA``). ``replaces``: the generator input this graph's first output stands for (a style
    encoder's mean code is the style ``z``). ``takes_style``: ``run`` also accepts a ``style`` image
    ``[N, C, H, W]`` in place of its drawn inputs. ``scale``: outputs are ``scale`` times the size
    of the data inputs (super-resolution)."""

    file: str
    inputs: tuple[Input, ...]
    run: Callable[[nn.Module, dict[str, Tensor]], Any]
    outputs: tuple[str, ...] = ("image",)
    multiple: int = 0
    min_blocks: int = 1
    direction: str | None = None
    replaces: str | None = None
    takes_style: bool = False
    scale: int = 1

    def input(self, kind: str) -> Input | None:
        return next((i for i in self.inputs if i.kind == kind), None)

    @property
    def data_inputs(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if not i.drawn)


@dataclasses.dataclass(frozen=True)
class InferenceSpec:
    """A family's generator as callers see it (``image_size``: of its data inputs, or of the
    images made where it takes none): ``graphs[0]`` makes the images (for image translators
    with two directions, ``graphs`` holds one per direction); further graphs with ``replaces`` are
    auxiliary (a style encoder). ``settings``: values a server or reader of model.json may want
    (recorded, not interpreted)."""

    graphs: tuple[Graph, ...]
    image_size: tuple[int, int]
    channels: int
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def main(self) -> Graph:
        return self.graphs[0]

    @property
    def noise_driven(self) -> bool:
        return not self.main.data_inputs

    @property
    def style_encoder(self) -> Graph | None:
        return next((g for g in self.graphs if g.replaces), None)

    @property
    def translators(self) -> list[Graph]:
        """The graphs that translate an image (one per direction); none for noise and label-map models."""
        return [g for g in self.graphs if g.replaces is None and g.input("image") is not None]

    def translator(self, direction: str | None = None) -> Graph:
        """The image graph translating in ``direction`` (None: the first); ValueError naming the
        directions there are."""
        translators = self.translators
        if not translators:
            raise ValueError("this model does not translate images; it takes "
                             + ("label maps (--labels)" if self.main.input("label_map") else "noise (gauguin sample)"))
        for graph in translators:
            if direction is None or graph.direction in (direction, None):
                return graph
        ways = ", ".join(str(g.direction) for g in translators)
        raise ValueError(f"this model translates {ways} only; retrain with direction={direction} for the other way")


def draw_inputs(graph: Graph, n: int, generator: torch.Generator | None = None,
                batch: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """``graph``'s inputs for ``n`` images: data inputs from ``batch`` (by their names), classes from
    ``batch["label"]`` where the batch has labels, every other drawn input from ``generator`` in
    declaration order (``normal``: N(0, 1) ``[n, size]``; ``uniform``: U[0, 1) ``[n, size]``;
    ``class``: uniform ids ``[n]``)."""
    inputs: dict[str, Tensor] = {}
    for spec in graph.inputs:
        if spec.kind == "class" and batch is not None and batch.get("label") is not None:
            inputs[spec.name] = batch["label"]
        elif spec.drawn:
            inputs[spec.name] = draw(spec, n, generator)
        elif batch is not None and spec.name in batch:
            inputs[spec.name] = batch[spec.name]
        elif spec.kind != "instance":  # instance maps are optional wherever the data has none
            raise ValueError(f"the generator takes {spec.name!r} ({spec.kind}) from the data, and none was given")
    return inputs


def draw(spec: Input, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` draws of a drawn input: N(0, 1) ``[n, size]`` (``normal``), U[0, 1) ``[n, size]``
    (``uniform``), uniform class ids ``[n]`` (``class``)."""
    if spec.kind == "normal":
        return torch.randn(n, spec.size, generator=generator)
    if spec.kind == "uniform":
        return torch.rand(n, spec.size, generator=generator)
    if spec.kind == "class":
        return torch.randint(0, spec.size, (n,), generator=generator)
    raise ValueError(f"{spec.name!r} ({spec.kind}) comes from data, it is not drawn")


def grid_rows(*rows: Tensor) -> Tensor:
    """Rows of a sample grid stacked into one batch of RGB images (grey rows repeated to 3 channels)."""
    return torch.cat([r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows])


def picture_of(inputs: Mapping[str, Tensor], graph: Graph) -> Tensor:
    """A translating graph's first data input as images: label maps in colour, images as they are;
    enlarged (nearest) to the output's size where the graph upscales."""
    from ..nn.labels import colorize_labels

    first = graph.data_inputs[0]
    value = inputs[first.name]
    value = colorize_labels(value, first.size) if first.kind == "label_map" else value
    return torch.nn.functional.interpolate(value, scale_factor=graph.scale) if graph.scale > 1 else value
