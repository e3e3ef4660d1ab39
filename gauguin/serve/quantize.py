"""INT8 post-training quantization of an exported generator (``gauguin export --quantize int8``).

onnxruntime's static quantization: every convolution gets per-channel int8 weights and uint8
activations whose ranges are calibrated on the model's own inputs (label maps of its training data
where they can be read, else layout-like random maps), in QDQ form, so onnxruntime runs its int8
(VNNI) kernels. The result is written as ``generator_int8.onnx`` beside ``generator.onnx`` only with
its quality measured: PSNR of its images against the fp32 graph's on inputs not used for the
calibration. A server uses it only where that PSNR reaches :data:`MIN_PSNR_DB`.
"""
from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MIN_PSNR_DB = 30.0  # int8 images this close to fp32 ones look the same; below, the server keeps fp32
INT8_FILE = "generator_int8.onnx"
CALIBRATION_INPUTS = 16
CHECK_INPUTS = 16
BF16_CHECK_INPUTS = 4  # PyTorch fp32 and bf16 runs of the first check inputs (fp32 PyTorch is the slow one)


def psnr_db(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR of images in [-1, 1] on the 0..255 scale the server returns."""
    mse = float(np.mean(((reference - image) * 127.5) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


SCHEME = "static QDQ, Conv only, per-channel int8 weights, uint8 activations"
ENCODER_OPS = ("Conv", "Gemm", "MatMul")  # a style encoder ends in linear layers


def quantize_static_int8(model: bytes, calibration: list[dict[str, np.ndarray]], ops: tuple[str, ...] = ("Conv",)) -> bytes:
    """onnxruntime's static QDQ quantization of every ``ops`` node of ``model``, calibrated on ``calibration``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, quantized = (Path(tmp) / name for name in ("fp32.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)  # fold constants, infer shapes
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=list(ops),
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return quantized.read_bytes()


def session(model: bytes, log_severity: int = 3):
    """An onnxruntime session for the export's own checks (parity, calibration, PSNR): the server's options
    with as many threads as torch uses and no spin-waiting, so that a check shares the cores it is given
    instead of fighting for them."""
    import onnxruntime as ort
    import torch

    from .engine import session_options

    options = session_options(torch.get_num_threads())
    options.log_severity_level = log_severity
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def quality_record(pairs: list[tuple[np.ndarray, np.ndarray]], calibration: int | None,
                   scheme: str = SCHEME) -> dict[str, Any]:
    """model.json's quality record of (reference, faster path's) image pairs: PSNR mean / min and the gate."""
    psnrs = [psnr_db(reference, image) for reference, image in pairs]
    worst = max(float(np.abs(reference - image).max()) for reference, image in pairs)
    calibrated = {} if calibration is None else {"calibration_inputs": calibration}
    return {"scheme": scheme, **calibrated, "check_inputs": len(pairs),
            "psnr_db_mean": round(float(np.mean(psnrs)), 2), "psnr_db_min": round(float(min(psnrs)), 2),
            "max_abs_diff": worst, "min_psnr_db": MIN_PSNR_DB, "passed": bool(min(psnrs) >= MIN_PSNR_DB)}


def quantize_int8(model: bytes, calibration: list[dict[str, np.ndarray]],
                  check: list[dict[str, np.ndarray]]) -> tuple[bytes, dict[str, Any]]:
    """The int8 version of the ONNX generator ``model`` and its quality record for model.json."""
    int8_model = quantize_static_int8(model, calibration)
    fp32, int8 = session(model), session(int8_model)
    pairs = [(fp32.run(["image"], feeds)[0], int8.run(["image"], feeds)[0]) for feeds in check]
    return int8_model, quality_record(pairs, len(calibration))


def quantize_encoder_int8(encoder: bytes, generator: bytes, calibration: list[np.ndarray],
                          check: list[tuple[np.ndarray, dict[str, np.ndarray]]], replaces: str) -> tuple[bytes, dict]:
    """The int8 style encoder and its quality record: PSNR of the ``generator``'s images from the int8 codes
    against those from the fp32 codes, for ``check`` (style image, the generator's other inputs) pairs."""
    int8_model = quantize_static_int8(encoder, [{"style": image} for image in calibration], ENCODER_OPS)
    fp32, int8, G = session(encoder), session(int8_model), session(generator)
    pairs = [tuple(G.run(["image"], {**feeds, replaces: code.run(["mu"], {"style": image})[0]})[0]
                   for code in (fp32, int8)) for image, feeds in check]
    return int8_model, quality_record(pairs, len(calibration), SCHEME.replace("Conv only", "Conv, Gemm, MatMul"))


def bf16_quality(loaded, check: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """PSNR of PyTorch's bf16 path (what ``TorchBackend`` serves) against its fp32 images on the first
    ``check`` inputs: the gate that lets a server pick that path."""
    import torch

    from .engine import serving_copy

    run, generator = loaded.spec.main.run, loaded.generator
    fast = serving_copy(generator, "bf16")
    pairs = []
    with torch.inference_mode():
        for feeds in check[:BF16_CHECK_INPUTS]:
            tensors = {k: torch.from_numpy(v).to(loaded.device) for k, v in feeds.items()}
            reference = run(generator, tensors).float().cpu().numpy()
            with torch.autocast(loaded.device.type, torch.bfloat16):
                pairs.append((reference, run(fast, tensors).float().cpu().numpy()))
    return quality_record(pairs, None, "PyTorch bf16 weights and autocast, channels-last")


def model_inputs(loaded, make_inputs, calibrate: int, check: int) -> tuple[list, list, str]:
    """Single-image generator inputs: ``calibrate`` for the calibration and ``check`` others for the
    quality check, from the model's training data where it can be read and fits the model (label maps
    with their family's z / feature draws: items 0..calibrate-1 and the next ``check``), else layout-like
    random inputs from ``make_inputs`` (two different draws). Returns them and where they came from."""
    import torch

    from ..models.inference import draw_inputs

    family, n = loaded.family, calibrate + check
    generator = torch.Generator().manual_seed(0)
    try:
        dataset = type(family).build_dataset(family.cfg)
        if len(dataset) < n:
            raise ValueError(f"{len(dataset)} items, {n} needed")
        batch = dataset.get_batch(torch.arange(n))
        labels = batch.get("label_map")
        if labels is not None and int(labels.max()) >= loaded.data.num_labels:
            raise ValueError("its label ids do not fit the model")
        inputs = draw_inputs(loaded.spec.main, n, generator, batch)
        source = (f"{family.cfg.dataset} training data: items 0..{calibrate - 1} calibrate, "
                  f"items {calibrate}..{n - 1} check")
    except Exception as err:  # no data here (a model trained elsewhere), or data of another shape
        inputs = make_inputs(n, loaded.image_size, generator)
        source = f"random layout-like inputs, {calibrate} calibrate, {check} others check (training data: {err})"
    single = [{k: v[i:i + 1].numpy() for k, v in inputs.items()} for i in range(n)]
    return single[:calibrate], single[calibrate:], source
