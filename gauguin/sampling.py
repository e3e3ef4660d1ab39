"""Load a trained generator from a checkpoint and draw samples (what ``gauguin sample`` runs)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .models import GANFamily, get_family
from .training import checkpoint as ckpt


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

    @torch.no_grad()
    def sample(self, n: int, seed: int = 0, label: int | None = None) -> torch.Tensor:
        """``n`` images in [-1, 1], ``[n, C, H, W]`` on CPU. ``label`` fixes the class of conditional models."""
        gen = torch.Generator().manual_seed(seed)
        labels = None
        if label is not None:
            if not self.family.conditional:
                raise ValueError("this model is unconditional: it takes no class")
            labels = torch.full((n,), label, dtype=torch.long)
        inputs = self.family.random_inputs(n, gen, labels)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        return self.family.generate(self.generator, inputs).float().cpu()


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """The sampling generator of a checkpoint: its EMA weights when it has them."""
    folder, tensors, meta = read_checkpoint(path)
    family_cls = get_family(meta["family"])
    cfg = family_cls.config_class.from_dict(meta["config"], source=str(folder / ckpt.META))
    family = family_cls(cfg, meta["num_classes"])
    weights = tensors["weights.safetensors"]
    prefix = "generator_ema" if any(k.startswith("generator_ema.") for k in weights) else "generator"
    ckpt.load_module_state(family.generator, prefix, weights, str(folder / "weights.safetensors"))
    device = torch.device(device)
    return LoadedGenerator(family, family.generator.to(device).eval(), meta, device, folder)
