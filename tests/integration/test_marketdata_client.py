"""The sync and async clients over real stores: one frame, per-code errors, bounded concurrency, streams."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import polars as pl
import pytest

from hikyuu_qlib import Adjust, AsyncMarketDataClient, LoadErrors, MarketDataClient, StockCode
from hikyuu_qlib.app import open_store
from hikyuu_qlib.domain import DataFormatError, InvalidCodeError, UnknownCodeError, UnsupportedKTypeError
from hikyuu_qlib.domain.schema import BAR_SCHEMA
from hikyuu_qlib.ports import MarketData

CODES = ["SZ000001", "sh600000", "600004.SH"]


class CountingStore:
    """Delegates to a real store and records how many reads run at once and on which threads. It offers
    only per-code reads (no ``read_many``), so the clients' own bounded concurrency is what runs."""

    def __init__(self, inner: MarketData) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.threads: set[str] = set()

    def __getattr__(self, name: str) -> object:
        if name == "read_many":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def read_bars(self, code, **kw):  # type: ignore[no-untyped-def]
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
            self.threads.add(threading.current_thread().name)
        try:
            threading.Event().wait(0.01)  # hold the slot so overlap is observable
            return self._inner.read_bars(code, **kw)
        finally:
            with self._lock:
                self.active -= 1


def test_bars_returns_one_sorted_frame(hikyuu_dir: Path) -> None:
    with MarketDataClient(open_store(f"hikyuu:{hikyuu_dir}")) as md:
        frame = md.bars(CODES, start="2011-01-01", end="2011-12-31")
    assert frame.columns[: len(BAR_SCHEMA)] == list(BAR_SCHEMA)
    assert frame["code"].unique().sort().to_list() == ["SH600000", "SH600004", "SZ000001"]
    assert frame.equals(frame.sort("code", "datetime"))
    assert frame["datetime"].min().year == 2011 and frame["datetime"].max().year == 2011
    row = frame.filter((pl.col("code") == "SH600000") & (pl.col("datetime") == pl.datetime(2011, 12, 6)))
    assert row["close"].item() == pytest.approx(8.73)


def test_load_many_reports_each_bad_code_and_loads_the_rest(hikyuu_dir: Path) -> None:
    with MarketDataClient(open_store(f"hikyuu:{hikyuu_dir}"), max_workers=3) as md:
        result = md.load_many([*CODES, "SH999999", "XX12"], concurrency=3)
        assert set(result.errors) == {"SH999999", "XX12"}
        assert isinstance(result.errors["SH999999"], UnknownCodeError)
        assert isinstance(result.errors["XX12"], InvalidCodeError)
        assert "SH999999" in str(result.errors["SH999999"])
        assert result.frame["code"].n_unique() == 3
        with pytest.raises(LoadErrors) as info:
            md.bars(["SH600000", "SH999999"])
        assert set(info.value.errors) == {"SH999999"}


def test_sync_concurrency_is_bounded(hikyuu_dir: Path) -> None:
    store = CountingStore(open_store(f"hikyuu:{hikyuu_dir}"))
    codes = ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]
    with MarketDataClient(store, max_workers=8) as md:  # type: ignore[arg-type]
        result = md.load_many(codes, concurrency=2)
    assert result.ok and result.frame["code"].n_unique() == 7
    assert 1 < store.peak <= 2


async def test_async_matches_sync_runs_off_loop_and_is_bounded(hikyuu_dir: Path) -> None:
    codes = ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004", "SZ000005"]
    with MarketDataClient(open_store(f"hikyuu:{hikyuu_dir}")) as md:
        expected = md.bars(codes, adjust="forward")
    store = CountingStore(open_store(f"hikyuu:{hikyuu_dir}"))
    async with AsyncMarketDataClient(store, max_workers=8) as amd:  # type: ignore[arg-type]
        result = await amd.load_many([*codes, "SZ999999"], adjust="forward", concurrency=3)
    assert result.frame.equals(expected)
    assert set(result.errors) == {"SZ999999"}
    assert 1 < store.peak <= 3
    assert store.threads and all(name.startswith("hq-aio") for name in store.threads)
    assert threading.current_thread().name not in store.threads


