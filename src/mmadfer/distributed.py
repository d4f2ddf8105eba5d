"""Multi-GPU and multi-node training and evaluation with torchrun and DistributedDataParallel.

Every ``mmadfer train``, ``cv``, ``ablate`` and ``evaluate`` command runs unchanged under ``torchrun``: each process
takes the GPU of its ``LOCAL_RANK``, the data is split by a ``DistributedSampler``, gradients are averaged by DDP,
and rank 0 alone prints, logs and writes files. Evaluation gathers every rank's predictions and drops the samples
that ``DistributedSampler`` repeats to pad the last batch, so UAR and WAR equal a single-process run exactly.

Single node, all its GPUs (here 8; ``--standalone`` picks a free rendezvous port)::

    torchrun --standalone --nproc_per_node 8 -m mmadfer.cli train --config dfew --data /data/DFEW --fold 1 \\
        --vision-weights /ckpt/mae_face_pretrain_vit_base.pth --audio-weights /ckpt/audiomae_as2m.pth \\
        --out runs/dfew-fold1

Several nodes (here 2 × 8 GPUs): run the same command on every node, with the address of node 0::

    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_backend c10d --rdzv_endpoint node0.example:29500 \\
        --rdzv_id dfew-fold1 -m mmadfer.cli train --config dfew --data /data/DFEW --fold 1 \\
        --vision-weights /ckpt/mae_face_pretrain_vit_base.pth --audio-weights /ckpt/audiomae_as2m.pth \\
        --out /shared/runs/dfew-fold1

(``--out`` must be on a file system every node sees when resuming with ``--resume``.) Five folds, resumable::

    torchrun --standalone --nproc_per_node 8 -m mmadfer.cli cv --config dfew --data /data/DFEW --out runs/dfew-cv \\
        --vision-weights ... --audio-weights ...

Distributed evaluation, same numbers as one process::

    torchrun --standalone --nproc_per_node 8 -m mmadfer.cli evaluate --checkpoint runs/dfew-fold1/final.safetensors \\
        --data /data/DFEW --dataset dfew --fold 1 --out runs/dfew-fold1/eval

``--batch-size`` is per process (the reference's batch 8 on one GPU is ``--set train.batch_size=1`` on 8 GPUs, or
keep 8 per GPU and scale ``optim.lr``). On CPUs the backend is gloo: ``torchrun --nproc_per_node 2 ...`` works there
too, which is how the tests check that distributed evaluation matches a single process.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .accel import default_device
from .hardware import usable_cores

__all__ = ["DistInfo", "setup", "slurm_env", "cleanup", "barrier", "broadcast_object", "all_gather_objects",
           "gather_predictions", "resolve_device", "is_initialized"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, ``local_rank`` on its node, and its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: the local rank's GPU when there is one, else the CPU. ``cuda`` means the local rank's GPU."""
    device = str(device)
    if device == "auto":
        device = default_device()
    if device == "cuda":
        return torch.device("cuda", local_rank)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but CUDA is not available")
    return dev


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def slurm_env() -> None:
    """Under ``srun`` without torchrun, take ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` from
    Slurm's ``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID`` and ``SLURM_NTASKS_PER_NODE``. Only when
    ``MASTER_ADDR`` is set (the rendezvous needs it, with ``MASTER_PORT``) and torchrun's variables are not, so a
    plain ``python`` inside a many-task allocation still runs as one process."""
    env = os.environ
    if "RANK" in env or "SLURM_PROCID" not in env or "MASTER_ADDR" not in env:
        return
    env["RANK"], env["WORLD_SIZE"] = env["SLURM_PROCID"], env.get("SLURM_NTASKS", "1")
    env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    per_node = env.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
    if per_node.isdigit():
        env["LOCAL_WORLD_SIZE"] = per_node
    env.setdefault("MASTER_PORT", "29500")


def setup(device: str | torch.device = "auto", *, backend: str | None = None,
          timeout_min: float = 30.0) -> DistInfo:
    """Join the process group when launched by torchrun or srun (``WORLD_SIZE`` > 1, see :func:`slurm_env`),
    else run as a single process.

    NCCL on GPUs, gloo on CPUs (or ``backend``). Under torchrun on CPUs the cores are shared out between the local
    processes. ``timeout_min`` bounds every collective (a barrier waits that long for the slowest rank). Calling it
    again returns the existing group's info.
    """
    slurm_env()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=timeout_min),
                                **({"device_id": dev} if dev.type == "cuda" and backend == "nccl" else {}))
        if dev.type == "cpu":
            local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
            torch.set_num_threads(max(1, usable_cores() // local_world))
    if is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def cleanup() -> None:
    """Leave the process group (if any)."""
    if is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank (identity without a process group)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (``[obj]`` without a process group)."""
    if not is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def gather_predictions(index: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gather per-sample results from every rank, keep one row per dataset index, sorted by index.

    ``index`` ``[N]`` holds each row's dataset index; ``values`` are tensors ``[N, ...]`` aligned with it.
    ``DistributedSampler`` pads the last round with repeats of the first samples, so the same index can arrive
    from two ranks; the duplicate is dropped here (the rows are identical: evaluation is deterministic), which is
    what makes distributed metrics equal a single-process run. Returns ``(index, *values)`` on every rank, on CPU.
    """
    local = [index.detach().cpu()] + [v.detach().cpu() for v in values]
    parts = all_gather_objects(local)
    cat = [torch.cat([p[i] for p in parts]) for i in range(len(local))]
    uniq, first = _first_occurrence(cat[0])
    return (uniq,) + tuple(c[first] for c in cat[1:])


def _first_occurrence(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique values of ``index`` and, for each, the position of its first occurrence."""
    order = torch.argsort(index, stable=True)
    sorted_idx = index[order]
    keep = torch.ones_like(sorted_idx, dtype=torch.bool)
    keep[1:] = sorted_idx[1:] != sorted_idx[:-1]
    return sorted_idx[keep], order[keep]
