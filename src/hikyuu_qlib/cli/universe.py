"""``hq data universe …``: the universes of a store (Hikyuu blocks included), and a Qlib instruments file
imported into a Hikyuu store as a block."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from hikyuu_qlib.cli.options import OutputFormat, SourceOption, SummaryFormatOption
from hikyuu_qlib.cli.output import emit_json, guarded, print_fields
from hikyuu_qlib.domain import DateRange, InvalidInputError, StockCode
from hikyuu_qlib.domain.dates import parse_datetime

log = logging.getLogger("hikyuu_qlib.cli")

universe_app = typer.Typer(
    help="Universes: list a store's (Hikyuu blocks too), import a Qlib instruments file into a Hikyuu store.",
    no_args_is_help=True,
)


@universe_app.command("list")
@guarded
def list_universes(source: SourceOption = None, fmt: SummaryFormatOption = OutputFormat.table) -> None:
    """The universe names a store serves: Qlib instruments files, or Hikyuu's markets and blocks (with
    their members' count, and the code of a block's index when stock.db's BlockIndex table gives one: the
    block can be named by it, e.g. --universe SH000300)."""
    from hikyuu_qlib.app import open_store
    from hikyuu_qlib.cli.telemetry import current
    from hikyuu_qlib.stores.hikyuu import HikyuuStore
    from hikyuu_qlib.stores.hikyuu.blocks import block_names
    from hikyuu_qlib.stores.hikyuu.store import UNIVERSES
    from hikyuu_qlib.stores.qlib import QlibStore
    from hikyuu_qlib.stores.qlib.instruments import universes

    store = open_store(source, settings=current().settings)
    try:
        doc: dict[str, Any] = {"source": store.source}
        if isinstance(store, HikyuuStore):
            blocks = store.blocks()
            sizes = blocks.group_by("category", "name").len()
            doc["universes"] = list(UNIVERSES)
            doc["blocks"] = {
                f"{c}/{n}": int(size) for c, n, size in sizes.sort("category", "name").iter_rows()
            }
            assert set(doc["blocks"]) == set(block_names(blocks))
            doc["index_codes"] = {f"{c}/{n}": code for c, n, code in store.block_index().iter_rows()}
        elif isinstance(store, QlibStore):
            doc["universes"] = universes(store.root)
        else:
            doc["universes"] = ["all"]
    finally:
        store.close()
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    print_fields(doc)


@universe_app.command("import")
@guarded
def import_universe(
    file: Annotated[Path, typer.Argument(help="a Qlib instruments file: CODE<TAB>START<TAB>END per span")],
    name: Annotated[str, typer.Option("--name", "-n", help="the block's name, e.g. 沪深300")],
    into: Annotated[str, typer.Option("--into", help="the Hikyuu store: hikyuu:DIR (or DIR)")],
    category: Annotated[
        str, typer.Option("--category", help="the block's category (指数板块, 行业板块, self …)")
    ] = "self",
    on: Annotated[
        str | None,
        typer.Option("--on", help="take the members on this date (default: the file's last date)"),
    ] = None,
    index: Annotated[
        str | None,
        typer.Option(
            "--index", help="the code of the block's index, e.g. SH000300 (stock.db's BlockIndex table)"
        ),
    ] = None,
    fmt: SummaryFormatOption = OutputFormat.table,
) -> None:
    """Write the members of an instruments file into a Hikyuu store as the block CATEGORY/NAME.

    Hikyuu's blocks have no dates: the block holds the members on --on. It goes where the store keeps
    its blocks: the category's ini file when its hikyuu.ini says [block] type = qianlong, else stock.db's
    Block table (Hikyuu's default). A block of that name is replaced, and with it its index code in the
    BlockIndex table (--index; the ini files hold none).
    """
    from hikyuu_qlib.factors.universe import Universe
    from hikyuu_qlib.stores.hikyuu.blocks import write_block_ini, write_block_table
    from hikyuu_qlib.stores.hikyuu.config import resolve_layout
    from hikyuu_qlib.stores.source import SourceSpec

    named = into.split(":", 1)[0].lower() in ("hikyuu", "qlib", "synthetic")
    spec = SourceSpec.parse(into) if named else SourceSpec("hikyuu", Path(into).expanduser())
    if spec.kind != "hikyuu" or spec.path is None:
        raise InvalidInputError(f"--into {into!r}: a universe is imported into a Hikyuu store (hikyuu:DIR)")
    layout = resolve_layout(spec.path)
    index_code = None if index is None else str(StockCode.parse(index))
    if index_code is not None:
        from hikyuu_qlib.stores.hikyuu import HikyuuStore

        with HikyuuStore(layout) as store:
            listed = index_code in set(store.stocks(valid=None)["code"].to_list())
        if not listed:
            raise InvalidInputError(
                f"--index {index}: {index_code} is not in the stock list of {layout.db} (Hikyuu ignores an "
                "index it does not list)"
            )
    universe = Universe.from_file(file, name)
    last = universe.membership["end"].max()
    assert isinstance(last, dt.datetime)
    day = parse_datetime(on, field="--on") if on else last
    codes = universe.members_on(DateRange(day, day + dt.timedelta(days=1) - dt.timedelta(milliseconds=1)))
    if not codes:
        raise InvalidInputError(f"{file}: no instrument is a member on {day:%Y-%m-%d}")
    blocks = layout.block_files()
    if category in blocks.files:
        if index_code is not None:
            raise InvalidInputError(
                f"--index: the category {category} is a qianlong block file, which holds no index code"
            )
        target = blocks.files[category]
        written = write_block_ini(target, name, codes)
    else:
        target = blocks.db or layout.db
        written = write_block_table(target, category, name, codes, index_code)
    doc = {
        "file": str(file),
        "into": f"hikyuu:{layout.source_path}",
        "block": f"{category}/{name}",
        "index_code": index_code,
        "on": f"{day:%Y-%m-%d}",
        "members": written,
        "written_to": str(target),
        "spans_in_file": universe.membership.height,
        "codes_in_file": universe.membership["code"].n_unique(),
    }
    log.info("wrote block %s/%s (%d members on %s) to %s", category, name, written, doc["on"], target)
    if fmt is OutputFormat.json:
        emit_json(doc)
        return
    print_fields(doc)
