"""What every dataset offers the training loop: :class:`Dataset`, and :class:`DatasetBase`, the
defaults of its description attributes.

``get_batch(indices)`` gives a dict of tensors (``"image"``, and per family ``"label"``,
``"label_map"``, ``"instance"``, ``"input"``, ``"a"`` / ``"b"``, ``"synthetic"``) except for the
class datasets (:class:`~gauguin.data.FashionMNIST`, :class:`~gauguin.data.ImageFolder`), which
give the tuple ``(images, labels)``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Protocol, Union, runtime_checkable

from torch import Tensor

from gauguin.data.preprocessing import NO_PREPROCESSING, Preprocessing

Batch = Union[dict[str, Tensor], tuple[Tensor, Tensor]]


@runtime_checkable
class Dataset(Protocol):
    """A gauguin dataset: its length, its batches and what a family needs to know of it."""

    num_classes: int  # 1 when the data has no classes
    classes: Sequence[str]
    num_labels: int  # label-map channels incl. don't-care; 0 when the data has no label maps
    label_names: Sequence[str]
    dont_care_index: int | None
    has_instances: bool
    image_size: tuple[int, int]  # (H, W) of every image
    channels: int
    input_channels: int  # image-to-image data: channels of the input; 0 otherwise
    raw_to_index: Sequence[int]  # label-file value -> label channel (-1: invalid)
    palette: Mapping[int, Sequence[int]] | None  # label id -> RGB, for colour-coded label files

    @property
    def source_files(self) -> list[Path]: ...

    def __len__(self) -> int: ...

    def get_batch(self, indices: Tensor | Sequence[int]) -> Batch: ...


class DatasetBase:
    """Defaults of :class:`Dataset`'s description attributes, and what :func:`gauguin.data.build`
    reads of a dataset class:

    - ``defaults``: the :class:`Preprocessing` fields the dataset uses, with its values for them
      (``crop_size`` and ``augment`` are used by every dataset); a set field it has no default
      for does nothing with it;
    - ``ignores``: why a field or option does nothing, for messages (key ``"*"``: any other).
    """

    defaults: ClassVar[Preprocessing] = NO_PREPROCESSING
    ignores: ClassVar[Mapping[str, str]] = {}

    num_classes = 1
    classes: Sequence[str] = ()
    num_labels = 0
    label_names: Sequence[str] = ()
    dont_care_index: int | None = None
    has_instances = False
    input_channels = 0
    raw_to_index: Sequence[int] = ()
    palette: Mapping[int, Sequence[int]] | None = None


FIXED_28_PX = {"*": "it has a fixed 28 px square source"}  # why the Fashion-MNIST kinds ignore a field
