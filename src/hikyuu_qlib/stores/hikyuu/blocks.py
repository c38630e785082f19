"""Hikyuu's blocks (板块): index, industry, region and concept groups of codes, as universes.

Hikyuu keeps them in one of two layouts, chosen by ``hikyuu.ini``'s ``[block]`` section:

* ``type = qianlong``: ini files in ``dir``, one per category, each key of the section naming a
  category and its file (``指数板块 = zsbk.ini``, ``行业板块 = hybk.ini``, ``地域板块 = dybk.ini``,
  ``概念板块 = gnbk.ini``, ``self = self.ini``). A file holds ``[block name]`` sections with one
  ``market,code`` line per member, market ``0`` for Shanghai and ``1`` for Shenzhen (``2`` for Beijing
  is read as well, an extension); ``;`` starts a comment. Without a ``hikyuu.ini``, a data directory's
  ``block/`` folder is read with these default file names (other ``*.ini`` files there are categories
  named by their file stem).
* ``type = sqlite3`` (Hikyuu's default): the ``Block`` table of ``stock.db`` — ``category, name,
  market_code`` (``SH600000``), one row per member.

A block may have an index (沪深300 → SH000300): the ``BlockIndex`` table of ``stock.db`` (Hikyuu's
schema version 17; the same columns as ``Block``, ``market_code`` being the index's code). Hikyuu joins
it to the blocks by category and name (``Block.index_stock``; a block without a row has none), ignores
an index code its stock list does not hold, and finds the blocks of an index with
``get_block_list_by_index_stock``. Here :meth:`HikyuuStore.block_index` reads it the same way, and a
block can be named by its index code (``--universe SH000300``). The qianlong files hold no index.

Both are read when present (the ini files first). A block has no dates: it holds today's members, so a
backtest of the past on a block universe has survivorship bias (members that left the index are absent).
"""

from __future__ import annotations

import configparser
import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hikyuu_qlib.domain import DataFormatError, InvalidInputError, Market, StockCode
from hikyuu_qlib.domain.errors import InvalidCodeError

log = logging.getLogger(__name__)

#: Hikyuu's default category files in a ``block/`` folder.
DEFAULT_FILES: dict[str, str] = {
    "指数板块": "zsbk.ini",
    "行业板块": "hybk.ini",
    "地域板块": "dybk.ini",
    "概念板块": "gnbk.ini",
    "self": "self.ini",
}
#: Market digits of a qianlong block file.
MARKET_DIGITS: dict[str, Market] = {"0": Market.SH, "1": Market.SZ, "2": Market.BJ}
#: Common English names of index blocks (category 指数板块).
INDEX_ALIASES: dict[str, str] = {
    "csi300": "沪深300",
    "csi500": "中证500",
    "csi100": "中证100",
    "csi800": "中证800",
    "csi1000": "中证1000",
    "sse50": "上证50",
    "sse180": "上证180",
    "szse100": "深证100",
}
#: The columns of a blocks frame: one row per member.
BLOCK_SCHEMA: dict[str, pl.DataType] = {"category": pl.String(), "name": pl.String(), "code": pl.String()}

#: The columns of a block index frame: one row per block that has an index.
BLOCK_INDEX_SCHEMA: dict[str, pl.DataType] = {
    "category": pl.String(),
    "name": pl.String(),
    "index_code": pl.String(),
}
#: The category of index blocks, preferred when a name or an index code is in several categories.
INDEX_CATEGORY = "指数板块"

BLOCK_INDEX_DDL = """CREATE TABLE IF NOT EXISTS `BlockIndex` ("id" INTEGER, `category` VARCHAR(100) NOT NULL,
    `name` VARCHAR(100) NOT NULL, `market_code` VARCHAR(30) NOT NULL, PRIMARY KEY("id" AUTOINCREMENT))"""

