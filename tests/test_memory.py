"""memory: the heap given back between chunks only once much of it is free; the command's
process settings."""
import os
import subprocess
import sys

import pytest

from facedist import memory

glibc = pytest.mark.skipif(memory.heap_free_bytes() is None, reason="needs glibc >= 2.33")


def _holes(mb: int) -> list:
    """`mb` MB of freed 64 KB blocks between blocks still held: free heap, not the heap's top,
    which glibc gives back at free by itself."""
    blocks = [bytearray(64 << 10) for _ in range(mb * 32)]
    kept = blocks[1::2]
    del blocks
    return kept


@glibc
def test_the_heap_is_given_back_only_past_the_free_bound():
    kept = _holes(64)
    free = memory.heap_free_bytes()
    assert free >= 60 << 20
    assert memory.release_memory(keep_free=free + (64 << 20)) is False
    assert memory.release_memory(keep_free=free - (32 << 20)) is True
    del kept


def test_the_process_settings_leave_a_callers_own_values():
    code = ("import os, facedist; facedist.tune_process(); "
            "print(os.environ['OPENBLAS_THREAD_TIMEOUT'], os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])")
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "ONEDNN_PRIMITIVE_CACHE_CAPACITY")}
    # OpenBLAS's threads sleep at once after a product instead of spinning on busy cores
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split() == ["4", "64"]
    env["OPENBLAS_THREAD_TIMEOUT"] = "20"
    assert subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True).stdout.split() == ["20", "64"]
