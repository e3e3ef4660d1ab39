"""VGG19 features (Simonyan & Zisserman 2015, configuration E) built in code, and the perceptual
loss of Johnson et al. 2016 in the multi-layer form of pix2pixHD (Wang et al. 2018, §3.3) that
SPADE uses (Park et al. 2019, appendix A, λ_VGG = 10).

Parameter names follow torchvision's ``vgg19`` (``features.<i>.weight``/``bias``), so the state
dict of an ImageNet-trained torchvision VGG19 (``vgg19-dcbb9e9d.pth``) or a safetensors
conversion of it loads unchanged. No weights can be downloaded here: pass the file's path to
:func:`load_vgg19`. Only ``features.0``-``features.29`` (up to relu5_1) are built; the deeper
convs and the classifier in such a file are ignored.
"""
from __future__ import annotations

import copy

import pickle  # only for its exception type: files are read with torch.load(weights_only=True)
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import autocast_dtype

__all__ = ["VGG19", "VGGLoss", "VGGWeightsError", "load_vgg19"]

# torchvision's cfg "E" up to relu5_1: ints are 3×3 conv widths (each followed by ReLU), "M" a 2×2 max pool
_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
TAPS = (1, 6, 11, 20, 29)  # indices in ``features`` of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
LAYER_NAMES = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONV5_4 = 34  # index of conv5_4 (before its ReLU): ESRGAN's perceptual layer (Wang et al. 2018 §3.3)
# keys of a full torchvision vgg19 state dict that this truncated network does not use
_IGNORED = {f"features.{i}.{p}" for i in (30, 32, 34) for p in ("weight", "bias")} | {
    f"classifier.{i}.{p}" for i in (0, 3, 6) for p in ("weight", "bias")
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGGWeightsError(ValueError):
    """A VGG19 weights file is corrupt or does not fit the network."""


class VGG19(nn.Module):
    """VGG19 convolutional features up to relu5_1, ``forward`` returning the five relu*_1 maps; or,
    ``through="conv5_4"``, up to conv5_4 before its ReLU, returning that one map.

    Expects ImageNet-normalised RGB input (see :meth:`normalize`).
    """

    def __init__(self, through: str = "relu5_1") -> None:
        super().__init__()
        if through not in ("relu5_1", "conv5_4"):
            raise ValueError(f"VGG19 features run through relu5_1 or conv5_4, not {through!r}")
        layers: list[nn.Module] = []
        channels = 3
        for v in _CFG + ([512, 512, 512] if through == "conv5_4" else []):
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(v), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(v)
        if through == "conv5_4":
            layers.pop()  # the features before the activation
        self.features = nn.Sequential(*layers)
        self.taps = TAPS if through == "relu5_1" else (CONV5_4,)

    @staticmethod
    def normalize(x: Tensor) -> Tensor:
        """Images in [-1, 1] → ImageNet normalisation ((x+1)/2 - mean) / std."""
        mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return ((x + 1) / 2 - mean) / std

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                outputs.append(x)  # every tap is followed by a conv, so in-place ReLUs never overwrite it
        return outputs


def _read_tensors(path: Path) -> dict[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"VGG19 weights file {path} does not exist. No weights can be downloaded on this machine: "
            "copy an ImageNet VGG19 state dict (torchvision's vgg19-dcbb9e9d.pth, or a .safetensors "
            "conversion of it) here and pass its path."
        )
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise VGGWeightsError(f"{path} is not a readable safetensors file ({err})") from None
    if path.suffix not in (".pth", ".pt", ".bin"):
        suffix = path.suffix or "(no suffix)"
        raise VGGWeightsError(f"{path}: unknown weights format {suffix!r}; use .pth/.pt or .safetensors")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise VGGWeightsError(
            f"{path} holds Python objects beyond plain tensors (a pickled model?): save model.state_dict() instead"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch.load raises many kinds for a bad file
        raise VGGWeightsError(f"{path} cannot be read as a PyTorch state dict ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise VGGWeightsError(f"{path} does not hold a state dict (names → tensors) but a {type(state).__name__}")
    return dict(state)


def _summary(label: str, keys: Sequence[str]) -> str:
    more = f", ... ({len(keys) - 5} more)" if len(keys) > 5 else ""
    return f"{len(keys)} {label}: {', '.join(keys[:5])}{more}"


def load_vgg19(path: str | Path, device: str | torch.device = "cpu", through: str = "relu5_1") -> VGG19:
    """VGG19 features (through ``through``) with weights from ``path`` (.pth/.pt state dict or
    .safetensors), frozen, eval mode.

    Raises FileNotFoundError for a missing file and :class:`VGGWeightsError` (a ValueError) for
    an unreadable file or one whose keys or shapes do not fit torchvision's vgg19 layout.
    """
    path = Path(path).expanduser()
    state = _read_tensors(path)
    model = VGG19(through)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own) - _IGNORED)
    wrong = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    problems = [_summary(label, keys) for label, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys]
    if problems:
        raise VGGWeightsError(
            f"{path} does not fit VGG19 ({'; '.join(problems)}); expected torchvision's vgg19 state dict "
            "(features.0.weight [64, 3, 3, 3] ... features.28.weight [512, 512, 3, 3]; not vgg19_bn or vgg16)"
        )
    model.load_state_dict({k: state[k] for k in own})
    return model.to(device).eval().requires_grad_(False)


class VGGLoss(nn.Module):
    """Perceptual loss Σ_i w_i · mean|φ_i(x) - φ_i(y)| over VGG19 relu1_1 ... relu5_1 (Johnson
    et al. 2016; weights 1/32, 1/16, 1/8, 1/4, 1 of pix2pixHD §3.3), or over the one conv5_4 map
    of a ``VGG19(through="conv5_4")`` (ESRGAN §3.3, weight 1).

    ``x`` (generated) and ``y`` (real) are images in [-1, 1], converted here to ImageNet
    normalisation (the official SPADE/pix2pixHD code feeds [-1, 1] unnormalised). ``y``'s
    features are computed without gradients; the VGG parameters are frozen and stay in eval mode.
    """

    weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

    def __init__(self, vgg: VGG19, weights: tuple[float, ...] | None = None):
        super().__init__()
        self.vgg = vgg.eval().requires_grad_(False)
        self.weights = weights or (self.weights if len(vgg.taps) == 5 else (1.0,) * len(vgg.taps))
        self._casts: dict[tuple, VGG19] = {}  # frozen weights, so cast once per dtype / device / layout

    def train(self, mode: bool = True) -> VGGLoss:
        super().train(mode)
        self.vgg.eval()
        return self

    def _network_for(self, x: Tensor) -> VGG19:
        """The VGG in the dtype autocast would cast its weights to, and in ``x``'s memory layout."""
        device = x.device.type
        dtype = autocast_dtype(device, self.vgg.features[0].weight.dtype)
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        key = (dtype, x.device, layout)
        if key not in self._casts:
            self._casts[key] = copy.deepcopy(self.vgg).to(device=x.device, dtype=dtype, memory_format=layout)
        return self._casts[key]

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        vgg = self._network_for(x)
        x_feats = vgg(VGG19.normalize(x))
        with torch.no_grad():
            y_feats = vgg(VGG19.normalize(y))
        loss = x.new_zeros((), dtype=torch.float32)
        for w, fx, fy in zip(self.weights, x_feats, y_feats):
            loss = loss + w * F.l1_loss(fx.float(), fy.float())
        return loss
