"""The local executor: a pool of worker processes (spawned, so no lock or thread state is inherited).

At most ``workers`` tasks are in flight; the rest wait in the driver. A worker that dies (killed,
out of memory) breaks the pool: the pool is started again and the unfinished tasks are submitted
again, each at most ``max_retries`` times. Each worker watches its parent and exits when the driver
is gone, so a killed driver leaves no orphan training that could race a resumed run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import polars as pl

from hikyuu_qlib.executors.base import TaskFailedError, TaskFn, failure, task_label, write_shared
from hikyuu_qlib.rolling.tasks import TaskResult

log = logging.getLogger(__name__)


def _watch_parent(parent: int) -> None:
    """Pool initializer: exit this worker as soon as the driver process is gone."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, name="watch-driver", daemon=True).start()


class LocalPoolExecutor:
    name = "local"

    def __init__(self, workers: int, *, max_retries: int = 3) -> None:
        self.workers = max(1, workers)
        self.max_retries = max_retries
        self._pool: ProcessPoolExecutor | None = None

    def _open(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_watch_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def share(self, frame: pl.DataFrame, path: Path) -> Any:
        return write_shared(frame, path)

    def run(self, fn: TaskFn, payloads: Sequence[dict[str, Any]], shared: Any) -> Iterator[TaskResult]:
        todo = list(range(len(payloads)))
        todo.reverse()
        attempts = [0] * len(payloads)
        running: dict[Future[TaskResult], int] = {}
        try:
            while todo or running:
                pool = self._open()
                while todo and len(running) < self.workers:
                    i = todo.pop()
                    attempts[i] += 1
                    running[pool.submit(fn, payloads[i], shared)] = i
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    i = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        if attempts[i] > self.max_retries:
                            raise TaskFailedError(
                                f"{task_label(payloads[i])}: its worker died {attempts[i]} times"
                            ) from None
                        log.warning("%s: its worker died; retrying", task_label(payloads[i]))
                        todo.append(i)
                        continue
                    except Exception as exc:
                        raise failure(payloads[i], exc) from exc
                    yield result
                if broken:  # every task of a broken pool is lost: start a new pool and submit them again
                    for future, i in running.items():
                        future.cancel()
                        todo.append(i)
                    running.clear()
                    self._shutdown(wait_for=False)
        except BaseException:
            for future in running:
                future.cancel()
            self._shutdown(wait_for=False)
            raise

    def _shutdown(self, *, wait_for: bool) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if not wait_for:
            for process in list(getattr(pool, "_processes", {}).values()):
                if process.is_alive():
                    process.kill()
        pool.shutdown(wait=wait_for, cancel_futures=True)

    def close(self) -> None:
        self._shutdown(wait_for=True)