BLOCK_DDL = (
    """CREATE TABLE IF NOT EXISTS `Block` ("id" INTEGER, `category` VARCHAR(100) NOT NULL,
        `name` VARCHAR(100) NOT NULL, `market_code` VARCHAR(30) NOT NULL, PRIMARY KEY("id" AUTOINCREMENT))""",
    'CREATE INDEX IF NOT EXISTS "ix_block" ON "Block" (category, name)',
)


@dataclass(frozen=True, slots=True)
class BlockFiles:
    """Where a store keeps its blocks: qianlong ini files by category, and/or the Block table of ``db``."""

    files: dict[str, Path]
    db: Path | None

    @classmethod
    def of_datadir(cls, datadir: Path, db: Path) -> BlockFiles:
        """A data directory's ``block/`` folder (Hikyuu's default names) and ``stock.db``."""
        folder = datadir / "block"
        files: dict[str, Path] = {}
        if folder.is_dir():
            by_file = {v: k for k, v in DEFAULT_FILES.items()}
            for path in sorted(folder.glob("*.ini")):
                files[by_file.get(path.name, path.stem)] = path
        return cls(files, db)

    @classmethod
    def of_ini(cls, parser: configparser.ConfigParser, datadir: Path, db: Path, ini: Path) -> BlockFiles:
        """The ``[block]`` section of a ``hikyuu.ini`` (qianlong files or an sqlite3 db)."""
        if not parser.has_section("block"):
            return cls.of_datadir(datadir, db)
        section = parser["block"]
        kind = section.get("type", "sqlite3").strip().lower()
        if kind == "qianlong":
            folder = Path(section.get("dir", str(datadir / "block")).strip()).expanduser()
            folder = folder if folder.is_absolute() else ini.parent / folder
            files = {
                key: folder / value.strip()
                for key, value in section.items()
                if key not in ("type", "dir") and value.strip()
            }
            return cls(files, db)
        if kind == "sqlite3":
            text = section.get("db", "").strip()
            block_db = Path(text).expanduser() if text else db
            return cls({}, block_db if block_db.is_absolute() else ini.parent / block_db)
        log.warning(
            "Hikyuu config %s: [block] type = %s unsupported (qianlong, sqlite3); no blocks", ini, kind
        )
        return cls({}, None)

    def paths(self) -> list[Path]:
        """The block files (for the store's data version; the db is counted with stock.db)."""
        return sorted(self.files.values())

    def read_index(self) -> pl.DataFrame:
        """The ``BlockIndex`` table of the db (``BLOCK_INDEX_SCHEMA``; empty without one)."""
        if self.db is not None and self.db.is_file():
            return read_block_index(self.db)
        return pl.DataFrame(schema=BLOCK_INDEX_SCHEMA)

    def read(self) -> pl.DataFrame:
        """Every block's members (``BLOCK_SCHEMA``), the ini files' then the table's, sorted."""
        frames = [read_block_ini(path, category) for category, path in self.files.items() if path.is_file()]
        for category, path in self.files.items():
            if not path.is_file():
                log.warning("Hikyuu block file of %s not found: %s", category, path)
        if self.db is not None and self.db.is_file():
            frames.append(read_block_table(self.db))
        if not frames:
            return pl.DataFrame(schema=BLOCK_SCHEMA)
        return pl.concat(frames).unique(maintain_order=True).sort("category", "name", "code")


