"""Alpha158: Qlib's 158 features, declared as a table and computed over the whole universe at once.

The table mirrors ``Alpha158DL.get_feature_config`` (kbar, price at lag 0, then 29 rolling families
over windows 5, 10, 20, 30, 60), with Qlib's names, order and expressions, quirks included:
``ROC`` is ``Ref($close, d)/$close``, the ``1e-12`` epsilons sit where Qlib puts them, and
``VWAP0`` is NaN when the store has no ``vwap`` field (as Qlib loads a missing field).

The engine follows Qlib's arithmetic: element-wise operators run in float32 on the float32 fields
(as NumPy does in Qlib), rolling operators run in float64 (as pandas does), and the result is cast to
float32 like ``D.features``. Every window kernel runs over one contiguous array of all codes
(see :mod:`hikyuu_qlib.factors.rolling`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import polars as pl

from hikyuu_qlib.domain.errors import InvalidInputError
from hikyuu_qlib.factors import rolling
from hikyuu_qlib.factors.rolling import F64, I64

log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
WINDOWS: tuple[int, ...] = (5, 10, 20, 30, 60)
KBAR: tuple[str, ...] = ("KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2")
PRICE: tuple[str, ...] = ("OPEN0", "HIGH0", "LOW0", "VWAP0")
ROLLING: tuple[str, ...] = (
    "ROC", "MA", "STD", "BETA", "RSQR", "RESI", "MAX", "MIN", "QTLU", "QTLD", "RANK", "RSV", "IMAX",
    "IMIN", "IMXD", "CORR", "CORD", "CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD", "VMA", "VSTD",
    "WVMA", "VSUMP", "VSUMN", "VSUMD",
)  # fmt: skip
INPUTS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
EPS = 1e-12
#: The extra history Qlib loads before the start date for Alpha158 (its largest extended window).
LOOKBACK = 60
#: The rows after a date that the label needs (``Ref($close, -2)``).
LOOKAHEAD = 2


@dataclass(frozen=True, slots=True)
class Feature:
    """One Alpha158 column: its name, family and window (0 for the non-rolling ones)."""

    name: str
    family: str
    window: int


def alpha158_table() -> list[Feature]:
    """The 158 features in Qlib's column order."""
    table = [Feature(name, "KBAR", 0) for name in KBAR]
    table += [Feature(name, "PRICE", 0) for name in PRICE]
    table += [Feature(f"{family}{w}", family, w) for family in ROLLING for w in WINDOWS]
    return table


def alpha158_names() -> list[str]:
    """The 158 column names in Qlib's order: KMID, KLEN, … VSUMD60."""
    return [f.name for f in alpha158_table()]


class _Columns:
    """The output matrix (rows kept × 158, float32, column-major) and where each name goes."""

    def __init__(self, keep: npt.NDArray[np.bool_] | None, n: int) -> None:
        self.keep = keep
        rows = n if keep is None else int(keep.sum())
        self.names = alpha158_names()
        self.index = {name: i for i, name in enumerate(self.names)}
        self.data = np.empty((rows, len(self.names)), dtype=np.float32, order="F")

    def put(self, name: str, values: npt.NDArray[np.floating]) -> None:
        if self.keep is not None:
            values = values[self.keep]
        self.data[:, self.index[name]] = values


def _div(a: npt.NDArray[np.floating], b: npt.NDArray[np.floating]) -> F64:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.divide(a, b), dtype=np.float64)


