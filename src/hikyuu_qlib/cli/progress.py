"""Rich progress bars on stderr, adapted to the library's Progress callback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hikyuu_qlib.cli.interrupts import raise_if_interrupted
from hikyuu_qlib.ports import Progress as ProgressFn


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[ProgressFn]:
    """Yield a callback ``(done, total, item)`` that drives one Rich bar on stderr."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[item]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        disable=not enabled,
    )
    with progress:
        task = progress.add_task(description, total=None, item="")

        def update(done: int, total: int, item: str) -> None:
            raise_if_interrupted()  # an interrupt lost on the way stops the work here
            progress.update(task, completed=done, total=total, item=item)

        yield update
    raise_if_interrupted()
