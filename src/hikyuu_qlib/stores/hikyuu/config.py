"""Where a Hikyuu store keeps its files: a data directory, or the ``hikyuu.ini`` that names them."""

from __future__ import annotations

import configparser
import logging
from dataclasses import dataclass, field
from pathlib import Path

from hikyuu_qlib.domain import InvalidSourceError, Market, StoreNotFoundError
from hikyuu_qlib.stores.hikyuu.blocks import BlockFiles

log = logging.getLogger(__name__)

#: HDF5 file kinds: the ini key suffix, the file name suffix in a data directory.
FILE_KINDS: dict[str, str] = {"day": "day", "min": "1min", "min5": "5min"}
#: HDF5 files of time-line (分时) and tick (分笔) tables, named the same way (``sh_time.h5``, ``sh_trans.h5``).
TICK_KINDS: dict[str, str] = {"time": "time", "trans": "trans"}


@dataclass(frozen=True, slots=True)
class StoreLayout:
    """The resolved files of one Hikyuu store."""

    source_path: Path
    datadir: Path
    db: Path
    files: dict[tuple[Market, str], Path] = field(default_factory=dict)
    #: time-line and tick files (``TICK_KINDS``)
    ticks: dict[tuple[Market, str], Path] = field(default_factory=dict)
    blocks: BlockFiles | None = None

    def block_files(self) -> BlockFiles:
        """Where the store keeps its blocks (see :mod:`.blocks`)."""
        return self.blocks or BlockFiles.of_datadir(self.datadir, self.db)

    def file(self, market: Market, kind: str) -> Path | None:
        return self.files.get((market, kind))

    def tick_file(self, market: Market, kind: str) -> Path | None:
        return self.ticks.get((market, kind))


def resolve_layout(path: Path) -> StoreLayout:
    """Resolve a data directory, a ``hikyuu.ini`` file or a directory holding one.

    The path is made canonical first (absolute, symlinks resolved), so that one store named relatively,
    absolutely or through a symlink has one ``source_path`` (and the files under it are absolute).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise StoreNotFoundError(f"Hikyuu store not found: {path} does not exist")
    path = path.resolve()
    if path.is_file():
        return _from_ini(path)
    ini = path / "hikyuu.ini"
    if ini.is_file() and not (path / "stock.db").is_file():
        return _from_ini(ini)
    return _from_dir(path, path)


def _from_dir(source: Path, datadir: Path) -> StoreLayout:
    db = datadir / "stock.db"
    if not db.is_file():
        raise StoreNotFoundError(f"Hikyuu store {datadir}: base-info database {db} not found")
    files: dict[tuple[Market, str], Path] = {}
    ticks: dict[tuple[Market, str], Path] = {}
    for market in Market:
        for kinds, found in ((FILE_KINDS, files), (TICK_KINDS, ticks)):
            for kind, suffix in kinds.items():
                candidate = datadir / f"{market.value.lower()}_{suffix}.h5"
                if candidate.is_file():
                    found[(market, kind)] = candidate
    return StoreLayout(source, datadir, db, files, ticks, BlockFiles.of_datadir(datadir, db))


def _from_ini(ini: Path) -> StoreLayout:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise InvalidSourceError(f"cannot parse Hikyuu config {ini}: {exc}") from None
    base = ini.parent
    datadir = _path(parser.get("hikyuu", "datadir", fallback=str(base)), base)
    if not datadir.is_dir():
        raise StoreNotFoundError(f"Hikyuu config {ini}: datadir {datadir} not found")
    db_text = parser.get("baseinfo", "db", fallback=None) or parser.get("baseinfo", "file", fallback=None)
    db = _path(db_text, datadir) if db_text else datadir / "stock.db"
    if not db.is_file():
        raise StoreNotFoundError(f"Hikyuu config {ini}: base-info database {db} not found")
    kdata_type = parser.get("kdata", "type", fallback="hdf5").strip().lower()
    if kdata_type != "hdf5":
        raise InvalidSourceError(f"Hikyuu config {ini}: [kdata] type = {kdata_type} unsupported (hdf5 only)")
    files: dict[tuple[Market, str], Path] = {}
    ticks: dict[tuple[Market, str], Path] = {}
    for market in Market:
        for kinds, found in ((FILE_KINDS, files), (TICK_KINDS, ticks)):
            for kind in kinds:
                key = f"{market.value.lower()}_{kind}"
                text = parser.get("kdata", key, fallback=None)
                if not text:
                    continue
                file = _path(text, datadir)
                if file.is_file():
                    found[(market, kind)] = file
                else:
                    log.warning("Hikyuu config %s: [kdata] %s = %s does not exist; ignored", ini, key, file)
    return StoreLayout(ini, datadir, db, files, ticks, BlockFiles.of_ini(parser, datadir, db, ini))


def _path(text: str, base: Path) -> Path:
    p = Path(text.strip()).expanduser()
    return p if p.is_absolute() else base / p
