"""Process lifetime helpers of the service: a child process that must not outlive its parent."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux ``PR_SET_PDEATHSIG``).

    A job process (or a server worker) then never outlives a ``hq serve`` that was killed. If the parent
    died already, ``sig`` is sent at once. Returns whether the request was made (Linux only).
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        log.warning("could not tie this process to its parent (errno %d)", ctypes.get_errno())
        return False
    if os.getppid() != parent or parent == 1:
        os.kill(os.getpid(), sig)
    return True


def lower_priority(pid: int, niceness: int) -> None:
    """Give a child process the CPU priority ``niceness`` from its start (its interpreter's imports
    included, which it would otherwise run at the server's priority); a failure is only logged."""
    try:
        os.setpriority(os.PRIO_PROCESS, pid, max(niceness, os.getpriority(os.PRIO_PROCESS, pid)))
    except OSError as exc:
        log.debug("could not lower the priority of process %d: %s", pid, exc)


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with ``pid`` exists (and is not a zombie we could reap)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True