class _Engine:
    """Computes the families on the arrays of one frame; keeps shared intermediates."""

    def __init__(self, fields: dict[str, F32], starts: I64, out: _Columns) -> None:
        self.f = fields
        self.starts = starts
        self.out = out
        self.windows = np.asarray(WINDOWS, dtype=np.int64)

    def ref(self, x: F32, lag: int) -> F32:
        return rolling.shift(x, self.starts, lag)

    def kbar(self) -> None:
        o, h, lo, c = self.f["open"], self.f["high"], self.f["low"], self.f["close"]
        with np.errstate(divide="ignore", invalid="ignore"):
            rng = (h - lo) + np.float32(EPS)
            up = h - np.maximum(o, c)
            down = np.minimum(o, c) - lo
            shadow = (np.float32(2) * c - h) - lo
            body = c - o
            values = {
                "KMID": body / o, "KLEN": (h - lo) / o, "KMID2": body / rng, "KUP": up / o,
                "KUP2": up / rng, "KLOW": down / o, "KLOW2": down / rng, "KSFT": shadow / o,
                "KSFT2": shadow / rng,
            }  # fmt: skip
            for name, v in values.items():
                self.out.put(name, v)
            for name, field in (("OPEN0", "open"), ("HIGH0", "high"), ("LOW0", "low"), ("VWAP0", "vwap")):
                if field in self.f:
                    self.out.put(name, self.f[field] / c)
                else:
                    self.out.put(name, np.full(c.shape, np.nan, dtype=np.float32))

    def price_rolling(self) -> None:
        c, h, lo = self.f["close"], self.f["high"], self.f["low"]
        c64 = c.astype(np.float64)
        sums, counts, stds = rolling.sum_std(c64, self.starts, self.windows)
        slope, rsq, resi = rolling.regression(c64, self.starts, self.windows)
        hi_v, hi_i = rolling.extremum(h.astype(np.float64), self.starts, self.windows, True)
        lo_v, lo_i = rolling.extremum(lo.astype(np.float64), self.starts, self.windows, False)
        qtl = rolling.quantiles(c64, self.starts, self.windows, np.array([0.8, 0.2]))
        rank = rolling.rank_last(c64, self.starts, self.windows)
        for k, w in enumerate(WINDOWS):
            with np.errstate(divide="ignore", invalid="ignore"):
                self.out.put(f"ROC{w}", self.ref(c, w) / c)
                self.out.put(f"MA{w}", _div(sums[k] / counts[k], c))
                self.out.put(f"STD{w}", _div(stds[k], c))
                self.out.put(f"BETA{w}", _div(slope[k], c))
                flat = np.isclose(stds[k], 0.0, atol=2e-05)
                self.out.put(f"RSQR{w}", np.where(flat, np.nan, rsq[k]))
                self.out.put(f"RESI{w}", _div(resi[k], c))
                self.out.put(f"MAX{w}", _div(hi_v[k], c))
                self.out.put(f"MIN{w}", _div(lo_v[k], c))
                self.out.put(f"QTLU{w}", _div(qtl[k, 0], c))
                self.out.put(f"QTLD{w}", _div(qtl[k, 1], c))
                self.out.put(f"RANK{w}", rank[k])
                self.out.put(f"RSV{w}", _div(c - lo_v[k], (hi_v[k] - lo_v[k]) + EPS))
                self.out.put(f"IMAX{w}", hi_i[k] / w)
                self.out.put(f"IMIN{w}", lo_i[k] / w)
                self.out.put(f"IMXD{w}", (hi_i[k] - lo_i[k]) / w)

    def correlations(self) -> None:
        c, v = self.f["close"], self.f["volume"]
        c1, v1 = self.ref(c, 1), self.ref(v, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            pairs = {
                "CORR": (c, np.log(v + np.float32(1))),
                "CORD": (c / c1, np.log(v / v1 + np.float32(1))),
            }
        for family, (left, right) in pairs.items():
            x = left.astype(np.float64)
            y = right.astype(np.float64)
            value = rolling.corr(x, y, self.starts, self.windows)
            _, _, sx = rolling.sum_std(x, self.starts, self.windows)
            _, _, sy = rolling.sum_std(y, self.starts, self.windows)
            for k, w in enumerate(WINDOWS):
                flat = np.isclose(sx[k], 0.0, atol=2e-05) | np.isclose(sy[k], 0.0, atol=2e-05)
                self.out.put(f"{family}{w}", np.where(flat, np.nan, value[k]))

    def counts(self) -> None:
        c = self.f["close"]
        c1 = self.ref(c, 1)
        up_sum, n, _ = rolling.sum_std((c > c1).astype(np.float64), self.starts, self.windows)
        down_sum, _, _ = rolling.sum_std((c < c1).astype(np.float64), self.starts, self.windows)
        for k, w in enumerate(WINDOWS):
            up = up_sum[k] / n[k]
            down = down_sum[k] / n[k]
            self.out.put(f"CNTP{w}", up)
            self.out.put(f"CNTN{w}", down)
            self.out.put(f"CNTD{w}", up - down)

    def gains(self, field: str, prefix: str) -> None:
        x = self.f[field]
        x1 = self.ref(x, 1)
        diff = x - x1
        zero = np.float32(0)
        gain, _, _ = rolling.sum_std(np.maximum(diff, zero).astype(np.float64), self.starts, self.windows)
        loss, _, _ = rolling.sum_std(np.maximum(x1 - x, zero).astype(np.float64), self.starts, self.windows)
        total, _, _ = rolling.sum_std(np.abs(diff).astype(np.float64), self.starts, self.windows)
        for k, w in enumerate(WINDOWS):
            den = total[k] + EPS
            self.out.put(f"{prefix}SUMP{w}", _div(gain[k], den))
            self.out.put(f"{prefix}SUMN{w}", _div(loss[k], den))
            self.out.put(f"{prefix}SUMD{w}", _div(gain[k] - loss[k], den))

    def volumes(self) -> None:
        c, v = self.f["close"], self.f["volume"]
        vol_eps = v + np.float32(EPS)
        sums, counts, stds = rolling.sum_std(v.astype(np.float64), self.starts, self.windows)
        with np.errstate(divide="ignore", invalid="ignore"):
            weighted = np.abs(c / self.ref(c, 1) - np.float32(1)) * v
        wsum, wcount, wstd = rolling.sum_std(weighted.astype(np.float64), self.starts, self.windows)
        for k, w in enumerate(WINDOWS):
            self.out.put(f"VMA{w}", _div(sums[k] / counts[k], vol_eps))
            self.out.put(f"VSTD{w}", _div(stds[k], vol_eps))
            self.out.put(f"WVMA{w}", _div(wstd[k], wsum[k] / wcount[k] + EPS))

    def run(self) -> None:
        steps: list[Callable[[], None]] = [
            self.kbar,
            self.price_rolling,
            self.correlations,
            self.counts,
            lambda: self.gains("close", ""),
            self.volumes,
            lambda: self.gains("volume", "V"),
        ]
        for step in steps:
            step()


def _fields(bars: pl.DataFrame) -> dict[str, F32]:
    missing = [c for c in ("code", "datetime", *INPUTS) if c not in bars.columns]
    if missing:
        raise InvalidInputError(f"bars frame lacks column(s) {', '.join(missing)} needed by Alpha158")
    names = [*INPUTS, *(["vwap"] if "vwap" in bars.columns else [])]
    return {
        name: np.ascontiguousarray(bars[name].cast(pl.Float32).fill_null(np.nan).to_numpy()) for name in names
    }


def group_starts(codes: pl.Series) -> I64:
    """First row of each run of equal codes, plus the total length as the last element."""
    n = codes.len()
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    changed = (codes != codes.shift(1)).fill_null(True).to_numpy()
    return np.append(np.flatnonzero(changed), n).astype(np.int64)


def _sorted(bars: pl.DataFrame) -> bool:
    code, prev_code = pl.col("code"), pl.col("code").shift(1)
    later = (code > prev_code) | ((code == prev_code) & (pl.col("datetime") > pl.col("datetime").shift(1)))
    return bool(bars.select(later.fill_null(True).all()).item())


def alpha158(bars: pl.DataFrame, keep: pl.Series | None = None) -> pl.DataFrame:
    """Alpha158 over a bars frame sorted by (code, datetime).

    ``bars`` holds ``code, datetime, open, high, low, close, volume`` (and ``vwap`` when the store has
    it) as Qlib's adjusted float32 values. Each code's rows are one continuous history: rolling
    windows start at its first row. Returns ``code, datetime`` and the 158 Float32 columns for every
    row, or only for the rows where the boolean series ``keep`` is true.
    """
    fields = _fields(bars)
    if not _sorted(bars):
        raise InvalidInputError("bars frame must be sorted by (code, datetime) with unique rows")
    mask = None if keep is None else keep.fill_null(False).to_numpy().astype(bool)
    out = _Columns(mask, bars.height)
    _Engine(fields, group_starts(bars["code"]), out).run()
    index = bars.select("code", "datetime")
    if keep is not None:
        index = index.filter(keep.fill_null(False))
    columns = [pl.Series(name, out.data[:, j]) for j, name in enumerate(out.names)]
    return index.with_columns(columns)
