"""interrupts: Ctrl-C and SIGTERM stop a command, even when they land in a finalizer.

Python runs a signal's handler in the main thread between two of its steps, wherever it is.
When that is inside an object's __del__ (numba's and llvmlite's objects are freed so, at any
moment of a run), the KeyboardInterrupt the handler raises is printed as "Exception ignored in
..." with a traceback and dropped, and the run goes on as if never interrupted: Ctrl-C lost, a
SIGTERM's run finishing with 0. Here a dropped interruption is kept and raised again in the
main thread 10 ms later, silently. Process-wide, so only the command line sets it (cli.main).
"""
from __future__ import annotations

import _thread
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

from .errors import Terminated

_dropped: list[KeyboardInterrupt] = []  # an interruption a finalizer swallowed, to raise again
_state = {"active": False, "in_hook": False}


def _raise_later(interruption: KeyboardInterrupt) -> None:
    """Raise `interruption` in the main thread in a moment: SIGINT delivered again from another
    thread (from the hook itself, its handler would run inside the hook, and be dropped there
    too), its handler raising what is kept."""
    def deliver():
        if _state["active"]:
            _thread.interrupt_main(signal.SIGINT)

    _dropped.append(interruption)
    timer = threading.Timer(0.01, deliver)
    timer.daemon = True
    timer.start()


def _stop(interruption: KeyboardInterrupt) -> None:
    if _state["in_hook"]:  # raised here, it would be dropped
        _raise_later(interruption)
    else:
        raise interruption


def _on_sigint(signum, frame) -> None:
    _stop(_dropped.pop() if _dropped else KeyboardInterrupt())


def _on_sigterm(signum, frame) -> None:
    """SIGTERM (timeout, systemd, docker stop): stop as Ctrl-C does, through the same cleanup.
    A second one while cleaning up is ignored."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _stop(Terminated())


def _keep_dropped(previous_hook):
    def hook(unraisable) -> None:
        _state["in_hook"] = True
        try:
            if isinstance(unraisable.exc_value, KeyboardInterrupt):
                _raise_later(unraisable.exc_value)
            else:
                previous_hook(unraisable)
        finally:
            _state["in_hook"] = False
    return hook


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, Ctrl-C raises KeyboardInterrupt and SIGTERM Terminated (exit 143), one
    dropped by a finalizer raised again; the previous handlers are back after it. Only the main
    thread can set handlers: elsewhere this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous_int = signal.signal(signal.SIGINT, _on_sigint)
    previous_term = signal.signal(signal.SIGTERM, _on_sigterm)
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _keep_dropped(previous_hook)
    _state["active"] = True
    try:
        yield
    finally:
        _state["active"] = False
        sys.unraisablehook = previous_hook
        for signum, handler in ((signal.SIGINT, previous_int), (signal.SIGTERM, previous_term)):
            if handler is not None:  # None: set outside Python, left as it is
                signal.signal(signum, handler)
        _dropped.clear()
