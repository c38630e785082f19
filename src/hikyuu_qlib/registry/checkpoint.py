"""WAL checkpoints off the write path (SQLite).

By default SQLite checkpoints inside the commit that pushes the write-ahead log past its threshold:
that one save then copies thousands of pages into the database file and waits for two fsyncs
(20–30 ms here, two hundred times a normal save). The registry's connections instead set a high
threshold (a backstop, ``BACKSTOP_PAGES``) and a :class:`WalCheckpointer` thread, owned by the
open registry, runs PASSIVE checkpoints on its own connection: every 50 ms while the WAL grows, backing
off to every 2 s while it does not. A PASSIVE checkpoint never blocks writers or readers; the thread
spends its time in SQLite and fsync, which release the GIL.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

# Pages of WAL after which a commit checkpoints by itself (only when the thread falls behind).
BACKSTOP_PAGES = 20_000


class WalCheckpointer:
    """A daemon thread checkpointing one SQLite database's WAL; ``stop()`` checkpoints a last time."""

    def __init__(
        self,
        path: Path,
        *,
        uri: str | None = None,
        busy_timeout_ms: int = 5000,
        fastest: float = 0.05,
        slowest: float = 2.0,
    ) -> None:
        self.path = path
        self.uri = uri  # the database's escaped file: URI (registry.engine.sqlite_uri), else the path
        self.fastest, self.slowest = fastest, slowest
        self.busy_timeout_ms = busy_timeout_ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WalCheckpointer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, daemon=True, name=f"hq-wal-checkpoint:{self.path.name}"
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join()

    def _loop(self) -> None:
        try:
            conn = sqlite3.connect(
                self.uri or self.path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
                uri=self.uri is not None,
            )
        except sqlite3.Error as error:
            log.warning("WAL checkpointer for %s not started: %s", self.path, error)
            return
        interval, last = self.fastest, None
        try:
            while not self._stop.wait(interval):
                state = self._checkpoint(conn)
                interval = min(interval * 2, self.slowest) if state == last else self.fastest
                last = state
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> tuple[int, int] | None:
        """(WAL pages, pages copied), or ``None`` when SQLite refused this round."""
        try:
            busy, wal_pages, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as error:  # the next round tries again; the backstop bounds the WAL meanwhile
            log.debug("WAL checkpoint of %s skipped: %s", self.path, error)
            return None
        log.debug("WAL checkpoint of %s: %s of %s pages (busy=%s)", self.path, copied, wal_pages, busy)
        return wal_pages, copied
