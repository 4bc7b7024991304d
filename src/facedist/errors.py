"""errors: what can stop a run, each with its exit code and a one-line message saying the cause
and what to do. The command line prints `str(error)` and exits with `error.exit_code`; the API
raises the same exceptions. A file that cannot be read is not an error: it is skipped with a
reason and the run goes on.

    exit 0  done (skipped files are warnings, counted in the summary)
    exit 1  an internal error (a bug): one line; `-v` prints the traceback. A database error
            that is no known fault (a constraint, an unknown column, a wrong query) is one too:
            never taken for damage, which would send the user away from a sound folder
    exit 2  a wrong setting or argument, or a photo folder that does not exist
    exit 3  model weights missing, damaged, or giving non-finite embeddings
    exit 4  the output folder cannot be written: disk full, read-only, no permission
    exit 5  the output database is damaged (left as it is, never overwritten)
    exit 6  another facedist process is writing the output folder
    exit 130  interrupted (Ctrl-C); what was stored is kept and a rerun resumes
    exit 143  terminated (SIGTERM: timeout, systemd, docker stop); as 130
"""
from __future__ import annotations

import errno
import os
import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class FacedistError(Exception):
    """A run or command could not go on; str(error) is one line saying why and what to do."""

    exit_code = 1


class SettingError(FacedistError, ValueError):
    exit_code = 2


class WeightsError(FacedistError, RuntimeError):
    exit_code = 3


class OutputError(FacedistError, OSError):
    exit_code = 4


class DatabaseDamaged(FacedistError):
    exit_code = 5


class InternalError(FacedistError):
    """A bug in facedist met as a database error (`explain`); its __cause__ is that error, whose
    traceback `-v` prints."""

    exit_code = 1


class Busy(FacedistError):
    exit_code = 6


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised by the command line's handler: an interruption like Ctrl-C (the run is
    recorded as failed: interrupted), which exits 143."""

    exit_code = 143


_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)
# SQLite's primary result codes (the low byte of an extended one) of the faults `explain` knows
_SQLITE = {getattr(sqlite3, name, value): kind for name, value, kind in [
    ("SQLITE_CORRUPT", 11, "damaged"), ("SQLITE_NOTADB", 26, "damaged"),
    ("SQLITE_FULL", 13, "full"), ("SQLITE_IOERR", 10, "io"), ("SQLITE_READONLY", 8, "readonly"),
    ("SQLITE_CANTOPEN", 14, "readonly"), ("SQLITE_PERM", 3, "readonly"),
    ("SQLITE_BUSY", 5, "locked"), ("SQLITE_LOCKED", 6, "locked")]}
# the same faults told by SQLite's text, where the error carries no code (Python < 3.11, an
# error facedist raises itself such as quick_check's findings): first match wins
_SQLITE_TEXT = [("malformed", "damaged"), ("not a database", "damaged"),
                ("file is encrypted", "damaged"), ("is full", "full"), ("disk I/O", "io"),
                ("readonly", "readonly"), ("unable to open", "readonly"), ("locked", "locked"),
                ("busy", "locked")]


def _sqlite_fault(exc: sqlite3.Error, msg: str) -> str | None:
    """Which known fault a database error is ("damaged", "full", "io", "readonly", "locked"),
    or None: a bug. SQLite's own code decides where the error has one; else its text."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return _SQLITE.get(code & 0xFF)
    return next((kind for word, kind in _SQLITE_TEXT if word in msg), None)


def explain(exc: BaseException, out: str | Path | None,
            dest: str | Path | None = None) -> FacedistError | None:
    """The FacedistError that says what `exc` (raised while writing the output folder `out`, or
    the folder `dest` that `export`/`report --dest` write) means for the user, or None when it
    is none of the known faults. Damage (exit 5) is only what SQLite calls corrupt or not a
    database; any other database error it does not know is an InternalError (exit 1), a bug to
    report, never a reason to give the folder up."""
    where = f"{out}: " if out is not None else ""
    keep = "what was already stored is kept and a rerun goes on from there"
    if isinstance(exc, FacedistError):
        return exc
    if isinstance(exc, OSError) and dest is not None and _on_the_way(exc.filename, dest):
        if exc.errno in _FULL:
            return OutputError(f"{dest}: no space left to write ({exc.strerror}); free some "
                               f"space or choose another --dest")
        return OutputError(f"{dest}: cannot write there ({exc.strerror or exc}); make it "
                           f"writable or choose another --dest")
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return OutputError(f"{where}no space left to write ({exc.strerror}); free some space or "
                           f"choose another --out, then run again: {keep}")
    if isinstance(exc, OSError) and exc.errno in _DENIED:
        return OutputError(f"{where}cannot write the output folder ({exc.strerror}); make it "
                           f"writable or choose another --out")
    if isinstance(exc, sqlite3.Error):
        # SQLite's text may hold several lines (quick_check's findings): one, so that the
        # advice after it is still on the line the command line prints
        msg = "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())
        msg = msg if len(msg) <= 200 else msg[:199] + "…"
        fault = _sqlite_fault(exc, msg)
        if fault == "damaged":
            return DatabaseDamaged(f"{where}facedist.sqlite is damaged ({msg}); facedist leaves "
                                   f"it as it is: choose another --out (or move this folder away "
                                   f"to start over)")
        if fault == "full" or (fault == "io" and _nearly_full(out)):
            return OutputError(f"{where}no space left for the database ({msg}); free some space "
                               f"or choose another --out, then run again: {keep}")
        if fault == "io":
            return OutputError(f"{where}the database could not be written ({msg}: a failing "
                               f"disk, or a file-size limit); check the disk or choose another "
                               f"--out: {keep}")
        if fault == "readonly":
            return OutputError(f"{where}cannot write the database ({msg}); make the output folder "
                               f"writable or choose another --out")
        if fault == "locked":
            return Busy(f"{where}the database is locked by another process; wait for it to finish")
        # a constraint, an unknown column, too many variables, wrong bindings: facedist's own
        # query went wrong, and the file is sound
        return InternalError(f"{where}internal error: {type(exc).__name__}: {msg} (a bug in "
                             f"facedist, not damage: the database is sound, keep this folder; "
                             f"run again with -v for the traceback, and please report it)")
    return None


def _on_the_way(filename, dest: str | Path) -> bool:
    """Whether `filename` (an OSError's) is `dest`, in it, or a folder on the way to it (made
    with it)."""
    if not isinstance(filename, (str, bytes, os.PathLike)):
        return False
    name, dest = os.path.abspath(os.fsdecode(filename)), os.path.abspath(dest)
    return os.path.commonpath([name, dest]) in (name, dest)


@contextmanager
def explained(out: str | Path | None, dest: str | Path | None = None) -> Iterator[None]:
    """Raise, in place of a known fault met in the block (see `explain`, which `dest` is for),
    its FacedistError; anything else goes on as it was."""
    try:
        yield
    except FacedistError:
        raise
    except Exception as exc:
        fault = explain(exc, out, dest)
        if fault is None:
            raise
        # a bug keeps its cause, for -v's traceback; a known fault needs none
        raise fault from (exc if isinstance(fault, InternalError) else None)


def _nearly_full(out: str | Path | None) -> bool:
    import shutil

    try:
        return out is not None and shutil.disk_usage(out).free < (16 << 20)
    except OSError:
        return False
