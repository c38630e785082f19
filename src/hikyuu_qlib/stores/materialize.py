"""A Qlib-layout view of any store, for the research pipeline (factors, training, portfolio backtest).

The research half of the platform works on Qlib's data model (adjusted prices with ``$factor`` and
``$change``, point-in-time instrument spans). A Qlib store is used as it is; any other store (Hikyuu,
synthetic) is exported once with :func:`~hikyuu_qlib.stores.export.export_qlib` into a cache directory
named by its source kind and data version, so the export is reused until the data changes. The export
is written into a temporary directory and renamed into place: an interrupted export leaves nothing
half-written behind.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from hikyuu_qlib.domain import Adjust
from hikyuu_qlib.ports import MarketData, Progress
from hikyuu_qlib.stores.export import export_qlib
from hikyuu_qlib.stores.qlib import QlibStore
from hikyuu_qlib.stores.qlib.writer import QlibWriter

log = logging.getLogger(__name__)


def view_directory(store: MarketData, cache_root: Path) -> Path:
    """Where the Qlib view of ``store`` lives under ``cache_root``."""
    digest = hashlib.sha256(f"{store.source}|{store.data_version()}".encode()).hexdigest()[:16]
    kind = store.source.split(":", 1)[0]
    return cache_root / "qlib-views" / f"{kind}-{digest}"


def qlib_view(
    store: MarketData,
    cache_root: Path,
    *,
    universes: Sequence[str] = (),
    progress: Progress | None = None,
) -> QlibStore:
    """``store`` itself when it is a Qlib store, else its cached Qlib export (made on first use).

    ``universes`` names membership tables of the source (e.g. ``csi300``) to write as instrument files.
    """
    if isinstance(store, QlibStore):
        return store
    target = view_directory(store, cache_root)
    if not (target / "calendars" / "day.txt").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            report = export_qlib(store, staging, adjust=Adjust.FORWARD, progress=progress)
            if report.failed:
                log.warning("%d codes failed to export: %s", len(report.failed), sorted(report.failed)[:10])
            _write_universes(store, staging, universes)
            try:
                staging.rename(target)
            except OSError:
                if not (target / "calendars" / "day.txt").is_file():
                    raise
                log.info("another process exported %s first", target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        log.info("exported %s to a Qlib view at %s", store.source, target)
    missing = [u for u in universes if not (target / "instruments" / f"{u.lower()}.txt").is_file()]
    if missing:
        _write_universes(store, target, missing)
    return QlibStore.open(target, change_unit="fraction")  # export_qlib writes $change as a fraction


def _write_universes(store: MarketData, out: Path, universes: Sequence[str]) -> None:
    writer = QlibWriter(out, append=True)
    for name in universes:
        if name.lower() != "all":  # the export writes all.txt itself
            writer.write_instruments(name.lower(), store.members(name))
