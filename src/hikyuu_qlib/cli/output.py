"""What ``hq`` prints and writes, and how its errors end.

* Formats: each command's ``--format`` choices are exactly what it supports (see
  :mod:`hikyuu_qlib.cli.options`): every :class:`OutputFormat` for commands that produce a frame (table,
  csv, json, parquet), table and json for summaries. Without ``--format``, ``--out FILE`` chooses by its extension (:func:`frame_format`).
* Human output: ``key: value`` lines (:func:`print_fields`) and tables. On a terminal a frame prints as a
  table of at most ``max_rows`` rows whose caption says how to get them all; piped, it prints whole as
  TSV, and other tables use the full width instead of 80 columns.
* JSON: exactly one document on stdout (:func:`emit_json`).
* Errors: :func:`cli_errors` (or the decorator :func:`guarded`) turns every expected error into one line
  on stderr and its exit code (see :mod:`hikyuu_qlib.cli.errors`); under ``--format json`` stdout also
  gets exactly one ``{"error": {"type", "message", "exit_code"}}`` object. Bugs keep their traceback for
  ``--verbose``.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar, overload

import polars as pl
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from hikyuu_qlib.cli.errors import (
    AllFailedError,
    ExitCode,
    error_message,
    exit_code_of,
    is_driver_error,
    is_expected,
)
from hikyuu_qlib.cli.options import OutputFormat
from hikyuu_qlib.domain import errors as domain_errors
from hikyuu_qlib.domain.enums import StockType
from hikyuu_qlib.serialization import to_json_text

log = logging.getLogger("hikyuu_qlib.cli")

T = TypeVar("T")

#: Width of stdout when it is not a terminal: wide enough that no table is cut.
PIPE_WIDTH = 10_000
#: A longer list prints as its first items and its length (``--format json`` has them all).
MAX_LISTED = 20


#: File extensions and the frame format each one means.
SUFFIX_FORMATS = {
    ".csv": OutputFormat.csv,
    ".json": OutputFormat.json,
    ".parquet": OutputFormat.parquet,
    ".pq": OutputFormat.parquet,
}


# --- output paths, checked before any work --------------------------------------------------------------


def frame_format(fmt: OutputFormat | None, out: Path | None) -> OutputFormat:
    """The format to write a frame in: ``--format`` when given, else ``--out``'s extension, else a table.

    Checks ``out`` too, so that a command refuses bad output options before it starts its work.
    """
    if out is not None:
        check_out_file(out)
    by_suffix = None if out is None else SUFFIX_FORMATS.get(out.suffix.lower())
    if fmt is None:
        if out is None:
            return OutputFormat.table
        if by_suffix is None:
            known = ", ".join(SUFFIX_FORMATS)
            raise domain_errors.InvalidInputError(
                f"--out {out}: unknown extension {out.suffix or '(none)'!r}: use {known}, or give --format"
            )
        return by_suffix
    if fmt is OutputFormat.table and out is not None:
        raise domain_errors.InvalidInputError(
            "--format table prints to the terminal: for --out FILE use csv, json or parquet"
        )
    if fmt is OutputFormat.parquet and out is None:
        raise domain_errors.InvalidInputError("--format parquet needs --out FILE")
    if by_suffix is not None and by_suffix is not fmt:
        raise domain_errors.InvalidInputError(
            f"--format {fmt.value} contradicts --out {out} (a {by_suffix.value} file)"
        )
    return fmt


def check_out_file(out: Path, suffixes: Mapping[str, str] | None = None) -> str | None:
    """Refuse an output file that cannot be written: a directory, or in a missing directory.

    With ``suffixes`` (extension → format), the file's extension must be one of them; returns its format.
    """
    if out.is_dir():
        raise domain_errors.InvalidInputError(f"--out {out} is a directory: give a file name")
    parent = out.parent
    if not parent.exists():
        raise domain_errors.NotFoundError(f"--out {out}: directory {parent} does not exist")
    if not parent.is_dir():
        raise domain_errors.InvalidInputError(f"--out {out}: {parent} is not a directory")
    if suffixes is None:
        return None
    kind = suffixes.get(out.suffix.lower())
    if kind is None:
        raise domain_errors.InvalidInputError(
            f"--out {out}: unknown extension {out.suffix or '(none)'!r}: use {', '.join(suffixes)}"
        )
    return kind


def check_out_dir(out: Path) -> None:
    """Refuse an output directory that is an existing file (or lies under one)."""
    for path in (out, *out.parents):
        if path.exists():
            if not path.is_dir():
                raise domain_errors.InvalidInputError(f"--out {out}: {path} is a file, not a directory")
            return


@contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """An OSError while writing ``path`` names it (Polars' errors do not)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise


# --- consoles and JSON ----------------------------------------------------------------------------------


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def stdout_console() -> Console:
    """Stdout: the terminal's width, or wide enough for any table when piped."""
    return Console(file=sys.stdout, soft_wrap=True, width=None if stdout_is_terminal() else PIPE_WIDTH)


def stderr_console() -> Console:
    """Stderr: messages are never wrapped (a line stays one line when it is read back from a pipe)."""
    return Console(stderr=True, soft_wrap=True)


def emit_json(document: Any) -> None:
    """Print exactly one JSON document on stdout."""
    sys.stdout.write(to_json_text(document))
    sys.stdout.write("\n")
    sys.stdout.flush()


# --- human output ---------------------------------------------------------------------------------------


def display(value: Any) -> str:
    """A scalar as a person reads it: dates without midnight, enums by name, no Python reprs."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "NaN" if value != value else ("inf" if value > 0 else "-inf")
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return str(round(value, 6)) if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, dt.datetime):
        return (
            value.strftime("%Y-%m-%d") if value.time() == dt.time(0) else value.strftime("%Y-%m-%d %H:%M:%S")
        )
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, StockType):
        return value.name.lower()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if not items:
            return "(none)"
        if len(items) > MAX_LISTED:
            shown = ", ".join(display(v) for v in items[:MAX_LISTED])
            return f"{shown}, … ({len(items):,} in all)"
        return ", ".join(display(v) for v in items)
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {display(v)}" for k, v in value.items())
    return str(value)


def field_lines(doc: Mapping[str, Any], indent: str = "") -> list[str]:
    """``key: value`` lines; a nested mapping is indented under its key, an empty one reads ``(none)``."""
    lines: list[str] = []
    for key, value in doc.items():
        if isinstance(value, Mapping):
            if not value:
                lines.append(f"{indent}{key}: (none)")
                continue
            lines.append(f"{indent}{key}:")
            lines.extend(field_lines(value, indent + "  "))
        elif isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
            lines.append(f"{indent}{key}:")
            for item in value:
                lines.append(f"{indent}  - {display(item)}")
        else:
            lines.append(f"{indent}{key}: {display(value)}")
    return lines


def print_fields(doc: Mapping[str, Any]) -> None:
    """Print ``key: value`` lines on stdout (keys bold on a terminal)."""
    console = stdout_console()
    for line in field_lines(doc):
        key, sep, rest = line.partition(":")
        console.print(Text.assemble((key, "bold"), sep, rest), highlight=False)


def with_type_names(frame: pl.DataFrame, column: str = "type") -> pl.DataFrame:
    """Stock types by name (``a_share``, ``index`` …) instead of Hikyuu's numbers."""
    if column not in frame.columns or not frame.schema[column].is_integer():
        return frame
    names = {member.value: member.name.lower() for member in StockType}
    return frame.with_columns(
        pl.col(column).replace_strict(names, default=pl.col(column).cast(pl.String), return_dtype=pl.String)
    )


def frame_table(frame: pl.DataFrame, title: str | None = None, max_rows: int = 200) -> Table:
    """A Rich table of at most ``max_rows`` rows (first and last halves); its caption says how to get all."""
    cut = frame.height > max_rows
    caption = (
        f"… {frame.height:,} rows, showing {max_rows:,}: use --format csv or --out FILE for all"
        if cut
        else None
    )
    table = Table(title=title, caption=caption, show_lines=False)
    for name in frame.columns:
        table.add_column(name, justify="right" if frame.schema[name].is_numeric() else "left")
    shown = pl.concat([frame.head(max_rows // 2), frame.tail(max_rows // 2)]) if cut else frame
    for i, row in enumerate(shown.iter_rows()):
        if cut and i == max_rows // 2:
            table.add_row(*(["…"] * len(frame.columns)))
        table.add_row(*(_cell(v) for v in row))
    return table


def _cell(value: Any) -> str:
    """A table cell: floats with four decimals, so that a column lines up."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4f}" if abs(value) < 1e6 else f"{value:,.0f}"
    return display(value)


def tsv_text(frame: pl.DataFrame) -> str:
    """The whole frame as tab-separated text with a header (dates without a time when all are midnight)."""
    dates = [
        pl.col(name).cast(pl.Date)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and _midnights(frame.get_column(name))
    ]
    return (frame.with_columns(dates) if dates else frame).write_csv(separator="\t", null_value="")


def _midnights(column: pl.Series) -> bool:
    values = column.drop_nulls()
    return bool((values.dt.truncate("1d") == values).all())


def print_frame(frame: pl.DataFrame, title: str | None = None, max_rows: int = 200) -> None:
    """A frame for people: a table on a terminal, the whole frame as TSV when stdout is piped."""
    if stdout_is_terminal():
        stdout_console().print(frame_table(frame, title=title, max_rows=max_rows))
    else:
        sys.stdout.write(tsv_text(frame))


def write_frame(
    frame: pl.DataFrame,
    fmt: OutputFormat,
    out: Path | None,
    *,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a frame in ``fmt`` (see :func:`frame_format`) to ``out`` or stdout."""
    if fmt is OutputFormat.table:
        if out is not None:
            raise domain_errors.InvalidInputError(
                "--format table prints to the terminal: for --out FILE use csv, json or parquet"
            )
        print_frame(frame, title=title)
        return
    if fmt is OutputFormat.parquet and out is None:
        raise domain_errors.InvalidInputError("--format parquet needs --out FILE")
    if out is None:
        if fmt is OutputFormat.csv:
            sys.stdout.write(frame.write_csv())
        else:
            emit_json(_frame_document(frame, extra))
        return
    with writing(out):
        if fmt is OutputFormat.parquet:
            frame.write_parquet(out)
        elif fmt is OutputFormat.csv:
            frame.write_csv(out)
        else:
            out.write_text(to_json_text(_frame_document(frame, extra)) + "\n", encoding="utf-8")
    log.info("wrote %d rows to %s", frame.height, out)


def _frame_document(frame: pl.DataFrame, extra: dict[str, Any] | None) -> dict[str, Any]:
    return {"rows": frame.height, "columns": frame.columns, "data": frame.to_dicts(), **(extra or {})}


def frame_records(frame: pl.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dicts()


# --- partial results and errors -------------------------------------------------------------------------


def refuse_if_all_failed(
    errors: Mapping[str, BaseException | str], succeeded: int, what: str = "codes"
) -> None:
    """Fail with the code of the failures (see :mod:`hikyuu_qlib.cli.errors`) when nothing succeeded."""
    if errors and succeeded <= 0:
        raise AllFailedError(errors, what)


def exit_if_partial(errors: Mapping[str, BaseException | str], succeeded: int, what: str = "codes") -> None:
    """After writing the output of a batch whose failures were logged: a one-line count and exit 5."""
    refuse_if_all_failed(errors, succeeded, what)
    if not errors:
        return
    total = succeeded + len(errors)
    stderr_console().print(
        Text.assemble(
            ("warning: ", "bold yellow"),
            f"{len(errors):,} of {total:,} {what} failed; the output holds the other {succeeded:,}",
        ),
        highlight=False,
    )
    raise typer.Exit(ExitCode.PARTIAL)


def error_document(exc: BaseException, code: int, message: str | None = None) -> dict[str, Any]:
    """The JSON object printed on stdout for an error under ``--format json``."""
    text = error_message(exc) if message is None else message
    return {"error": {"type": type(exc).__name__, "message": text, "exit_code": code}}


@contextmanager
def cli_errors(*, json_errors: bool = False, db: str | None = None) -> Iterator[None]:
    """Turn every error into one line on stderr and its exit code (JSON on stdout too with ``json_errors``).

    Expected errors (the library's, OS and database errors) print no traceback; a bug prints one line and
    logs its traceback at DEBUG (``hq --verbose``).
    """
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt as exc:
        if json_errors:
            emit_json(error_document(exc, ExitCode.INTERRUPTED, "interrupted"))
        stderr_console().print("[yellow]interrupted[/yellow]")
        raise typer.Exit(ExitCode.INTERRUPTED) from None
    except BrokenPipeError:  # the reader of stdout went away (``hq … | head``): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(ExitCode.FAILURE) from None
    except Exception as exc:
        code = exit_code_of(exc)
        message = error_message(exc, database=_registry_url(db) if is_driver_error(exc) else None)
        if not is_expected(exc):
            log.debug("unexpected error", exc_info=exc)
            message += " (a bug: run hq --verbose … for the traceback)"
        if json_errors:
            emit_json(error_document(exc, code, message))
        stderr_console().print(
            Text.assemble(("error: ", "bold red"), message), highlight=False, soft_wrap=True
        )
        raise typer.Exit(code) from None


def _registry_url(db: str | None) -> str | None:
    """The registry a command used: its ``--db``, else the settings' (None when they cannot be read)."""
    if db:
        return db
    try:
        from hikyuu_qlib.settings import Settings

        return Settings().registry_url
    except Exception:  # the error being reported matters more
        return None


@overload
def guarded(fn: Callable[..., T], *, job: str | None = None) -> Callable[..., T]: ...


@overload
def guarded(fn: None = None, *, job: str | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]: ...


def guarded(
    fn: Callable[..., T] | None = None, *, job: str | None = None
) -> Callable[..., T] | Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator form of :func:`cli_errors` for Typer commands (JSON errors when ``fmt`` is json; a
    database error names the command's ``--db``), run as an observed command: its span, and for a batch
    command (``@guarded(job="model_train")``, with a ``metrics_file`` option) its job metrics, written and
    pushed at the end (see :mod:`hikyuu_qlib.cli.telemetry`)."""
    if fn is None:
        return lambda command: guarded(command, job=job)
    command = fn

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        from hikyuu_qlib.cli import telemetry

        given_db = kwargs.get("db")
        db = given_db if isinstance(given_db, str) else None
        json_errors = str(kwargs.get("fmt")) == "json"
        with cli_errors(json_errors=json_errors, db=db):
            run = telemetry.start(command.__name__, kwargs, job=job)
        with telemetry.observed_command(run) as outcome:
            try:
                with cli_errors(json_errors=json_errors, db=db):
                    result = command(*args, **kwargs)
            except typer.Exit as exc:
                outcome["exit_code"] = int(exc.exit_code)
                raise
            outcome["exit_code"] = int(ExitCode.OK)
            return result
        raise AssertionError("unreachable")

    return wrapper


__all__ = [
    "ExitCode",
    "check_out_dir",
    "check_out_file",
    "cli_errors",
    "display",
    "emit_json",
    "exit_if_partial",
    "field_lines",
    "frame_format",
    "frame_table",
    "guarded",
    "print_fields",
    "print_frame",
    "refuse_if_all_failed",
    "stderr_console",
    "stdout_console",
    "tsv_text",
    "with_type_names",
    "write_frame",
    "writing",
]
