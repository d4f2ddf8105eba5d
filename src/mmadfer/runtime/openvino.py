"""OpenVINO: the runner for an IR written by :func:`mmadfer.export.openvino.openvino_int8` (static int8)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .._optional import require
from ..config import ModelConfig
from ..checkpoint_checks import check_config
from ..errors import CheckpointError
from ..export.openvino import CONFIG_RT_KEY, TRAINED_ON_RT_KEY
from ..provenance import record_from_json
from .runner import RunnerBase, as_model_inputs

__all__ = ["OpenVinoRunner", "OpenVinoModel"]


class OpenVinoRunner(RunnerBase):
    """Runs an OpenVINO IR written by :func:`mmadfer.export.openvino.openvino_int8`: ``runner(video, audio) ->
    logits`` as numpy (a :class:`~mmadfer.runtime.runner.Runner`).

    The model has batch 1, so a batch runs clip by clip; with static int8 a clip's result never depends on its
    batch-mates anyway. ``threads``: CPU threads (default: all cores).
    """

    backend = "openvino"

    def __init__(self, path: str | os.PathLike, *, threads: int | None = None):
        ov = require("openvino", "the OpenVINO backend")
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(self.path, "no such file")
        core = ov.Core()
        try:
            model = core.read_model(self.path)
            self.cfg = ModelConfig.from_dict(json.loads(model.get_rt_info(CONFIG_RT_KEY).astype(str)))
        except RuntimeError as e:
            raise CheckpointError(self.path, f"not an mmadfer OpenVINO model ({str(e).splitlines()[0]})") from e
        except (TypeError, ValueError) as e:
            raise CheckpointError(self.path, f"invalid model config in the OpenVINO runtime info ({e})") from e
        check_config(self.cfg, self.path)
        #: what the model was trained on, when the file records it (:mod:`mmadfer.provenance`)
        self.trained_on = _trained_on(model)
        options = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            options["INFERENCE_NUM_THREADS"] = int(threads)
        self._request = core.compile_model(model, "CPU", options).create_infer_request()
        self.precision = "int8"

    def __call__(self, video: np.ndarray | torch.Tensor, audio: np.ndarray | torch.Tensor) -> np.ndarray:
        video, audio = as_model_inputs(video, audio)  # [B, T, 3, S, S] float32, [B, 1, F, M] float32
        out = [self._request.infer({"video": video[i:i + 1], "audio": audio[i:i + 1]})[0] for i in range(len(video))]
        return np.concatenate(out).astype(np.float32, copy=False)  # [B, C]


#: The name this runner had before the runtime package.
OpenVinoModel = OpenVinoRunner


def _trained_on(model) -> dict | None:
    if not model.has_rt_info(TRAINED_ON_RT_KEY):
        return None
    return record_from_json(model.get_rt_info(TRAINED_ON_RT_KEY).astype(str))
