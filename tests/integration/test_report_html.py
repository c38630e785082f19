"""The backtest report on real data: files, numbers, and the page loaded in headless Chromium.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``): console calls,
uncaught exceptions and log entries (failed resource loads included) are collected while the page loads.
A control page with planted errors proves that the harness sees them.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from tests.conftest import require

from hikyuu_qlib.app import open_feature_source
from hikyuu_qlib.backtest.report import information_coefficient, run_report, write_report
from hikyuu_qlib.backtest.report.charts import monthly_returns
from hikyuu_qlib.backtest.system import FixedPercent, ScoreThreshold, StopLoss, TradingSystem
from hikyuu_qlib.domain import Adjust, DateRange, InvalidInputError, StockCode
from hikyuu_qlib.stores.hikyuu import HikyuuStore

CODES = ["SH600000", "SH600004", "SH600005", "SZ000001", "SZ000002", "SZ000004"]
DATES = DateRange.of("2008-01-01", "2011-12-31")
SECTIONS = (
    "summary",
    "equity",
    "drawdown",
    "rolling-ic",
    "monthly-returns",
    "turnover",
    "statistics",
    "trades",
)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def store(hikyuu_dir: Path) -> HikyuuStore:
    return HikyuuStore.open(hikyuu_dir)


@pytest.fixture(scope="module")
def momentum(store: HikyuuStore) -> pl.DataFrame:
    """A real prediction frame: each code's 5-day return as the score."""
    frames = [store.read_bars(StockCode.parse(c), dates=DATES) for c in CODES]
    return (
        pl.concat(frames)
        .select(
            "datetime", "code", (pl.col("close") / pl.col("close").shift(5).over("code") - 1).alias("score")
        )
        .drop_nulls()
    )


