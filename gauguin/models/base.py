"""The contract between a model family and the shared training loop."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..config import TrainConfig

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
    def of(cls, dataset) -> "DataInfo":
        size = getattr(dataset, "image_size", 0)
        return cls(num_classes=getattr(dataset, "num_classes", 1), classes=list(getattr(dataset, "classes", [])),
                   num_labels=getattr(dataset, "num_labels", 0), label_names=list(getattr(dataset, "label_names", [])),
                   dont_care_index=getattr(dataset, "dont_care_index", None),
                   has_instances=getattr(dataset, "has_instances", False),
                   image_size=tuple(size) if isinstance(size, (tuple, list)) else (size, size),
                   channels=getattr(dataset, "channels", 0),
                   input_channels=getattr(dataset, "input_channels", 0),
                   raw_to_index=list(getattr(dataset, "raw_to_index", [])),
                   palette={str(k): list(v) for k, v in (getattr(dataset, "palette", None) or {}).items()} or None)

    @classmethod
    def from_meta(cls, meta: dict) -> "DataInfo":
        """From a checkpoint's meta.json (older ones hold only ``num_classes`` and ``classes``)."""
        values = meta.get("data") or {"num_classes": meta["num_classes"], "classes": meta.get("classes") or []}
        info = cls(**values)
        info.image_size = tuple(info.image_size)
        return info

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "image_size": list(self.image_size)}


def grid_rows(*rows: torch.Tensor) -> torch.Tensor:
    """Rows of a sample grid stacked into one batch of RGB images (grey rows repeated to 3 channels)."""
    return torch.cat([r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows])


def dataset_options(cfg: TrainConfig, split: str, **fashion_options: Any) -> dict[str, Any]:
    """Constructor options of an image-to-image dataset named by ``cfg.dataset``: crop size; for the
    Fashion-MNIST defaults their ``fashion_options``, channels and root; for folders augmentation on
    the training split only and ``load_size``."""
    options: dict[str, Any] = {"crop_size": cfg.image_size}
    if cfg.data_root:  # the Fashion-MNIST folder; any other spec names its own and refuses it
        options["root"] = cfg.data_root
    if cfg.dataset.startswith("fashion"):
        options.update(channels=cfg.channels, **fashion_options)
    else:
        options["augment"] = split == "train"
        if getattr(cfg, "load_size", 0):
            options["load_size"] = cfg.load_size
    return options


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


class GANFamily:
    """A family owns its networks and losses; the loop owns everything else.

    Each iteration the loop calls ``d_loss`` and then ``g_loss`` as often as :meth:`updates` says, inside
    autocast; it does the backward passes, gradient averaging, optimizer steps, EMA,
    logging and checkpoints. In ``g_loss`` the discriminator's parameters are frozen.
    """

    name: str = ""
    config_class: type[TrainConfig] = TrainConfig

    def __init__(self, cfg: TrainConfig, data: DataInfo):
        self.cfg = cfg
        self.data = data
        self.num_classes = data.num_classes
        self._kept_fakes: Any = None  # see fakes_for_d
        self.keep_fakes = cfg.d_steps_per_g_step == 1  # set by the loop each iteration (see fakes_for_d)
        self.conditional = False  # whether the generator takes class labels
        self.generator: nn.Module
        self.discriminator: nn.Module

    # what the loop asks for
    @classmethod
    def build_dataset(cls, cfg: TrainConfig, split: str = "train"):
        """The dataset the config names (classes of images by default; semantic families override)."""
        from ..data import build_dataset

        return build_dataset(cfg.dataset, cfg.data_root, cfg.image_size, cfg.channels, split)

    def random_inputs(self, n: int, generator: torch.Generator | None = None, labels=None) -> dict[str, Any]:
        """Generator inputs for ``n`` samples (noise, labels ...) on CPU."""
        raise NotImplementedError

    def inputs_like(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Any]:
        """Generator inputs conditioned like the real ``batch`` (its class mix, its label maps ...)."""
        return self.random_inputs(len(batch["image"]), generator, batch.get("label"))

    def grid_inputs(self, dataset, columns: int, generator: torch.Generator) -> dict[str, Any]:
        """Inputs of the fixed sample grid: one row per class for conditional families."""
        labels = self.grid_labels(columns)
        return self.random_inputs(len(labels) if labels is not None else 8 * columns, generator, labels)

    def grid_images(self, inputs: dict[str, Any], fake: torch.Tensor) -> torch.Tensor:
        """The images shown in the grid, ``columns`` per row (semantic families add their inputs)."""
        return fake

    def generate(self, G: nn.Module, inputs: dict[str, Any]) -> torch.Tensor:
        return G(**inputs)

    def translation_inputs(self, images: torch.Tensor, direction: str | None) -> dict[str, Any]:
        """Image-to-image families: generator inputs translating ``images`` in ``direction``."""
        raise ValueError(f"{self.name} does not translate images; it takes "
                         + ("label maps (--labels)" if self.data.num_labels else "noise (gauguin sample)"))

    @property
    def input_channels(self) -> int:
        """Channels of the images ``translation_inputs`` takes."""
        return self.data.input_channels or self.data.channels

    def d_loss(self, G: nn.Module, D: nn.Module, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def g_loss(self, G: nn.Module, D: nn.Module, batch: Batch, step: int) -> tuple[torch.Tensor, Logs]:
        raise NotImplementedError

    def extra_state(self) -> dict[str, torch.Tensor]:
        """State outside the networks that a checkpoint must keep (e.g. CycleGAN's history pools)."""
        return {}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`extra_state` returned."""

    def fakes_for_d(self, make: Callable[[], Any]) -> Any:
        """In ``d_loss``: the generator's output ``make()`` for this iteration. When the loop's next
        update is a G update on the same batch (``keep_fakes``: one D update, then G) it is made with
        gradients and kept for it (:meth:`fakes_for_g`), so G runs forward once per iteration (as the
        DCGAN recipe does); else it is made without gradients."""
        reuse = self.keep_fakes and torch.is_grad_enabled()
        with torch.set_grad_enabled(reuse):
            fakes = make()
        self._kept_fakes = fakes if reuse else None
        return fakes

    def fakes_for_g(self, make: Callable[[], Any]) -> Any:
        """In ``g_loss``: the fakes kept by :meth:`fakes_for_d`, else a new ``make()``."""
        fakes, self._kept_fakes = self._kept_fakes, None
        return fakes if fakes is not None else make()

    def updates(self, step: int) -> tuple[int, int]:
        """(discriminator updates, generator updates) of iteration ``step`` (SimGAN's pretraining
        phases change them)."""
        return self.cfg.d_steps_per_g_step, self.cfg.g_steps_per_iteration

    def batch_size(self, step: int) -> int:
        """Global batch size of iteration ``step`` (PGGAN's grows smaller with the resolution)."""
        return self.cfg.batch_size

    def milestone(self, step: int) -> bool:
        """Whether the loop writes a sample grid and evaluates after ``step`` iterations besides its
        regular ``sample_every`` / ``eval_every`` (PGGAN: at each stage's end)."""
        return False

    def prepare_sampling(self, G: nn.Module, dataset) -> None:
        """Before a checkpoint is written: test-time state of ``G`` computed from the training data
        (pix2pixHD's clusters of instance features)."""

    def after_d_step(self) -> None:
        """Hook after each D optimizer step (e.g. WGAN weight clipping)."""

    def grid_labels(self, rows: int) -> torch.Tensor | None:
        """Labels of the sample grid: one row per class for conditional families."""
        return None
