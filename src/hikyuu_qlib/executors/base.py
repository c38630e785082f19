"""The executor port and the choice of an adapter by name.

An executor runs a task function over JSON payloads and yields the results as they complete. The
shared input (the features frame every task reads) is handed over once with :meth:`Executor.share`,
never with each task: a file that workers memory-map, or one copy in Ray's object store.

The registry decides where tasks may run: a SQLite registry is a file on this machine, so a Ray
cluster at a remote address needs a PostgreSQL registry URL; :func:`open_executor` refuses the
combination before any task starts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from hikyuu_qlib.domain import HQError, InvalidInputError
from hikyuu_qlib.rolling.tasks import TaskResult

#: A task function: a JSON payload and the shared input's handle → the result.
TaskFn = Callable[[dict[str, Any], Any], TaskResult]

EXECUTOR_HELP = "inline, local (a process pool, the default), ray (a local Ray) or ray://HOST:PORT"


class TaskFailedError(HQError):
    """A task raised, or its worker died more often than the retries allow; the run stops."""


class Executor(Protocol):
    """Runs tasks; ``workers`` tasks at most at once."""

    name: str
    workers: int

    def share(self, frame: pl.DataFrame, path: Path) -> Any:
        """Hand ``frame`` to the workers once (``path``: where a file copy goes, named by a digest of the
        frame's inputs); returns the handle each task receives."""
        ...

    def run(self, fn: TaskFn, payloads: Sequence[dict[str, Any]], shared: Any) -> Iterator[TaskResult]:
        """Run ``fn(payload, shared)`` for each payload; yield each result as it completes. The first
        task that fails stops the run with :class:`TaskFailedError`."""
        ...

    def close(self) -> None: ...


def task_label(payload: dict[str, Any]) -> str:
    tags = payload.get("tags") or {}
    for key in ("window", "trial"):
        if key in tags:
            return f"{key} {tags[key]}"
    return str(payload.get("task_id"))


def failure(payload: dict[str, Any], exc: BaseException) -> TaskFailedError:
    return TaskFailedError(f"{task_label(payload)} failed: {type(exc).__name__}: {exc}")


def is_remote(address: str | None) -> bool:
    """Whether a Ray address names a cluster beyond this machine (``ray://HOST:PORT`` not on localhost)."""
    if not address or address in ("local", "auto"):
        return False
    host = address.removeprefix("ray://").rsplit(":", 1)[0].strip("[]")
    return host not in ("127.0.0.1", "localhost", "::1")


def check_registry_for(address: str | None, registry_url: str) -> None:
    """A remote cluster's workers cannot reach a SQLite file on this machine: refuse it up front."""
    if is_remote(address) and registry_url.startswith("sqlite"):
        raise InvalidInputError(
            f"the Ray cluster at {address} runs tasks on other machines, which cannot reach the SQLite "
            f"registry {registry_url}: give a PostgreSQL registry URL (--db postgresql://… or "
            "HQ_DATABASE_URL)"
        )


class SharedFrame(Protocol):
    """A handle on the shared features that travels with each task (a few bytes, never the frame): a
    worker process loads the frame once per ``key`` and keeps it for its next tasks."""

    @property
    def key(self) -> str: ...

    def load(self) -> pl.DataFrame: ...


@dataclass(frozen=True, slots=True)
class ArrowFile:
    """The shared features as an uncompressed Arrow IPC file that every worker memory-maps: the frame's
    buffers are the file's pages, shared by the workers through the OS page cache, never copied."""

    path: str

    @property
    def key(self) -> str:
        return self.path

    def load(self) -> pl.DataFrame:
        import pyarrow as pa
        import pyarrow.ipc as pa_ipc

        table = pa_ipc.open_file(pa.memory_map(self.path)).read_all()
        return pl.DataFrame(pl.from_arrow(table, rechunk=False))


def write_shared(frame: pl.DataFrame, path: Path) -> ArrowFile:
    """Write ``frame`` once as an uncompressed Arrow IPC file (workers memory-map it); an existing file
    at ``path`` (named by a digest of the frame's inputs) is kept."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        frame.write_ipc(staging, compression="uncompressed")
        staging.replace(path)
    return ArrowFile(str(path))
