"""The Ray executor: each task a Ray core task, on a local Ray or an existing cluster.

The shared features go into Ray's object store once (:meth:`RayExecutor.share`); each task receives
the reference (:class:`ObjectStoreFrame`) and each worker process reads the store's copy once, never a
per-task copy. At most ``in_flight`` tasks are submitted at a time (``ray.wait`` hands back one
finished task before the next is submitted). A task whose worker process dies is run again by Ray up
to ``max_retries`` times; an exception raised by the task itself is not retried (it would fail again)
and stops the run.

Ray is optional (``pip install 'hikyuu-qlib[ray]'``). ``ray.init()`` starts a local Ray unless one is
running in this process already (then it is used and left running); an address joins a cluster, whose
workers must have hikyuu-qlib installed and reach the registry and the artifact store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from hikyuu_qlib.domain import InvalidInputError
from hikyuu_qlib.executors.base import TaskFailedError, TaskFn, failure
from hikyuu_qlib.rolling.tasks import TaskResult

log = logging.getLogger(__name__)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InvalidInputError(
            "the ray executor needs Ray: pip install 'hikyuu-qlib[ray]' (or use --executor local)"
        ) from None
    return ray


@dataclass(frozen=True)
class ObjectStoreFrame:
    """The shared features as one Arrow table in Ray's object store.

    The reference travels inside this handle, so Ray passes each task the reference and not the value
    (a reference given as a task argument is resolved, and its value deserialized, for every task). A
    worker process reads the table once (:meth:`load`: zero-copy, the buffers are the store's shared
    memory) and keeps the frame for its next tasks, as the local pool's workers keep their memory map.
    """

    ref: Any

    @property
    def key(self) -> str:
        return f"ray:{self.ref.hex()}"

    def load(self) -> pl.DataFrame:
        table = _ray().get(self.ref)
        return pl.DataFrame(pl.from_arrow(table, rechunk=False))


#: Attempts at starting a local Ray: on a loaded machine its raylet can give up waiting for its agents.
LOCAL_START_ATTEMPTS = 3


def init_ray(ray: Any, address: str | None, options: dict[str, Any]) -> None:
    """``ray.init``; a local Ray whose start times out (an overloaded machine: the raylet stops waiting
    for its agents after a few seconds) is started again, up to :data:`LOCAL_START_ATTEMPTS` times."""
    for attempt in range(1, LOCAL_START_ATTEMPTS + 1):
        try:
            ray.init(address=address, **options)
            return
        except Exception as exc:
            if address is not None or attempt == LOCAL_START_ATTEMPTS or "timed out" not in str(exc):
                raise
            log.warning("a local Ray did not start (%s); starting it again (attempt %d of %d)", exc,
                        attempt + 1, LOCAL_START_ATTEMPTS)  # fmt: skip
            ray.shutdown()


class RayExecutor:
    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        threads: int = 1,
        max_retries: int = 3,
        temp_dir: str | None = None,
        in_flight: int | None = None,
    ) -> None:
        ray = _ray()
        self._owns = not ray.is_initialized()
        if self._owns:
            options: dict[str, Any] = {"logging_level": logging.WARNING, "include_dashboard": False}
            if address is None:
                if workers is not None:
                    options["num_cpus"] = workers * threads
                if temp_dir is not None:
                    options["_temp_dir"] = temp_dir
            log.info("starting Ray%s", f" at {address}" if address else " locally")
            init_ray(ray, address, options)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.threads = max(1, threads)
        self.workers = workers or max(1, cpus // self.threads)
        self.in_flight = in_flight or 2 * self.workers
        self.max_retries = max_retries

    def share(self, frame: pl.DataFrame, path: Path) -> ObjectStoreFrame:
        return ObjectStoreFrame(_ray().put(frame.to_arrow()))

    def run(self, fn: TaskFn, payloads: Sequence[dict[str, Any]], shared: Any) -> Iterator[TaskResult]:
        ray = _ray()
        remote = ray.remote(num_cpus=self.threads, max_retries=self.max_retries, retry_exceptions=False)(fn)
        todo = list(range(len(payloads)))
        todo.reverse()
        pending: dict[Any, int] = {}
        try:
            while todo or pending:
                while todo and len(pending) < self.in_flight:
                    i = todo.pop()
                    pending[remote.remote(payloads[i], shared)] = i
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        result: TaskResult = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
                        raise failure(payloads[i], cause) from None
                    except ray.exceptions.RayError as exc:  # the worker died more often than retried
                        raise TaskFailedError(f"{failure(payloads[i], exc)} (after {self.max_retries} "
                                              "retries)") from None  # fmt: skip
                    yield result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._owns:
            ray = _ray()
            if ray.is_initialized():
                ray.shutdown()
