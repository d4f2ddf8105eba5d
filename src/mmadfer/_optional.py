"""Lazy import of optional dependencies with an actionable message when they are missing (and their telemetry off,
:mod:`mmadfer._privacy`)."""
from __future__ import annotations

import importlib
from types import ModuleType

from ._privacy import after_import, before_import

_EXTRA_OF = {
    "facenet_pytorch": "faces",
    "matplotlib": "plot",
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "openvino": "openvino",
    "nncf": "openvino",
    "torch.utils.tensorboard": "tensorboard",
    "tensorboard": "tensorboard",
    "skimage": "demo",
    "fastapi": "serve",
    "uvicorn": "serve",
}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise ImportError telling which extra installs it and why it is needed."""
    before_import(module)
    try:
        imported = importlib.import_module(module)
    except ImportError as e:
        extra = _EXTRA_OF.get(module, "all")
        raise ImportError(
            f"{feature} needs the optional package '{module.split('.')[0]}', which is not installed. "
            f"Install it with: pip install 'mmadfer[{extra}]'  (or 'mmadfer[all]' for every feature)"
        ) from e
    after_import(module)
    return imported
