"""The engines that can run a model, by name, and the order ``backend='auto'`` tries them in on a CPU.

Kept free of heavy imports, so that the CLI can list the choices without loading torch; choosing and loading a
runner is :mod:`mmadfer.runtime.load`.

=================  =====================================================================================
``torch``          the PyTorch model (fp32, or bf16/fp8 autocast: :mod:`mmadfer.accel`); any device
``onnx``           ONNX Runtime, fp32 (:class:`mmadfer.runtime.onnx.OnnxRunner`)
``onnx-int8``      ONNX Runtime with dynamic int8 quantisation: no calibration
                   (:func:`mmadfer.runtime.cache.cached_int8`)
``openvino-int8``  OpenVINO with static int8 quantisation calibrated by NNCF: the fastest on a CPU
                   (:class:`mmadfer.runtime.openvino.OpenVinoRunner`, :mod:`mmadfer.export.openvino`)
=================  =====================================================================================
"""
from __future__ import annotations

__all__ = ["BACKENDS", "RUNNER_FILES", "CPU_CONVERSIONS", "CONVERSION_NEEDS"]

#: Inference engines, and ``auto``: the fastest of them that keeps predictions, for the device and the file.
BACKENDS = ("auto", "torch", "onnx", "onnx-int8", "openvino-int8")
#: Files that are already converted, and the backend that runs them.
RUNNER_FILES = {".onnx": "onnx", ".xml": "openvino-int8"}
#: What ``auto`` tries on a CPU, fastest first (torch is the last resort): the one fallback chain.
CPU_CONVERSIONS = ("openvino-int8", "onnx-int8")
#: What each conversion imports.
CONVERSION_NEEDS = {"openvino-int8": ("onnx", "openvino", "nncf"), "onnx-int8": ("onnx", "onnxruntime")}
