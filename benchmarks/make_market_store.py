"""Generate a whole-market-size Hikyuu store from the real price paths of the shared Qlib data.

    python benchmarks/make_market_store.py [--stocks N] [--out DIR] [--seed S] [--force]

Each synthetic stock replays real daily histories of ../shared/data/qlib_cn (raw price =
$close/$factor, volume = $volume*$factor, OHLC shapes and suspensions kept): the returns of one real
history, preceded by part of another to reach a length drawn between ~1,800 and ~5,600 bars, start
price and volume scaled by a deterministic jitter, ending on the last day (or earlier for ~15% that
are "delisted"). Jumps of $factor become stkWeight rows (bonus shares for big jumps, cash dividends
otherwise), so adjustment has real work. The calendar is every weekday from 1999 to the last Qlib
day, and SH000001 / SZ399001 cover it fully. Writing goes through ``HikyuuWriter``: one process per
market file. A ``params.json`` marker makes the script idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import data_root, work_dir
from generated_stores import generator_main, read_whole_bin, up_to_date
from hikyuu_qlib.domain import Market, StockCode
from hikyuu_qlib.stores.hikyuu.h5 import ms_to_ymdhm
from hikyuu_qlib.stores.hikyuu.writer import WRITE_DTYPE, HikyuuWriter

log = logging.getLogger("make_market_store")
VERSION = 2
CAL_START = dt.date(1999, 1, 4)
DEFAULT_STOCKS = 4600


def load_sources(qlib_dir: Path) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """Raw daily histories of the Qlib stocks (contiguous, NaN = suspended) and the two indices."""
    n_cal = len((qlib_dir / "calendars" / "day.txt").read_text().split())
    sources: list[dict[str, np.ndarray]] = []
    index: dict[str, np.ndarray] = {}
    for folder in sorted((qlib_dir / "features").iterdir()):
        fields = {
            f: read_whole_bin(folder / f"{f}.day.bin", n_cal)
            for f in ("open", "high", "low", "close", "volume", "factor")
        }
        factor = fields["factor"]
        ok = np.isfinite(fields["close"]) & np.isfinite(factor) & (factor > 0)
        if ok.sum() < 250:
            continue
        first, last = np.argmax(ok), len(ok) - 1 - np.argmax(ok[::-1])
        sl = slice(first, last + 1)
        raw = {k: fields[k][sl] / factor[sl] for k in ("open", "high", "low", "close")}
        raw["volume"] = fields["volume"][sl] * factor[sl]
        raw["factor"] = factor[sl]
        if folder.name in ("sh000001", "sz399001"):
            index[folder.name] = raw
        elif not folder.name.startswith(("sh000", "sz399")):
            sources.append(raw)
    return sources, index


def weekday_calendar(end: dt.date) -> np.ndarray:
    days = np.arange(np.datetime64(CAL_START), np.datetime64(end) + 1, dtype="datetime64[D]")
    weekday = (days.astype(np.int64) + 3) % 7
    return days[weekday < 5].astype(np.int64) * 86_400_000


def synth_codes(n: int) -> list[StockCode]:
    sh = [f"{600000 + i:06d}" for i in range(0, 4000)] + [f"{688000 + i:06d}" for i in range(0, 900)]
    sz = [f"{1 + i:06d}" for i in range(0, 3000)] + [f"{300000 + i:06d}" for i in range(0, 1900)]
    codes: list[StockCode] = []
    for i in range(n):
        codes.append(StockCode(Market.SH, sh[i // 2]) if i % 2 == 0 else StockCode(Market.SZ, sz[i // 2]))
    return codes


def build_stock(
    rng: np.random.Generator, a: dict[str, np.ndarray], b: dict[str, np.ndarray], length: int
) -> dict[str, np.ndarray]:
    """Raw bars of one synthetic stock of ``length`` calendar slots: b's tail then a (returns replayed)."""
    take_a = min(length, a["close"].size)
    need_b = max(0, length - take_a)
    parts = [{k: v[-need_b:] for k, v in b.items()}] if need_b else []
    parts.append({k: v[-take_a:] for k, v in a.items()})
    cat = {k: np.concatenate([p[k] for p in parts]) for k in a}
    close = cat["close"]
    valid = np.isfinite(close) & np.isfinite(cat["open"]) & (close > 0) & (cat["volume"] > 0)
    # ratio of each raw close to the previous valid close (ex-date drops included), rebuilt from a start price
    idx = np.flatnonzero(valid)
    c = close[idx]
    rel = np.ones_like(c)
    rel[1:] = c[1:] / c[:-1]
    # the stitch point between the two histories is not a real return
    if need_b:
        seam = np.searchsorted(idx, need_b)
        if 0 < seam < rel.size:
            rel[seam] = 1.0
    start_price = float(np.exp(rng.uniform(np.log(3.0), np.log(60.0))))
    path = start_price * np.cumprod(rel)
    scale = path / c
    vol_scale = float(np.exp(rng.uniform(np.log(0.2), np.log(5.0))))
    f = cat["factor"][idx]
    jump = np.ones_like(f)
    jump[1:] = f[1:] / f[:-1]
    if need_b and 0 < (seam := np.searchsorted(idx, need_b)) < jump.size:
        jump[seam] = 1.0
    return {
        "slot": idx,
        "open": cat["open"][idx] * scale,
        "high": np.maximum(cat["high"][idx] * scale, path),
        "low": np.minimum(cat["low"][idx] * scale, path),
        "close": path,
        "volume": cat["volume"][idx] * vol_scale,
        "jump": jump,
    }


