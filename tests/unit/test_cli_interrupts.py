"""Ctrl-C in ``hq``: an interrupt that Python loses on the way (here in a ctypes callback, as LightGBM's
logger loses it) still stops the work at the next progress step, and the process exits 130."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

import pytest

from hikyuu_qlib.cli.interrupts import CtrlC, raise_if_interrupted


def test_a_lost_interrupt_is_raised_at_the_next_check() -> None:
    previous = signal.getsignal(signal.SIGINT)
    handler = CtrlC.install()
    try:
        raise_if_interrupted()  # nothing received yet
        with contextlib.suppress(KeyboardInterrupt):  # lost, as a ctypes callback loses it (see below)
            signal.raise_signal(signal.SIGINT)
        assert handler.received == 1
        with pytest.raises(KeyboardInterrupt):
            raise_if_interrupted()
    finally:
        signal.signal(signal.SIGINT, previous)
    raise_if_interrupted()  # another handler installed: nothing to say


_SCRIPT = """
import ctypes, signal, sys
from hikyuu_qlib.cli.interrupts import CtrlC, exit_after
handler = CtrlC.install()
ctypes.CFUNCTYPE(None)(lambda: signal.raise_signal(signal.SIGINT))()  # lost: the work goes on
print("finished", flush=True)
try:
    sys.exit(0)
except SystemExit as done:
    exit_after(handler, done.code)
    raise
"""


def test_an_interrupted_process_exits_130_even_if_the_work_finished() -> None:
    proc = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=False)
    assert proc.returncode == 130, proc.stderr
    assert proc.stdout == "finished\n" and proc.stderr.endswith("interrupted\n")
