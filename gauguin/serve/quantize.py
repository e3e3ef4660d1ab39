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


def psnr_db(reference: np.ndarray, image: np.ndarray) -> float:
    """PSNR of images in [-1, 1] on the 0..255 scale the server returns."""
    mse = float(np.mean(((reference - image) * 127.5) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def quantize_int8(source: Path, out: Path, calibration: list[dict[str, np.ndarray]],
                  check: list[dict[str, np.ndarray]]) -> dict[str, Any]:
    """Quantize the ONNX graph ``source`` into ``out``; returns its quality record for model.json."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ..fileio import write_bytes_atomic

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(calibration)

        def get_next(self):
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)  # fold constants, infer shapes
        quantize_static(str(prepared), str(quantized), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"],
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        model = quantized.read_bytes()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    fp32, int8 = (ort.InferenceSession(m, options, providers=["CPUExecutionProvider"])
                  for m in (str(source), model))
    psnrs, worst = [], 0.0
    for feeds in check:
        reference, image = fp32.run(["image"], feeds)[0], int8.run(["image"], feeds)[0]
        psnrs.append(psnr_db(reference, image))
        worst = max(worst, float(np.abs(reference - image).max()))
    write_bytes_atomic(out, model)
    mean_psnr = float(np.mean(psnrs))
    return {"scheme": "static QDQ, Conv only, per-channel int8 weights, uint8 activations",
            "calibration_inputs": len(calibration), "check_inputs": len(check), "psnr_db_mean": round(mean_psnr, 2),
            "psnr_db_min": round(float(min(psnrs)), 2), "max_abs_diff": worst, "min_psnr_db": MIN_PSNR_DB,
            "passed": bool(min(psnrs) >= MIN_PSNR_DB)}


def model_inputs(loaded, make_inputs, count: int, offset: int) -> tuple[list[dict[str, np.ndarray]], str]:
    """``count`` single-image inputs of the generator: from the model's training data where it can be
    read (label maps for semantic models, with their family's z / feature draws), else ``make_inputs``
    (layout-like random maps). Returns them and where they came from."""
    import torch

    family = loaded.family
    generator = torch.Generator().manual_seed(offset)
    try:
        dataset = type(family).build_dataset(family.cfg)
        batch = dataset.get_batch(torch.arange(offset, offset + count) % len(dataset))
        inputs = family.inputs_like(batch, generator)
        source = f"{family.cfg.dataset} training data, items {offset}..{offset + count - 1}"
    except Exception as err:  # no data here (a model trained elsewhere): random layouts instead
        inputs = make_inputs(count, loaded.image_size, generator)
        source = f"random layout-like inputs (training data not readable here: {type(err).__name__})"
    inputs = {k: v for k, v in inputs.items() if k != "real"}
    return [{k: v[i:i + 1].numpy() for k, v in inputs.items()} for i in range(count)], source
