"""memory: glibc's heap tuned for long runs, and given back between chunks; the garbage
collector kept off what is loaded for good. Process-wide: the command line calls these
(facedist.tune_process, freeze_loaded); a library caller may."""
from __future__ import annotations

import ctypes
import gc


def _load_libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return None


_LIBC = _load_libc()


def share_one_heap() -> None:
    """Let every thread allocate from one glibc heap (arena). By default each busy thread gets
    its own, and each keeps the freed buffers of its last photos: measured 900 instead of 1110 MB
    peak for a FaceNet run of the humans photos, at the same speed. Threads started earlier keep
    their arenas; ours start after this."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(-8, 1)  # M_ARENA_MAX


def reuse_large_buffers() -> None:
    """Keep large freed buffers (P-Net's maps of a big pyramid level, tens of MB) in the heap
    for the next level and photo, instead of glibc's default of mapping each afresh and
    unmapping it at free: every page of a fresh mapping faults and is zeroed by the kernel
    (a 961 x 961 level's first convolution: 25 ms fresh, 8 ms reused). The heap is still given
    back after a chunk once much of it is free (release_memory)."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: heap, not mmap, below 1 GiB
        _LIBC.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: no trimming at each free


# Free heap kept between chunks. A chunk of photos frees 190-330 MB that the next one uses
# again (humans, default settings); giving it back each time made the next chunk fault every page
# in anew, about half the run's system time. Past this much free, fragmentation is what grows.
KEEP_FREE_BYTES = 384 << 20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


_MALLINFO2 = getattr(_LIBC, "mallinfo2", None)  # glibc >= 2.33
if _MALLINFO2 is not None:
    _MALLINFO2.restype = _MallInfo2


def heap_free_bytes() -> int | None:
    """Bytes free inside glibc's heaps (mallinfo2's fordblks), or None without glibc >= 2.33."""
    return None if _MALLINFO2 is None else int(_MALLINFO2().fordblks)


def release_memory(keep_free: int = KEEP_FREE_BYTES) -> bool:
    """Give freed heap pages back to the OS once more than `keep_free` bytes of the heap are free
    (always, where that cannot be read): photos of ever-different sizes leave the heap
    fragmented, and without this a long run's RSS creeps up with the images. Returns whether
    it gave them back."""
    if _LIBC is None or not hasattr(_LIBC, "malloc_trim"):
        return False
    free = heap_free_bytes()
    if free is not None and free <= keep_free:
        return False
    _LIBC.malloc_trim(0)
    return True


def freeze_loaded() -> None:
    """Leave every object made so far (the modules torch, numba and facedist load: about 260,000
    objects) out of the garbage collector's walks for the rest of the process. Each full
    collection walked them all (0.1 s), and the interpreter's last one, at exit, took 0.4 s of
    every command. What is frozen is never collected: call it once what is loaded is loaded."""
    gc.freeze()
