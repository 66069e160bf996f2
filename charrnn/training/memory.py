"""Keep freed memory in the process on glibc, so that each training step
reuses it instead of asking the kernel for fresh pages.

glibc serves big allocations (a step's activations and gradients are
megabytes each) with mmap and gives them back with munmap when freed, and
it trims the top of its heap whenever enough of it is free. A training step
allocates and frees the same big buffers every time, so every step paid for
millions of page faults: measured here, a fifth of the CPU time was spent in
the kernel. Turning both off makes the default model train markedly faster
(benchmarks/malloc_effect.py measures by how much).
The cost is that memory freed after a peak stays with the process until it
exits, which suits a training process whose steps all have the same size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# From glibc's malloc.h.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
NEVER_TRIM = 2**31 - 1  # mallopt takes an int
GLIBC_MMAP_MAX, GLIBC_TRIM_THRESHOLD = 65536, 128 * 1024  # glibc's defaults (mallopt(3))


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse; True if it agreed. A no-op
    (False) on other C libraries (macOS, Windows, musl): their allocators
    manage this themselves. Process-wide: see freed_memory_kept."""
    return _mallopt(0, NEVER_TRIM)


@contextmanager
def freed_memory_kept() -> Iterator[bool]:
    """keep_freed_memory() for the block; then glibc's default limits again
    (the values mallopt(3) documents; glibc's own sliding of the trim
    threshold stays off once a limit has been set, as after any mallopt),
    and what the block kept is given back to the system (malloc_trim)."""
    kept = keep_freed_memory()
    try:
        yield kept
    finally:
        if kept and _mallopt(GLIBC_MMAP_MAX, GLIBC_TRIM_THRESHOLD):
            _libc().malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, with mallopt and malloc_trim typed (AttributeError where
    it has neither, as on musl)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    return libc


def _mallopt(mmap_max: int, trim_threshold: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):
        return False
    # mallopt returns 1 on success, 0 on error.
    return mallopt(M_MMAP_MAX, mmap_max) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
