"""The FID Inception-v3 network, built in code (no download): Szegedy et al. 2016, "Rethinking the
Inception Architecture for Computer Vision", in the variant frozen in the TensorFlow graph
``inception-2015-12-05`` that the FID reference implementation uses (Heusel et al. 2017, "GANs
Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium").

Parameter names follow the widely used PyTorch port of that graph, ``pt_inception-2015-12-05-
6726825d.pth`` (the pytorch-fid weights), so its state dict loads unchanged. Differences from the
plain Inception-v3 classifier: a 1008-way ``fc`` (TF's legacy class count), no auxiliary head,
average pools in the A, C and E blocks that ignore padding (``count_include_pad=False``), and a
max pool in the pool branch of the last block (``Mixed_7c``).

FID uses the 2048-d "pool3" features (global average pool after ``Mixed_7c``); Inception Score
(Salimans et al. 2016) uses the 1008 logits.
"""
from __future__ import annotations

import os
import pickle  # only for its exception type: files are read with torch.load(weights_only=True)
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

INPUT_SIZE = 299
FEATURE_DIM = 2048
NUM_LOGITS = 1008
WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{WEIGHTS_FILE}"
_BN_EPS = 0.001
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # BatchNorm counter: absent from old files, unused in eval


class InceptionWeightsError(ValueError):
    """An Inception weights file is missing, corrupt, or does not fit the FID network."""


class InceptionWeightsNotFoundError(InceptionWeightsError, FileNotFoundError):
    """The Inception weights file does not exist."""


def _check_images(x: Tensor) -> None:
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(
            f"InceptionFID takes images shaped [N, 1 or 3, H, W] in [-1, 1], got shape {tuple(x.shape)}"
        )


_STEM = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3")
_BLOCKS = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
           "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


# ------------------------------------------------------------------------------------ blocks
class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (eps 0.001), ReLU."""

    def __init__(self, in_ch: int, out_ch: int, kernel_size, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=_BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool(x: Tensor) -> Tensor:
    """3x3 stride-1 average pool that divides by the in-image count only (TF "SAME" pooling)."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """35x35 block (Mixed_5b-d): 1x1, 5x5, double 3x3 and pool branches (paper fig. 5)."""

    def __init__(self, in_ch: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_ch, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_ch, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35 -> 17 grid reduction (Mixed_6a): strided 3x3, strided double 3x3, max pool."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = F.max_pool2d(x, 3, stride=2)
        return torch.cat([b3, bd, bp], 1)


class InceptionC(nn.Module):
    """17x17 block (Mixed_6b-e) with factorised 1x7 / 7x1 convolutions (paper fig. 6)."""

    def __init__(self, in_ch: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_ch, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    """17 -> 8 grid reduction (Mixed_7a): strided 3x3, 7x7-then-strided-3x3, max pool."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        bp = F.max_pool2d(x, 3, stride=2)
        return torch.cat([b3, b7, bp], 1)


class InceptionE(nn.Module):
    """8x8 block (Mixed_7b, 7c) with expanded 1x3 / 3x1 outputs (paper fig. 7).

    ``max_pool=True`` is the FID graph's ``Mixed_7c``, whose pool branch max-pools.
    """

    def __init__(self, in_ch: int, max_pool: bool = False) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_ch, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_ch, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_ch, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], 1)


