"""Suite ``data``: market data access against pyqlib and against Hikyuu's stated figures.

- Qlib store, CSI300 2010–2020, 5 raw fields: ours vs pyqlib ``D.features`` (goal ratio ≥ 20).
- 100 CSI300 stocks × 6 years as a bars frame: ours vs pyqlib (goal ≤ 50 ms; old adapter 8.6 s).
- RSS growth for 100 stocks × 1 year (goal ≤ 10 MB).
- Hikyuu store, every stock, forward-adjusted, plus MA20: bars/s cold (a fresh process; files may sit in
  the OS page cache) on the shared store and on a generated whole-market store (≥ 15 M bars);
  goal ≥ 5 M bars/s, and MA20 over all bars in memory ≤ 100 ms. Anchor: Hikyuu's own 19 M bars in 6 s.
- Hikyuu whole-market store, every listed code forward-adjusted by ``load_many`` through the public
  client vs ``store.read_all`` in the same process (both decode every HDF5 table): goal within 10 %.
- Async: 100 codes by ``load_many`` vs sequential loads, with the largest event-loop stall (goal ≤ 10 ms).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import REPO, Result, data_root, rss_mb, timed, work_dir

log = logging.getLogger("bench.data")

FIELDS = ["$open", "$high", "$low", "$close", "$volume"]
HIKYUU_STATED_BARS = 19_000_000
HIKYUU_STATED_S = 6.0


def run(quick: bool) -> list[Result]:
    qlib_dir = data_root() / "qlib_cn"
    hikyuu_dir = data_root() / "hikyuu"
    results: list[Result] = []
    results += qlib_suite(qlib_dir, quick)
    results += hikyuu_suite(hikyuu_dir, quick)
    results += async_suite(qlib_dir, quick)
    return results


# --------------------------------------------------------------------------------------------- qlib


def qlib_suite(qlib_dir: Path, quick: bool) -> list[Result]:
    import qlib
    from qlib.data import D

    from hikyuu_qlib import DateRange
    from hikyuu_qlib.app import open_market
    from hikyuu_qlib.stores.qlib import QlibStore

    qlib.init(provider_uri=str(qlib_dir), region="cn", kernels=1)
    start, end = ("2019-01-01", "2020-12-31") if quick else ("2010-01-01", "2020-12-31")
    store = QlibStore.open(qlib_dir)
    dates = DateRange.of(start, end)

    anchor_s, qlib_frame = timed(lambda: D.features(D.instruments("csi300"), FIELDS, start, end), repeat=2)
    ours_s, ours = timed(lambda: store.features("csi300", FIELDS, dates), repeat=5)
    same_shape = ours.height == len(qlib_frame)
    results = [
        Result(
            "qlib csi300 5 raw fields " + f"{start[:4]}-{end[:4]}",
            ours_s,
            "pyqlib D.features",
            anchor_s,
            goal_ratio=20,
            extra={"rows": ours.height, "qlib_rows": len(qlib_frame), "same_rows": same_shape},
        )
    ]

    codes = _stored_members(store, 100)
    six = ("2015-01-01", "2020-12-31")
    anchor_s, _ = timed(lambda: D.features(codes, FIELDS, *six), repeat=2)
    with open_market(f"qlib:{qlib_dir}") as md:
        ours_s, frame = timed(
            lambda: md.load_many(codes, start=six[0], end=six[1]).raise_for_errors(), repeat=5
        )
        results.append(
            Result(
                "qlib 100 csi300 stocks x 6 years as bars frame",
                ours_s,
                "pyqlib D.features",
                anchor_s,
                extra={
                    "rows": frame.height,
                    "goal_max_s": 0.05,
                    "goal_met": ours_s <= 0.05,
                    "old_design_s": 8.6,
                },
            )
        )
        del frame
    rss = _in_fresh_process("rss_figures", str(qlib_dir))  # pyqlib's heap here would blur the figure
    growth = rss["growth_mb"]
    results.append(
        Result(
            "qlib 100 stocks x 1 year RSS growth",
            0.0,
            extra={
                "rss_growth_mb": round(growth, 2),
                "rows": rss["rows"],
                "goal_max_mb": 10,
                "goal_met": growth <= 10,
                "old_design_mb": 132,
            },
        )
    )
    return results


def _stored_members(store: Any, n: int) -> list[str]:
    """The first ``n`` CSI300 members of 2015–2020 that have data (38 delisted members have none)."""
    from hikyuu_qlib import DateRange

    stored = set(store.stocks(valid=None)["code"].to_list())
    members = store.members("csi300", DateRange.of("2015-01-01", "2020-12-31"))["code"].unique().sort()
    return [c for c in members.to_list() if c in stored][:n]


# ------------------------------------------------------------------------------------------- hikyuu


def hikyuu_suite(hikyuu_dir: Path, quick: bool) -> list[Result]:
    results = _hikyuu_all_ma20("shared hikyuu store", hikyuu_dir)
    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_market_store import ensure_market_store

    market = (
        ensure_market_store(stocks=800, out=work_dir() / "market_store_quick")
        if quick
        else ensure_market_store()
    )
    results += _hikyuu_all_ma20("whole-market hikyuu store", market)
    results.append(_load_many_vs_read_all("whole-market hikyuu store", market, rounds=3 if quick else 7))
    return results


LOAD_MANY_GOAL = 1.10  # load_many of every code within 10 % of read_all


def _load_many_vs_read_all(label: str, path: Path, rounds: int) -> Result:
    """The goal is judged on the median of the rounds' ratios: in a round the two loads run back to back
    (in alternating order), so a busy spell of the shared machine hits both; the best of each over all
    rounds is the headline time, but one quiet moment can favour either side. The rounds' CPU-time ratio
    (all threads of the process) shows the work each does, which other processes do not change."""
    m = _in_fresh_process("load_many_figures", str(path), str(rounds))
    ours_s, anchor_s, bars = m["load_many_s"], m["read_all_s"], m["bars"]
    median = statistics.median(m["paired"])
    return Result(
        f"{label}: load_many of every code (public client) vs read_all, forward-adjusted",
        ours_s,
        "store.read_all, same store, same process (best of interleaved rounds)",
        anchor_s,
        extra={
            "bars": bars,
            "codes": m["codes"],
            "rounds": rounds,
            "load_many_bars_per_s": round(bars / ours_s),
            "read_all_bars_per_s": round(bars / anchor_s),
            "best_over_best": round(ours_s / anchor_s, 3),
            "rounds_over_read_all": [round(r, 3) for r in m["paired"]],
            "median_round_over_read_all": round(median, 3),
            "median_round_cpu_over_read_all": round(statistics.median(m["paired_cpu"]), 3),
            "goal_max_over_read_all": LOAD_MANY_GOAL,
            "goal_met": median <= LOAD_MANY_GOAL,
            "load_many_concurrency_4_s": round(m["load_many_c4_s"], 3),
            "async_load_many_s": round(m["async_s"], 3),
            "same_frame": m["same_frame"],
        },
    )


def load_many_figures(path: str, rounds: str) -> dict[str, Any]:
    """Every listed code of a Hikyuu store, forward-adjusted: ``store.read_all`` and ``load_many`` through
    the public sync client (default concurrency, and 4 as ``hq data bars`` asks), then the async client;
    best of ``rounds`` interleaved rounds after one warm read (page cache, compiled kernels), and each
    round's load_many / read_all. The store has no ``cache_dir``: every load decodes the HDF5 tables."""
    from hikyuu_qlib import Adjust
    from hikyuu_qlib.marketdata import AsyncMarketDataClient, MarketDataClient
    from hikyuu_qlib.stores.hikyuu import HikyuuStore

    def best(fn: Any, into: dict[str, float], key: str) -> Any:
        gc.collect()
        start, cpu = time.perf_counter(), time.process_time()
        value = fn()
        into[key] = min(into.get(key, float("inf")), time.perf_counter() - start)
        into[f"{key}_cpu"] = time.process_time() - cpu
        return value

    times: dict[str, float] = {}
    paired: list[float] = []
    paired_cpu: list[float] = []
    with MarketDataClient(HikyuuStore.open(path)) as md:
        store = md.store
        codes = md.stocks(valid=None)["code"].to_list()
        expected = store.read_all(adjust=Adjust.FORWARD)
        bars, same = expected.height, True
        del expected
        for i in range(int(rounds)):
            pair: dict[str, float] = {}
            for what in ("read_all", "load_many")[:: 1 if i % 2 == 0 else -1]:
                if what == "read_all":
                    best(lambda: store.read_all(adjust=Adjust.FORWARD), pair, "read_all_s")
                else:
                    result = best(lambda: md.load_many(codes, adjust=Adjust.FORWARD), pair, "load_many_s")
                    same = same and result.ok and result.frame.height == bars
                    del result
            paired.append(pair["load_many_s"] / pair["read_all_s"])
            paired_cpu.append(pair["load_many_s_cpu"] / pair["read_all_s_cpu"])
            for key in ("read_all_s", "load_many_s"):
                times[key] = min(times.get(key, float("inf")), pair[key])
            best(lambda: md.load_many(codes, adjust=Adjust.FORWARD, concurrency=4), times, "load_many_c4_s")

    async def run_async() -> None:
        async with AsyncMarketDataClient(HikyuuStore.open(path)) as amd:
            for _ in range(int(rounds)):
                gc.collect()
                start = time.perf_counter()
                result = await amd.load_many(codes, adjust=Adjust.FORWARD)
                times["async_s"] = min(times.get("async_s", float("inf")), time.perf_counter() - start)
                del result

    asyncio.run(run_async())
    times = {k: v for k, v in times.items() if not k.endswith("_cpu")}
    return {
        "bars": bars,
        "codes": len(codes),
        "same_frame": same,
        "paired": paired,
        "paired_cpu": paired_cpu,
        **times,
    }


