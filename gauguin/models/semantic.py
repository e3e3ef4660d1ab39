"""What the semantic image-synthesis families (SPADE, pix2pixHD) share: the data options, the
one-hot label map built on the device, generation from label maps and the sample grid."""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Literal, NamedTuple

import torch
from torch import Tensor, nn

from .. import losses
from ..config import ConfigError, TrainConfig
from ..nn.labels import semantic_input
from ..nn.layers import autocast_dtype
from ..nn.vgg import VGGLoss, load_vgg19
from .base import DataInfo, GANFamily, build_data
from .inference import Graph, InferenceSpec, Input


@dataclasses.dataclass
class LabelMapData(TrainConfig):
    """Data options of label-map datasets (``dataset``: fashion-mnist | coco-stuff:PATH |
    cityscapes:PATH | ade20k:PATH | folder:PATH); ``image_size`` is the crop width. An option the
    chosen data does nothing with, changed from its default, is refused (:func:`~.base.build_data`)."""

    positive: ClassVar[tuple[str, ...]] = ("aspect_ratio",)  # must be > 0

    split: str = "train"  # the split trained on (train, val; fashion-mnist: train, test)
    load_size: int = 0  # resize before cropping (0 = the dataset's default)
    aspect_ratio: float = 1.0  # width / height (Cityscapes 2.0)
    preprocess: Literal["auto", "resize_and_crop", "scale_width_and_crop", "fixed", "none"] = "auto"
    flip: bool = True
    use_instances: Literal["auto", "yes", "no"] = "auto"  # instance boundary channel when the data has instances
    label_palette: str = ""  # folder datasets with RGB label PNGs: a palette file, or "infer"
    num_labels: int = 0  # folder datasets: label count (0 = infer from the files)


@dataclasses.dataclass
class SemanticConfig(LabelMapData):
    """The data options, and the losses SPADE and pix2pixHD share."""

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
        return build_data(cfg, "label_maps", split, augment=split == cfg.split)

    def semantic(self, batch: dict[str, Tensor]) -> Tensor:
        """One-hot label map (+ instance edges) in the autocast dtype, in the images' memory layout."""
        return one_hot_input(batch, self.data.num_labels, self.use_instances)

    def spec(self, drawn: tuple[Input, ...], *extra: Graph, multiple: int = 0, min_blocks: int = 1,
             takes_style: bool = False, **settings: Any) -> InferenceSpec:
        """The spec of a label-map generator: ids (+ instance ids) and the ``drawn`` style inputs."""
        def run(G: nn.Module, inputs: dict[str, Tensor]) -> Tensor:
            return self.generate(G, self.inference_semantic(inputs), inputs)

        inputs = label_map_inputs(self.data.num_labels, self.use_instances) + drawn
        graph = Graph("generator", inputs, run, multiple=multiple, min_blocks=min_blocks, takes_style=takes_style)
        size = tuple(self.data.image_size) if all(self.data.image_size) else (self.cfg.image_size,) * 2
        return InferenceSpec((graph, *extra), size, self.data.channels, settings)

    def inference_semantic(self, inputs: dict[str, Tensor]) -> Any:
        """What :meth:`generate` gets as ``segmap`` at inference: the one-hot map (+ instance edges)."""
        return semantic_input(inputs, self.data.num_labels, self.use_instances)

    def generate(self, G: nn.Module, segmap: Tensor, inputs: dict[str, Tensor]) -> Tensor:
        """Images from the one-hot ``segmap`` and the other ``inputs`` (style codes, draws, a style image)."""
        raise NotImplementedError

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


def one_hot_input(batch: dict[str, Tensor], num_labels: int, use_instances: bool) -> Tensor:
    """A generator's semantic input (:func:`~gauguin.nn.labels.semantic_input`) in the autocast dtype
    (0/1 is exact in bf16) and, when the batch has images, in their memory layout (the loop's choice)."""
    device = batch["label_map"].device.type
    dtype = autocast_dtype(device, torch.float32)
    segmap = semantic_input(batch, num_labels, use_instances, dtype)
    if "image" in batch and batch["image"].is_contiguous(memory_format=torch.channels_last):
        segmap = segmap.contiguous(memory_format=torch.channels_last)
    return segmap


class ConditionedFakes(NamedTuple):
    """A conditional generator's fakes with the input they were made from (the one-hot label map, or
    the input image), so that D's and G's losses reuse it instead of building it again; SPADE adds the
    style encoder's posterior (mu, logvar) of the real images."""

    image: Tensor
    source: Tensor
    posterior: tuple[Tensor, Tensor] | None = None


def label_map_inputs(num_labels: int, use_instances: bool) -> tuple[Input, ...]:
    """The id-map inputs of a label-map generator: ``label_map`` [N, H, W] (+ ``instance`` [N, H, W])."""
    return (Input("label_map", "label_map", num_labels),) + ((Input("instance", "instance"),) if use_instances else ())


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
