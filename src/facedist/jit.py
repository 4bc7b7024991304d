"""jit: numba compilation for facedist's hot loops (kernels.py, align.py, nets/dlib_shape.py,
cluster.py). warmup.py compiles them all ahead (`make install`)."""
from __future__ import annotations

from numba import njit


def compiled(function):
    """numba-compile `function` with the GIL released, cached on disk where numba finds a
    writable folder (next to this file, or in the user's cache); else compiled in each process
    that uses it (a few seconds)."""
    try:
        return njit(nogil=True, cache=True)(function)
    except RuntimeError:  # "no locator available": no writable cache folder
        return njit(nogil=True)(function)