def _accepts_quick(fn: Any) -> bool:
    import inspect

    return "quick" in inspect.signature(fn).parameters


_COLD_SCRIPT = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from hikyuu_qlib import Adjust
from hikyuu_qlib.stores.hikyuu import HikyuuStore
from hikyuu_qlib.factors.grouped import group_starts, grouped_rolling_mean
t_import = time.perf_counter() - t0
t0 = time.perf_counter()
store = HikyuuStore.open(sys.argv[1], cache_dir=Path(sys.argv[2]) if len(sys.argv) > 2 else None)
frame = store.read_all(adjust=Adjust.FORWARD)
t_load = time.perf_counter() - t0
t1 = time.perf_counter()
ma = grouped_rolling_mean(frame, "close", 20)
t_ma = time.perf_counter() - t1
# warm: the frame is in memory; MA20 again, ten times (best and median: on this VM the first calls after a
# whole-market load can land their 130 MB output on memory the host has not backed yet, ~1 ms per MB)
warm = sorted((lambda s: (grouped_rolling_mean(frame, "close", 20), time.perf_counter() - s)[1])(time.perf_counter())
              for _ in range(10))
best, median = warm[0], (warm[4] + warm[5]) / 2
starts = group_starts(frame["code"])
best_idx = min((lambda s: (grouped_rolling_mean(frame, "close", 20, starts=starts), time.perf_counter() - s)[1])(time.perf_counter())
               for _ in range(5))
