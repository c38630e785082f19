"""The inline executor: every task in the driver process, one after another (the sequential baseline)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from hikyuu_qlib.executors.base import TaskFn, failure
from hikyuu_qlib.rolling.tasks import TaskResult


class InlineExecutor:
    name = "inline"
    workers = 1

    def share(self, frame: pl.DataFrame, path: Path) -> Any:
        return frame

    def run(self, fn: TaskFn, payloads: Sequence[dict[str, Any]], shared: Any) -> Iterator[TaskResult]:
        for payload in payloads:
            try:
                result = fn(payload, shared)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                raise failure(payload, exc) from exc
            yield result

    def close(self) -> None:
        from hikyuu_qlib.rolling.worker import close_contexts

        close_contexts()
