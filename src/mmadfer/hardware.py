"""What machine this is: the CPU's model, ISA flags and core count, for measurements that depend on them.

Which int8 path is fastest depends on the CPU (AVX-512 VNNI makes OpenVINO int8 fast; on AVX2-only CPUs ONNX
Runtime int8 can win), so a speed measurement is only valid on a CPU with the same signature. Base layer: standard
library only.
"""
from __future__ import annotations

import functools
import os
import platform

__all__ = ["cpu_signature", "ISA_PREFIXES"]

#: The ``/proc/cpuinfo`` flags that change which kernels run: vector and matrix extensions.
ISA_PREFIXES = ("sse", "ssse", "avx", "amx", "fma", "f16c", "vnni", "bf16", "neon", "asimd", "sve")


@functools.lru_cache(maxsize=1)
def cpu_signature() -> dict:
    """``{"model": str, "flags": sorted ISA flags, "cores": int}`` of this machine's CPU.

    On Linux from ``/proc/cpuinfo`` (the first processor's ``model name`` and ``flags``, or ARM's ``Features``);
    elsewhere the model is :func:`platform.processor` and the flags are empty. ``cores``: the CPUs this process may use.
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and model in (platform.processor(), platform.machine()):
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
                elif not line.strip() and flags:
                    break  # the first processor is enough
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return {"model": model, "flags": sorted(f for f in flags if f.startswith(ISA_PREFIXES)), "cores": cores}
