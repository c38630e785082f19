"""The options that several commands share, defined once: the source, the registry, the output format,
the metrics file of batch commands, the instruments file as a universe.

One :class:`OutputFormat` names every format. Commands that print a frame accept all of them; commands
that print a summary accept ``table`` and ``json`` (:data:`SummaryFormatOption`).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class OutputFormat(StrEnum):
    """How a command writes its result."""

    table = "table"
    csv = "csv"
    json = "json"
    parquet = "parquet"


#: The formats a summary can be printed in.
SUMMARY_FORMATS = (OutputFormat.table, OutputFormat.json)


def format_choice(*allowed: OutputFormat) -> Callable[[str | OutputFormat], OutputFormat]:
    """A parser of ``--format`` values that accepts only ``allowed``, naming them when it refuses one."""
    names = ", ".join(f.value for f in allowed)

    def parse(value: str | OutputFormat) -> OutputFormat:
        if isinstance(value, OutputFormat) and value in allowed:
            return value
        text = str(value).strip().lower()
        for fmt in allowed:
            if fmt.value == text:
                return fmt
        raise typer.BadParameter(f"{value!r} is not one of {names}")

    return parse


def _metavar(*allowed: OutputFormat) -> str:
    return "<" + "|".join(f.value for f in allowed) + ">"


SourceOption = Annotated[
    str | None,
    typer.Option(
        "--source",
        "-s",
        help="hikyuu:PATH, qlib:PATH, synthetic[:SEED] or a data directory, its kind detected "
        "(default: env HQ_SOURCE, the config file)",
    ),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="model registry URL: sqlite:///PATH or postgresql://…",
        envvar="HQ_DATABASE_URL",
        show_envvar=True,
    ),
]
SummaryFormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        parser=format_choice(*SUMMARY_FORMATS),
        metavar=_metavar(*SUMMARY_FORMATS),
        help="a table, or one JSON document on stdout",
    ),
]
#: The formats a listing of records can be printed in (one row per record).
LIST_FORMATS = (OutputFormat.table, OutputFormat.json, OutputFormat.csv)
ListFormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        parser=format_choice(*LIST_FORMATS),
        metavar=_metavar(*LIST_FORMATS),
        help="a table, one JSON document, or CSV (one row per record) on stdout",
    ),
]
FrameFormatOption = Annotated[
    OutputFormat | None,
    typer.Option(
        "--format",
        "-f",
        parser=format_choice(*OutputFormat),
        metavar=_metavar(*OutputFormat),
        help="output format (default: by --out's extension, else a table)",
    ),
]
FrameOutOption = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="write to FILE.csv, FILE.json or FILE.parquet instead of stdout"),
]
ExecutorOption = Annotated[
    str,
    typer.Option(
        "--executor",
        "-e",
        help="where tasks run: local (a process pool, default), inline (one by one in this process), "
        "ray (a local Ray) or ray://HOST:PORT (a Ray cluster; needs a PostgreSQL registry)",
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(
        "--workers", "-w", min=1, help="tasks at once (default: the cores over each task's threads)"
    ),
]
MetricsFileOption = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        help="write the command's Prometheus metrics to FILE.prom when it ends (node_exporter textfile "
        "format, atomically)",
    ),
]
UniverseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--universe-file",
        help="a Qlib instruments file (CODE<TAB>START<TAB>END per span) as the universe, each code a member "
        "over its spans only",
    ),
]
MemoryBudgetOption = Annotated[
    str | None,
    typer.Option(
        "--memory-budget",
        help="peak memory, e.g. 4GB (default: setting memory_budget, env HQ_MEMORY_BUDGET, else a quarter of "
        "the RAM); a universe that does not fit it in memory goes through date blocks on disk (the same "
        "results)",
    ),
]
