"""``hq data …``: stock lists, bars, time-lines and ticks, store info, export to Qlib and TDX import."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from hikyuu_qlib.app import open_market, open_store
from hikyuu_qlib.cli.options import (
    FrameFormatOption,
    FrameOutOption,
    MetricsFileOption,
    OutputFormat,
    SourceOption,
    SummaryFormatOption,
)
from hikyuu_qlib.cli.output import (
    check_out_dir,
    emit_json,
    exit_if_partial,
    frame_format,
    guarded,
    print_fields,
    refuse_if_all_failed,
    with_type_names,
    write_frame,
)
from hikyuu_qlib.cli.progress import progress_bar
from hikyuu_qlib.cli.remote import Remote, ServerOption, TokenOption, day, refuse_local_options, remote_of
from hikyuu_qlib.cli.telemetry import current
from hikyuu_qlib.domain import Adjust, DateRange, HQError, KType, Market, NoBarsError, StockType, parse_codes
from hikyuu_qlib.domain.schema import empty_bars
from hikyuu_qlib.loadplan import LoadResult, log_without_bars
from hikyuu_qlib.marketdata import parse_code_list
from hikyuu_qlib.stores.reports import BatchReport

log = logging.getLogger("hikyuu_qlib.cli")

data_app = typer.Typer(help="Market data: stocks, bars, export to Qlib, import TDX.", no_args_is_help=True)


@data_app.command("info")
@guarded
def info(source: SourceOption = None, fmt: SummaryFormatOption = OutputFormat.table) -> None:
    """Summarise a store: markets, ktypes, stock count (and how many have bars), calendar span, data version."""
    store = open_store(source, settings=current().settings)
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
    print_fields(doc)


@data_app.command("stocks")
@guarded
def stocks(
    source: SourceOption = None,
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
    fmt: FrameFormatOption = None,
    out: FrameOutOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """List stocks, filtered by market, type, validity and whether the store holds bars for them.

    With --server (or HQ_SERVER) the server lists them from its store (every page of its answer)."""
    chosen = frame_format(fmt, out)
    exchange = Market.parse(market) if market else None
    kinds = [StockType.parse(t) for t in types] if types else None
    valid = None if include_delisted else True
    remote = remote_of(server, token, current().settings)
    if remote is not None:
        refuse_local_options(source=source)
        with remote.client() as hq:
            frame, source_name = hq.stocks_from(
                market=None if exchange is None else exchange.value,
                type=None if kinds is None else [k.name.lower() for k in kinds],
                has_data=has_data,
                valid=valid,
            )
    else:
        with open_market(source, settings=current().settings, telemetry=current().telemetry) as md:
            frame = md.stocks(market=exchange, types=kinds, valid=valid, has_data=has_data)
        source_name = md.store.source
    frame = with_type_names(frame)
    write_frame(frame, chosen, out, title=f"{frame.height} stocks", extra={"source": source_name})


@data_app.command("bars")
@guarded
def bars(
    codes: Annotated[list[str], typer.Argument(help="codes such as SH600000, 000001.SZ")],
    source: SourceOption = None,
    start: Annotated[str | None, typer.Option(help="first date, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option(help="last date, YYYY-MM-DD")] = None,
    ktype: Annotated[
        str, typer.Option(help="day, week, month, quarter, halfyear, year, min, min5 …")
    ] = "day",
    adjust: Annotated[str, typer.Option(help="none, forward or backward")] = "none",
    concurrency: Annotated[
        int,
        typer.Option(
            min=1, help="codes read at once from a store read code by code (Hikyuu and Qlib: one pass)"
        ),
    ] = 4,
    fmt: FrameFormatOption = None,
    out: FrameOutOption = None,
    server: ServerOption = None,
    token: TokenOption = None,
) -> None:
    """Print or save bars of one or more codes. Failing codes are reported; the rest load (exit 5).

    With --server (or HQ_SERVER) the server reads them, through its cache."""
    chosen = frame_format(fmt, out)
    remote = remote_of(server, token, current().settings)
    if remote is not None:
        refuse_local_options(source=source)
        result, source_name = _remote_bars(
            remote, codes, start, end, KType.parse(ktype), Adjust.parse(adjust)
        )
    else:
        with open_market(source, settings=current().settings, telemetry=current().telemetry) as md:
            result = md.load_many(
                codes,
                start=start,
                end=end,
                ktype=KType.parse(ktype),
                adjust=Adjust.parse(adjust),
                concurrency=concurrency,
            )
        source_name = md.store.source
    parsed, unparsed = parse_code_list(codes)
    loaded = len(parsed) + len(unparsed) - len(result.errors)
    refuse_if_all_failed(result.errors, loaded)  # each failure was logged once, by the client
    write_frame(
        result.frame,
        chosen,
        out,
        title=f"{result.frame.height} bars",
        extra={
            "errors": result.error_messages(),
            "without_bars": list(result.without_bars),
            "source": source_name,
        },
    )
    exit_if_partial(result.errors, loaded)


def _tick_command(kind: str, name: str, doc: str) -> None:
    """Register ``hq data NAME`` reading Hikyuu's time-line (``kind`` "time") or tick ("trans") tables."""

    def command(
        codes: Annotated[list[str], typer.Argument(help="codes such as SH600000")],
        source: SourceOption = None,
        start: Annotated[str | None, typer.Option(help="first date, YYYY-MM-DD")] = None,
        end: Annotated[str | None, typer.Option(help="last date, YYYY-MM-DD")] = None,
        fmt: FrameFormatOption = None,
        out: FrameOutOption = None,
    ) -> None:
        _ticks(kind, codes, source, start, end, fmt, out)

    command.__doc__ = doc
    command.__name__ = command.__qualname__ = name
    data_app.command(name)(guarded(command))


