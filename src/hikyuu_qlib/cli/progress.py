"""Rich progress bars on stderr, adapted to the library's Progress callback.

A bar ends cleanly: when the work is done it shows the steps actually done as complete (``300/300``, even
if the work announced more and stopped early) and no time remaining; when the work fails or is
interrupted it is removed, so no frozen bar with an estimate is left behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from hikyuu_qlib.cli.interrupts import raise_if_interrupted
from hikyuu_qlib.ports import Progress as ProgressFn


class RemainingColumn(TimeRemainingColumn):
    """The estimated time remaining, blank once the task is finished."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("")
        return super().render(task)


@contextmanager
def progress_bar(description: str, *, enabled: bool = True) -> Iterator[ProgressFn]:
    """Yield a callback ``(done, total, item)`` that drives one Rich bar on stderr."""
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[item]}"),
        TimeElapsedColumn(),
        RemainingColumn(),
        console=Console(stderr=True),
        transient=False,
        disable=not enabled,
    )
    with progress:
        task = progress.add_task(description, total=None, item="")

        def update(done: int, total: int, item: str) -> None:
            raise_if_interrupted()  # an interrupt lost on the way stops the work here
            progress.update(task, completed=done, total=total, item=item)

        try:
            yield update
        except BaseException:
            progress.remove_task(task)  # no frozen bar over the error message
            raise
        state = progress.tasks[0]
        if state.total is None and not state.completed:
            progress.remove_task(task)  # the work reported no steps: nothing to show
        else:  # the work is done: the bar is complete at the steps done
            progress.update(task, completed=state.completed, total=state.completed)
    raise_if_interrupted()
