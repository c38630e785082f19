"""Which threads may be running when a process pool forks.

Forking copies only the calling thread; a lock another thread holds at that moment (h5py's, say) stays
locked forever in the child. Pools therefore fork only when every other thread is known to be safe:
threads that touch nothing a child uses name themselves with :data:`FORK_SAFE_PREFIX` (the registry's
WAL checkpointer, which only talks to SQLite on its own connection).
"""

from __future__ import annotations

import threading

FORK_SAFE_PREFIX = "hq-fork-safe:"


def only_fork_safe_threads() -> bool:
    """True when every thread but the caller's is marked fork-safe."""
    current = threading.current_thread()
    return all(t is current or t.name.startswith(FORK_SAFE_PREFIX) for t in threading.enumerate())
