"""Load a trained generator from a checkpoint and draw samples (what ``gauguin sample`` runs)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .data.errors import BadDataError
from .models import DataInfo, GANFamily, get_family
from .models.inference import Graph, InferenceSpec, draw_inputs
from . import checkpoint as ckpt


def read_checkpoint(path: str | Path) -> tuple[Path, dict, dict]:
    """A checkpoint folder, or a run folder: its newest readable step checkpoint (a corrupt newer
    one is reported and skipped). Returns (folder, tensors, meta)."""
    path = Path(path)
    if not path.exists():
        raise ckpt.CheckpointError(f"{path} does not exist; pass a checkpoint folder such as runs/dcgan/checkpoints/step_0005000")
    if path.name == ckpt.META:
        path = path.parent
    if (path / ckpt.META).is_file():
        return (path, *ckpt.load_checkpoint(path))
    for root in (path / "checkpoints", path):
        if ckpt.step_checkpoints(root):
            found = ckpt.load_latest(root)
            if found is None:
                raise ckpt.CheckpointError(f"every checkpoint under {root} is corrupt; retrain or restore one from a backup")
            return found
    raise ckpt.CheckpointError(f"{path} holds no gauguin checkpoint (no meta.json, no checkpoints/step_*)")


@dataclass
class LoadedGenerator:
    family: GANFamily
    generator: torch.nn.Module
    meta: dict
    device: torch.device
    folder: Path  # the checkpoint folder it came from

    @property
    def classes(self) -> list[str]:
        return self.meta.get("classes") or []

    def class_index(self, name_or_index: str | int) -> int:
        """A class given by index or (case-insensitive) name."""
        n = self.meta["num_classes"]
        if isinstance(name_or_index, int) or str(name_or_index).lstrip("-").isdigit():
            index = int(name_or_index)
            if not 0 <= index < n:
                raise ValueError(f"class {index} is out of range: this model has classes 0..{n - 1}")
            return index
        lowered = [c.lower() for c in self.classes]
        if str(name_or_index).lower() not in lowered:
            raise ValueError(f"unknown class {name_or_index!r}; this model knows {self.classes}")
        return lowered.index(str(name_or_index).lower())

    @property
    def spec(self) -> InferenceSpec:
        return self.family.inference

    def run(self, graph: Graph, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``graph`` on ``inputs`` (moved to the model's device); the output in fp32 on CPU."""
        return graph.run(self.generator, {k: v.to(self.device) for k, v in inputs.items()}).float().cpu()

    def inputs_like(self, batch: dict[str, torch.Tensor], generator: torch.Generator | None = None) -> dict:
        """The generator's inputs for a batch of data (label maps, images, classes), the rest drawn."""
        return draw_inputs(self.spec.main, len(next(iter(batch.values()))), generator, batch)

    @torch.no_grad()
    def generate(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The images of the generator's named ``inputs`` (see :meth:`inputs_like`), fp32 on CPU."""
        return self.run(self.spec.main, inputs)

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, label: int | None = None) -> torch.Tensor:
        """``n`` images in [-1, 1], ``[n, C, H, W]`` on CPU. ``label`` fixes the class of conditional models."""
        main = self.spec.main
        if not self.spec.noise_driven:
            flags = " ".join(f"--{_FLAGS[i.kind]} FILE" for i in main.data_inputs if i.kind in _FLAGS)
            raise ValueError(f"{self.meta['family']} translates its inputs ({', '.join(i.name for i in main.data_inputs)}): "
                             f"use `gauguin translate CHECKPOINT {flags}`")
        batch = None
        if label is not None:
            if main.input("class") is None:
                raise ValueError("this model is unconditional: it takes no class")
            batch = {"label": torch.full((n,), label, dtype=torch.long)}
        return self.run(main, draw_inputs(main, n, torch.Generator().manual_seed(seed), batch))

    # ------------------------------------------------------------------ semantic families (SPADE)
    @property
    def data(self) -> DataInfo:
        return self.family.data

    @property
    def image_size(self) -> tuple[int, int]:
        return tuple(self.data.image_size)

    def read_label_map(self, path: str | Path) -> torch.Tensor:
        """A label PNG as it is stored in the training data (ids, or colours with the dataset's palette)
        -> label ids ``[H, W]`` at the model's size (nearest neighbour)."""
        import numpy as np

        from .data.label_files import colors_to_ids, read_label_file
        from .data.semantic import unknown_raw_ids

        if not self.data.num_labels:
            raise ValueError(f"{self.folder} is a {self.meta['family']} model: it takes no label maps")
        raw = read_label_file(path)
        if raw.ndim == 3:
            if not self.data.palette:
                raise BadDataError(f"label map {path} is an RGB colour image, but this model was trained on id-valued "
                                   "label maps: save the ids as an 8-bit grey PNG")
            raw = colors_to_ids(raw, {int(k): tuple(v) for k, v in self.data.palette.items()}, path)
        lut = np.asarray(self.data.raw_to_index)
        bad = unknown_raw_ids(raw, lut)
        if bad.size:
            valid = np.flatnonzero(lut >= 0)
            raise BadDataError(f"label map {path} holds id(s) {bad[:8].tolist()} this model does not know; its "
                               f"label files hold {valid.min()}..{valid.max()} ({self.data.num_labels} labels)")
        ids = torch.from_numpy(lut[raw])
        return resize_ids(ids, self.image_size)

    def read_instance_map(self, path: str | Path) -> torch.Tensor:
        from .data.label_files import read_instance_file

        return resize_ids(torch.from_numpy(read_instance_file(path).astype("int64")), self.image_size)

    def read_style_image(self, path: str | Path) -> torch.Tensor:
        """A photo as a style input ``[1, C, H, W]`` in [-1, 1] at the model's size."""
        return self.read_image(path, self.data.channels)

    def read_image(self, path: str | Path, channels: int) -> torch.Tensor:
        """An image file as ``[1, channels, H, W]`` in [-1, 1] at the model's size (bicubic)."""
        from .data.label_files import model_pixels, read_rgb_image

        return torch.from_numpy(model_pixels(read_rgb_image(path), self.image_size, channels)).unsqueeze(0)

    @property
    def input_channels(self) -> int:
        """Channels of the images an image translator takes."""
        return self.spec.translator().input("image").size

    @torch.no_grad()
    def translate_images(self, images: torch.Tensor, direction: str | None = None) -> torch.Tensor:
        """Image-to-image families: the translation of ``images`` ``[N, C, H, W]`` in [-1, 1]."""
        graph = self.spec.translator(direction)
        return self.run(graph, {graph.input("image").name: images})

    @torch.no_grad()
    def translate(self, label_map: torch.Tensor, instance: torch.Tensor | None = None, n: int = 1, seed: int = 0,
                  style: torch.Tensor | None = None) -> torch.Tensor:
        """Images ``[n, C, H, W]`` for one label map ``[H, W]``: ``n`` random styles (the drawn inputs of
        ``n`` images from ``seed``), or the style of a ``style`` image ``[1, C, H, W]`` (then n = 1)."""
        main = self.spec.main
        if main.input("label_map") is None:
            raise ValueError(f"{self.folder} is a {self.meta['family']} model: it takes no label maps")
        if label_map.shape[-2:] != self.image_size:
            raise ValueError(f"label map is {tuple(label_map.shape[-2:])}, the model makes {self.image_size}: "
                             "use read_label_map, which resizes")
        if style is not None and not main.takes_style:
            raise ValueError("this model has no style encoder (trained without use_vae / use_features): "
                             "it takes no style image")
        batch = {"label_map": label_map.expand(1 if style is not None else n, -1, -1)}
        if instance is not None:
            batch["instance"] = instance.expand_as(batch["label_map"])
        inputs = draw_inputs(main, len(batch["label_map"]), torch.Generator().manual_seed(seed), batch)
        if style is not None:
            inputs = {k: v for k, v in inputs.items() if k in batch}
            inputs["style"] = style
        return self.run(main, inputs)


_FLAGS = {"label_map": "labels", "image": "input"}  # translate's flag for each kind of data input


def resize_ids(ids: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An integer map ``[H, W]`` at ``size`` by nearest neighbour (no id is ever mixed)."""
    if tuple(ids.shape) == tuple(size):
        return ids.long()
    return torch.nn.functional.interpolate(ids[None, None].float(), size=size, mode="nearest-exact")[0, 0].long()


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """The sampling generator of a checkpoint: its EMA weights when it has them."""
    folder, tensors, meta = read_checkpoint(path)
    family_cls = get_family(meta["family"])
    cfg = family_cls.config_class.from_dict(meta["config"], source=str(folder / ckpt.META))
    family = family_cls(cfg, DataInfo.from_meta(meta))
    weights = tensors["weights.safetensors"]
    prefix = "generator_ema" if any(k.startswith("generator_ema.") for k in weights) else "generator"
    ckpt.load_module_state(family.generator, prefix, weights, str(folder / "weights.safetensors"))
    device = torch.device(device)
    return LoadedGenerator(family, family.generator.to(device).eval(), meta, device, folder)