def records_of(bars: dict[str, np.ndarray], day_ms: np.ndarray, *, lots: bool) -> np.ndarray:
    n = bars["close"].size
    rec = np.empty(n, dtype=WRITE_DTYPE)
    rec["datetime"] = ms_to_ymdhm(day_ms)
    for field, col in (
        ("openPrice", "open"),
        ("highPrice", "high"),
        ("lowPrice", "low"),
        ("closePrice", "close"),
    ):
        rec[field] = np.maximum(np.round(bars[col] * 1000.0), 1)
    hi = np.maximum.reduce([rec["openPrice"], rec["highPrice"], rec["lowPrice"], rec["closePrice"]])
    lo = np.minimum.reduce([rec["openPrice"], rec["highPrice"], rec["lowPrice"], rec["closePrice"]])
    rec["highPrice"], rec["lowPrice"] = hi, lo
    lots_count = np.maximum(np.round(bars["volume"] / 100.0), 1)
    rec["transCount"] = lots_count if lots else np.round(bars["volume"])
    shares = lots_count * 100.0 if lots else np.round(bars["volume"])
    rec["transAmount"] = np.round(shares * bars["close"] / 1000.0)
    return rec


def weights_of(code: StockCode, bars: dict[str, np.ndarray], day_ms: np.ndarray) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in np.flatnonzero(np.abs(bars["jump"] - 1.0) > 1e-4):  # one row per weight event
        r = float(bars["jump"][i])
        if r <= 1.0:
            continue
        date = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(day_ms[i]))
        prev_close = float(bars["close"][i - 1]) if i > 0 else float(bars["close"][i])
        if r > 1.05:
            rows.append({"code": str(code), "date": date, "count_as_gift": round(10 * (r - 1), 4)})
        else:
            rows.append({"code": str(code), "date": date, "bonus": round(10 * prev_close * (1 - 1 / r), 3)})
    return rows


def _write_market(out: str, market: str, payload: list[tuple[str, np.ndarray]]) -> int:
    with HikyuuWriter(Path(out)) as writer:
        for code, rec in payload:
            writer.write_records(StockCode.parse(code), rec, "day")
    return sum(int(r.shape[0]) for _, r in payload)


