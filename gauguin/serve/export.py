"""``gauguin export``: a trained generator as ONNX graphs (or a safetensors state dict) plus
``model.json``, everything a server needs to run it without PyTorch or gauguin (issue 9).

The contract a serving engine relies on:

* One ONNX file per graph of the family's inference spec (:mod:`gauguin.models.inference`), named
  ``<graph>.onnx``, with the graph's inputs by their names and kinds: drawn ``normal`` / ``uniform``
  float32 [N, size] (style codes ``z``, pix2pixHD's ``feature_draw`` in [0, 1)) and ``class`` int64
  [N]; from data ``label_map`` / ``instance`` int64 [N, H, W] ids and ``image`` float32 [N, C, H, W]
  in [-1, 1]. One-hot encoding and instance edges happen inside the graph: a client sends integer
  ids only. Outputs as declared (``image`` [N, C, H, W] float32 in [-1, 1]; a style encoder's
  ``mu``, ``logvar``, whose ``mu`` stands for the generator input it ``replaces``). Two-way
  translators have one graph per direction (``generator_AtoB.onnx``, ``generator_BtoA.onnx``).
  ``model.json`` records per graph the declared inputs (kind, size), so a server knows how to draw
  each from a seed exactly as ``gauguin translate`` does.
* The batch axis is dynamic everywhere; height and width are too for the fully convolutional
  generators (multiples of their downsampling factor, as declared), fixed where the graph declares
  no multiple (SPADE's first map has a size fixed by its config). ``model.json`` records per graph its inputs, outputs, dynamic axes, size
  rule and parity check.
* Weights: the sampling generator (EMA where trained with it), eval mode, fp32, spectral norm
  folded into plain convolutions. pix2pix's test-time dropout is switched off, so its graph is
  deterministic (``gauguin translate`` keeps the dropout noise of pix2pix §3.1).

Every graph is compared with eager PyTorch on onnxruntime's CPU provider before anything is
written (max abs diff <= 1e-4); every file is written atomically, ``model.json`` last.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import logging
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import __version__
from ..fileio import file_sha256, save_safetensors_atomic, write_bytes_atomic
from ..nn.layers import native_bf16
from ..nn.spectral import fold_spectral_norm
from ..nn.unet import NoiseDropout
from ..models.inference import Graph, Input, draw
from ..sampling import LoadedGenerator, load_generator
from .engine import MODEL_JSON
from .quantize import (CALIBRATION_INPUTS, CHECK_INPUTS, INT8_FILE, bf16_quality, model_inputs,
                       quantize_int8)
from .quantize import session as check_session

FORMAT = "gauguin-export-1"  # model.json's format version
WEIGHTS_FORMAT = "gauguin-generator-1"  # the safetensors metadata "format"
FORMATS = ("onnx", "safetensors")
OPSET = 18  # the lowest opset torch's dynamo exporter writes without a version conversion
PARITY_TOLERANCE = 1e-4  # max abs diff between onnxruntime and PyTorch, on outputs in [-1, 1]
PARITY_SEED = 0

Inputs = dict[str, Tensor]


class ExportError(RuntimeError):
    """A generator that cannot be exported, or a graph whose outputs do not match PyTorch's."""


class QuantizationError(ExportError):
    """``--quantize int8`` failed; the fp32 export itself is fine (exported again without it)."""


