import signal
import sys
import time

import pytest

from facedist.errors import Terminated
from facedist.interrupts import stop_on_signals


class _SignalledWhileFreed:
    """An object whose finalizer receives the signal: its handler runs inside __del__, where
    Python drops what it raises (as when numba frees a compiled kernel at Ctrl-C's moment)."""

    def __init__(self, signum: int):
        self.signum = signum

    def __del__(self):
        signal.raise_signal(self.signum)
        sum(range(1000))  # the handler runs between these steps, inside the finalizer


@pytest.mark.parametrize("signame,raised", [("SIGINT", KeyboardInterrupt), ("SIGTERM", Terminated)])
def test_an_interruption_in_a_finalizer_still_stops_the_command(capsys, signame, raised):
    signum = getattr(signal, signame)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM), sys.unraisablehook)
    with stop_on_signals():
        with pytest.raises(raised) as stopped:
            _SignalledWhileFreed(signum)  # dropped at once: its __del__ runs here
            for _ in range(200):
                time.sleep(0.005)
    assert type(stopped.value) is raised
    assert capsys.readouterr().err == ""  # no "Exception ignored in ..." traceback
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM),
            sys.unraisablehook) == before


def test_other_exceptions_in_finalizers_are_reported_as_before():
    seen = []

    class Failing:
        def __del__(self):
            raise RuntimeError("in a finalizer")

    previous = sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        with stop_on_signals():
            Failing()
    finally:
        sys.unraisablehook = previous
    assert [type(u.exc_value) for u in seen] == [RuntimeError]