# ----------------------------------------------------------------------------------- network
class InceptionFID(nn.Module):
    """FID Inception-v3: ``forward(x)`` gives the 2048-d pool3 features, ``logits(x)`` the 1008 logits.

    Input: images in [-1, 1] (gauguin's range, which is also what the network expects), shaped
    ``[N, 1 or 3, H, W]`` of any size. Grey images are repeated to 3 channels. Images not already
    299x299 are resized to 299x299 with bilinear interpolation (``align_corners=False``, no
    antialiasing), the same resize pytorch-fid does by default; the TensorFlow reference resizes
    with its own bilinear kernel, so scores match pytorch-fid's exactly and TF's only closely.
    Randomly initialised: load real weights with :func:`load_inception`.
    """

    def __init__(self, resize_input: bool = True) -> None:
        super().__init__()
        self.resize_input = resize_input
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280)
        self.Mixed_7c = InceptionE(2048, max_pool=True)
        self.fc = nn.Linear(FEATURE_DIM, NUM_LOGITS)

    def prepare(self, x: Tensor) -> Tensor:
        """Check and convert images to ``[N, 3, 299, 299]`` float in the network's dtype."""
        _check_images(x)
        x = x.to(self.fc.weight.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize_input and x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return x

    def forward(self, x: Tensor) -> Tensor:
        """Pool3 features ``[N, 2048]`` of images ``[N, 1 or 3, H, W]`` in [-1, 1]."""
        x = self.prepare(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # 147x147
        x = F.max_pool2d(x, 3, stride=2)  # 73x73
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # 71x71
        x = F.max_pool2d(x, 3, stride=2)  # 35x35
        for name in _BLOCKS:  # 35x35 -> 17x17 (Mixed_6a) -> 8x8 (Mixed_7a)
            x = getattr(self, name)(x)
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def logits(self, x: Tensor, bias: bool = True) -> Tensor:
        """The 1008 class logits ``[N, 1008]`` (softmax is the caller's).

        ``bias=False`` drops the ``fc`` bias, as the original Inception Score code does (it
        multiplies pool3 by the logit weights only).
        """
        return self.logits_from_features(self(x), bias=bias)

    def logits_from_features(self, features: Tensor, bias: bool = True) -> Tensor:
        """Logits from pool3 features already computed (saves a second forward pass)."""
        return F.linear(features, self.fc.weight, self.fc.bias if bias else None)


# ------------------------------------------------------------------------------------ loading
def _missing_weights_message(path: Path) -> str:
    return (
        f"FID Inception weights file {path} does not exist. No weights can be downloaded on this "
        f"machine: get {WEIGHTS_FILE} (the pytorch-fid release, {WEIGHTS_URL}) on a machine with "
        "internet access, copy it here (or convert it to .safetensors), and pass its path with "
        "--weights PATH."
    )


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors of a ``.safetensors`` file or a ``.pth``/``.pt`` state dict (safe loader, no pickle code)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InceptionWeightsNotFoundError(_missing_weights_message(path))
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as err:
            raise InceptionWeightsError(
                f"{path} is not a readable safetensors file ({err}); it is truncated or corrupt: "
                "copy or convert it again."
            ) from None
    elif path.suffix in (".pth", ".pt", ".bin"):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:
            raise InceptionWeightsError(
                f"{path} holds Python objects beyond plain tensors (a whole pickled model?), which "
                "gauguin does not unpickle: save model.state_dict() instead, or convert it to .safetensors."
            ) from None
        except Exception as err:  # noqa: BLE001 - torch.load raises many kinds for a bad file
            raise InceptionWeightsError(
                f"{path} cannot be read as a PyTorch state dict ({type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}); it is truncated, corrupt, or "
                "holds more than plain tensors: copy it again, or convert it to .safetensors."
            ) from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise InceptionWeightsError(
                f"{path} does not hold a state dict (a mapping of names to tensors) but a "
                f"{type(state).__name__}; save model.state_dict(), not the model."
            )
    else:
        raise InceptionWeightsError(
            f"{path}: unknown weights format {path.suffix or '(no suffix)'!r}; "
            "use a .safetensors file or a .pth/.pt state dict."
        )
    return dict(state)


def _strip_prefix(state: dict[str, Tensor], expected: set[str]) -> dict[str, Tensor]:
    """Drop a ``module.`` prefix left by DataParallel / DDP if that makes the names fit."""
    prefix = "module."
    if state and all(k.startswith(prefix) for k in state) and not set(state) & expected:
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def check_state_dict(model: nn.Module, state: dict[str, Tensor], path: str | Path) -> dict[str, Tensor]:
    """``state`` completed with optional buffers, or an error listing the keys that do not fit."""
    own = model.state_dict()
    state = _strip_prefix(state, set(own))
    required = {k for k in own if not k.endswith(_OPTIONAL_SUFFIX)}
    missing = sorted(required - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(
        f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
        for k in set(state) & set(own)
        if state[k].shape != own[k].shape
    )
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
        if keys:
            more = f", ... ({len(keys) - 5} more)" if len(keys) > 5 else ""
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:5])}{more}")
    if problems:
        raise InceptionWeightsError(
            f"{path} does not fit the FID Inception-v3 network ({'; '.join(problems)}). "
            f"Use the FID weights {WEIGHTS_FILE} (pytorch-fid layout, 1008-way fc, no AuxLogits), "
            "or a safetensors conversion of them."
        )
    return {**{k: v for k, v in own.items() if k.endswith(_OPTIONAL_SUFFIX)}, **state}


