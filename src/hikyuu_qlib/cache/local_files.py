"""What the cache keeps next to its disk tier: counters that outlive a process, and generation tokens.

``stats.json`` adds up the counters of every process that closed a cache over this directory (merged
under an exclusive file lock), so ``hq cache stats`` reports more than its own empty process.
``gen/<scope>`` is the generation of a scope for the processes of this host: its token is the file's
inode, modification time and size (one ``stat``, no read). A bump writes a new file and renames it over
the old one while both exist, so the new inode differs and a token is never seen twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from hikyuu_qlib.domain.cache import CacheCounters

log = logging.getLogger(__name__)

STATS = "stats.json"


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".stats.lock").open("a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> CacheCounters:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return CacheCounters()
    except (OSError, ValueError) as exc:
        log.warning("cache counters %s are unreadable (%s): starting them again", path, exc)
        return CacheCounters()
    return CacheCounters.from_json(doc) if isinstance(doc, dict) else CacheCounters()


def _write(path: Path, counters: CacheCounters) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".stats-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(counters.to_json(), f)
    os.replace(tmp, path)


def add_counters(directory: Path, delta: CacheCounters) -> None:
    """Add ``delta`` to the directory's counters (a failure is logged, never raised)."""
    try:
        with _locked(directory):
            total = _read(directory / STATS)
            total.add(delta)
            _write(directory / STATS, total)
    except OSError as exc:
        log.warning("could not record cache counters in %s: %s", directory, exc)


def read_counters(directory: Path) -> CacheCounters:
    return _read(directory / STATS)


def reset_counters(directory: Path) -> None:
    with contextlib.suppress(FileNotFoundError), _locked(directory):
        (directory / STATS).unlink()


@functools.lru_cache(maxsize=256)
def _scope_path(directory: Path, scope: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in scope)
    return directory / "gen" / safe


def file_generation(directory: Path, scope: str) -> str | None:
    """The token of ``scope`` on this host (a fresh one when there is none); None when unreadable."""
    path = _scope_path(directory, scope)
    try:
        st = os.stat(path)  # a few microseconds: the token is read on every cached record get
    except FileNotFoundError:
        bump_file_generation(directory, scope, only_if_missing=True)
        try:
            st = os.stat(path)
        except OSError:
            return None
    except OSError:
        return None
    return f"{st.st_ino}-{st.st_mtime_ns}-{st.st_size}"


def bump_file_generation(directory: Path, scope: str, *, only_if_missing: bool = False) -> None:
    path = _scope_path(directory, scope)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gen-", dir=path.parent)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(uuid.uuid4().hex)
        if only_if_missing:
            with contextlib.suppress(FileExistsError):  # another process created it first
                os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not bump the cache generation %s: %s", path, exc)
