"""Freed memory handed back to the system at once, for the few steps that hold a large model several times over.

glibc's allocator serves blocks under its *mmap threshold* from the heap, and it raises that threshold as large
blocks are freed (up to 32 MiB): a model's weights, allocated layer by layer, then land on the heap, and freeing
them often returns nothing to the system. :func:`returned_memory` fixes the threshold at 1 MiB for the block, so
every weight-sized block is its own mapping and is unmapped when freed, and trims the heap afterwards. Elsewhere
(not glibc) it does nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import platform
from typing import Iterator

__all__ = ["returned_memory", "release_freed"]

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
_SMALL = 1 << 20  # blocks of 1 MiB and more get their own mapping inside the block
_DEFAULT_MAX = 32 << 20  # glibc's ceiling for its own dynamic threshold on 64-bit systems, restored after


def _libc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


@contextlib.contextmanager
def returned_memory() -> Iterator[None]:
    """Within the block, memory of blocks of 1 MiB and more goes back to the system as soon as it is freed."""
    libc = _libc()
    if libc is None:
        yield
        return
    libc.mallopt(_M_MMAP_THRESHOLD, _SMALL)
    try:
        yield
    finally:
        libc.mallopt(_M_MMAP_THRESHOLD, _DEFAULT_MAX)
        libc.malloc_trim(0)


def release_freed() -> None:
    """Collect garbage and hand the heap's free pages back to the system (``malloc_trim``), e.g. after dropping a
    model that was loaded outside :func:`returned_memory`."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