def read_block_ini(path: Path, category: str) -> pl.DataFrame:
    """The blocks of one qianlong ini file (UTF-8, or GBK as older files are)."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = raw.decode("gbk")
        except UnicodeDecodeError:
            raise DataFormatError(f"Hikyuu block file {path} is neither UTF-8 nor GBK text") from None
    rows: list[tuple[str, str, str]] = []
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if line.endswith("]"):
                section = line[1:-1].strip()
            continue
        if not section:
            break  # members before any section: Hikyuu stops reading the file there
        market, sep, symbol = (part.strip() for part in line.partition(","))
        if not sep or not symbol:
            continue
        if market not in MARKET_DIGITS:
            raise DataFormatError(
                f"{path}:{number}: market {market!r} in block [{section}] is not 0 (SH), 1 (SZ) or 2 (BJ)"
            )
        try:
            code = StockCode(MARKET_DIGITS[market], symbol)
        except InvalidCodeError as exc:
            raise DataFormatError(
                f"{path}:{number}: bad code {symbol!r} in block [{section}]: {exc}"
            ) from None
        rows.append((category, section, str(code)))
    return _frame(rows)


def read_block_table(db: Path) -> pl.DataFrame:
    """The ``Block`` table of a ``stock.db`` (empty when the table does not exist)."""
    uri = f"file:{db.resolve().as_posix()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND lower(name) = 'block'"
            ).fetchone()
            rows = conn.execute("SELECT category, name, market_code FROM Block").fetchall() if exists else []
    except sqlite3.Error as exc:
        raise DataFormatError(f"{db}: cannot read the Block table ({exc})") from None
    out: list[tuple[str, str, str]] = []
    for category, name, market_code in rows:
        try:
            out.append((str(category), str(name), str(StockCode.parse(str(market_code)))))
        except InvalidCodeError:
            raise DataFormatError(
                f"{db}: Block row {category}/{name} has a bad market_code {market_code!r}"
            ) from None
    return _frame(out)


def read_block_index(db: Path) -> pl.DataFrame:
    """The ``BlockIndex`` table of a ``stock.db`` (``BLOCK_INDEX_SCHEMA``; empty when the table does not
    exist). A block listed twice keeps its first row (by id), as Hikyuu's loader does, and has no index
    when that row's code is no stock code (warned; Hikyuu ignores an index it cannot find)."""
    uri = f"file:{db.resolve().as_posix()}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND lower(name) = 'blockindex'"
            ).fetchone()
            rows = (
                conn.execute("SELECT category, name, market_code FROM BlockIndex ORDER BY id").fetchall()
                if exists
                else []
            )
    except sqlite3.Error as exc:
        raise DataFormatError(f"{db}: cannot read the BlockIndex table ({exc})") from None
    out: list[tuple[str, str, str | None]] = []
    for category, name, market_code in rows:
        try:
            out.append((str(category), str(name), str(StockCode.parse(str(market_code)))))
        except InvalidCodeError:
            log.warning(
                "%s: BlockIndex row %s/%s has a bad index code %r; ignored", db, category, name, market_code
            )
            out.append((str(category), str(name), None))
    frame = pl.DataFrame(out, schema=BLOCK_INDEX_SCHEMA, orient="row")
    return frame.unique(["category", "name"], keep="first", maintain_order=True).drop_nulls("index_code")


def write_block_table(
    db: Path, category: str, name: str, codes: Iterable[str], index_code: str | None = None
) -> int:
    """Replace the block ``category``/``name`` in ``db``'s Block table (created as Hikyuu creates it)
    with ``codes``, and its row of the BlockIndex table with ``index_code`` (none without one), as
    Hikyuu's block save does; returns the number of members written."""
    members = sorted({str(StockCode.parse(c)) for c in codes})
    index = None if index_code is None else str(StockCode.parse(index_code))
    if not category.strip() or not name.strip():
        raise InvalidInputError("a block needs a category and a name")
    with sqlite3.connect(db, timeout=60.0) as conn:
        for ddl in BLOCK_DDL:
            conn.execute(ddl)
        conn.execute(BLOCK_INDEX_DDL)
        conn.execute("DELETE FROM Block WHERE category = ? AND name = ?", (category, name))
        conn.execute("DELETE FROM BlockIndex WHERE category = ? AND name = ?", (category, name))
        conn.executemany(
            "INSERT INTO Block (category, name, market_code) VALUES (?, ?, ?)",
            [(category, name, code) for code in members],
        )
        if index is not None:
            conn.execute(
                "INSERT INTO BlockIndex (category, name, market_code) VALUES (?, ?, ?)",
                (category, name, index),
            )
    return len(members)


