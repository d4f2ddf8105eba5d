"""Moved to :mod:`mmadfer.distributed` (training, evaluation and prediction share it); this module keeps the old
import path."""
from ..distributed import (
    DistInfo, all_gather_objects, barrier, broadcast_object, cleanup, gather_predictions, is_initialized,
    resolve_device, setup, slurm_env,
)

__all__ = ["DistInfo", "setup", "slurm_env", "cleanup", "barrier", "broadcast_object", "all_gather_objects",
           "gather_predictions", "resolve_device", "is_initialized"]
