"""What this machine is: the CPU model, its ISA flags and its cores, for benchmark rows and cache keys.

CPU speed depends on more than the core count: this project's machines range from Zen 3 with AVX2 only to Zen 4
with AVX-512 VNNI and BF16, and Intel parts with AMX. Every CPU number ``mmadfer bench`` prints carries
:func:`cpu_signature`, and a converted model cached for one CPU can be told apart from one made for another.
"""
from __future__ import annotations

import os
import platform
from functools import lru_cache

__all__ = ["cpu_signature", "ISA_FLAGS", "usable_cores"]

#: The ISA features that change which kernels torch, ONNX Runtime and OpenVINO pick (``/proc/cpuinfo`` names).
ISA_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimddp", "bf16", "i8mm", "sve", "sve2")


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or Slurm's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@lru_cache(maxsize=1)
def cpu_signature() -> dict:
    """``{'model': 'AMD EPYC 9R14 96-Core Processor', 'flags': ['avx2', ...], 'cores': 2, 'cpuid': '25-17-1'}``.

    ``cpuid`` is family-model-stepping (decimal), which tells CPU generations apart where the model name is generic
    (a VM's 'AMD EPYC': family 25 model 1 is Zen 3, model 17 Zen 4). ``flags`` lists which of :data:`ISA_FLAGS` the
    CPU has, in that order (read from ``/proc/cpuinfo`` on Linux; empty elsewhere). ``cores`` is :func:`usable_cores`.
    """
    model, flags, ids = "", set(), {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:  # x86, ARM
                    flags = set(value.split())
                elif key in ("cpu family", "model", "stepping") and key not in ids:
                    ids[key] = value.strip()
                if model and flags and len(ids) == 3:
                    break
    except OSError:
        pass
    return {"model": model or platform.processor() or platform.machine(),
            "flags": [f for f in ISA_FLAGS if f in flags], "cores": usable_cores(),
            "cpuid": "-".join(ids.get(k, "?") for k in ("cpu family", "model", "stepping")) if ids else ""}