async def test_async_loads_concurrently_with_other_tasks(hikyuu_dir: Path) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.001)
            ticks += 1

    store = CountingStore(open_store(f"hikyuu:{hikyuu_dir}"))
    async with AsyncMarketDataClient(store, max_workers=2) as amd:  # type: ignore[arg-type]
        task = asyncio.create_task(ticker())
        await amd.load_many(["SH600000", "SH600004", "SH600005", "SZ000001"] * 3, concurrency=1)
        task.cancel()
    assert ticks >= 5  # 12 reads of >= 10 ms each left the loop free to tick


def test_stream_yields_bounded_chunks_that_add_up(hikyuu_dir: Path) -> None:
    codes = ["SH000001", "SH600000", "SZ000001", "SZ000002"]
    with MarketDataClient(open_store(f"hikyuu:{hikyuu_dir}")) as md:
        whole = md.bars(codes)
        chunks = list(md.stream(codes, chunk_rows=1000))
        assert all(c.height == 1000 for c in chunks[:-1]) and 0 < chunks[-1].height <= 1000
        assert pl.concat(chunks).equals(whole)
        with pytest.raises(LoadErrors, match="SZ999999"):
            list(md.stream(["SH600000", "SZ999999"], chunk_rows=100))


async def test_async_stream_matches_sync(hikyuu_dir: Path) -> None:
    codes = ["SH600000", "SZ000001", "SZ000002"]
    with MarketDataClient(open_store(f"hikyuu:{hikyuu_dir}")) as md:
        whole = md.bars(codes)
    async with AsyncMarketDataClient(open_store(f"hikyuu:{hikyuu_dir}")) as amd:
        chunks = [c async for c in amd.stream(codes, chunk_rows=777)]
    assert max(c.height for c in chunks) == 777
    assert pl.concat(chunks).equals(whole)


def test_qlib_store_through_the_client(qlib_dir: Path) -> None:
    with MarketDataClient(open_store(f"qlib:{qlib_dir}")) as md:
        members = md.members("csi300", start="2020-01-01", end="2020-12-31")
        codes = members["code"].unique().sort().head(20).to_list()
        result = md.load_many(codes, start="2020-01-01", end="2020-12-31", concurrency=4)
    assert result.ok
    assert result.frame["code"].n_unique() == 20
    assert "factor" in result.frame.columns
    assert StockCode.parse(codes[0])


async def test_batch_reads_equal_per_code_reads_and_report_bad_codes(qlib_dir: Path) -> None:
    store = open_store(f"qlib:{qlib_dir}")
    codes = ["SZ000002", "SH600000", "SH600519", "SZ000001", "SH601318"]
    expected = pl.concat([store.read_bars(StockCode.parse(c), adjust=Adjust.FORWARD) for c in sorted(codes)])
    with MarketDataClient(open_store(f"qlib:{qlib_dir}"), max_workers=2) as md:
        for concurrency in (1, 2, 3):
            result = md.load_many([*codes, "SH600005", "SH609999"], adjust="forward", concurrency=concurrency)
            assert result.frame.equals(expected)
            assert set(result.errors) == {"SH609999"}  # unknown to the store
            assert result.without_bars == ("SH600005",)  # a delisted CSI300 member without data
    async with AsyncMarketDataClient(open_store(f"qlib:{qlib_dir}"), max_workers=2) as amd:
        result = await amd.load_many([*codes, "SH600005", "SH609999"], adjust="forward", concurrency=2)
    assert result.frame.equals(expected) and set(result.errors) == {"SH609999"}
    assert result.without_bars == ("SH600005",)


