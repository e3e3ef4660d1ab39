"""What the semantic image-synthesis families (SPADE, pix2pixHD) share: the data options, the
one-hot label map built on the device, generation from label maps and the sample grid."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from .. import losses
from ..config import ConfigError, TrainConfig
from ..nn.labels import colorize_labels, semantic_input
from ..nn.vgg import VGGLoss, load_vgg19
from .base import Batch, DataInfo, GANFamily, grid_rows


@dataclasses.dataclass
class SemanticConfig(TrainConfig):
    """Data options of label-map datasets (``gauguin.data.semantic``)."""

    positive: ClassVar[tuple[str, ...]] = ("aspect_ratio",)  # must be > 0

    dataset: str = "fashion-mnist"  # fashion-mnist | coco-stuff:PATH | cityscapes:PATH | ade20k:PATH | folder:PATH
    split: str = "train"  # the split trained on (train, val; fashion-mnist: train, test)
    image_size: int = 32  # crop width (crop_size)
    load_size: int = 0  # resize before cropping (0 = the dataset's default)
    aspect_ratio: float = 1.0  # width / height (Cityscapes 2.0)
    preprocess: Literal["auto", "resize_and_crop", "scale_width_and_crop", "fixed", "none"] = "auto"
    flip: bool = True
    use_instances: Literal["auto", "yes", "no"] = "auto"  # instance boundary channel when the data has instances
    label_palette: str = ""  # folder datasets with RGB label PNGs: a palette file, or "infer"
    num_labels: int = 0  # folder datasets: label count (0 = infer from the files)
    # the losses SPADE and pix2pixHD share
    lambda_feat: float = 10.0  # discriminator feature matching
    lambda_vgg: float = 10.0  # VGG19 perceptual loss, used only with vgg_weights
    vgg_weights: str = ""  # torchvision VGG19 weights (.pth or .safetensors); none can be downloaded here


class SemanticFamily(GANFamily):
    """A family whose generator turns label maps (one-hot, plus instance edges) into images."""

    def __init__(self, cfg: SemanticConfig, data: DataInfo):
        super().__init__(cfg, data)
        if not data.num_labels:
            raise ConfigError(f"{self.name} needs a dataset of label maps, {cfg.dataset!r} has none")
        self.use_instances = data.has_instances and cfg.use_instances != "no"
        self.vgg_loss = VGGLoss(load_vgg19(cfg.vgg_weights)) if cfg.vgg_weights and cfg.lambda_vgg > 0 else None

    @classmethod
    def build_dataset(cls, cfg: SemanticConfig, split: str | None = None):
        split = split or cfg.split
        return build_label_map_dataset(
            cfg.dataset, split, crop_size=cfg.image_size, augment=split == cfg.split, flip=cfg.flip,
            channels=cfg.channels, data_root=cfg.data_root, aspect_ratio=cfg.aspect_ratio, load_size=cfg.load_size,
            preprocess=cfg.preprocess, use_instances=cfg.use_instances, label_palette=cfg.label_palette,
            num_labels=cfg.num_labels)

    def semantic(self, batch: dict[str, Tensor]) -> Tensor:
        """One-hot label map (+ instance edges) in the autocast dtype, in the images' memory layout."""
        return one_hot_input(batch, self.data.num_labels, self.use_instances)

    def inputs_like(self, batch: Batch, generator: torch.Generator | None = None) -> dict[str, Any]:
        return {k: batch[k] for k in ("label_map", "instance") if k in batch}

    def random_inputs(self, n, generator=None, labels=None):
        raise ValueError(f"{self.name} generates images from label maps, not from noise alone: use "
                         "`gauguin translate CHECKPOINT --labels LABEL.png` (LoadedGenerator.translate)")

    def matching_losses(self, D, segmap: Tensor, real: Tensor, fake: Tensor, fake_out: list,
                        layer_weight: float = 1.0) -> tuple[Tensor, dict[str, float]]:
        """λ_FM · D's feature matching (pix2pixHD Eq. 4; layers summed, times ``layer_weight``) plus,
        with VGG19 weights, λ_VGG · the perceptual loss; ``fake_out`` is D's output on the fakes."""
        loss, logs = fake.new_zeros((), dtype=torch.float32), {}
        if self.cfg.lambda_feat > 0:
            with torch.no_grad():
                real_out = D(torch.cat([segmap, real], 1))
            fm = losses.multiscale_feature_matching_loss([s[:-1] for s in real_out], [s[:-1] for s in fake_out],
                                                         layers="sum") * layer_weight
            loss = loss + self.cfg.lambda_feat * fm
            logs["g_feat"] = fm.item()
        if self.vgg_loss is not None:
            self.vgg_loss.to(fake.device)
            vgg = self.vgg_loss(fake.expand(-1, 3, -1, -1), real.expand(-1, 3, -1, -1))  # grey images as RGB
            loss = loss + self.cfg.lambda_vgg * vgg
            logs["g_vgg"] = vgg.item()
        return loss, logs

    def grid_inputs(self, dataset, columns: int, generator: torch.Generator) -> dict[str, Any]:
        """The first ``columns`` examples of the training set (repeated if it is smaller)."""
        batch = dataset.get_batch(torch.arange(columns) % len(dataset))
        return {**self.inputs_like(batch, generator), "real": batch["image"]}

    def grid_images(self, inputs: dict[str, Any], fake: Tensor) -> Tensor:
        """Rows: the label maps in colour, the real images, the generated ones."""
        return input_real_fake_rows(inputs, fake, self.data.num_labels)


