"""How the process's C allocator treats the large blocks a training step frees.

A CPU training step allocates and frees the same large tensors every step (a 2048-row batch's
activations and gradients: megabytes each). glibc's malloc hands blocks above its mmap threshold
straight back to the system and trims the heap's free top beyond its trim threshold; the next step
then gets fresh pages, which the kernel zeroes one 4 KiB page fault at a time. HiNet in bf16 took
about 5,500 such faults per step of batch 2048 (about a tenth of its CPU time, docs/BENCHMARKS.md).
:func:`keep_freed_memory` raises both thresholds, so freed blocks stay in the heap for the next
step, as PyTorch's CUDA caching allocator does on the GPU.
"""

from __future__ import annotations

import ctypes
import platform

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "keep_freed_memory"]

#: Blocks up to this size come from the heap, not their own mapping (glibc's ceiling on 64-bit).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the heap's top is returned to the system only beyond this.
TRIM_THRESHOLD = 512 << 20

# mallopt's parameter numbers (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory() -> bool:
    """Keep blocks the process frees (up to :data:`MMAP_THRESHOLD` each, :data:`TRIM_THRESHOLD` in
    all at the heap's top) for reuse instead of returning them to the system. Process-wide; the
    freed blocks count in the process's resident memory until it reuses them.

    Returns whether it applied: True under glibc (Linux), False with any other C library, where it
    does nothing.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's own malloc (find_library would spawn ldconfig)
    # Setting either threshold also turns off glibc's own adjusting of both; set both.
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
