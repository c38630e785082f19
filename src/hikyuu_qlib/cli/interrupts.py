"""Ctrl-C for the ``hq`` process: every interrupt stops the command and exits 130.

Python turns SIGINT into a KeyboardInterrupt wherever the main thread happens to be, and a few places
lose it: a ctypes callback (LightGBM's logger) prints and drops it, a Rust extension importing numpy
turns it into a panic, and an interrupted import can make the interpreter exit by the signal whatever
exit code the command chose. :class:`CtrlC` therefore also remembers each SIGINT: progress callbacks
call :func:`raise_if_interrupted` (so a lost interrupt stops the work at the next step), and
:func:`exit_after` ends the process with 130 once the command has unwound.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
from types import FrameType
from typing import NoReturn

from hikyuu_qlib.cli.output import ExitCode

INTERRUPTED = ExitCode.INTERRUPTED


class CtrlC:
    """The process's SIGINT handler: counts the interrupt, then raises KeyboardInterrupt as Python's own."""

    def __init__(self) -> None:
        self.received = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.received += 1
        raise KeyboardInterrupt

    @classmethod
    def install(cls) -> CtrlC:
        """Install a handler for SIGINT (main thread only) and return it."""
        handler = cls()
        signal.signal(signal.SIGINT, handler)
        return handler


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived that the work did not stop for."""
    handler = signal.getsignal(signal.SIGINT)
    if isinstance(handler, CtrlC) and handler.received:
        raise KeyboardInterrupt


def exit_after(handler: CtrlC, code: int | str | None) -> None:
    """After the command: exit 130 if it was interrupted (flushing what it wrote), else return."""
    if not handler.received:
        return
    if code != INTERRUPTED:
        sys.stderr.write("interrupted\n")
    _exit_now(INTERRUPTED)


def _exit_now(code: int) -> NoReturn:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken stream has nothing to flush
            stream.flush()
    os._exit(code)
