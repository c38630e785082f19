"""Rendering results: table (Rich), csv, json (one document on stdout), parquet; error exit codes."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import polars as pl
import typer
from rich.console import Console
from rich.table import Table

from hikyuu_qlib.domain import errors as E
from hikyuu_qlib.serialization import to_json_text

log = logging.getLogger("hikyuu_qlib.cli")

T = TypeVar("T")


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


class ExitCode:
    OK = 0
    FAILURE = 1
    INVALID_INPUT = 2
    NOT_FOUND = 3
    DATA_FORMAT = 4
    PARTIAL = 5
    INTERRUPTED = 130


def stdout_console() -> Console:
    return Console(file=sys.stdout, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(to_json_text(document))
    sys.stdout.write("\n")
    sys.stdout.flush()


def frame_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dicts()


def frame_table(frame: pl.DataFrame, title: str | None = None, max_rows: int = 200) -> Table:
    table = Table(title=title, show_lines=False)
    for name in frame.columns:
        numeric = frame.schema[name].is_numeric()
        table.add_column(name, justify="right" if numeric else "left")
    shown = (
        frame
        if frame.height <= max_rows
        else pl.concat([frame.head(max_rows // 2), frame.tail(max_rows // 2)])
    )
    for i, row in enumerate(shown.iter_rows()):
        if frame.height > max_rows and i == max_rows // 2:
            table.add_row(*(["…"] * len(frame.columns)))
        table.add_row(*(_cell(v) for v in row))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.strftime("%Y-%m-%d")
    return str(value)


def write_frame(
    frame: pl.DataFrame,
    fmt: OutputFormat,
    out: Path | None,
    *,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a frame in the requested format to ``out`` or stdout."""
    if fmt is OutputFormat.parquet:
        if out is None:
            raise E.InvalidInputError("--format parquet needs --out FILE")
        frame.write_parquet(out)
        log.info("wrote %d rows to %s", frame.height, out)
        return
    if fmt is OutputFormat.csv:
        if out is None:
            sys.stdout.write(frame.write_csv())
        else:
            frame.write_csv(out)
            log.info("wrote %d rows to %s", frame.height, out)
        return
    if fmt is OutputFormat.json:
        document = {
            "rows": frame.height,
            "columns": frame.columns,
            "data": frame_records(frame),
            **(extra or {}),
        }
        if out is None:
            emit_json(document)
        else:
            out.write_text(to_json_text(document))
            log.info("wrote %d rows to %s", frame.height, out)
        return
    if out is not None:
        frame.write_csv(out)
        log.info("wrote %d rows to %s", frame.height, out)
        return
    stdout_console().print(frame_table(frame, title=title))


@contextmanager
def cli_errors() -> Iterator[None]:
    """Turn library errors into a one-line message on stderr and a meaningful exit code."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        stderr_console().print("[yellow]interrupted[/yellow]")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except E.LoadErrors as exc:
        _fail(exc, ExitCode.PARTIAL)
    except E.InvalidInputError as exc:
        _fail(exc, ExitCode.INVALID_INPUT)
    except E.NotFoundError as exc:
        _fail(exc, ExitCode.NOT_FOUND)
    except E.DataFormatError as exc:
        _fail(exc, ExitCode.DATA_FORMAT)
    except E.HQError as exc:
        _fail(exc, ExitCode.FAILURE)


def _fail(exc: BaseException, code: int) -> None:
    from rich.text import Text

    stderr_console().print(Text.assemble(("error: ", "bold red"), str(exc)), highlight=False)
    raise typer.Exit(code) from None


def guarded(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorator form of :func:`cli_errors` for Typer commands."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with cli_errors():
            return fn(*args, **kwargs)
        raise AssertionError("unreachable")

    return wrapper
