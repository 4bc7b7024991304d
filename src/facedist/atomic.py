"""atomic: files written whole or not at all. A file is written under a temporary name beside
its own and renamed over it once whole, so a killed run or a full disk never leaves a
half-written table, matrix, page or weights file under the real name; on any failure the
temporary file is removed and the old file stays as it was.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> with replacing(path) as fh:
    ...     _ = fh.write("a,b\\n")
    >>> path.read_text()
    'a,b\\n'
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def replaced(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside `path` (its name, this writer's process and thread, then `suffix`:
    keep the real suffix at the end for writers that go by it) that replaces `path` when the block
    ends without error. Each writer has its own: two writing one file at once (the review page's
    thumbnail, asked for by two tabs) each replace it whole, the last one's staying."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def replacing(path: str | Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """`path` opened for writing (open's `mode` and keywords), replaced once written whole."""
    with replaced(path) as tmp:
        with open(tmp, mode, **kwargs) as fh:
            yield fh