def load_inception(path: str | Path, device: str | torch.device = "cpu") -> InceptionFID:
    """The FID Inception network with weights from ``path`` (.safetensors or .pth/.pt), in eval mode.

    Raises :class:`InceptionWeightsNotFoundError` for a missing file (nothing can be downloaded
    here) and :class:`InceptionWeightsError` for a corrupt file or one whose keys/shapes don't fit.
    """
    path = Path(os.fspath(path)).expanduser()
    state = read_state_dict(path)
    model = InceptionFID()
    state = check_state_dict(model, state, path)
    model.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in state.items()})
    return model.to(device).eval().requires_grad_(False)


# ------------------------------------------------------------------------ fast inference copy
# Feature extraction spends ~all of its time in the 94 convolutions (11.4 GFLOP per 299x299
# image). The copy below computes the same function with fewer, cheaper oneDNN calls:
#
# * each BatchNorm (eval statistics) is folded into its convolution's weight and bias, and the
#   ReLU runs as the convolution's post-op (``mkldnn._convolution_pointwise``): no separate BN and
#   ReLU passes over the activations, which cost ~40 % of the plain module's time on CPU;
# * activations and weights are channels-last (NHWC), the layout oneDNN's fp32 kernels use, and
#   each weight is reordered once into oneDNN's blocked layout instead of on every call;
# * the 1x1 convolutions of a block that read the same input run as one wider convolution whose
#   output is split (2-3 GEMMs become one larger, better-blocked one);
# * the average-pool branch convolves first and pools after (both are linear and the pool's
#   weights sum to one, so the bias commutes): it pools 32-192 channels instead of 192-2048;
# * grey images are resized as one channel and the first convolution sums its weights over the
#   three identical input channels.
#
# Measured on 2 cores (AVX-512, no AMX), 32 grey 28x28 images at a time, img/s: plain module 7.5,
# channels-last module 11.7, + folded BN / fused ReLU / merged 1x1 13.6, + packed weights 14.8,
# + pool after conv 15.0, + stem on 8 images at a time 16.2 (bench/eval.py: 16.6-19.5 vs plain
# 7.8-9.2 in the same runs). That is ~190-220 GFLOP/s, near the ~250 GFLOP/s of a 2-core fp32
# GEMM here. bf16 is not used: its features are ~2e-3 off fp32, and without AMX it is slower.
#
# All of it is float32; the results equal the plain module's to fp32 rounding (~4e-7 relative).
# Off the CPU, or where the input needs gradients, the same folded weights run through
# ``F.conv2d`` (differentiable, any device). The plain module is left untouched, so state dicts
# load and save as before.
_CL = torch.channels_last


def _fold_bn(convs: list[BasicConv2d]) -> tuple[Tensor, Tensor]:
    """Weight and bias of the convolutions in ``convs`` (same input, stacked along the output
    channels) with their eval-mode BatchNorm folded in; the fold is computed in float64."""
    weights, biases = [], []
    for bc in convs:
        bn = bc.bn
        scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
        weights.append(bc.conv.weight.detach().double() * scale[:, None, None, None])
        biases.append(bn.bias.detach().double() - bn.running_mean.double() * scale)
    dtype = convs[0].conv.weight.dtype
    return torch.cat(weights).to(dtype), torch.cat(biases).to(dtype)


