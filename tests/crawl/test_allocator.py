"""The allocator settings of page-parsing processes: freed memory stays in the heap for the next
page instead of going back to the kernel (checked with glibc's own accounting, in a fresh
process so the test process keeps its defaults)."""

from __future__ import annotations

import ctypes.util
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from wit_builder.crawl.allocator import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert keep_freed_memory() and keep_freed_memory()
block = bytearray(4 << 20)  # a parsed page's worth of buffers, freed at once
del block
print(libc.mallinfo2().fordblks)
"""


def free_heap_bytes_after_a_4_mb_free(mode: str) -> int:
    result = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                            check=True)
    return int(result.stdout)


@pytest.mark.skipif(not ctypes.util.find_library("c") or sys.platform != "linux",
                    reason="glibc's mallopt and mallinfo2 are Linux-only")
def test_freed_memory_stays_in_the_heap_for_the_next_page():
    assert free_heap_bytes_after_a_4_mb_free("default") < 1 << 20  # mmapped, then unmapped
    assert free_heap_bytes_after_a_4_mb_free("tuned") >= 4 << 20   # kept for reuse
