"""Scratch directories of bounded training (the float32 row files), findable after their owner died.

A scratch directory is named ``hq-rows-<pid>-<start>-<random>``: the owner's process id and its start
time (milliseconds since the epoch, from the OS), so that a process that reuses the pid later is not
taken for the owner. The owner removes its directory when it is done, or interrupted (Ctrl-C, an
error); a process killed outright (SIGKILL, the OOM killer, a power cut) cannot, so every bounded run
first removes the scratch directories under its scratch root whose owner is gone
(:func:`remove_stale_scratch`). Row files are as large as the training data (rows × features × 4
bytes): they live under the cache directory (``<cache>/scratch``), not in ``/tmp``, which is often
a RAM-backed tmpfs.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

PREFIX = "hq-rows-"
_NAME = re.compile(rf"^{PREFIX}(?P<pid>\d+)-(?P<start>\d+)-")
#: Start times of one process read twice agree to the clock tick; a reused pid starts later than this.
_SAME_START_MS = 1000


def scratch_root(cache_dir: Path) -> Path:
    """Where bounded runs keep their scratch directories under a cache directory."""
    return Path(cache_dir).expanduser() / "scratch"


def _start_ms(proc: psutil.Process) -> int:
    return int(proc.create_time() * 1000)


def owner_tag() -> str:
    """``<pid>-<start>`` of this process."""
    return f"{os.getpid()}-{_start_ms(psutil.Process())}"


def owner_alive(pid: int, start_ms: int) -> bool:
    """Whether the process ``pid`` that started at ``start_ms`` still runs (a zombie does not)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(_start_ms(proc) - start_ms) <= _SAME_START_MS
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # another user's live process
        return True


def remove_stale_scratch(root: Path) -> int:
    """Delete the scratch directories under ``root`` whose owner is gone; how many were removed.
    Entries not named as :func:`scratch_dir` names them are left alone."""
    removed = 0
    try:
        entries = list(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return 0
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None or not entry.is_dir():
            continue
        if owner_alive(int(match["pid"]), int(match["start"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed += 1
        log.info("removed the scratch directory %s of a run that ended without cleaning up", entry)
    return removed


@contextmanager
def scratch_dir(root: Path | None) -> Iterator[Path]:
    """A new scratch directory under ``root`` (the system's temporary directory when ``None``), named
    for this process, removed afterwards; stale ones of dead owners under ``root`` are removed first."""
    parent = Path(tempfile.gettempdir()) if root is None else root
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_scratch(parent)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{owner_tag()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