def _onednn_usable() -> bool:
    """Whether this torch has the oneDNN fused convolution ops (checked on a tiny problem)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        g = torch.Generator().manual_seed(0)  # not the global generator: a probe must not shift users' streams
        x = torch.randn(1, 3, 6, 6, generator=g).contiguous(memory_format=_CL)
        w, b = torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g)
        packed = torch.ops.mkldnn._reorder_convolution_weight(w, [1, 1], [1, 1], [1, 1], 1, list(x.shape))
        y = torch.ops.mkldnn._convolution_pointwise(x, packed, b, [1, 1], [1, 1], [1, 1], 1, "relu", [], "")
        return bool(torch.allclose(y, F.relu(F.conv2d(x, w, b, padding=1)), rtol=1e-4, atol=1e-5))
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


_ONEDNN: bool | None = None


def _use_onednn(x: Tensor) -> bool:
    global _ONEDNN
    if x.device.type != "cpu" or x.dtype != torch.float32 or (x.requires_grad and torch.is_grad_enabled()):
        return False
    if _ONEDNN is None:
        _ONEDNN = _onednn_usable()
    return _ONEDNN


class FoldedConv(nn.Module):
    """One or more :class:`BasicConv2d` that read the same input, as a single convolution with the
    BatchNorm folded in and the ReLU fused (``relu=False`` leaves it to the caller). Returns one
    tensor, or a tuple of channel slices when several convolutions were merged."""

    def __init__(self, convs: BasicConv2d | list[BasicConv2d], relu: bool = True,
                 sum_input_channels: bool = False) -> None:
        super().__init__()
        convs = convs if isinstance(convs, list) else [convs]
        first = convs[0].conv
        if any((bc.conv.kernel_size, bc.conv.stride, bc.conv.padding) !=
               (first.kernel_size, first.stride, first.padding) for bc in convs):
            raise ValueError("only convolutions of the same geometry can be merged")
        weight, bias = _fold_bn(convs)
        if sum_input_channels:  # input channels all equal (a grey image repeated): one channel suffices
            weight = weight.double().sum(1, keepdim=True).to(weight.dtype)
        self.register_buffer("weight", weight.contiguous(memory_format=_CL), persistent=False)
        self.register_buffer("bias", bias.contiguous(), persistent=False)
        self.splits = [bc.conv.out_channels for bc in convs]
        self.stride, self.padding = list(first.stride), list(first.padding)
        self.relu = relu
        self._packed: tuple[tuple, Tensor] | None = None  # (key, weight in oneDNN's blocked layout)

    def _apply(self, fn, recurse=True):  # .to() / .cuda() / .double(): pack again from the moved weight
        self._packed = None
        return super()._apply(fn, recurse)

    def __getstate__(self):  # copies and pickles leave the (opaque, rebuildable) packed weight out
        state = dict(super().__getstate__())
        state["_packed"] = None
        return state

    def _packed_weight(self, x: Tensor) -> Tensor:
        key = (self.weight.data_ptr(), self.weight._version, tuple(x.shape[1:]))
        if self._packed is None or self._packed[0] != key:
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight.contiguous(), self.padding, self.stride, [1, 1], 1, list(x.shape))
            self._packed = (key, packed)
        return self._packed[1]

    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:
        if _use_onednn(x):
            y = torch.ops.mkldnn._convolution_pointwise(
                x, self._packed_weight(x), self.bias, self.padding, self.stride, [1, 1], 1,
                "relu" if self.relu else "none", [], "")
        else:
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
            y = F.relu(y) if self.relu else y
        return y.split(self.splits, 1) if len(self.splits) > 1 else y

    def extra_repr(self) -> str:
        k = tuple(self.weight.shape[2:])
        return (f"{self.weight.shape[1]}->{'+'.join(map(str, self.splits))}, kernel={k}, "
                f"stride={tuple(self.stride)}, padding={tuple(self.padding)}, relu={self.relu}")


def _conv_pool_relu(conv: FoldedConv, x: Tensor) -> Tensor:
    """``relu(bn(conv(avg_pool(x))))`` computed as ``relu(avg_pool(conv(x)))``: equal, since the
    pool (3x3, in-image count) and a 1x1 convolution are both linear and the pool's weights sum to
    one; the pool then runs on the (fewer) output channels."""
    return F.relu(_avg_pool(conv(x)))


class _FastBlock(nn.Module):
    """A Mixed block of :class:`InceptionFID` with folded convolutions (``kind``: A to E)."""

    _HEADS = {  # the 1x1 convolutions that read the block input, merged into one
        "A": ("branch1x1", "branch5x5_1", "branch3x3dbl_1"),
        "B": (),
        "C": ("branch1x1", "branch7x7_1", "branch7x7dbl_1"),
        "D": ("branch3x3_1", "branch7x7x3_1"),
        "E": ("branch1x1", "branch3x3_1", "branch3x3dbl_1"),
    }

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.kind = type(block).__name__[-1]
        self.max_pool = getattr(block, "max_pool", False)
        heads = self._HEADS[self.kind]
        if heads:
            self.head = FoldedConv([getattr(block, n) for n in heads])
        commute = self.kind in "ACE" and not self.max_pool
        for name, child in block.named_children():
            if name not in heads:
                pool_branch = name == "branch_pool"
                setattr(self, name, FoldedConv(child, relu=not (pool_branch and commute)))
        self.commute = commute

    def _pool_branch(self, x: Tensor) -> Tensor:
        if self.commute:
            return _conv_pool_relu(self.branch_pool, x)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if self.max_pool else _avg_pool(x)
        return self.branch_pool(pooled)

    def forward(self, x: Tensor) -> Tensor:
        k = self.kind
        if k == "A":
            b1, b5, b3 = self.head(x)
            b5 = self.branch5x5_2(b5)
            b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(b3))
            return torch.cat([b1, b5, b3, self._pool_branch(x)], 1)
        if k == "B":
            b3 = self.branch3x3(x)
            bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
            return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)
        if k == "C":
            b1, b7, bd = self.head(x)
            b7 = self.branch7x7_3(self.branch7x7_2(b7))
            for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
                bd = layer(bd)
            return torch.cat([b1, b7, bd, self._pool_branch(x)], 1)
        if k == "D":
            b3, b7 = self.head(x)
            b3 = self.branch3x3_2(b3)
            b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(b7)))
            return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)
        b1, b3, bd = self.head(x)
        bd = self.branch3x3dbl_2(bd)
        return torch.cat([b1, self.branch3x3_2a(b3), self.branch3x3_2b(b3),
                          self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd), self._pool_branch(x)], 1)


class FastInceptionFID(nn.Module):
    """Inference copy of an :class:`InceptionFID` for feature extraction: same inputs and outputs
    (``forward`` -> pool3 features, ``logits``, ``logits_from_features``), equal to fp32 rounding,
    ~2.1x faster than the plain module on a 2-core CPU (see the notes above). Built from the
    module's current weights (eval-mode BatchNorm statistics); later changes to ``net`` are not
    seen: build a new copy. Its tensors are non-persistent buffers: it has no state dict of its
    own (save ``net``'s).
    """

    stem_batch = 8  # images per stem pass (measured on 2 cores: 8 vs the whole batch of 16-32, +10-15 %)
    block_batch = 32  # images per pass through the Mixed blocks (16-32 best; 64 is ~5 % slower)

    def __init__(self, net: InceptionFID) -> None:
        super().__init__()
        self.resize_input = net.resize_input
        with torch.no_grad():
            self.stem = nn.ModuleList(FoldedConv(getattr(net, n)) for n in _STEM)
            self.grey_stem = FoldedConv(net.Conv2d_1a_3x3, sum_input_channels=True)
            self.blocks = nn.ModuleList(_FastBlock(getattr(net, n)) for n in _BLOCKS)
        self.register_buffer("fc_weight", net.fc.weight.detach().clone(), persistent=False)
        self.register_buffer("fc_bias", net.fc.bias.detach().clone(), persistent=False)

    def prepare(self, x: Tensor) -> Tensor:
        """Images ``[N, 1 or 3, H, W]`` as channels-last float at 299x299 (grey stays one channel):
        the bilinear resize of :meth:`InceptionFID.prepare`, written straight into the layout the
        convolutions read."""
        _check_images(x)
        x = x.to(self.fc_weight.dtype).contiguous(memory_format=_CL)
        if self.resize_input and x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return x.contiguous(memory_format=_CL)

    def _stem(self, x: Tensor) -> Tensor:
        """Prepared images -> the 192 x 35 x 35 input of Mixed_5b."""
        x = self.grey_stem(x) if x.shape[1] == 1 else self.stem[0](x)
        x = self.stem[2](self.stem[1](x.contiguous(memory_format=_CL)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.stem[4](self.stem[3](x))
        return F.max_pool2d(x, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """Pool3 features ``[N, 2048]`` of images ``[N, 1 or 3, H, W]`` in [-1, 1].

        The stem runs on ``stem_batch`` images at a time (its 147x147 and 73x73 activations take
        1.4-5.5 MB per image and layer: a few images' worth stays in cache), the Mixed blocks on
        up to ``block_batch`` (their smaller activations batch well); per-image results do not
        depend on the split.
        """
        _check_images(x)
        outs = [x.new_zeros((0, FEATURE_DIM), dtype=self.fc_weight.dtype)] if len(x) == 0 else []
        for part in x.split(self.block_batch):
            part = self.prepare(part)
            stems = [self._stem(p) for p in part.split(self.stem_batch)]
            h = stems[0] if len(stems) == 1 else torch.cat(stems)
            for block in self.blocks:
                h = block(h)
            outs.append(h.mean((2, 3)))
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    def logits(self, x: Tensor, bias: bool = True) -> Tensor:
        """The 1008 class logits ``[N, 1008]``, as :meth:`InceptionFID.logits`."""
        return self.logits_from_features(self(x), bias=bias)

    def logits_from_features(self, features: Tensor, bias: bool = True) -> Tensor:
        return F.linear(features, self.fc_weight, self.fc_bias if bias else None)
