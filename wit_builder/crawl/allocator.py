"""Allocator settings for processes that parse many small documents (the crawl's pages).

glibc gives memory back to the kernel as soon as 128 kB lie free at the top of the heap. Parsing a
page allocates and frees a few hundred kB, so every page paid for fresh page faults: half of the
~100 µs it took to extract a page's images on the development machine (50 µs with the settings
below; benchmarks/bench_match.py). Keeping up to 32 MB of freed memory per process removes that.

Setting the trim threshold also freezes glibc's mmap threshold at its 128 kB start value, which
would send every decoded image (a few MB) to a fresh mmap; it is set to 16 MB alongside, so large
buffers are reused from the heap as the dynamic threshold would have let them be.
"""

from __future__ import annotations

import ctypes
import functools
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1   # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 32 << 20
MMAP_THRESHOLD = 16 << 20


@functools.cache
def keep_freed_memory() -> bool:
    """Apply the settings above to this process (once); False where the C library has no
    `mallopt` (not glibc), which changes nothing but speed."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        log.debug("allocator: no mallopt in this C library; default settings kept")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)) and \
        bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
