"""What the semantic image-synthesis families (SPADE, pix2pixHD) share: the data options, the
one-hot label map built on the device, generation from label maps and the sample grid."""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
from torch import Tensor

from .. import losses
from ..config import ConfigError, TrainConfig
from ..nn.labels import colorize_labels, semantic_input
from ..nn.vgg import VGGLoss, load_vgg19
from .base import Batch, DataInfo, GANFamily


@dataclasses.dataclass
class SemanticConfig(TrainConfig):
    """Data options of label-map datasets (``gauguin.data.semantic``)."""

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
        from ..data.semantic import build_semantic_dataset

        split = split or cfg.split
        kwargs: dict[str, Any] = {"crop_size": cfg.image_size, "flip": cfg.flip, "augment": split == cfg.split}
        if cfg.dataset.startswith("fashion"):
            kwargs["channels"] = cfg.channels
            if cfg.data_root:
                kwargs["root"] = cfg.data_root
        else:
            kwargs["aspect_ratio"] = cfg.aspect_ratio
            if cfg.load_size:
                kwargs["load_size"] = cfg.load_size
            if cfg.preprocess != "auto":
                kwargs["preprocess"] = cfg.preprocess
            if cfg.use_instances != "auto":
                kwargs["use_instances"] = cfg.use_instances == "yes"
            if cfg.dataset.startswith("folder"):
                kwargs.update(palette=cfg.label_palette or None, num_labels=cfg.num_labels or None)
        return build_semantic_dataset(cfg.dataset, split, **kwargs)

    def semantic(self, batch: dict[str, Tensor]) -> Tensor:
        """One-hot label map (+ instance edges) in the autocast dtype, in the images' memory layout."""
        device = batch["label_map"].device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        segmap = semantic_input(batch, self.data.num_labels, self.use_instances, dtype)  # 0/1: exact in bf16
        if batch["image"].is_contiguous(memory_format=torch.channels_last):  # the layout the loop chose
            segmap = segmap.contiguous(memory_format=torch.channels_last)
        return segmap

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
        rows = [colorize_labels(inputs["label_map"], self.data.num_labels), inputs["real"], fake]
        return torch.cat([r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows])


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
