"""Keep a worker's freed memory for its next file instead of returning it to the system.

Each file costs a few large, short-lived buffers: the file's bytes (7 MB for a 1955 x 1841 16-bit CR), the
box-averaged sums, float images at the working size. glibc serves them from the heap but gives the heap's
free top back to the kernel once it exceeds its trim threshold (about twice the largest buffer freed so
far), so the next file touches fresh pages again: 3,500 page faults (+5 ms, a third of the per-file time)
per uncompressed RG1 file were measured, and whether it happens depends on what else happens to sit at the
top of the heap (a small change in the text detector switched it on). Raising the mmap and trim thresholds
makes the reuse deterministic; a worker then keeps its peak heap (tens of MB) until it exits.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters from glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# glibc caps the mmap threshold at 32 MiB on 64-bit systems; buffers above it stay mmap-ed (and are faulted).
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20


def keep_freed_memory() -> bool:
    """Tune glibc's malloc of this process as above; False (and nothing changed) elsewhere or if refused."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (or no mallopt): keep the allocator's defaults
        return False
    # Both: setting only the trim threshold would also freeze the mmap threshold at its 128 KiB default.
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