def build_label_map_dataset(
    spec: str, split: str, *, crop_size: int, augment: bool, flip: bool = True, channels: int = 1, data_root: str = "",
    aspect_ratio: float = 1.0, load_size: int = 0, preprocess: str = "auto", use_instances: str = "auto",
    label_palette: str = "", num_labels: int = 0,
):
    """The label-map dataset ``spec`` names (``gauguin.data.semantic``) with the options of
    :class:`SemanticConfig`; Fashion-MNIST silhouettes take only the crop, flip, channels and root."""
    from ..data.semantic import build_semantic_dataset

    kwargs: dict[str, Any] = {"crop_size": crop_size, "flip": flip, "augment": augment}
    if data_root:  # the Fashion-MNIST folder; any other spec names its own and refuses it
        kwargs["root"] = data_root
    if spec.startswith("fashion"):
        kwargs["channels"] = channels
    else:
        kwargs["aspect_ratio"] = aspect_ratio
        if load_size:
            kwargs["load_size"] = load_size
        if preprocess != "auto":
            kwargs["preprocess"] = preprocess
        if use_instances != "auto":
            kwargs["use_instances"] = use_instances == "yes"
        if spec.startswith("folder"):
            kwargs.update(palette=label_palette or None, num_labels=num_labels or None)
    return build_semantic_dataset(spec, split, **kwargs)


def one_hot_input(batch: dict[str, Tensor], num_labels: int, use_instances: bool) -> Tensor:
    """A generator's semantic input (:func:`~gauguin.nn.labels.semantic_input`) in the autocast dtype
    (0/1 is exact in bf16) and, when the batch has images, in their memory layout (the loop's choice)."""
    device = batch["label_map"].device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
    segmap = semantic_input(batch, num_labels, use_instances, dtype)
    if "image" in batch and batch["image"].is_contiguous(memory_format=torch.channels_last):
        segmap = segmap.contiguous(memory_format=torch.channels_last)
    return segmap


def input_real_fake_rows(inputs: dict[str, Any], fake: Tensor, num_labels: int = 0) -> Tensor:
    """The sample grid of a conditional image generator: its inputs (label maps in colour, or input
    images), the real targets and the outputs, one row each, as RGB."""
    first = colorize_labels(inputs["label_map"], num_labels) if "label_map" in inputs else inputs["input"]
    return grid_rows(first, inputs["real"], fake)


def paired_input(segmap: Tensor, *images: Tensor) -> Tensor:
    """[segmap ⊕ image] of each image batch, stacked along the batch dimension: D's input for several
    image batches of one label map, written into one buffer (each part copied once, no nested cat)."""
    b, c = segmap.shape[:2]
    layout = torch.channels_last if segmap.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty((b * len(images), c + images[0].shape[1], *segmap.shape[2:]), dtype=segmap.dtype,
                      device=segmap.device, memory_format=layout)
    for k, image in enumerate(images):
        out[k * b : (k + 1) * b, :c] = segmap
        out[k * b : (k + 1) * b, c:] = image
    return out
