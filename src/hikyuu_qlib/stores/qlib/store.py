"""QlibStore: a Qlib provider directory as a :class:`~hikyuu_qlib.ports.MarketData` store.

Two ways in:

* :meth:`QlibStore.features` — raw fields with Qlib's exact semantics (rows and float32 values identical
  to ``qlib.data.D.features``; see :mod:`.reader`), read straight from the bins with ``os.pread``.
* :meth:`QlibStore.read_bars` — one code as platform bars (original or adjusted prices; see :mod:`.bars`).

Differences from Qlib, on purpose: instruments without data are silently absent from ``features`` (as in
Qlib), but ``read_bars`` raises for them: :class:`NoBarsError` ("without bars", not a failure) for a code
that an instruments file lists (``all.txt`` or a universe such as ``csi300.txt``: delisted members often
have no ``features/<code>`` folder), :class:`UnknownCodeError` for a code the store does not know at all;
a bin that is missing or corrupt for an instrument that exists is an error (``LoadErrors`` listing every
failing instrument), never a silent gap.

Served semantics, on purpose:

* ``$change`` is served as a fraction (``0.0123`` for +1.23 %) by :meth:`QlibStore.features`, whatever
  unit the store keeps it in: many downloaded stores keep it in percent. The unit comes from the
  ``change_unit`` given to :meth:`QlibStore.open` (setting ``qlib_change_unit``, env
  ``HQ_QLIB_CHANGE_UNIT``), else it is detected once per store from a sample of bins (see :mod:`.change`).
* Bars carry traded shares (``Adjust.NONE``) and Qlib's adjusted volume (``shares / factor``, rescaled
  like the prices) whichever way the store keeps ``$volume``: divided by ``$factor`` (Qlib's convention,
  ``"adjusted"``) or as traded (``"traded"``, as many downloaded data sets keep it).
  The convention comes from the ``volume`` given to :meth:`QlibStore.open` (setting ``qlib_volume``, env
  ``HQ_QLIB_VOLUME``), else it is detected once per store (see :mod:`.volume`). :meth:`QlibStore.features`
  serves ``$volume`` as stored, as Qlib does.
* Raw and adjusted prices need ``$factor``: an instrument without a ``factor`` bin, in a store where
  other instruments have one, fails with :class:`DataFormatError` (it is never served as factor 1). A
  store in which no instrument has a ``factor`` bin at all holds unadjusted prices: they are taken as
  they are (factor 1 for every adjustment), and one log line says so.
* Damaged data fails the instrument it belongs to, with the same :class:`DataFormatError` from
  :meth:`QlibStore.read_bars`, :meth:`QlibStore.read_many` (in its errors) and :meth:`QlibStore.features`
  (in :class:`LoadErrors`): see :mod:`.reader`. An empty calendar fails every read.
* Universe names are names: one that could reach a file outside ``instruments/`` is an
  :class:`InvalidInputError`.

Stocks come from ``instruments/all.txt``: type inferred from the code (SH000xxx / SZ399xxx index, SH688
STAR, SZ30x ChiNext, else A-share), no names, valid = listed on the calendar's last day, lot 100,
tick 0.01, ``has_data`` = the code has a ``features/<code>`` folder. Qlib holds adjustment factors, not split/dividend events, so :meth:`weights` is empty.

Week, month, quarter, half-year and year bars (and their calendars) are built from the day bars by
Hikyuu's rules, over the days that traded (see :mod:`hikyuu_qlib.stores.periods`) unless the store has a calendar of that frequency
of its own (``calendars/week.txt``, ``calendars/month.txt``), which is then read as it is.

Calendars and instruments files are parsed once and re-parsed when their size or mtime changes; all
state is behind a lock, so one store serves concurrent readers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain import (
    Adjust,
    DataFormatError,
    DateRange,
    HQError,
    InvalidInputError,
    KType,
    LoadErrors,
    Market,
    NoBarsError,
    NotFoundError,
    StockCode,
    StockType,
    StoreNotFoundError,
    UnknownCodeError,
    UnsupportedKTypeError,
)
from hikyuu_qlib.domain.errors import InvalidCodeError
from hikyuu_qlib.domain.schema import DATETIME, MEMBERSHIP_SCHEMA, STOCK_SCHEMA, WEIGHT_SCHEMA, empty_bars
from hikyuu_qlib.stores.periods import aggregate_periods, period_calendar
from hikyuu_qlib.stores.qlib.bars import frame_to_bars, to_bars
from hikyuu_qlib.stores.qlib.bins import bin_path, data_extents
from hikyuu_qlib.stores.qlib.calendar import FREQ_OF, KTYPE_OF, calendar_path, freq_of, read_calendar
from hikyuu_qlib.stores.qlib.change import (
    CHANGE_UNITS,
    DIVISOR,
    SETTING_HINT,
    ChangeUnit,
    ChangeUnitSetting,
    detect_change_unit,
)
from hikyuu_qlib.stores.qlib.instruments import read_instruments, universe_path, universes
from hikyuu_qlib.stores.qlib.reader import (
    Target,
    feature_folders,
    not_a_folder,
    read_features,
    read_instrument,
)
from hikyuu_qlib.stores.qlib.volume import (
    EXPONENT,
    VOLUME_SETTINGS,
    VolumeConvention,
    VolumeSetting,
    detect_volume_convention,
)
from hikyuu_qlib.stores.qlib.volume import SETTING_HINT as VOLUME_HINT

log = logging.getLogger(__name__)
T = TypeVar("T")
DatetimeArray = npt.NDArray[np.datetime64]
BAR_FIELDS = ("open", "high", "low", "close", "volume")


class QlibStore:
    """Market data from a Qlib provider directory (``calendars/``, ``instruments/``, ``features/``)."""

    def __init__(
        self, root: Path, *, change_unit: ChangeUnitSetting = "auto", volume: VolumeSetting = "auto"
    ) -> None:
        if change_unit not in CHANGE_UNITS:
            raise InvalidInputError(f"change_unit must be one of {list(CHANGE_UNITS)}, got {change_unit!r}")
        if volume not in VOLUME_SETTINGS:
            raise InvalidInputError(f"volume must be one of {list(VOLUME_SETTINGS)}, got {volume!r}")
        self._root = Path(root).expanduser().resolve()  # canonical: one source and version per store
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, Path], tuple[tuple[int, int], Any]] = {}
        self._change_setting: ChangeUnitSetting = change_unit
        self._facts_lock = threading.Lock()
        self._change_units: dict[str, ChangeUnit] = {}
        self._volume_setting: VolumeSetting = volume
        self._volume_conventions: dict[str, VolumeConvention] = {}
        self._has_factor: dict[str, bool] = {}

    @classmethod
    def open(
        cls, path: Path | str, *, change_unit: ChangeUnitSetting = "auto", volume: VolumeSetting = "auto"
    ) -> QlibStore:
        """Open a provider directory.

        ``change_unit`` is the unit ``$change`` is stored in: ``"auto"`` detects it on first use (see
        :mod:`.change`), ``"fraction"`` or ``"percent"`` say it. Either way :meth:`features` serves
        ``$change`` as a fraction. ``volume`` is how ``$volume`` relates to traded shares: ``"auto"``
        detects it on first use (see :mod:`.volume`), ``"adjusted"`` (Qlib's ``shares / $factor``) or
        ``"traded"`` (the shares as traded) say it; bars serve traded shares either way. Raises
        :class:`StoreNotFoundError` when the directory or its ``calendars/day.txt`` is missing.
        """
        root = Path(path).expanduser()
        if not root.is_dir():
            raise StoreNotFoundError(f"Qlib provider directory not found: {root}")
        if not calendar_path(root, "day").is_file():
            missing = calendar_path(root, "day")
            raise StoreNotFoundError(f"not a Qlib provider directory: {missing} is missing")
        return cls(root, change_unit=change_unit, volume=volume)

    # -- plumbing -------------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self._root

    @property
    def source(self) -> str:
        """``qlib:`` and the store's canonical path (absolute, symlinks resolved)."""
        return f"qlib:{self._root}"

    def _cached(self, kind: str, path: Path, load: Callable[[Path], T]) -> T:
        try:
            st = path.stat()
        except FileNotFoundError:
            raise
        key = (st.st_size, st.st_mtime_ns)
        with self._lock:
            hit = self._cache.get((kind, path))
            if hit is not None and hit[0] == key:
                return hit[1]  # type: ignore[no-any-return]
        value = load(path)
        with self._lock:
            self._cache[(kind, path)] = (key, value)
        return value

    def _calendar(self, freq: str) -> DatetimeArray:
        path = calendar_path(self._root, freq)
        try:
            calendar = self._cached("calendar", path, read_calendar)
        except FileNotFoundError:
            available = ", ".join(sorted(KTYPE_OF.get(f, KType.DAY).value for f in self._freqs())) or "none"
            raise UnsupportedKTypeError(
                f"{self.source} has no calendar for frequency {freq!r} ({path} missing); "
                f"available: {available}"
            ) from None
        if not len(calendar):
            raise DataFormatError(f"calendar {path} is empty: the bins of {self.source} cannot be placed")
        return calendar

    def _freqs(self) -> list[str]:
        folder = self._root / "calendars"
        return sorted(p.stem for p in folder.glob("*.txt") if "_future" not in p.stem)

    def _spans(self, universe: str) -> pl.DataFrame:
        path = universe_path(self._root, universe)
        try:
            return self._cached("instruments", path, read_instruments)
        except FileNotFoundError:
            available = ", ".join(universes(self._root)) or "none"
            raise NotFoundError(
                f"unknown universe {universe!r} in {self.source}: no {path}; available: {available}"
            ) from None

    # -- MarketData -----------------------------------------------------------------------------------

    def data_version(self) -> str:
        """Digest of the resolved root and the name, size and mtime of every calendar, instruments and bin
        file: the same store named in any spelling has one version.

        One ``stat`` per file (tens of milliseconds for a few thousand bins): it also sees in-place
        appends, which Qlib's own dump tools make, not only atomic replacements.
        """
        digest = hashlib.sha1()
        digest.update(f"{self._root}\n".encode())
        for sub in ("calendars", "instruments"):
            _stat_tree(self._root / sub, digest, depth=0)
        _stat_tree(self._root / "features", digest, depth=1)
        return digest.hexdigest()[:16]

    def markets(self) -> list[Market]:
        codes = self._spans("all")["code"].str.slice(0, 2).unique().to_list()
        return [m for m in Market if m.value in codes]

    def ktypes(self) -> frozenset[KType]:
        """The frequencies with a calendar, and the periods built from day bars when there is a day one."""
        native = {KTYPE_OF[f] for f in self._freqs() if f in KTYPE_OF}
        if KType.DAY in native:
            native |= {k for k in KType if k.is_period_of_day}
        return frozenset(native)

    def _derived(self, ktype: KType) -> bool:
        """Whether ``ktype`` bars are built from day bars: a period of days without a calendar of its own."""
        return ktype.is_period_of_day and (
            ktype not in FREQ_OF or not calendar_path(self._root, FREQ_OF[ktype]).is_file()
        )

    def stocks(
        self,
        *,
        market: Market | None = None,
        types: Sequence[StockType] | None = None,
        valid: bool | None = True,
    ) -> pl.DataFrame:
        last = self._calendar("day")[-1]
        spans = self._spans("all")
        market_of = pl.col("code").str.slice(0, 2)
        folders = feature_folders(self._root)
        frame = (
            spans.filter(market_of.is_in([m.value for m in Market]) & (pl.col("code").str.len_chars() == 8))
            .group_by("code")
            .agg(pl.col("start").min(), pl.col("end").max())
            .with_columns(
                market_of.alias("market"),
                pl.col("code").str.slice(2).alias("symbol"),
                pl.lit(None, dtype=pl.String).alias("name"),
                _type_expr().alias("type"),
                (pl.col("end") >= pl.lit(last).cast(DATETIME)).alias("valid"),
                pl.col("start").dt.date().alias("start_date"),
                pl.lit(100, dtype=pl.Int64).alias("lot"),
                pl.lit(0.01).alias("tick"),
                pl.col("code").str.to_lowercase().is_in(list(folders)).alias("has_data"),
            )
            .with_columns(
                pl.when(pl.col("valid")).then(None).otherwise(pl.col("end").dt.date()).alias("end_date")
            )
        )
        if market is not None:
            frame = frame.filter(pl.col("market") == market.value)
        if types is not None:
            frame = frame.filter(pl.col("type").is_in([int(t) for t in types]))
        if valid is not None:
            frame = frame.filter(pl.col("valid") == valid)
        return frame.select([pl.col(c).cast(t) for c, t in STOCK_SCHEMA.items()]).sort("code")

    def calendar(self, *, ktype: KType = KType.DAY, dates: DateRange | None = None) -> pl.Series:
        if self._derived(ktype):
            labels = period_calendar(self.calendar(), ktype)
            return labels if dates is None else labels.filter(labels.is_between(dates.start, dates.end))
        cal = self._calendar(freq_of(ktype))
        return pl.Series("datetime", cal if dates is None else cal[dates.calendar_slice(cal)]).cast(DATETIME)

    def members(self, universe: str, dates: DateRange | None = None) -> pl.DataFrame:
        spans = self._spans(universe).select(list(MEMBERSHIP_SCHEMA))
        if dates is not None:
            spans = spans.filter(
                (pl.col("end") >= pl.lit(dates.start).cast(DATETIME))
                & (pl.col("start") <= pl.lit(dates.end).cast(DATETIME))
            )
        return spans.sort(["code", "start"])

    def read_bars(
        self,
        code: StockCode,
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> pl.DataFrame:
        code = StockCode.parse(code)
        if self._derived(ktype):
            return aggregate_periods(self.read_bars(code, adjust=adjust), ktype, dates, traded_only=True)
        freq = freq_of(ktype)
        cal = self._calendar(freq)
        folder = code.qlib_folder
        if not (self._root / "features" / folder).is_dir():
            if (damage := not_a_folder(self._root, str(code), folder)) is not None:
                raise damage
            raise self._absent(code)
        fields = [*BAR_FIELDS, *self._factor_field(freq)]
        fields += [f for f in ("amount",) if bin_path(self._root, folder, f, freq).is_file()]
        got = read_instrument(self._root, Target(str(code), folder), fields, freq, cal, 0, len(cal) - 1)
        if got is None:
            index = np.empty(0, dtype=np.int64)
            columns = [np.empty(0, dtype=np.float32) for _ in fields]
        else:
            index, columns = got
        exponent = self._volume_exponent(freq, fields)
        bars = to_bars(str(code), cal[index], dict(zip(fields, columns, strict=True)), adjust, exponent)
        if dates is not None:
            bars = bars.filter(pl.col("datetime").is_between(dates.start, dates.end))
        return bars

    def read_many(
        self,
        codes: Sequence[StockCode],
        *,
        ktype: KType = KType.DAY,
        adjust: Adjust = Adjust.NONE,
        dates: DateRange | None = None,
    ) -> tuple[pl.DataFrame, dict[str, HQError]]:
        """:meth:`read_bars` of many codes in one columnar pass: the frame, and each failing code's error.

        Reads every code's full history in one :meth:`features` query (forward and backward
        adjustment need the first or last factor). Damaged instruments fail with the error
        :meth:`read_bars` gives them and the others are read again in one pass; an error of the store as
        a whole (its calendar) fails every code that has data; a ktype Qlib has no frequency for, or one the
        store has no calendar for, raises.
        Periods of days are built from the day bars (see the module doc).
        """
        if self._derived(ktype):
            days, failed = self.read_many(codes, adjust=adjust)
            return aggregate_periods(days, ktype, dates, traded_only=True), failed
        errors: dict[str, HQError] = {}
        present: list[StockCode] = []
        listed: set[str] | None = None
        for code in codes:
            folder = StockCode.parse(code).qlib_folder
            if (self._root / "features" / folder).is_dir():
                present.append(StockCode.parse(code))
            else:
                damage = not_a_folder(self._root, str(code), folder)
                if damage is None:
                    listed = self._listed() if listed is None else listed
                errors[str(code)] = damage or self._absent(StockCode.parse(code), listed)
        if not present:
            return empty_bars(with_factor=True), errors
        freq = freq_of(ktype)  # a ktype Qlib has no frequency for fails the call
        if ktype not in self.ktypes():  # so does one the store has no calendar for: every code would fail
            self._calendar(freq)  # raises UnsupportedKTypeError naming the missing calendar
        try:
            raw = self._bar_fields(present, freq, errors)
        except LoadErrors:
            raise  # failures it cannot tell apart: the caller reads the codes one by one
        except HQError as exc:  # the store cannot serve this batch at all: every code fails with it
            errors.update({str(c): exc for c in present})
            return empty_bars(with_factor=True), errors
        if raw is None:
            return empty_bars(with_factor=True), errors
        exponent = self._volume_exponent(freq, raw.columns)
        if "factor" not in raw.columns:
            raw = raw.with_columns(pl.lit(1.0, dtype=pl.Float32).alias("factor"))
        bars, bad = frame_to_bars(raw, adjust, exponent)
        errors.update({code: DataFormatError(message) for code, message in bad.items()})
        if dates is not None:
            bars = bars.filter(pl.col("datetime").is_between(dates.start, dates.end))
        return bars, errors

    def _bar_fields(
        self, codes: Sequence[StockCode], freq: str, errors: dict[str, HQError]
    ) -> pl.DataFrame | None:
        """The raw bar fields of ``codes`` over their whole history in one :meth:`features` pass (``None``
        when no code is left). Damaged instruments join ``errors`` (with the error :meth:`read_bars`
        gives them) and the others are read again; an error of the whole store raises."""
        extra = [*self._factor_field(freq)]
        while codes:
            folders = [c.qlib_folder for c in codes]
            fields = extra + [
                f for f in ("amount",) if all(bin_path(self._root, d, f, freq).is_file() for d in folders)
            ]
            try:
                return self.features(codes, [*BAR_FIELDS, *fields], None, freq=freq)
            except LoadErrors as exc:
                rest = [c for c in codes if str(c) not in exc.errors]
                if len(rest) == len(codes):
                    raise
                errors.update(
                    {
                        c: e if isinstance(e, HQError) else DataFormatError(str(e))
                        for c, e in exc.errors.items()
                    }
                )
                codes = rest
        return None

    def _absent(self, code: StockCode, listed: set[str] | None = None) -> NoBarsError | UnknownCodeError:
        """The error for a code without a ``features`` folder: listed in an instruments file -> without bars
        (``listed``: :meth:`_listed`, when the caller has it)."""
        folder = code.qlib_folder
        if str(code) in (self._listed() if listed is None else listed):
            return NoBarsError(
                f"{code} has no bars in {self.source}: it is listed but has no features/{folder}"
            )
        return UnknownCodeError(
            f"unknown code {code} in {self.source}: not listed, no features/{folder} folder"
        )

    def _listed(self) -> set[str]:
        """Every code named in an instruments file (``all.txt`` and the universes)."""
        listed: set[str] = set()
        for name in universes(self._root):
            try:
                listed.update(self._spans(name)["code"].to_list())
            except (NotFoundError, DataFormatError, InvalidInputError):
                continue
        return listed

    def weights(self, code: StockCode) -> pl.DataFrame:
        """Always empty: Qlib stores adjustment factors, not split/dividend events."""
        return pl.DataFrame(schema=WEIGHT_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._cache.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- raw Qlib access ------------------------------------------------------------------------------

    def instruments(self, universe: str = "all") -> list[str]:
        """Canonical codes listed in ``instruments/<universe>.txt`` (sorted, unique)."""
        return sorted(set(self._spans(universe)["code"].to_list()))

    def fields(self, codes: Sequence[str | StockCode] | None = None, freq: str = "day") -> frozenset[str]:
        """The fields :meth:`features` serves for every one of ``codes`` that has data (a ``features``
        folder; default: every instrument): the names of the ``<field>.<freq>.bin`` files they all hold.
        Empty when none of them has data (:class:`~hikyuu_qlib.ports.FeatureSource`)."""
        if codes is None:
            folders = sorted(feature_folders(self._root))
        else:
            folders = sorted({StockCode.parse(c).qlib_folder for c in codes})
        suffix = f".{freq.lower()}.bin"
        common: set[str] | None = None
        for folder in folders:
            try:
                with os.scandir(self._root / "features" / folder) as entries:
                    names = {e.name[: -len(suffix)] for e in entries if e.name.endswith(suffix)}
            except (FileNotFoundError, NotADirectoryError):
                continue  # no data: absent from features, as in Qlib
            common = names if common is None else common & names
            if not common:
                break
        return frozenset(common or ())

    def data_spans(self, freq: str = "day") -> pl.DataFrame:
        """``code, start, end``: every instrument with a ``features`` folder and the first and last day of
        its ``close`` bin (the span of all its bins; null where that bin is missing or corrupt), from the
        bins' headers (:class:`~hikyuu_qlib.ports.DataSpans`: what sizes a run's memory plan)."""
        folders = sorted(feature_folders(self._root))
        calendar = self._calendar(freq)
        firsts, lasts = data_extents(self._root, folders, "close", freq, len(calendar))
        first, last = np.asarray(firsts, dtype=np.int64), np.asarray(lasts, dtype=np.int64)
        when = calendar.astype("datetime64[ms]")
        top = len(when) - 1
        frame = pl.DataFrame(
            {
                "code": [f.upper() for f in folders],
                "start": when[np.clip(first, 0, top)],
                "end": when[np.clip(last, 0, top)],
                "known": (first >= 0) & (first <= top),
            }
        )
        return frame.select(
            pl.col("code"),
            *[pl.when("known").then(pl.col(c).cast(DATETIME)).alias(c) for c in ("start", "end")],
        )

    def features(
        self,
        instruments: str | Sequence[str | StockCode],
        fields: Sequence[str],
        dates: DateRange | None = None,
        freq: str = "day",
        *,
        as_stored: bool = False,
    ) -> pl.DataFrame:
        """Raw fields as ``D.features`` returns them: ``code, datetime, <field>…`` (Float32).

        ``instruments`` is a universe name (rows limited to membership spans, like
        ``D.instruments(name)``), a single code, or a list of codes (no span masking). Instruments
        without data are absent, as in Qlib. ``dates`` is aligned to the calendar as Qlib aligns
        ``start_time``/``end_time``. Failing instruments raise :class:`LoadErrors` (all of them).

        ``$change`` is served as a fraction (``0.0123`` for +1.23 %) whatever unit the store keeps it in
        (:meth:`change_unit`); ``as_stored=True`` returns it as stored, every value bit for bit as
        ``D.features`` gives it.
        """
        if isinstance(fields, str):
            fields = [fields]
        cal = self._calendar(freq)
        span = slice(0, len(cal)) if dates is None else dates.calendar_slice(cal)
        targets = self._targets(instruments, cal, freq)
        frame = read_features(self._root, cal, freq, targets, fields, span.start, span.stop - 1)
        if as_stored or "change" not in frame.columns or self.change_unit(freq) == "fraction":
            return frame
        divisor = DIVISOR[self.change_unit(freq)]
        return frame.with_columns((pl.col("change").cast(pl.Float64) / divisor).cast(pl.Float32))

    def change_unit(self, freq: str = "day") -> ChangeUnit:
        """The unit this store keeps ``$change`` in: the setting given to :meth:`open`, else detected
        once from a sample of its bins (one log line names the store and the unit)."""
        with self._facts_lock:
            unit = self._change_units.get(freq)
            if unit is not None:
                return unit
            if self._change_setting != "auto":
                unit = self._change_setting
                log.info("%s keeps $change as a %s (setting qlib_change_unit); it is served as a fraction",
                         self.source, unit)  # fmt: skip
            else:
                cal = self._calendar(freq)
                found = detect_change_unit(self._root, sorted(feature_folders(self._root)), len(cal), freq)
                unit = found.unit
                if found.conclusive:
                    log.info("%s keeps $change as a %s (detected: %s); it is served as a fraction",
                             self.source, unit, found.reason)  # fmt: skip
                else:
                    log.warning("%s: cannot tell the unit of $change (%s); taking it as a fraction, "
                                "Qlib's convention; %s", self.source, found.reason, SETTING_HINT)  # fmt: skip
            self._change_units[freq] = unit
            return unit

    def volume_convention(self, freq: str = "day") -> VolumeConvention:
        """How this store's ``$volume`` relates to traded shares (see :mod:`.volume`): the setting given
        to :meth:`open`, else detected once from a sample of its bins (one log line says which)."""
        with self._facts_lock:
            convention = self._volume_conventions.get(freq)
            if convention is not None:
                return convention
            if self._volume_setting != "auto":
                convention = self._volume_setting
                log.info("%s keeps $volume %s (setting qlib_volume); bars serve traded shares",
                         self.source, convention)  # fmt: skip
            else:
                cal = self._calendar(freq)
                found = detect_volume_convention(
                    self._root, sorted(feature_folders(self._root)), len(cal), freq
                )
                convention = found.convention
                if found.conclusive:
                    log.info("%s keeps $volume %s (detected: %s); bars serve traded shares",
                             self.source, convention, found.reason)  # fmt: skip
                else:
                    log.info("%s: cannot tell how $volume is scaled (%s); taking Qlib's convention, "
                             "adjusted (traded shares / $factor); %s", self.source, found.reason, VOLUME_HINT)  # fmt: skip
            self._volume_conventions[freq] = convention
            return convention

    def _volume_exponent(self, freq: str, fields: Sequence[str]) -> int:
        """Traded shares are ``$volume × $factor ** exponent``; without a factor field both are 1."""
        return EXPONENT[self.volume_convention(freq)] if "factor" in fields else 1

    def _factor_field(self, freq: str) -> list[str]:
        """``["factor"]``, or ``[]`` for a store in which no instrument has a factor bin (see module doc)."""
        with self._facts_lock:
            known = self._has_factor.get(freq)
            if known is None:
                known = any(
                    bin_path(self._root, folder, "factor", freq).is_file()
                    for folder in sorted(feature_folders(self._root))
                )
                self._has_factor[freq] = known
                if not known:
                    log.info("%s has no $factor field for any instrument: its %s prices are taken as "
                             "unadjusted (factor 1)", self.source, freq)  # fmt: skip
        return ["factor"] if known else []

    def _targets(
        self, instruments: str | Sequence[str | StockCode], cal: DatetimeArray, freq: str = "day"
    ) -> list[Target]:
        if isinstance(instruments, str):
            name = instruments.strip().lower()
            if universe_path(self._root, name).is_file():
                return self._universe_targets(name, cal, freq)
            try:
                instruments = [StockCode.parse(instruments)]
            except InvalidCodeError:
                available = ", ".join(universes(self._root)) or "none"
                raise NotFoundError(
                    f"{instruments!r} is neither a universe of {self.source} ({available}) nor a stock code"
                ) from None
        codes = sorted({str(StockCode.parse(c)) for c in instruments})
        return [Target(c, c.lower()) for c in codes]

    def _universe_targets(self, name: str, cal: DatetimeArray, freq: str) -> list[Target]:
        spans = self._spans(name)
        path = universe_path(self._root, name)
        # index spans depend on the calendar too: a re-read calendar is a new array
        kind = f"targets:{freq}:{id(cal)}:{len(cal)}"
        return self._cached(kind, path, lambda _p: _span_targets(spans, cal))


def _span_targets(spans: pl.DataFrame, cal: DatetimeArray) -> list[Target]:
    """Per-instrument calendar-index spans of a universe (Qlib's membership mask, as index ranges)."""
    starts = np.searchsorted(cal, spans["start"].to_numpy().astype("datetime64[ms]"), side="left")
    ends = np.searchsorted(cal, spans["end"].to_numpy().astype("datetime64[ms]"), side="right") - 1
    grouped: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for code, name, a, b in zip(
        spans["code"].to_list(), spans["name"].to_list(), starts.tolist(), ends.tolist(), strict=True
    ):
        grouped.setdefault((code, name.lower()), []).append((a, b))
    return [Target(code, folder, tuple(s)) for (code, folder), s in sorted(grouped.items())]


def _type_expr() -> pl.Expr:
    code = pl.col("code")
    return (
        pl.when(code.str.starts_with("SH000") | code.str.starts_with("SZ399"))
        .then(pl.lit(int(StockType.INDEX)))
        .when(code.str.starts_with("SH688"))
        .then(pl.lit(int(StockType.STAR)))
        .when(code.str.starts_with("SZ30"))
        .then(pl.lit(int(StockType.CHINEXT)))
        .otherwise(pl.lit(int(StockType.A_SHARE)))
    )


def _stat_tree(folder: Path, digest: Any, depth: int) -> None:
    """Feed names, sizes and mtimes of the files under ``folder`` (``depth`` levels down) to ``digest``."""
    names: list[str] = []
    stats: list[int] = []
    pending = [(str(folder), depth)]
    while pending:
        path, level = pending.pop()
        try:
            entries = sorted(os.scandir(path), key=lambda e: e.name)
        except FileNotFoundError:
            names.append(f"{path}:missing")
            continue
        for entry in entries:
            if entry.is_dir():
                if level > 0:
                    pending.append((entry.path, level - 1))
                continue
            st = entry.stat()
            names.append(entry.path)
            stats.extend((st.st_size, st.st_mtime_ns))
    digest.update("\n".join(names).encode())
    digest.update(np.asarray(stats, dtype=np.int64).tobytes())


__all__ = ["QlibStore", "feature_folders"]