class BatchRecorder:
    """Delegates to a real Hikyuu store and records each ``read_many`` call (its codes and thread);
    with ``fail_batches`` every ``read_many`` raises, as a store does when it cannot read a batch at all."""

    def __init__(self, inner: MarketData, *, fail_batches: bool = False) -> None:
        self._inner = inner
        self.fail_batches = fail_batches
        self.batches: list[tuple[int, str]] = []
        self.single_reads = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)

    def read_many(self, codes, **kw):  # type: ignore[no-untyped-def]
        self.batches.append((len(codes), threading.current_thread().name))
        if self.fail_batches:
            raise DataFormatError("this batch cannot be read as a whole")
        return self._inner.read_many(codes, **kw)  # type: ignore[attr-defined]

    def read_bars(self, code, **kw):  # type: ignore[no-untyped-def]
        self.single_reads += 1
        return self._inner.read_bars(code, **kw)


async def test_a_batch_reader_gets_every_code_in_one_pass_whatever_the_concurrency(hikyuu_dir: Path) -> None:
    """The store parallelises its own pass: splitting a whole-market load into runs would only repeat its
    fixed costs and add a concatenation (the gap between load_many and read_all)."""
    listed = open_store(f"hikyuu:{hikyuu_dir}")
    codes = listed.stocks(valid=None)["code"].to_list()  # 4,729 listed codes, 8 of them with bars
    expected = listed.read_all(adjust=Adjust.FORWARD)  # type: ignore[attr-defined]
    listed.close()
    store = BatchRecorder(open_store(f"hikyuu:{hikyuu_dir}"))
    with MarketDataClient(store, max_workers=4) as md:  # type: ignore[arg-type]
        result = md.load_many(codes, adjust="forward", concurrency=4)
    assert result.ok and result.frame.equals(expected) and len(result.without_bars) == len(codes) - 8
    async_store = BatchRecorder(open_store(f"hikyuu:{hikyuu_dir}"))
    async with AsyncMarketDataClient(async_store, max_workers=4) as amd:  # type: ignore[arg-type]
        async_result = await amd.load_many(codes, adjust="forward", concurrency=8)
    assert async_result.frame.equals(expected) and async_result.without_bars == result.without_bars
    assert [n for n, _ in store.batches + async_store.batches] == [len(codes), len(codes)]
    assert store.single_reads == async_store.single_reads == 0
    assert async_store.batches[0][1].startswith("hq-aio")  # the async client's batch ran on its executor


async def test_a_batch_that_fails_as_a_whole_is_read_code_by_code(hikyuu_dir: Path) -> None:
    asked = [*CODES, "SH600001", "SZ300999"]  # SH600001: listed without bars; SZ300999: unknown
    with MarketDataClient(open_store(f"hikyuu:{hikyuu_dir}")) as md:
        expected = md.load_many(CODES, adjust="backward")
    store = BatchRecorder(open_store(f"hikyuu:{hikyuu_dir}"), fail_batches=True)
    with MarketDataClient(store) as md:  # type: ignore[arg-type]
        result = md.load_many(asked, adjust="backward", concurrency=3)
    async_store = BatchRecorder(open_store(f"hikyuu:{hikyuu_dir}"), fail_batches=True)
    async with AsyncMarketDataClient(async_store) as amd:  # type: ignore[arg-type]
        async_result = await amd.load_many(asked, adjust="backward")
    for got, used in ((result, store), (async_result, async_store)):
        assert got.frame.equals(expected.frame)
        assert list(got.errors) == ["SZ300999"] and isinstance(got.errors["SZ300999"], UnknownCodeError)
        assert got.without_bars == ("SH600001",)
        assert len(used.batches) == 1 and used.single_reads == len(asked)  # one batch, then each code


async def test_a_query_the_batch_store_cannot_serve_fails_the_call(qlib_dir: Path) -> None:
    """Not read code by code: every code would fail the same way."""
    with (
        MarketDataClient(open_store(f"qlib:{qlib_dir}")) as md,
        pytest.raises(UnsupportedKTypeError, match="15min"),
    ):
        md.load_many(["SH600000", "SH600036"], ktype="min15")  # the store has no 15-minute calendar
    async with AsyncMarketDataClient(open_store(f"qlib:{qlib_dir}")) as amd:
        with pytest.raises(UnsupportedKTypeError, match="15min"):
            await amd.load_many(["SH600000", "SH600036"], ktype="min15")
