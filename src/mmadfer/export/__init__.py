"""A model -> files: ONNX (fp32, dynamic int8), OpenVINO static int8, calibration inputs, and verification.

:mod:`~mmadfer.export.onnx` writes ONNX (:mod:`~mmadfer.export.attention` fuses the encoder attention for ONNX
Runtime), :mod:`~mmadfer.export.openvino` quantises to OpenVINO IR on inputs from :mod:`~mmadfer.export.calibration`,
and :mod:`~mmadfer.export.verify` checks a converted model against PyTorch. Running the files is
:mod:`mmadfer.runtime`'s job; nothing here imports it.
"""
from .onnx import DEFAULT_OPSET, export_onnx, int8_bytes, onnx_bytes, quantize_int8
from .verify import compare, random_inputs

__all__ = ["export_onnx", "onnx_bytes", "int8_bytes", "quantize_int8", "compare", "random_inputs", "DEFAULT_OPSET"]
