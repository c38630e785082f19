"""Whether Redis is reachable: a failed call opens an outage; calls are skipped until a backoff ends.

Redis down is not an error for the cache. The first failure logs one warning (once per outage) and
stops calls for a short backoff, so that an outage does not cost every request a connection timeout;
then one call tries again (the client reconnects by itself), and each failure doubles the backoff up to
its ceiling. The first success ends the outage and logs that Redis is back.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("hikyuu_qlib.cache")


class Outage:
    """Outage state shared by the sync and the async Redis clients of one tier."""

    def __init__(self, where: str, *, first_backoff: float = 0.1, max_backoff: float = 2.0) -> None:
        self.where = where
        self.first_backoff = first_backoff
        self.max_backoff = max(first_backoff, max_backoff)
        self._lock = threading.Lock()
        self._down = False
        self._backoff = first_backoff
        self._retry_at = 0.0
        self.outages = 0

    @property
    def down(self) -> bool:
        return self._down

    def allowed(self) -> bool:
        """Whether a call may go to Redis now (always while it is up; after the backoff while down)."""
        return not self._down or time.monotonic() >= self._retry_at

    def failed(self, error: BaseException) -> None:
        with self._lock:
            if not self._down:
                self._down = True
                self.outages += 1
                self._backoff = self.first_backoff
                log.warning(
                    "cache: Redis at %s is unreachable (%s): serving from memory, disk and the source "
                    "until it is back",
                    self.where,
                    type(error).__name__ + (f": {error}" if str(error) else ""),
                )
            else:
                self._backoff = min(self._backoff * 2, self.max_backoff)
            self._retry_at = time.monotonic() + self._backoff

    def succeeded(self) -> None:
        if not self._down:
            return
        with self._lock:
            if self._down:
                self._down = False
                self._backoff = self.first_backoff
                log.warning("cache: Redis at %s is reachable again", self.where)