print(json.dumps({"ma_warm_indexed_s": best_idx, "bars": frame.height, "codes": frame["code"].n_unique(), "load_s": t_load,
                  "ma_cold_s": t_ma, "ma_warm_s": best, "ma_warm_median_s": median, "import_s": t_import,
                  "ma_nonnull": int(ma.is_not_null().sum())}))
"""


def _cold(path: Path, cache: Path | None) -> dict[str, Any]:
    args = [sys.executable, "-c", _COLD_SCRIPT, str(path)] + ([str(cache)] if cache else [])
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"cold load of {path} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _hikyuu_all_ma20(label: str, path: Path) -> list[Result]:
    """Two cold modes, each the faster of two new processes: decoding every HDF5 table, and mapping our
    decoded cache. The decode runs first: filling the cache writes ~1 GB, whose writeback would
    otherwise overlap it."""
    import tempfile

    results = []
    with tempfile.TemporaryDirectory(dir=work_dir()) as tmp:
        cache = Path(tmp)
        for mode, cache_dir in (("HDF5 decode", None), ("decoded-column cache", cache)):
            if cache_dir is not None:
                _cold(path, cache)  # first load ever: decodes and fills the cache (not timed here)
                os.sync()
            m = min((_cold(path, cache_dir) for _ in range(2)), key=lambda r: r["load_s"] + r["ma_cold_s"])
            ours_s = m["load_s"] + m["ma_cold_s"]
            bars_per_s = m["bars"] / ours_s
            anchor_s = HIKYUU_STATED_S * m["bars"] / HIKYUU_STATED_BARS
            results.append(
                Result(
                    f"{label}: all stocks forward-adjusted + MA20, cold process, {mode}",
                    ours_s,
                    "Hikyuu stated 19M bars in 6 s (16 cores), scaled to these bars",
                    anchor_s,
                    extra={
                        "bars": m["bars"],
                        "codes": m["codes"],
                        "bars_per_s": round(bars_per_s),
                        **_throughput_goal(m["bars"], bars_per_s),
                        "ma20_warm_s": round(m["ma_warm_s"], 4),
                        "ma20_warm_median_of_10_s": round(m["ma_warm_median_s"], 4),
                        "ma20_warm_with_group_index_s": round(m["ma_warm_indexed_s"], 4),
                        "ma20_warm_goal_s": 0.1,
                        "ma20_warm_goal_met": m["ma_warm_s"] <= 0.1,
                        "hikyuu_warm_stated_s": 0.166,
                        "load_s": round(m["load_s"], 3),
                        "ma20_cold_s": round(m["ma_cold_s"], 4),
                    },
                )
            )
    return results


def _throughput_goal(bars: int, bars_per_s: float) -> dict[str, Any]:
    """The cold-load goal (>= 5 M bars/s, set against Hikyuu's 19 M bars in 6 s) is a whole-market
    throughput: it is judged at whole-market size. On a store of a few tens of thousands of bars the
    fixed costs of a new process (loading compiled kernels, opening the databases) are the time."""
    if bars < WHOLE_MARKET_BARS:
        return {
            "goal_bars_per_s": None,
            "goal_note": f"throughput goal judged at >= {WHOLE_MARKET_BARS:,} bars",
        }
    return {"goal_bars_per_s": 5_000_000, "goal_met": bars_per_s >= 5_000_000}


WHOLE_MARKET_BARS = 15_000_000


# -------------------------------------------------------------------------------------------- async


def async_suite(qlib_dir: Path, quick: bool) -> list[Result]:
    """Measured in a fresh process: this one holds pyqlib's heap by now, whose full garbage collections
    (over 100 ms each here) would land in the loop-stall window whatever the code under test does."""
    m = _in_fresh_process("async_figures", str(qlib_dir))
    ours_s, stall, rows = m["ours_s"], m["stall_s"], m["rows"]
    sequential_s, batch_s, seq_rows = m["sequential_s"], m["batch_s"], m["sequential_rows"]
    return [
        Result(
            "async load_many 100 codes vs 100 sequential loads",
            ours_s,
            "100 sequential sync loads, one per code",
            sequential_s,
            extra={
                "rows": rows,
                "sequential_rows": seq_rows,
                "sync_load_many_s": round(batch_s, 4),
                "max_loop_stall_ms": round(stall * 1000, 3),
                "stall_goal_ms": 10,
                "goal_met": stall <= 0.010,
            },
        )
    ]


def _in_fresh_process(function: str, *args: str) -> dict[str, Any]:
    """``function(*args)`` of this module run in a new interpreter; its dict result back (JSON)."""
    script = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r}); "
        f"from suites.data import {function}; print(json.dumps({function}(*sys.argv[1:])))"
    )
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{function} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def rss_figures(qlib_dir: str) -> dict[str, Any]:
    """RSS growth of loading 100 stocks x 1 year, after the same stocks over 6 years warmed the process."""
    from hikyuu_qlib.app import open_market
    from hikyuu_qlib.stores.qlib import QlibStore

    store = QlibStore.open(qlib_dir)
    codes = _stored_members(store, 100)
    store.close()
    with open_market(f"qlib:{qlib_dir}") as md:
        for _ in range(3):
            frame = md.load_many(codes, start="2015-01-01", end="2020-12-31").raise_for_errors()
        del frame
        gc.collect()
        before = rss_mb()
        one_year = md.load_many(codes, start="2020-01-01", end="2020-12-31").raise_for_errors()
        return {"growth_mb": rss_mb() - before, "rows": one_year.height}


def async_figures(qlib_dir: str) -> dict[str, Any]:
    """100 codes by the async ``load_many`` (best of 3) with the largest event-loop stall meanwhile, and
    the same codes loaded one after the other (sync)."""
    from hikyuu_qlib.app import open_market, open_market_async
    from hikyuu_qlib.stores.qlib import QlibStore

    store = QlibStore.open(qlib_dir)
    code_list = _stored_members(store, 100)
    store.close()

    with open_market(f"qlib:{qlib_dir}") as md:
        # the old way: one load per code, one after the other
        sequential_s, seq = timed(lambda: [md.bars(c) for c in code_list], repeat=3)
        batch_s, _ = timed(lambda: md.load_many(code_list).raise_for_errors(), repeat=3)

    async def measure() -> tuple[float, float, int]:
        async with open_market_async(f"qlib:{qlib_dir}") as amd:
            await amd.load_many(code_list[:5])  # warm the executor threads
            stall = 0.0
            done = asyncio.Event()

            async def ticker() -> None:
                nonlocal stall
                while not done.is_set():
                    t = time.perf_counter()
                    await asyncio.sleep(0.001)
                    stall = max(stall, time.perf_counter() - t - 0.001)

            tick = asyncio.create_task(ticker())
            await asyncio.sleep(0.01)
            best = float("inf")
            rows = 0
            for _ in range(3):
                t0 = time.perf_counter()
                result = await amd.load_many(code_list, concurrency=8)
                best = min(best, time.perf_counter() - t0)
                rows = result.raise_for_errors().height
            done.set()
            await tick
            return best, stall, rows

    ours_s, stall, rows = asyncio.run(measure())
    return {
        "ours_s": ours_s,
        "stall_s": stall,
        "rows": rows,
        "sequential_s": sequential_s,
        "batch_s": batch_s,
        "sequential_rows": sum(f.height for f in seq),
    }