def write_block_ini(path: Path, name: str, codes: Iterable[str]) -> int:
    """Replace (or append) the section ``[name]`` of a qianlong block file with ``codes`` (written as
    ``market,symbol`` lines, UTF-8); the other sections stay as they are. Returns the members written."""
    members = sorted({StockCode.parse(c) for c in codes}, key=str)
    digit = {market: key for key, market in MARKET_DIGITS.items()}
    kept: list[str] = []
    if path.is_file():
        skipping = False
        for line in path.read_text(encoding="utf-8-sig").splitlines():
            bare = line.split(";", 1)[0].strip()
            if bare.startswith("[") and bare.endswith("]"):
                skipping = bare[1:-1].strip() == name
            if not skipping:
                kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    section = [f"[{name}]", *(f"{digit[c.market]},{c.symbol}" for c in members)]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join([*kept, *section]) + "\n", encoding="utf-8")
    tmp.replace(path)
    return len(members)


def find_block(blocks: pl.DataFrame, universe: str, index: pl.DataFrame | None = None) -> pl.DataFrame | None:
    """The members of the block that ``universe`` names: ``category/name``, a name (when one category
    holds it; index blocks first), an alias (``csi300`` = 指数板块/沪深300), or the code of its index in
    ``index`` (``BLOCK_INDEX_SCHEMA``: ``SH000300`` = the block whose index it is; index blocks first).
    None when none matches; :class:`InvalidInputError` when a bare name or an index code is in several
    categories."""
    text = universe.strip()
    if "/" in text:
        category, _, name = text.partition("/")
        hit = blocks.filter((pl.col("category") == category.strip()) & (pl.col("name") == name.strip()))
        return hit if hit.height else None
    alias = INDEX_ALIASES.get(text.lower())
    if alias is not None:
        hit = blocks.filter((pl.col("category") == "指数板块") & (pl.col("name") == alias))
        if hit.height:
            return hit
    hit = blocks.filter(pl.col("name") == text)
    if hit.height == 0:
        return _by_index_code(blocks, text, index)
    categories = hit["category"].unique().sort().to_list()
    if len(categories) > 1:
        if "指数板块" in categories:
            return hit.filter(pl.col("category") == "指数板块")
        raise InvalidInputError(
            f"block {text!r} is in several categories ({', '.join(categories)}): name it as CATEGORY/NAME"
        )
    return hit


def block_names(blocks: pl.DataFrame) -> list[str]:
    """``category/name`` of every block."""
    pairs = blocks.select("category", "name").unique().sort("category", "name")
    return [f"{c}/{n}" for c, n in pairs.iter_rows()]


def _frame(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=BLOCK_SCHEMA, orient="row")


def _by_index_code(blocks: pl.DataFrame, text: str, index: pl.DataFrame | None) -> pl.DataFrame | None:
    """The members of the block whose index is the code ``text`` (None when it is no code or no block's
    index)."""
    if index is None or index.height == 0:
        return None
    try:
        code = str(StockCode.parse(text))
    except InvalidCodeError:
        return None
    owners = (
        index.filter(pl.col("index_code") == code)
        .select("category", "name")
        .unique()
        .sort("category", "name")
    )
    if owners.height > 1:
        preferred = owners.filter(pl.col("category") == INDEX_CATEGORY)
        if preferred.height != 1:
            names = ", ".join(f"{c}/{n}" for c, n in owners.iter_rows())
            raise InvalidInputError(
                f"{code} is the index of several blocks ({names}): name one as CATEGORY/NAME"
            )
        owners = preferred
    if owners.height == 0:
        return None
    hit = blocks.join(owners, on=["category", "name"], how="semi")
    return hit if hit.height else None
