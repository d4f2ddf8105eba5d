"""Lazy import of optional dependencies with an actionable message when they are missing (and their telemetry off,
:mod:`mmadfer._privacy`)."""
from __future__ import annotations

import importlib
from types import ModuleType

from ._privacy import after_import, before_import

#: Every optional module mmadfer imports (top-level import names), and the extra that installs it: the one list of
#: them. Everything else mmadfer imports is a required dependency (``pyproject.toml``) and imported at module level.
EXTRAS = {
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
    "starlette": "serve",
    "python_multipart": "serve",
    "multipart": "serve",
    "websockets": "serve",
}


def require(module: str, feature: str) -> ModuleType:
    """Import ``module`` or raise ImportError telling which extra installs it and why it is needed."""
    before_import(module)
    try:
        imported = importlib.import_module(module)
    except ImportError as e:
        extra = EXTRAS.get(module, EXTRAS.get(module.split(".")[0], "all"))
        raise ImportError(
            f"{feature} needs the optional package '{module.split('.')[0]}', which is not installed. "
            f"Install it with: pip install 'mmadfer[{extra}]'  (or 'mmadfer[all]' for every feature)"
        ) from e
    after_import(module)
    return imported