@dataclasses.dataclass
class ExportGraph:
    """One ONNX file: ``run(net, inputs)`` gives its outputs; ``net`` is the network exported
    (spectral norm folded), ``reference`` the eager one the parity check compares with."""

    file: str
    net: nn.Module
    reference: nn.Module
    run: Callable[[nn.Module, Inputs], Any]
    make_inputs: Callable[[int, tuple[int, int], torch.Generator], Inputs]  # (batch, (H, W), rng)
    outputs: list[str]
    size: tuple[int, int]  # the model's own (H, W)
    multiple: int = 0  # 0: H, W fixed at size; else any multiple of this ...
    min_blocks: int = 1  # ... from min_blocks multiples up
    spec: Graph | None = None  # the family's declaration of it

    def blocks(self) -> tuple[int, int]:
        return tuple(max(self.min_blocks, s // self.multiple) for s in self.size)

    def example_size(self) -> tuple[int, int]:
        """The size traced: >= 2 multiples, as torch.export specialises dims of size 1."""
        if not self.multiple:
            return self.size
        return tuple(self.multiple * max(2, b) for b in self.blocks())

    def parity_cases(self) -> list[tuple[int, tuple[int, int]]]:
        """(batch, size) of the parity check: batch 2 at the model's size, then batch 1 at another
        size (height + 1 and width + 2 multiples) where the size is dynamic."""
        if not self.multiple:
            return [(2, self.size), (1, self.size)]
        bh, bw = self.blocks()
        return [(2, self.size), (1, (self.multiple * (bh + 1), self.multiple * (bw + 2)))]

    def axes(self, ndim: int, output: bool = False) -> dict[int, str]:
        """Dynamic axes of an input or output of rank ``ndim``: batch, and height / width (the last two
        axes of maps [N, H, W] and images [N, C, H, W]) where the size is dynamic; an upscaling
        graph's outputs are ``{scale}*height`` by ``{scale}*width``."""
        axes = {0: "batch"}
        if self.multiple and ndim in (3, 4):
            scale = self.spec.scale if output and self.spec is not None else 1
            prefix = f"{scale}*" if scale > 1 else ""
            axes.update({ndim - 2: f"{prefix}height", ndim - 1: f"{prefix}width"})
        return axes


class _Named(nn.Module):
    """``net`` with its inputs as positional tensors in ``names`` order (the ONNX input order)."""

    def __init__(self, net: nn.Module, run: Callable[[nn.Module, Inputs], Any], names: list[str]):
        super().__init__()
        self.net, self.run, self.names = net, run, names

    def forward(self, *tensors: Tensor):
        return self.run(self.net, dict(zip(self.names, tensors)))


# ---------------------------------------------------------------------------- inputs
def blocky_ids(n: int, size: tuple[int, int], num_ids: int, generator: torch.Generator, cell: int = 8) -> Tensor:
    """Random id maps [n, H, W] that look like layouts: random ids on a grid of ``cell``-pixel
    blocks, nearest-upsampled (so neighbouring pixels mostly agree and edges are straight)."""
    grid = (max(1, size[0] // cell), max(1, size[1] // cell))
    ids = torch.randint(0, num_ids, (n, 1, *grid), generator=generator)
    return F.interpolate(ids.float(), size=size, mode="nearest-exact")[:, 0].long()


def random_images(n: int, channels: int, size: tuple[int, int], generator: torch.Generator) -> Tensor:
    return torch.rand(n, channels, *size, generator=generator) * 2 - 1


# ---------------------------------------------------------------------------- what each family exports
def example_inputs(spec: Input, n: int, size: tuple[int, int], generator: torch.Generator) -> Tensor:
    """A random value of one input for tracing and the parity check: layout-like id maps, images in
    [-1, 1], Gaussian / uniform draws, uniform class ids."""
    if spec.kind == "label_map":
        return blocky_ids(n, size, spec.size, generator)
    if spec.kind == "instance":
        return blocky_ids(n, size, 16, generator, cell=4)
    if spec.kind == "image":
        return random_images(n, spec.size, size, generator)
    return draw(spec, n, generator)


def plan(loaded: LoadedGenerator) -> tuple[list[ExportGraph], dict[str, Any]]:
    """The graphs of ``loaded``'s inference spec and the values a server needs ("model" in model.json)."""
    spec = loaded.spec
    reference = copy.deepcopy(loaded.generator).cpu().float().eval()  # parity: eager fp32 on CPU
    for module in reference.modules():
        if isinstance(module, NoiseDropout):
            module.at_test = False  # pix2pix: a deterministic graph (see the module docstring)
    net = fold_spectral_norm(reference).to(loaded.device)
    main = spec.main
    noise, classes, labels = (main.input(kind) for kind in ("normal", "class", "label_map"))
    info: dict[str, Any] = {"image_size": list(spec.image_size), "channels": spec.channels,
                            "z_dim": noise.size if noise else 0, "conditional": classes is not None,
                            "num_classes": classes.size if classes else 0, "num_labels": labels.size if labels else 0,
                            "use_instances": main.input("instance") is not None, **spec.settings}
    graphs = []
    for graph in spec.graphs:
        def make_inputs(n: int, size: tuple[int, int], g: torch.Generator, graph: Graph = graph) -> Inputs:
            return {i.name: example_inputs(i, n, size, g) for i in graph.inputs}

        graphs.append(ExportGraph(f"{graph.file}.onnx", net, reference, graph.run, make_inputs, list(graph.outputs),
                                  tuple(spec.image_size), graph.multiple, graph.min_blocks, graph))
    return graphs, info


# ---------------------------------------------------------------------------- ONNX
@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress lines, warnings and log records (a failure raises anyway)."""
    loggers = [logging.getLogger(n) for n in ("torch", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


def to_onnx(graph: ExportGraph, opset: int = OPSET, device: torch.device | str = "cpu") -> bytes:
    """``graph`` as a serialized ONNX model (weights inline), inputs and outputs named as the contract says.

    torch's dynamo exporter (``torch.export``, the supported path in torch 2.x) traces every family
    here with dynamic batch and sizes. The legacy TorchScript exporter (``dynamo=False``, deprecated)
    fails on SPADE's style path: after the z-projection's reshape with a dynamic batch it no longer
    knows the channel count that BatchNorm needs.
    """
    example = {k: v.to(device) for k, v in graph.make_inputs(2, graph.example_size(), torch.Generator()).items()}
    names = list(example)
    batch = torch.export.Dim("batch", min=1)
    spatial = {}
    if graph.multiple == 1:
        spatial = {"height": torch.export.Dim("height", min=graph.min_blocks),
                   "width": torch.export.Dim("width", min=graph.min_blocks)}
    elif graph.multiple:
        spatial = {k: graph.multiple * torch.export.Dim(f"{k}_blocks", min=graph.min_blocks)
                   for k in ("height", "width")}
    dims = {"batch": batch, **spatial}
    shapes = tuple({axis: dims[label] for axis, label in graph.axes(v.ndim).items()} for v in example.values())
    module = _Named(graph.net, graph.run, names).to(device).eval()
    with _quiet(), torch.no_grad():
        try:
            program = torch.onnx.export(module, tuple(example.values()), dynamo=True, input_names=names,
                                        output_names=graph.outputs, dynamic_shapes=(shapes,), opset_version=opset,
                                        verbose=False)
            proto = program.model_proto
        except Exception as err:
            root = err
            while root.__cause__ is not None:  # torch.onnx wraps the error of the step that failed
                root = root.__cause__
            detail = (str(root).strip().splitlines() or [""])[0]
            raise ExportError(f"torch.onnx could not export {graph.file}: {type(root).__name__}: {detail} "
                              "(rerun with --debug for the whole trace)") from err
    axes = {v.name: graph.axes(len(v.type.tensor_type.shape.dim)) for v in proto.graph.input}
    axes.update({v.name: graph.axes(len(v.type.tensor_type.shape.dim), output=True) for v in proto.graph.output})
    _name_axes(proto, axes, graph.file)
    try:
        return proto.SerializeToString()
    except ValueError as err:  # protobuf's 2 GB limit
        raise ExportError(f"{graph.file} is too large for one ONNX file ({err}); gauguin writes single-file "
                          "graphs below 2 GB only: use --format safetensors") from None


def _name_axes(proto, axes: dict[str, dict[int, str]], file: str) -> None:
    """Dynamic axes of the graph's inputs and outputs named ``batch``, ``height``, ``width`` (the
    exporter names them after its symbols, e.g. ``4*height_blocks``), in value_info alike. An axis the
    exporter fixed (code that read a size as a Python int) is an ExportError, not a silent constant."""
    renamed = {}
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        for axis, label in axes.get(value.name, {}).items():
            if not dims[axis].dim_param:
                raise ExportError(f"{file}: the exporter fixed the {label} axis of {value.name!r} to "
                                  f"{dims[axis].dim_value}; the network reads that size as a Python number "
                                  "(e.g. len(x)); use x.shape[...] there")
            renamed[dims[axis].dim_param] = label
            dims[axis].dim_param = label
    for value in proto.graph.value_info:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in renamed:
                dim.dim_param = renamed[dim.dim_param]


def describe_values(values) -> list[dict[str, Any]]:
    """name, dtype and shape (symbolic dims as strings) of ONNX graph inputs or outputs."""
    from onnx import helper

    described = []
    for value in values:
        tensor = value.type.tensor_type
        described.append({"name": value.name, "dtype": helper.tensor_dtype_to_np_dtype(tensor.elem_type).name,
                          "shape": [d.dim_param or d.dim_value for d in tensor.shape.dim]})
    return described


def check_parity(graph: ExportGraph, model: bytes) -> dict[str, Any]:
    """Max abs diff between onnxruntime (CPU) and eager PyTorch on random inputs of the family
    (blocky label maps, images in [-1, 1], Gaussian z): batch 2, then batch 1 (at a second size
    where the size is dynamic)."""
    import numpy as np

    session = check_session(model, log_severity=4)  # failures come back as the ExportError below
    generator = torch.Generator().manual_seed(PARITY_SEED)
    worst, cases = 0.0, []
    for n, size in graph.parity_cases():
        inputs = graph.make_inputs(n, size, generator)
        with torch.no_grad():
            expected = graph.run(graph.reference, inputs)
        expected = [expected] if isinstance(expected, Tensor) else list(expected)
        try:
            got = session.run(graph.outputs, {k: v.numpy() for k, v in inputs.items()})
        except Exception as err:  # onnxruntime's own exception types
            raise ExportError(f"{graph.file} fails on onnxruntime for inputs {_shapes(inputs)}: "
                              f"{str(err).strip().splitlines()[0]}") from err
        diff = 0.0
        for name, want, have in zip(graph.outputs, expected, got):
            want = want.float().numpy()
            if want.shape != have.shape:
                raise ExportError(f"{graph.file}: output {name!r} is {list(have.shape)} on onnxruntime but "
                                  f"{list(want.shape)} in PyTorch for inputs {_shapes(inputs)}")
            if want.size:
                d = float(np.abs(want - have).max())
                diff = max(diff, d if math.isfinite(d) else math.inf)
        worst = max(worst, diff)
        cases.append({"inputs": _shapes(inputs), "max_abs_diff": diff})
    return {"max_abs_diff": worst, "tolerance": PARITY_TOLERANCE, "passed": worst <= PARITY_TOLERANCE,
            "provider": "CPUExecutionProvider", "seed": PARITY_SEED, "cases": cases}


def _shapes(inputs: Inputs) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in inputs.items()}


def export_onnx(loaded: LoadedGenerator, out: Path, opset: int = OPSET, check: bool = True,
                quantize: str | None = None) -> dict[str, Any]:
    """Write ``loaded``'s graphs and model.json into ``out``; returns model.json's content.
    ``quantize="int8"`` adds ``generator_int8.onnx`` with its measured quality (:mod:`.quantize`).

    Nothing is written until every graph is exported (and checked): a failed export leaves ``out``
    as it was. A failed parity check still writes the files (to inspect), then raises ExportError.
    """
    import onnx

    graphs, info = plan(loaded)
    built = []
    for graph in graphs:
        model = to_onnx(graph, opset, loaded.device)
        proto = onnx.load_from_string(model)
        parity = check_parity(graph, model) if check else None
        spatial: dict[str, Any] = {"dynamic": bool(graph.multiple), "size": list(graph.size)}
        if graph.multiple:
            spatial.update(multiple_of=graph.multiple, min=[graph.multiple * graph.min_blocks] * 2)
        built.append((graph.file, model, {
            "file": graph.file, "bytes": len(model),
            "inputs": describe_values(proto.graph.input), "outputs": describe_values(proto.graph.output),
            "dynamic_axes": {v["name"]: {str(i): d for i, d in enumerate(v["shape"]) if isinstance(d, str)}
                             for v in describe_values([*proto.graph.input, *proto.graph.output])},
            "spatial": spatial, "parity": parity, **_declared(graph.spec)}))
    quality = {}  # the fast paths' PSNR vs fp32: a server picks only those that pass
    if quantize:
        *int8, check = _quantized(loaded, graphs, built)
        built.append(tuple(int8))
        if native_bf16():  # PyTorch bf16 (emulated bf16, ~30x slower, is never picked)
            quality["torch-bf16"] = {**bf16_quality(loaded, check), "inputs": int8[2]["quantization"]["inputs"]}
    description = _describe(loaded, "onnx", info)
    description.update(opset=opset, exporter="torch.onnx.export(dynamo=True)", graphs={}, quality=quality)
    for file, model, entry in built:
        write_bytes_atomic(out / file, model)
        description["graphs"][file] = {**entry, "sha256": file_sha256(out / file)}
    _write_json(out / MODEL_JSON, description)
    failed = [(f, e["parity"]["max_abs_diff"]) for f, _, e in built if e.get("parity") and not e["parity"]["passed"]]
    if failed:
        figures = ", ".join(f"{f} max abs diff {d:.3g}" for f, d in failed)
        raise ExportError(f"parity check failed: {figures} > {PARITY_TOLERANCE} between onnxruntime and PyTorch; "
                          f"the files are written to {out} for inspection: do not serve them")
    return description


def _declared(graph: Graph) -> dict[str, Any]:
    """What model.json records of a graph's declaration: each input's kind and size (how a server
    draws or reads it), its direction, and which generator input its output stands for."""
    return {"declared_inputs": [i.to_dict() for i in graph.inputs], "direction": graph.direction,
            "replaces": graph.replaces, "scale": graph.scale}


def _quantized(loaded: LoadedGenerator, graphs: list[ExportGraph], built: list) -> tuple[str, bytes, dict, list]:
    """``generator_int8.onnx`` (file, bytes, model.json entry) and the check inputs: calibrated on some of the
    model's training inputs, its PSNR against the fp32 graph measured on others. Failures: QuantizationError."""
    graph = next((g for g in graphs if g.file == "generator.onnx"), None)
    if graph is None:
        raise QuantizationError(f"--quantize int8 quantizes generator.onnx; a {loaded.family.name} export has "
                                f"{', '.join(g.file for g in graphs)}")
    _, fp32, entry = next(b for b in built if b[0] == "generator.onnx")
    names = [v["name"] for v in entry["inputs"]]
    calibration, check, source = model_inputs(loaded, graph.make_inputs, CALIBRATION_INPUTS, CHECK_INPUTS)
    calibration, check = ([{k: v for k, v in feeds.items() if k in names} for feeds in part]
                          for part in (calibration, check))
    try:
        model, quality = quantize_int8(fp32, calibration, check)
    except Exception as err:  # onnxruntime's quantizer raises many types
        raise QuantizationError(f"int8 quantization of generator.onnx failed ({type(err).__name__}: "
                                f"{(str(err).strip().splitlines() or [''])[0][:200]}); export without --quantize") from err
    described = {k: entry[k] for k in ("inputs", "outputs", "dynamic_axes", "spatial", "declared_inputs",
                                       "direction", "replaces", "scale")}
    return INT8_FILE, model, {"file": INT8_FILE, "bytes": len(model), **described,
                              "quantization": {**quality, "inputs": source}}, check


# ---------------------------------------------------------------------------- safetensors, model.json
def export_safetensors(loaded: LoadedGenerator, out: Path) -> dict[str, Any]:
    """``generator.safetensors``: the sampling generator's state dict with spectral norm folded (load
    it into ``fold_spectral_norm(family.generator)``), plus model.json; returns model.json's content."""
    graphs, info = plan(loaded)
    state = {k: v.detach().cpu().clone() for k, v in graphs[0].net.state_dict().items()}  # net: spectral norm folded
    path = out / "generator.safetensors"
    save_safetensors_atomic(state, path, {"format": WEIGHTS_FORMAT, "family": loaded.family.name,
                                          "step": str(loaded.meta.get("step"))})
    description = _describe(loaded, "safetensors", info)
    description["weights"] = {
        "file": path.name, "bytes": path.stat().st_size, "sha256": file_sha256(path),
        "loads_into": "gauguin.nn.spectral.fold_spectral_norm(family.generator)",
        "tensors": {k: {"dtype": str(v.dtype).removeprefix("torch."), "shape": list(v.shape)}
                    for k, v in state.items()}}
    _write_json(out / MODEL_JSON, description)
    return description


def _describe(loaded: LoadedGenerator, fmt: str, info: dict[str, Any]) -> dict[str, Any]:
    """model.json's common part: the source checkpoint, its data description and config, versions."""
    import onnx
    import onnxruntime
    import onnxscript

    meta = loaded.meta
    return {
        "format": FORMAT, "family": meta["family"], "export_format": fmt,
        "source": {"checkpoint": str(Path(loaded.folder).resolve()), "step": meta.get("step"),
                   "written": meta.get("time"), "weights": _weights_used(loaded.folder)},
        "num_classes": meta.get("num_classes", loaded.family.data.num_classes),
        "classes": meta.get("classes") or [], "data": loaded.family.data.to_dict(), "model": info,
        "config": meta.get("config", {}),
        "versions": {"gauguin": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
                     "onnxscript": onnxscript.__version__, "onnxruntime": onnxruntime.__version__},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _weights_used(folder: Path) -> str:
    """Which weights load_generator took: the EMA copy where the checkpoint has one."""
    from safetensors import safe_open

    with safe_open(str(Path(folder) / "weights.safetensors"), framework="pt") as f:
        return "generator_ema" if any(k.startswith("generator_ema.") for k in f.keys()) else "generator"


def _write_json(path: Path, value: dict) -> None:
    write_bytes_atomic(path, (json.dumps(value, indent=2) + "\n").encode())


# ---------------------------------------------------------------------------- entry point
def export(checkpoint: str | Path, out: str | Path, fmt: str = "onnx", opset: int = OPSET, check: bool = True,
           device: str = "cpu", quantize: str | None = None) -> dict[str, Any]:
    """Export the generator of ``checkpoint`` (a checkpoint or run folder) into the folder ``out`` as
    ``fmt`` (onnx or safetensors); returns model.json's content. ``device``: where the checkpoint is
    loaded and traced (the parity check runs on CPU)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    loaded = load_generator(checkpoint, device)  # a missing or corrupt checkpoint: CheckpointError
    if quantize not in (None, "int8"):
        raise ExportError(f"unknown quantization {quantize!r}: gauguin quantizes to int8")
    if fmt == "safetensors":
        if quantize:
            raise ExportError("--quantize applies to ONNX exports; use --format onnx")
        return export_safetensors(loaded, Path(out))
    return export_onnx(loaded, Path(out), opset, check, quantize)


def format_report(description: dict[str, Any], out: str | Path) -> str:
    """What the CLI prints: per file its size and, for graphs, the parity figure."""
    source = description["source"]
    lines = [f"gauguin: exported {description['family']} (step {source['step']}, {source['weights']} weights) "
             f"to {out}/"]
    files = list(description.get("graphs", {}).values()) or [description["weights"]]
    for entry in files:
        parity, quantization = entry.get("parity"), entry.get("quantization")
        check = f"max abs diff {parity['max_abs_diff']:.2e}" if parity else ("not checked" if "parity" in entry else "")
        if quantization:
            check = (f"PSNR vs fp32 {quantization['psnr_db_mean']:.1f} dB (min {quantization['psnr_db_min']:.1f}): "
                     + ("used by servers" if quantization["passed"] else
                        f"below {quantization['min_psnr_db']:.0f} dB, servers keep fp32"))
        lines.append(f"  {entry['file']:<22} {entry['bytes'] / 2**20:8.2f} MiB  {check}".rstrip())
    lines.append(f"  {MODEL_JSON}")
    return "\n".join(lines)
