"""ONNX Runtime: the runner for an exported ``.onnx`` file (fp32, or dynamic int8)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .._optional import require
from ..config import ModelConfig
from ..errors import CheckpointError
from ..export.onnx import OUTPUT_NAME, config_from_metadata, read_onnx_config, trained_on_from_metadata
from .runner import RunnerBase, as_model_inputs

__all__ = ["OnnxRunner", "OnnxModel"]


class OnnxRunner(RunnerBase):
    """Runs an exported model with ONNX Runtime: ``runner(video, audio) -> logits`` as numpy (a
    :class:`~mmadfer.runtime.runner.Runner`).

    ``source`` is a ``.onnx`` path or the bytes of one (see :func:`mmadfer.export.onnx.onnx_bytes`).
    ``device='cuda'`` uses the CUDA execution provider when this onnxruntime build has it, else the CPU. ``video`` may be uint8 (divided by 255 here,
    as the PyTorch model does) or float in [0, 1].
    """

    backend = "onnx"

    def __init__(self, source: str | os.PathLike | bytes, *, device: str | torch.device = "cpu",
                 threads: int | None = None):
        ort = require("onnxruntime", "the ONNX Runtime backend")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
        available = ort.get_available_providers()
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in available:
            providers.insert(0, "CUDAExecutionProvider")
        data = source if isinstance(source, bytes) else os.fspath(source)
        self.path = None if isinstance(source, bytes) else Path(source)
        try:
            self.session = ort.InferenceSession(data, options, providers=providers)
        except Exception as e:  # onnxruntime raises its own types (InvalidProtobuf, Fail, NoSuchFile...)
            where = self.path or "the ONNX model bytes"
            raise CheckpointError(where, f"not a readable ONNX model ({' '.join(str(e).split())[:200]})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        self.cfg = config_from_metadata(meta, self.path)
        #: what the model was trained on, when the file records it (:mod:`mmadfer.provenance`)
        self.trained_on = trained_on_from_metadata(meta)
        self.precision = meta.get("mmadfer_precision", "fp32")
        self.providers = self.session.get_providers()

    @staticmethod
    def read_config(path: str | os.PathLike) -> ModelConfig:
        """The :class:`ModelConfig` stored in an exported file, without building a session."""
        return read_onnx_config(path)

    def __call__(self, video: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor) -> np.ndarray:
        video, audio = as_model_inputs(video, audio)  # [B, T, 3, S, S], [B, 1, 512, 128] float32
        if self.precision == "int8" and len(video) > 1:
            # Dynamic int8 takes one activation scale over the whole batch: clip by clip, a clip's result does not
            # depend on its batch-mates. It costs nothing on a CPU, where batching adds no throughput.
            return np.concatenate([self(video[i:i + 1], audio[i:i + 1]) for i in range(len(video))])  # [B, C]
        return self.session.run([OUTPUT_NAME], {"video": video, "audio": audio})[0]  # [B, C]


#: The name this runner had before the runtime package; ``mmadfer.OnnxModel`` is this class.
OnnxModel = OnnxRunner