_tick_command(
    "time",
    "timeline",
    "Print or save the time-line (分时: price and volume each minute) of Hikyuu's {market}_time.h5.",
)
_tick_command(
    "trans",
    "trans",
    "Print or save the ticks (分笔: price, volume and buy/sell/auction) of Hikyuu's {market}_trans.h5.",
)


def _ticks(
    kind: str,
    codes: list[str],
    source: str | None,
    start: str | None,
    end: str | None,
    fmt: OutputFormat | None,
    out: Path | None,
) -> None:
    """Read each code's time-line or ticks; failing codes are reported and the rest written (exit 5)."""
    import polars as pl

    from hikyuu_qlib.domain import DateRange, StockCode, UnsupportedKTypeError
    from hikyuu_qlib.ports import TickSource
    from hikyuu_qlib.stores.hikyuu.ticks import TIMELINE_SCHEMA, TRANS_SCHEMA

    chosen = frame_format(fmt, out)
    dates = DateRange.of(start, end)
    parsed = [StockCode.parse(c) for c in codes]
    what = "time-line" if kind == "time" else "tick"
    store = open_store(source, settings=current().settings)
    try:
        if not isinstance(store, TickSource):
            raise UnsupportedKTypeError(f"{store.source} has no {what} tables (Hikyuu stores keep them)")
        frames: list[pl.DataFrame] = []
        errors: dict[str, Exception] = {}
        without: list[str] = []  # no table for the code: not a failure, as codes without bars
        for code in parsed:
            try:
                read = store.timeline if kind == "time" else store.trans
                frames.append(read(code, dates=dates))
            except NoBarsError as exc:
                log.info("%s", exc)
                without.append(str(code))
            except HQError as exc:
                log.error("%s", exc)
                errors[str(code)] = exc
        name = store.source
    finally:
        store.close()
    loaded = len(parsed) - len(errors)
    refuse_if_all_failed(errors, loaded)
    schema = TIMELINE_SCHEMA if kind == "time" else TRANS_SCHEMA
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=schema)
    extra = {"errors": {c: str(e) for c, e in errors.items()}, "without_data": without, "source": name}
    write_frame(frame, chosen, out, title=f"{frame.height} {what} rows", extra=extra)
    exit_if_partial(errors, loaded)


