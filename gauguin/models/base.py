"""The contract between a model family and the shared training loop."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from ..config import TrainConfig
from ..data.protocol import Dataset
from .inference import InferenceSpec

Batch = dict[str, torch.Tensor]  # "image" in [-1, 1]; "label" (classes) or "label_map" / "instance" (semantic)
Logs = dict[str, float]


@dataclasses.dataclass
class DataInfo:
    """What a family needs to know of its dataset to build its networks; stored in checkpoints."""

    num_classes: int = 1
    classes: list[str] = dataclasses.field(default_factory=list)
    num_labels: int = 0  # semantic label channels, incl. don't-care (0: not a semantic dataset)
    label_names: list[str] = dataclasses.field(default_factory=list)
    dont_care_index: int | None = None
    has_instances: bool = False
    image_size: tuple[int, int] = (0, 0)  # (H, W)
    channels: int = 0
    input_channels: int = 0  # image-to-image families: channels of the input images
    raw_to_index: list[int] = dataclasses.field(default_factory=list)  # label-file value -> label id (-1: invalid)
    palette: dict[str, list[int]] | None = None  # label id -> RGB, for colour-coded label files

    @classmethod
    def of(cls, dataset: Dataset) -> "DataInfo":
        size = dataset.image_size
        return cls(num_classes=dataset.num_classes, classes=list(dataset.classes), num_labels=dataset.num_labels,
                   label_names=list(dataset.label_names), dont_care_index=dataset.dont_care_index,
                   has_instances=dataset.has_instances,
                   image_size=tuple(size) if isinstance(size, (tuple, list)) else (size, size),
                   channels=dataset.channels, input_channels=dataset.input_channels,
                   raw_to_index=list(dataset.raw_to_index),
                   palette={str(k): list(v) for k, v in (dataset.palette or {}).items()} or None)

    @classmethod
    def from_meta(cls, meta: dict) -> "DataInfo":
        """From a checkpoint's meta.json (older ones hold only ``num_classes`` and ``classes``)."""
        values = meta.get("data") or {"num_classes": meta["num_classes"], "classes": meta.get("classes") or []}
        info = cls(**values)
        info.image_size = tuple(info.image_size)
        return info

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "image_size": list(self.image_size)}


# a config field -> (the Preprocessing field or data option it sets, its value there; None = not set)
DATA_KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "image_size": ("crop_size", lambda v: v),
    "load_size": ("load_size", lambda v: v or None),
    "aspect_ratio": ("aspect_ratio", lambda v: v),
    "preprocess": ("mode", lambda v: None if v == "auto" else v),
    "flip": ("flip", lambda v: v),
    "channels": ("channels", lambda v: v),
    "use_instances": ("use_instances", lambda v: None if v == "auto" else v == "yes"),
    "label_palette": ("palette", lambda v: v or None),
    "num_labels": ("num_labels", lambda v: v or None),
    "direction": ("direction", lambda v: v),
    "domain_a": ("domain_a", lambda v: v),
    "domain_b": ("domain_b", lambda v: v),
    "scale": ("scale", lambda v: v),
    "crops_per_photo": ("crops_per_photo", lambda v: v),
    "labels_per_class": ("labels_per_class", lambda v: v or None),
    "subset_seed": ("subset_seed", lambda v: v or None),
}


def build_data(cfg: TrainConfig, task: str, split: str, augment: bool | None = None):
    """The dataset ``cfg.dataset`` (``KIND[:PATH]``) names for ``task`` (:func:`gauguin.data.build`), with
    the config's preprocessing and data options: each one the data uses, and each one changed from the
    family's default that it does not use (so that the data refuses it: a key that does nothing is an
    error, not ignored)."""
    from ..data import Preprocessing, accepts, build

    uses = accepts(cfg.dataset, task)
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    prep_fields = {f.name for f in dataclasses.fields(Preprocessing)}
    prep, options = {"augment": augment}, {}
    for key, (name, convert) in DATA_KEYS.items():
        if not hasattr(cfg, key) or (value := convert(getattr(cfg, key))) is None:
            continue
        if name in uses or getattr(cfg, key) != defaults[key]:
            (prep if name in prep_fields else options)[name] = value
    return build(cfg.dataset, split, Preprocessing(**prep), task=task, root=cfg.data_root, **options)


@dataclasses.dataclass
class Pix2PixSchedule(TrainConfig):
    """The training schedule pix2pix, CycleGAN and pix2pixHD share (Isola et al. 2017 §3.3; Zhu et al.
    2017 §4; Wang et al. 2018): batch 1, Adam lr 2e-4 for G and D, β=(0.5, 0.999), constant for the
    first half then linearly decayed to 0, samples from G itself (no EMA)."""

    batch_size: int = 1
    steps: int = 20000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    lr_decay_start: float = 0.5
    ema_decay: float = 0.0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What iteration ``step`` does (in the spirit of stylegan2-ada's training phases): D and G
    updates, the global batch size, and whether the iteration ends a phase (then the loop writes a
    sample grid and evaluates, besides its regular ``sample_every`` / ``eval_every``)."""

    d_updates: int
    g_updates: int
    batch_size: int
    ends_phase: bool = False


class Stateful(Protocol):
    def state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...


class GANFamily:
    """A family owns its networks, its losses and its schedule; the loop owns everything else.

    The hooks (eight): :meth:`build_dataset`, :meth:`plan`, :meth:`fakes`, :meth:`d_loss`,
    :meth:`g_loss`, :attr:`inference`, :meth:`training_state`, :meth:`fit_sampling`.

    Each iteration the loop does ``plan(step).d_updates`` D updates, then ``g_updates`` G updates,
    inside autocast; it does the backward passes, gradient averaging, optimizer steps, EMA,
    logging and checkpoints. The fakes are passed explicitly: the loop makes them with
    :meth:`fakes` and hands them to ``d_loss`` (which detaches them) and, when one D update is
    followed by G updates, the same ones (with their graph) to the first ``g_loss``, so G runs
    forward once per iteration. In ``g_loss`` the discriminator's parameters are frozen.
    """

    name: str = ""
    config_class: type[TrainConfig] = TrainConfig

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        self.cfg = cfg
        self.data = data
        self.num_classes = data.num_classes
        self.generator: nn.Module
        self.discriminator: nn.Module

    @classmethod
    def build_dataset(cls, cfg: TrainConfig, split: str = "train"):
        """The dataset the config names (images with class labels by default)."""
        return build_data(cfg, "classes", split)

    def plan(self, step: int) -> Plan:
        """Iteration ``step``'s updates and batch size (default: the config's, every step alike)."""
        return Plan(self.cfg.d_steps_per_g_step, self.cfg.g_steps_per_iteration, self.cfg.batch_size)

    def fakes(self, G: nn.Module, batch: Batch, step: int) -> Any:
        """The generator's output for ``batch`` (whatever the losses need of it: images, or a tuple)."""
        raise NotImplementedError

    def d_loss(self, D: nn.Module, batch: Batch, fakes: Any, step: int) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def g_loss(self, G: nn.Module, D: nn.Module, batch: Batch, fakes: Any, step: int) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    @property
    def inference(self) -> InferenceSpec:
        """What the generator takes and how each input is drawn (:mod:`gauguin.models.inference`)."""
        raise NotImplementedError

    def training_state(self) -> dict[str, Stateful]:
        """State outside the networks that a checkpoint keeps (e.g. CycleGAN's history pools), by name."""
        return {}

    def fit_sampling(self, G: nn.Module, dataset) -> None:
        """Before a checkpoint is written: test-time state of ``G`` fitted to the training data
        (pix2pixHD's clusters of instance features)."""