@pytest.fixture(scope="module")
def report_dir(store: HikyuuStore, momentum: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    system = TradingSystem(
        ScoreThreshold(momentum, 0.05, -0.02),
        FixedPercent(0.3),
        stop_loss=StopLoss(0.08),
        init_cash=1_000_000.0,
    )
    result = system.run(store, CODES, DATES, benchmark="SH000001")
    out = tmp_path_factory.mktemp("report")
    rates = store.risk_free()
    run_report(
        out,
        result,
        predictions=momentum,
        store=open_feature_source(store),
        benchmark="SH000001",
        title="Momentum system",
        risk_free=rates,
    )
    return out


def test_report_files_and_numbers(report_dir: Path, store: HikyuuStore, momentum: pl.DataFrame) -> None:
    for name in ("report.html", "daily.parquet", "daily.csv", "trades.parquet", "ic.parquet"):
        assert (report_dir / name).is_file(), name
    for name in ("equity", "drawdown", "rolling_ic", "monthly_returns", "turnover"):
        assert (report_dir / f"{name}.png").read_bytes().startswith(PNG), name
    daily = pl.read_parquet(report_dir / "daily.parquet")
    csv = pl.read_csv(report_dir / "daily.csv", try_parse_dates=True)
    assert csv.height == daily.height > 900
    assert csv["return"].to_list() == pytest.approx(daily["return"].to_list())
    # the IC of one day by hand: the Pearson correlation of scores and the model's label, the
    # next-but-one-trading-day return of the backward-adjusted close (the store's feature source's $close,
    # as the model reads it: a code without a bar on either trading day has no label)
    ic = pl.read_parquet(report_dir / "ic.parquet")
    day = ic["datetime"][100]
    calendar = store.calendar()
    first, second = calendar.filter(calendar > day).head(2).to_list()
    bars = pl.concat(
        [store.read_bars(StockCode.parse(c), adjust=Adjust.BACKWARD) for c in CODES]
    )  # whole histories

    def close_on(when: object) -> pl.DataFrame:
        return bars.filter(pl.col("datetime") == when).select("code", "close")

    label = (
        close_on(first)
        .join(close_on(second), on="code", suffix="_2")
        .select(
            "code",
            pl.lit(day).cast(pl.Datetime("ms")).alias("datetime"),
            (pl.col("close_2") / pl.col("close") - 1).alias("label"),
        )
    )
    joined = momentum.filter(pl.col("datetime") == day).join(label, on=["datetime", "code"]).drop_nulls()
    x, y = joined["score"].to_list(), joined["label"].to_list()
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    var = (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5
    assert ic.filter(pl.col("datetime") == day)["ic"].item() == pytest.approx(cov / var, rel=1e-5)
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    # self-contained: no script, no external reference, every image inline
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == 5
    for ident in SECTIONS:
        assert f'id="{ident}"' in page
    # the Sharpe ratio used Hikyuu's 10-year bond yields as the risk-free rate
    assert re.search(r"<th>risk_free_annual</th><td>[1-5]\.\d\d %</td>", page)


def test_monthly_returns_compound_real_daily_returns(store: HikyuuStore, tmp_path: Path) -> None:
    """A deterministic daily frame from SH600000's close-to-close returns, SH000001 as the benchmark."""
    span = DateRange.of("2010-01-01", "2011-06-30")
    stock = store.read_bars(StockCode.parse("SH600000"), dates=span)
    index = store.read_bars(StockCode.parse("SH000001"), dates=span)
    daily = (
        stock.select("datetime", (pl.col("close") / pl.col("close").shift(1) - 1).alias("return"))
        .join(
            index.select("datetime", (pl.col("close") / pl.col("close").shift(1) - 1).alias("bench_return")),
            on="datetime",
        )
        .drop_nulls()
        .with_columns(cost=pl.lit(0.0005), turnover=pl.lit(0.1))
    )
    paths = write_report(tmp_path / "r", daily, {"note": "hand check", "table": {"a": 1.5}}, title="SH600000")
    # March 2010 by hand: the product of (1 + r - cost) over its days
    march = daily.filter((pl.col("datetime").dt.year() == 2010) & (pl.col("datetime").dt.month() == 3))
    expected = 1.0
    for r in march["return"]:
        expected *= 1.0 + r - 0.0005
    got = monthly_returns(daily).filter((pl.col("year") == 2010) & (pl.col("month") == 3))["return"].item()
    assert got == pytest.approx(expected - 1.0)
    page = paths.html.read_text(encoding="utf-8")
    assert "hand check" in page and "No IC" in page and "rolling_ic" not in paths.pngs
    total = 1.0
    for r in daily["return"]:
        total *= 1.0 + r - 0.0005
    assert f"{(total - 1) * 100:.2f} %" in page
    assert pl.read_csv(paths.daily_csv, try_parse_dates=True)["datetime"].dtype.is_temporal()


def test_bad_report_input_is_rejected(tmp_path: Path) -> None:
    ok = pl.DataFrame(
        {"datetime": [dt.datetime(2010, 1, 4)], "return": [0.01], "cost": [0.0], "turnover": [0.0]}
    )
    with pytest.raises(InvalidInputError, match="turnover"):
        write_report(tmp_path, ok.drop("turnover"), {})
    with pytest.raises(InvalidInputError, match="empty"):
        write_report(tmp_path, ok.clear(), {})
    with pytest.raises(InvalidInputError, match="repeated"):
        write_report(tmp_path, pl.concat([ok, ok]), {})
    with pytest.raises(InvalidInputError, match="NaN"):
        write_report(tmp_path, ok.with_columns(pl.lit(float("nan")).alias("return")), {})
    with pytest.raises(InvalidInputError, match="label"):
        information_coefficient(
            pl.DataFrame({"datetime": [], "code": [], "score": []}),
            pl.DataFrame({"datetime": [], "code": []}),
        )


# --- headless Chromium over the DevTools pipe -----------------------------------------------------


class _Cdp:
    """A minimal DevTools client on ``--remote-debugging-pipe`` (NUL-separated JSON messages)."""

    def __init__(self, binary: str, user_dir: str) -> None:
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()
        flags = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={user_dir}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # the browser reads commands on fd 3 and writes replies on fd 4; bash wires them up
        # (dash only redirects one-digit fds)
        wire = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        self.proc = subprocess.Popen(
            ["bash", "-c", wire, binary, *flags],
            pass_fds=(to_child_r, from_child_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for fd in (to_child_r, from_child_w):
            os.close(fd)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any] | None:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                return None
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        msg: dict[str, Any] = json.loads(raw)
        return msg

    def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while (reply := self._read(deadline)) is not None:
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)
        raise TimeoutError(method)

    def wait_for(self, method: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return
        while (msg := self._read(deadline)) is not None:
            self.events.append(msg)
            if msg.get("method") == method:
                return
        raise TimeoutError(method)

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (msg := self._read(deadline)) is not None:
            self.events.append(msg)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close", timeout=5.0)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._r)
        os.close(self._w)


def _problems(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in {"error", "assert", "warning"}:
            out.append(f"console.{p['type']}: {[a.get('value') for a in p.get('args', [])]}")
        elif m == "Runtime.exceptionThrown":
            details = p["exceptionDetails"]
            out.append(f"exception: {details.get('text')} {details.get('exception', {}).get('description')}")
        elif m == "Log.entryAdded" and p["entry"].get("level") in {"error", "warning"}:
            out.append(f"log {p['entry']['level']}: {p['entry'].get('text')} {p['entry'].get('url', '')}")
    return out


def _load(binary: str, url: str, screenshot: Path | None = None) -> tuple[list[str], dict[str, Any]]:
    with tempfile.TemporaryDirectory() as user_dir:
        cdp = _Cdp(binary, user_dir)
        try:
            target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Runtime", "Log", "Page"):
                cdp.call(f"{domain}.enable", session=session)
            metrics = {"width": 1400, "height": 2400, "deviceScaleFactor": 1, "mobile": False}
            cdp.call("Emulation.setDeviceMetricsOverride", metrics, session=session)
            cdp.call("Page.navigate", {"url": url}, session=session)
            cdp.wait_for("Page.loadEventFired")
            cdp.drain(1.0)
            probe = """JSON.stringify({
                sections: [...document.querySelectorAll('section')].map(s => s.id),
                images: [...document.images].map(i => [i.complete, i.naturalWidth]),
                tables: document.querySelectorAll('table').length,
                title: document.title})"""
            value = cdp.call(
                "Runtime.evaluate", {"expression": probe, "returnByValue": True}, session=session
            )["result"]["value"]
            if screenshot is not None:
                shot = cdp.call(
                    "Page.captureScreenshot",
                    {"format": "png", "captureBeyondViewport": True},
                    session=session,
                )
                screenshot.write_bytes(base64.b64decode(shot["data"]))
            return _problems(cdp.events), json.loads(value)
        finally:
            cdp.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    candidates = ("/usr/bin/chromium", shutil.which("chromium") or "")
    found = next((p for p in candidates if p and os.path.isfile(p)), None)
    require(found is not None, "headless Chromium not installed (apt-get install -y chromium)")
    assert found is not None
    return found


def test_harness_sees_planted_errors(chromium: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><script>console.error("planted"); missingFn();</script>'
        '<img src="missing.png"></body></html>'
    )
    problems, _ = _load(chromium, bad.as_uri())
    text = "\n".join(problems)
    assert "planted" in text and "missingFn" in text and "missing.png" in text


def test_report_loads_in_chromium_without_console_errors(chromium: str, report_dir: Path) -> None:
    shot = report_dir / "screenshot.png"
    problems, dom = _load(chromium, (report_dir / "report.html").as_uri(), screenshot=shot)
    assert problems == []
    assert dom["title"] == "Momentum system"
    assert tuple(dom["sections"][: len(SECTIONS)]) == SECTIONS
    assert len(dom["images"]) == 5
    assert all(complete and width > 500 for complete, width in dom["images"])
    assert dom["tables"] >= 3
    assert shot.read_bytes().startswith(PNG)
    keep = os.environ.get("HQ_KEEP_REPORT")
    if keep:
        shutil.copytree(report_dir, keep, dirs_exist_ok=True)


def test_report_of_the_topk_engine(chromium: str, qlib_dir: Path, tmp_path: Path) -> None:
    """The portfolio engine's result goes through the same report (statistics from its own methods)."""
    from hikyuu_qlib.backtest import BacktestConfig, run_topk_backtest
    from hikyuu_qlib.stores.qlib.store import QlibStore

    qlib = QlibStore.open(qlib_dir)
    span = DateRange.of("2019-01-01", "2019-12-31")
    have = {p.name.upper() for p in (qlib_dir / "features").iterdir()}
    codes = [c for c in qlib.members("csi300", span)["code"].unique().sort().to_list() if c in have][:30]
    bars = pl.concat([qlib.read_bars(StockCode.parse(c), dates=span) for c in codes], how="vertical_relaxed")
    preds = (
        bars.sort("code", "datetime")
        .select(
            "datetime", "code", (1 - pl.col("close") / pl.col("close").shift(5).over("code")).alias("score")
        )
        .drop_nulls()
    )
    result = run_topk_backtest(preds, qlib, BacktestConfig(topk=8, n_drop=2, benchmark="SH000300"))
    paths = run_report(
        tmp_path, result, predictions=preds, store=qlib, benchmark="SH000300", title="TopkDropout"
    )
    page = paths.html.read_text(encoding="utf-8")
    for caption in ("excess_return_with_cost", "portfolio", "trades", "ic", "Holdings"):
        assert f"<caption>{caption}</caption>" in page, caption
    assert set(paths.pngs) == {"equity", "drawdown", "rolling_ic", "monthly_returns", "turnover"}
    problems, dom = _load(chromium, paths.html.as_uri())
    assert problems == []
    assert "positions" in dom["sections"] and len(dom["images"]) == 5