def _remote_bars(
    remote: Remote, codes: list[str], start: str | None, end: str | None, ktype: KType, adjust: Adjust
) -> tuple[LoadResult, str]:
    """The bars of ``codes`` from a server, and its source. Codes that do not parse are errors here, as
    in a local run (the server refuses a request that names one)."""
    DateRange.of(start, end)  # an inverted range is refused before asking
    parsed, unparsed = parse_code_list(codes)
    result, source_name = LoadResult(empty_bars()), ""
    if parsed:
        with remote.client() as hq:
            result, source_name = hq.load_many_from(
                [str(c) for c in parsed],
                start=day(start, "start date"),
                end=day(end, "end date"),
                ktype=ktype.value,
                adjust=adjust.value,
            )
    if unparsed:
        result = LoadResult(result.frame, {**result.errors, **unparsed}, result.without_bars)
    for code, err in sorted(result.errors.items()):  # logged once each, as a local run logs them
        log.warning("failed to load %s: %s", code, err)
    log_without_bars(result.without_bars, source_name)
    return result, source_name


@data_app.command("export-qlib")
@guarded(job="data_export_qlib")
def export_qlib_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="the Qlib provider directory to write")],
    source: SourceOption = None,
    adjust: Annotated[str, typer.Option(help="price adjustment written as Qlib's $factor")] = "forward",
    codes: Annotated[list[str] | None, typer.Option("--code", help="only these codes (repeatable)")] = None,
    fmt: SummaryFormatOption = OutputFormat.table,
    metrics_file: MetricsFileOption = None,
) -> None:
    """Write a Qlib provider directory (calendar, instruments, feature bins) from any store."""
    from hikyuu_qlib.stores.export import export_qlib

    check_out_dir(out)
    store = open_store(source, settings=current().settings)
    try:
        with progress_bar("export to qlib", enabled=fmt is not OutputFormat.json) as progress:
            report = export_qlib(
                store,
                out,
                adjust=Adjust.parse(adjust),
                codes=parse_codes(codes) if codes else None,
                progress=progress,
                telemetry=current().telemetry,
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
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Build a Hikyuu-layout store (HDF5 + stock.db) from TDX .day files."""
    from hikyuu_qlib.stores.tdx import import_tdx

    check_out_dir(out)
    with progress_bar("import tdx", enabled=fmt is not OutputFormat.json) as progress:
        report = import_tdx(vipdoc, out, progress=progress, base_db=base_db)
    _report(report, fmt)


def _report(report: BatchReport, fmt: OutputFormat) -> None:
    """Print an export/import report; exit 5 when some files or codes failed (the failures were logged).

    JSON carries the whole report; the table form gives counts for the code lists (codes without bars
    are one line, not failures) and one line per failure."""
    refuse_if_all_failed(report.failed, len(report.ok), "codes or files")  # each failure was logged once
    doc = report.to_dict()
    if fmt is OutputFormat.json:
        emit_json(doc)
    else:
        print_fields(_summary(doc))
    exit_if_partial(report.failed, len(report.ok), "codes or files")


def _summary(doc: dict[str, Any]) -> dict[str, Any]:
    """The table form of a report: code lists as counts, one line for the codes without bars."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in ("without_bars", "failed"):
            continue
        out[key] = f"{len(value)} code(s)" if isinstance(value, list | dict) and key != "fields" else value
    if doc.get("without_bars"):
        out["without_bars"] = _without_bars_line(doc["without_bars"])
    out["failed"] = doc["failed"] or 0
    return out


def _without_bars_line(codes: list[str]) -> str:
    """One line for the codes the store lists without bars (not failures)."""
    shown = ", ".join(codes[:5]) + (", …" if len(codes) > 5 else "")
    return f"{len(codes)} listed code(s) have no bars in the store (not failures): {shown}"


__all__ = ["data_app"]