def ensure_market_store(
    stocks: int = DEFAULT_STOCKS, out: Path | None = None, seed: int = 20240601, force: bool = False
) -> Path:
    """Build the store (or reuse it when its marker matches) and return its directory."""
    out = Path(out) if out is not None else work_dir() / "market_store"
    params = {"version": VERSION, "stocks": stocks, "seed": seed}
    marker = out / "params.json"
    if not force and up_to_date(marker, params):
        log.info("market store %s is up to date", out)
        return out
    started = time.perf_counter()
    if out.exists():
        for p in out.iterdir():
            if p.is_file():
                p.unlink()
    out.mkdir(parents=True, exist_ok=True)
    sources, index = load_sources(data_root() / "qlib_cn")
    qlib_last = (data_root() / "qlib_cn" / "calendars" / "day.txt").read_text().split()[-1]
    cal = weekday_calendar(dt.date.fromisoformat(qlib_last))
    rng = np.random.default_rng(seed)
    codes = synth_codes(stocks)
    payload: dict[Market, list[tuple[str, np.ndarray]]] = {Market.SH: [], Market.SZ: []}
    stock_rows: list[dict[str, Any]] = []
    weight_rows: list[dict[str, Any]] = []
    total = 0
    for i, code in enumerate(codes):  # one pass per synthetic stock
        a = sources[int(rng.integers(len(sources)))]
        b = sources[int(rng.integers(len(sources)))]
        length = int(rng.integers(1800, 5600))
        bars = build_stock(rng, a, b, length)
        end_slot = cal.size - (0 if rng.random() > 0.15 else int(rng.integers(100, 1500)))
        first_slot = end_slot - length
        day_ms = cal[first_slot + bars["slot"]]
        rec = records_of(bars, day_ms, lots=True)
        payload[code.market].append((str(code), rec))
        total += rec.shape[0]
        start = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_ms[0] // 86_400_000))
        end = dt.date(1970, 1, 1) + dt.timedelta(days=int(day_ms[-1] // 86_400_000))
        stock_rows.append(
            {
                "code": str(code),
                "name": f"SYN{i:05d}",
                "type": 8 if code.symbol.startswith("30") else 9 if code.symbol.startswith("688") else 1,
                "valid": end_slot == cal.size,
                "start_date": start,
                "end_date": None if end_slot == cal.size else end,
            }
        )
        weight_rows += weights_of(code, bars, day_ms)
    for name, market, src in (("000001", Market.SH, "sh000001"), ("399001", Market.SZ, "sz399001")):
        raw = index[src]
        bars = build_stock(rng, raw, raw, cal.size)
        bars["volume"] = bars["volume"] * 1.0
        rec = records_of(bars, cal[bars["slot"]], lots=False)
        code = StockCode(market, name)
        payload[market].insert(0, (str(code), rec))
        total += rec.shape[0]
        stock_rows.append(
            {
                "code": str(code),
                "name": src,
                "type": 2,
                "valid": True,
                "start_date": dt.date(1970, 1, 1) + dt.timedelta(days=int(cal[0] // 86_400_000)),
                "end_date": None,
            }
        )
    log.info(
        "generated %d bars for %d stocks in %.1fs", total, len(stock_rows), time.perf_counter() - started
    )
    with HikyuuWriter(out) as writer:
        writer.write_stocks(pl.DataFrame(stock_rows, infer_schema_length=None))
        writer.write_weights(pl.DataFrame(weight_rows, infer_schema_length=None))
    with ProcessPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_write_market, str(out), m.value, p) for m, p in payload.items()]
        written = sum(f.result() for f in futures)
    elapsed = time.perf_counter() - started
    marker.write_text(
        json.dumps(
            {
                "params": params,
                "bars": written,
                "stocks": len(stock_rows),
                "weights": len(weight_rows),
                "seconds": round(elapsed, 1),
            },
            indent=2,
        )
    )
    log.info("wrote %s: %d bars, %d weight rows in %.1fs", out, written, len(weight_rows), elapsed)
    return out


def main(argv: list[str] | None = None) -> int:
    return generator_main(argv, __doc__, DEFAULT_STOCKS, 20240601, ensure_market_store)


if __name__ == "__main__":
    raise SystemExit(main())
