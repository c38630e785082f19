"""``hq data …``: stock lists, bars, store info, export to Qlib and TDX import."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from hikyuu_qlib.app import open_market, open_store, resolve_source
from hikyuu_qlib.cli.output import ExitCode, OutputFormat, emit_json, guarded, stdout_console, write_frame
from hikyuu_qlib.cli.progress import progress_bar
from hikyuu_qlib.domain import Adjust, InvalidInputError, KType, Market, StockType, parse_codes

log = logging.getLogger("hikyuu_qlib.cli")

data_app = typer.Typer(help="Market data: stocks, bars, export to Qlib, import TDX.", no_args_is_help=True)

SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source", "-s", help="hikyuu:PATH, qlib:PATH or synthetic[:SEED] (default: env HQ_SOURCE)"
    ),
]
FormatOpt = Annotated[OutputFormat, typer.Option("--format", "-f", help="output format")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="write to this file instead of stdout")]


@data_app.command("info")
@guarded
def info(source: SourceOpt = None, fmt: FormatOpt = OutputFormat.table) -> None:
    """Summarise a store: markets, ktypes, stock count (and how many have bars), calendar span, data version."""
    store = open_store(resolve_source(source))
    try:
        calendar = store.calendar()
        listed = store.stocks(valid=None)
        doc = {
            "source": store.source,
            "data_version": store.data_version(),
            "markets": [m.value for m in store.markets()],
            "ktypes": sorted(k.value for k in store.ktypes()),
            "stocks": listed.height,
            "stocks_with_data": int(listed["has_data"].sum()),
            "calendar": {
                "days": calendar.len(),
                "first": calendar.min(),
                "last": calendar.max(),
            },
        }
    finally:
        store.close()
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    console = stdout_console()
    for key, value in doc.items():
        console.print(f"[bold]{key}[/bold]: {value}")


@data_app.command("stocks")
@guarded
def stocks(
    source: SourceOpt = None,
    market: Annotated[str | None, typer.Option("--market", "-m", help="SH, SZ or BJ")] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="a_share, index, etf, chinext, star, … (repeatable)"),
    ] = None,
    include_delisted: Annotated[
        bool, typer.Option("--all", help="include delisted / invalid stocks")
    ] = False,
    has_data: Annotated[
        bool | None,
        typer.Option(
            "--has-data/--no-data",
            help="only the codes with bars in the store / only those without (default: both)",
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
    out: OutOpt = None,
) -> None:
    """List stocks, filtered by market, type, validity and whether the store holds bars for them."""
    with open_market(source) as md:
        frame = md.stocks(
            market=Market.parse(market) if market else None,
            types=[StockType.parse(t) for t in types] if types else None,
            valid=None if include_delisted else True,
            has_data=has_data,
        )
    write_frame(frame, fmt, out, title=f"{frame.height} stocks", extra={"source": md.store.source})


@data_app.command("bars")
@guarded
def bars(
    codes: Annotated[list[str], typer.Argument(help="codes such as SH600000, 000001.SZ")],
    source: SourceOpt = None,
    start: Annotated[str | None, typer.Option(help="first date, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last date, YYYY-MM-DD")] = None,
    ktype: Annotated[
        str, typer.Option(help="day, week, month, quarter, halfyear, year, min, min5 …")
    ] = "day",
    adjust: Annotated[str, typer.Option(help="none, forward or backward")] = "none",
    concurrency: Annotated[int, typer.Option(help="codes read at once")] = 4,
    fmt: FormatOpt = OutputFormat.table,
    out: OutOpt = None,
) -> None:
    """Print or save bars of one or more codes. Failing codes are reported; the rest load (exit 5)."""
    with open_market(source) as md:
        result = md.load_many(
            codes,
            start=start,
            end=end,
            ktype=KType.parse(ktype),
            adjust=Adjust.parse(adjust),
            concurrency=concurrency,
        )
    errors = result.error_messages()
    write_frame(
        result.frame,
        fmt,
        out,
        title=f"{result.frame.height} bars",
        extra={"errors": errors, "without_bars": list(result.without_bars), "source": md.store.source},
    )
    if errors:
        for code, message in errors.items():
            log.error("%s: %s", code, message)
        raise typer.Exit(ExitCode.PARTIAL)


@data_app.command("export-qlib")
@guarded
def export_qlib_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="the Qlib provider directory to write")],
    source: SourceOpt = None,
    adjust: Annotated[str, typer.Option(help="price adjustment written as Qlib's $factor")] = "forward",
    codes: Annotated[list[str] | None, typer.Option("--code", help="only these codes (repeatable)")] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table or json summary")
    ] = OutputFormat.table,
) -> None:
    """Write a Qlib provider directory (calendar, instruments, feature bins) from any store."""
    from hikyuu_qlib.stores.export import export_qlib

    store = open_store(resolve_source(source))
    try:
        with progress_bar("export to qlib", enabled=fmt is not OutputFormat.json) as progress:
            report = export_qlib(
                store,
                out,
                adjust=Adjust.parse(adjust),
                codes=parse_codes(codes) if codes else None,
                progress=progress,
            )
    finally:
        store.close()
    _report(report, fmt)


@data_app.command("import-tdx")
@guarded
def import_tdx_cmd(
    vipdoc: Annotated[Path, typer.Argument(help="TDX vipdoc directory (holding sh/lday, sz/lday …)")],
    out: Annotated[Path, typer.Option("--out", "-o", help="the Hikyuu data directory to write")],
    base_db: Annotated[
        Path | None,
        typer.Option("--base-db", help="copy stock rows from this stock.db instead of deriving them"),
    ] = None,
    fmt: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table or json summary")
    ] = OutputFormat.table,
) -> None:
    """Build a Hikyuu-layout store (HDF5 + stock.db) from TDX .day files."""
    from hikyuu_qlib.stores.tdx import import_tdx

    with progress_bar("import tdx", enabled=fmt is not OutputFormat.json) as progress:
        report = import_tdx(vipdoc, out, progress=progress, base_db=base_db)
    _report(report, fmt)


def _report(report: object, fmt: OutputFormat) -> None:
    """Print an export/import report; exit 5 when some files or codes failed.

    JSON carries the whole report; the table form gives counts for the lists (codes without bars are
    one line, not failures) and one line per failure."""
    doc = _as_dict(report)
    failed = doc.get("errors") or doc.get("failed") or {}
    without = doc.get("without_bars") or []
    if fmt is OutputFormat.json:
        emit_json(doc)
    elif fmt is OutputFormat.table:
        console = stdout_console()
        for key, value in doc.items():
            if key in ("without_bars", "failed", "errors"):
                continue
            if isinstance(value, list | tuple) and key != "fields":
                value = f"{len(value)} code(s)"
            elif isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            elif isinstance(value, dict):
                value = f"{len(value)} code(s)"
            elif isinstance(value, float):
                value = f"{value:.2f}"
            console.print(f"[bold]{key}[/bold]: {value}", highlight=False)
        if isinstance(without, list) and without:
            console.print(f"[bold]without_bars[/bold]: {_without_bars_line(without)}", highlight=False)
        if isinstance(failed, dict):
            console.print(f"[bold]failed[/bold]: {len(failed)}", highlight=False)
            for code, message in sorted(failed.items()):
                console.print(f"  {code}: {message}", highlight=False, markup=False)
    else:
        raise InvalidInputError(f"--format {fmt.value} is not available here: use table or json")
    if failed:
        raise typer.Exit(ExitCode.PARTIAL)


def _without_bars_line(codes: list[str] | tuple[str, ...]) -> str:
    """One line for the codes the store lists without bars (not failures)."""
    shown = ", ".join(codes[:5]) + (", …" if len(codes) > 5 else "")
    return f"{len(codes)} listed code(s) have no bars in the store (not failures): {shown}"


def _as_dict(report: object) -> dict[str, object]:
    to_dict = getattr(report, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, dict):
            return result
    import dataclasses

    if dataclasses.is_dataclass(report) and not isinstance(report, type):
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(report).items()}
    raise TypeError(f"cannot summarise {type(report).__name__}")


__all__ = ["data_app"]
